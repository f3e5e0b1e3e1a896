"""`kubectl mlmodel`: promote, abort, retry, pause, resume and watch MLModel rollouts.

Installed as `kubectl-mlmodel`, so kubectl finds it as a plugin. It runs the
kubectl it is found beside (or $KUBECTL) and only writes annotations on the
MLModel, each scoped to the canary revision and attempt shown in its status (see
`rollout.py`): an action meant for one rollout never applies to a later one.
Everything it does can be done with plain `kubectl annotate` (docs/rollouts.md).

Strings in an MLModel come from its author and from model files, so every one is
escaped before it reaches the terminal (`printable`); names given on the command
line must be Kubernetes object names and reach kubectl only after `--`.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any

from mlmodel_operator.rollout import ABORT, PAUSE, PROMOTE, RETRY


class PluginError(RuntimeError):
    pass


# Bidirectional overrides and isolates can make text read differently than it is
# ("Trojan Source"); line and paragraph separators can break a line on some terminals.
_INVISIBLE_LAYOUT = (
    "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u2028\u2029"
)
_ESCAPES = {
    code: chr(code).encode("unicode_escape").decode("ascii")
    for code in [*range(0x20), *range(0x7F, 0xA0), *map(ord, _INVISIBLE_LAYOUT)]
}


def printable(value: object) -> str:
    """`value` as text that cannot steer a terminal: C0 and C1 control characters (so
    every ESC sequence, carriage return and newline) and bidirectional controls are shown
    as Python escapes (`\\x1b`, `\\n`, `\\u202e`); all other Unicode is kept."""
    return str(value).translate(_ESCAPES)


def _printable_lines(text: str) -> str:
    """Multi-line text the plugin did not compose (kubectl's errors): each line escaped."""
    return "\n".join(printable(line) for line in text.split("\n"))


_DNS1123_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_OBJECT_NAME = re.compile(rf"{_DNS1123_LABEL}(\.{_DNS1123_LABEL})*")
_NAMESPACE = re.compile(_DNS1123_LABEL)
MIN_WATCH_INTERVAL = 0.5
"""Seconds; a shorter interval would only load the API server (each redraw is a GET)."""


def object_name(text: str) -> str:
    """argparse type: a Kubernetes object name (a DNS-1123 subdomain), so nothing the
    user types can reach kubectl as a flag."""
    if len(text) > 253 or not _OBJECT_NAME.fullmatch(text):
        raise argparse.ArgumentTypeError(
            f"'{printable(text)}' is not a valid object name (lowercase letters, digits, "
            "'-' and '.', starting and ending with a letter or digit, at most 253 characters)"
        )
    return text


def namespace_name(text: str) -> str:
    """argparse type: a namespace name (a DNS-1123 label)."""
    if len(text) > 63 or not _NAMESPACE.fullmatch(text):
        raise argparse.ArgumentTypeError(
            f"'{printable(text)}' is not a valid namespace name (lowercase letters, digits "
            "and '-', starting and ending with a letter or digit, at most 63 characters)"
        )
    return text


def watch_interval(text: str) -> float:
    """argparse type: seconds between two redraws of `status -w`."""
    try:
        seconds = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"'{printable(text)}' is not a number of seconds"
        ) from None
    if not math.isfinite(seconds) or seconds < MIN_WATCH_INTERVAL:
        raise argparse.ArgumentTypeError(
            f"must be at least {MIN_WATCH_INTERVAL} seconds, got '{printable(text)}'"
        )
    return seconds


def _kubectl() -> str:
    found = os.environ.get("KUBECTL") or shutil.which("kubectl")
    if not found:
        raise PluginError("kubectl not found on PATH (or set KUBECTL)")
    return found


def _global_flags(args: argparse.Namespace) -> list[str]:
    flags = []
    if args.kubeconfig:
        flags.append(f"--kubeconfig={args.kubeconfig}")
    if args.context:
        flags.append(f"--context={args.context}")
    if args.namespace:
        flags.append(f"--namespace={args.namespace}")
    return flags


def _run(args: argparse.Namespace, *command: str) -> str:
    result = subprocess.run(
        [_kubectl(), *_global_flags(args), *command],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise PluginError(result.stderr.strip() or f"kubectl {command[0]} failed")
    return result.stdout


def _get(args: argparse.Namespace) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(_run(args, "get", "mlmodel", "-o", "json", "--", args.name))
    return body


def _annotate(args: argparse.Namespace, *pairs: str) -> None:
    _run(args, "annotate", "mlmodel", "--overwrite", "--", args.name, *pairs)


def _canary(body: Mapping[str, Any]) -> dict[str, Any]:
    canary: dict[str, Any] = (body.get("status") or {}).get("canary") or {}
    if not canary.get("revision"):
        raise PluginError(f"{printable(body['metadata']['name'])} has no rollout in progress")
    return canary


def _key(canary: Mapping[str, Any]) -> str:
    return f"{canary['revision']}/{canary.get('attempt', 1)}"


def promote(args: argparse.Namespace) -> str:
    canary = _canary(_get(args))
    if canary.get("aborted"):
        raise PluginError("the rollout was rolled back: use `retry` to start it again")
    if args.full:
        _annotate(args, f"{PROMOTE}={_key(canary)}/full")
        return f"promoting revision {printable(canary['revision'])} fully"
    step = int(canary.get("step", -1))
    if step < 0:
        raise PluginError("the canary is not ready yet; step 1 starts when it is (or use --full)")
    _annotate(args, f"{PROMOTE}={_key(canary)}/{step}")
    return (
        f"promoting revision {printable(canary['revision'])} "
        f"past step {step + 1}/{printable(canary.get('steps'))}"
    )


def abort(args: argparse.Namespace) -> str:
    canary = _canary(_get(args))
    _annotate(args, f"{ABORT}={_key(canary)}")
    return f"aborting revision {printable(canary['revision'])}"


def retry(args: argparse.Namespace) -> str:
    canary = _canary(_get(args))
    if not canary.get("aborted"):
        raise PluginError("the rollout was not rolled back; nothing to retry")
    _annotate(args, f"{RETRY}={_key(canary)}")
    return f"retrying revision {printable(canary['revision'])}"


def pause(args: argparse.Namespace) -> str:
    canary = _canary(_get(args))
    _annotate(args, f"{PAUSE}={_key(canary)}")
    return f"pausing the rollout of revision {printable(canary['revision'])}"


def resume(args: argparse.Namespace) -> str:
    body = _get(args)
    if PAUSE not in (body["metadata"].get("annotations") or {}):
        raise PluginError(
            "the rollout is not paused by a person (a `pause: {}` step needs promote)"
        )
    _annotate(args, f"{PAUSE}-")
    return "resumed"


def _bar(weight: int, width: int = 20) -> str:
    filled = round(width * max(0, min(weight, 100)) / 100)
    return "[" + "#" * filled + "." * (width - filled) + f"] {weight}%"


def metric_figure(value: Any) -> str:
    """A metric's value as status has it; `-` where there is none (no data, or no
    stable-side value, as for prediction divergence, a comparison)."""
    return "-" if value is None else f"{value:.4g}" if isinstance(value, float) else str(value)


def render(body: Mapping[str, Any]) -> str:
    """The status view: phase, stable, canary with steps and weights, analysis, message.
    Every string taken from the object goes through `printable`."""
    status = body.get("status") or {}
    p = printable
    lines = [f"{p(body['metadata']['name'])}  phase: {p(status.get('phase', 'Pending'))}"]
    stable = status.get("stable") or {}
    if stable:
        lines.append(
            f"  stable   {p(stable.get('version'))} (revision {p(stable.get('revision'))}), "
            f"ready {p(stable.get('readyReplicas', 0))}/{p(stable.get('replicas', 0))}"
        )
    canary = status.get("canary") or {}
    if canary:
        step, steps = int(canary.get("step", -1)), p(canary.get("steps", "?"))
        where = "waiting for ready" if step < 0 else f"step {step + 1}/{steps}"
        state = " (rolled back)" if canary.get("aborted") else ""
        lines.append(
            f"  canary   {p(canary.get('version'))} (revision {p(canary.get('revision'))}), "
            f"ready {p(canary.get('readyReplicas', 0))}/{p(canary.get('replicas', 0))}, "
            f"{where}{state}"
        )
        lines.append(f"  weight   {_bar(int(canary.get('weight', 0)))}")
        effective = canary.get("effectiveWeight")
        if effective is not None and effective != canary.get("weight"):
            lines.append(f"  applied  {_bar(int(effective))}")
    analysis = status.get("analysis") or {}
    for metric in analysis.get("metrics", ()):
        lines.append(
            f"  analysis {p(metric.get('name'))}: "
            f"stable {p(metric_figure(metric.get('stable')))}, "
            f"canary {p(metric_figure(metric.get('canary')))} -> {p(metric.get('verdict'))}"
        )
    if status.get("message"):
        lines.append(f"  {p(status['message'])}")
    return "\n".join(lines)


def show(args: argparse.Namespace) -> str:
    if not args.watch:
        return render(_get(args))
    last = ""
    tty = sys.stdout.isatty()
    while True:
        view = render(_get(args))
        if view != last:
            if tty:
                sys.stdout.write("\x1b[H\x1b[2J")
            sys.stdout.write(view + "\n" + ("" if tty else "---\n"))
            sys.stdout.flush()
            last = view
        time.sleep(args.interval)


COMMANDS = {
    "promote": (promote, "finish the current step now (--full: skip every remaining step)"),
    "abort": (abort, "roll the canary back; the stable keeps serving"),
    "retry": (retry, "start a rolled-back rollout again"),
    "pause": (pause, "hold the rollout at its current step"),
    "resume": (resume, "release a pause set with `pause`"),
    "status": (show, "show the rollout (-w: live)"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kubectl mlmodel", description="Control MLModel canary rollouts."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (_, help_text) in COMMANDS.items():
        command = sub.add_parser(name, help=help_text, description=help_text)
        command.add_argument("name", type=object_name, help="the MLModel")
        command.add_argument("-n", "--namespace", type=namespace_name, default=None)
        command.add_argument("--kubeconfig", default="")
        command.add_argument("--context", default="")
        if name == "promote":
            command.add_argument("--full", action="store_true")
        if name == "status":
            command.add_argument("-w", "--watch", action="store_true")
            command.add_argument(
                "--interval",
                type=watch_interval,
                default=1.0,
                help=f"seconds between redraws with -w (at least {MIN_WATCH_INTERVAL})",
            )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    action = COMMANDS[args.command][0]
    try:
        print(action(args))
    except PluginError as error:
        print(f"error: {_printable_lines(str(error))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
