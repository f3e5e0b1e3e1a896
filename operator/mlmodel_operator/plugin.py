"""`kubectl mlmodel`: promote, abort, retry, pause, resume and watch MLModel rollouts;
list what was rolled out and go back to an earlier model.

Installed as `kubectl-mlmodel`, so kubectl finds it as a plugin. It talks to the API
server with the official `kubernetes` client, logged in as kubectl would be: the
kubeconfig (`--kubeconfig`, else $KUBECONFIG, else ~/.kube/config), its context
(`--context`, else the current one) with that context's namespace unless `-n` is
given, and whatever credentials the context names, exec plugins included (as EKS, GKE
and AKS use). It never writes the kubeconfig back.

Rollout actions only write annotations on the MLModel, each scoped to the canary
revision and attempt shown in its status (see `rollout.py`): an action meant for one
rollout never applies to a later one. `undo` writes spec.model back to the model source
status.history recorded for an earlier revision: the plugin writes spec, as a person
with kubectl would, never the operator. Every write carries the resourceVersion the
decision was read at, so if the object changed in between (the operator writes status
every reconcile) the API server refuses it with a conflict, and the plugin reads again
and decides again rather than act on what it no longer sees. Everything it does can be
done with plain `kubectl annotate` and `kubectl patch` (docs/rollouts.md). `status -w`
is a watch, listed first and re-established when the server ends it or its
resourceVersion expires.

Strings in an MLModel come from its author and from model files, so every one is
escaped before it reaches the terminal (`printable`); names given on the command
line must be Kubernetes object names, so they reach the API only as a name.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import queue
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Protocol

import urllib3
from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException

from mlmodel_operator.history import Outcome
from mlmodel_operator.naming import GROUP, VERSION
from mlmodel_operator.rollout import ABORT, PAUSE, PROMOTE, RETRY

PLURAL = "mlmodels"
CONFLICT_ATTEMPTS = 5
REOPEN_PAUSE_S = 1.0
WATCH_TIMEOUT_S = 300
"""The server ends each watch request after this long; the plugin then opens the next
from where it was (as kubectl does, a watch is a chain of bounded requests)."""


class PluginError(RuntimeError):
    """What went wrong, for a person: printed as `error: ...`, exit status 1."""


class Conflict(PluginError):
    """The MLModel changed since it was read (409): read again, decide again."""


class Expired(PluginError):
    """A watch's resourceVersion is older than the server keeps (410): list again."""


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
"""Seconds between two redraws of `status -w` at the least: changes that come faster
(status is written every reconcile) are drawn as their latest, not one by one."""


def _named(pattern: re.Pattern[str], longest: int, what: str, rules: str) -> Callable[[str], str]:
    def check(text: str) -> str:
        if len(text) > longest or not pattern.fullmatch(text):
            raise argparse.ArgumentTypeError(
                f"'{printable(text)}' is not a valid {what} ({rules}, starting and ending "
                f"with a letter or digit, at most {longest} characters)"
            )
        return text

    return check


object_name = _named(_OBJECT_NAME, 253, "object name", "lowercase letters, digits, '-' and '.'")
"""argparse type: a Kubernetes object name (a DNS-1123 subdomain), so nothing the user
types reaches the API as anything but a name (no `/`, `..`, query or flag)."""
namespace_name = _named(_NAMESPACE, 63, "namespace name", "lowercase letters, digits and '-'")
"""argparse type: a namespace name (a DNS-1123 label)."""
revision_name = _named(re.compile("[0-9a-f]+"), 64, "revision", "lowercase hex digits")
"""argparse type: a revision hash as status shows it."""


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


# ---- the API ------------------------------------------------------------------------


class ModelApi(Protocol):
    """The MLModels of one namespace: the four calls the plugin makes."""

    namespace: str

    def get(self, name: str) -> dict[str, Any]: ...

    def merge_patch(self, name: str, patch: Mapping[str, Any]) -> dict[str, Any]: ...

    def list_named(self, name: str) -> tuple[dict[str, Any] | None, str]:
        """The MLModel (None when absent) and the list's resourceVersion to watch from."""
        ...

    def watch(self, name: str, resource_version: str) -> Iterator[tuple[str, dict[str, Any]]]:
        """(event type, object) until the server ends the watch; raises Expired."""
        ...


def _error(error: ApiException) -> PluginError:
    """The API server's own message (its Status), as kubectl shows it."""
    try:
        status = json.loads(error.body or "")
        message = f"{status.get('reason') or error.reason}: {status['message']}"
    except (ValueError, KeyError, TypeError, AttributeError):
        message = f"{error.status} {error.reason}"
    kind = {409: Conflict, 410: Expired}.get(error.status or 0, PluginError)
    return kind(f"from the API server ({message})")


@contextlib.contextmanager
def _answers(server: str) -> Iterator[None]:
    try:
        yield
    except ApiException as error:
        raise _error(error) from None
    except urllib3.exceptions.HTTPError as error:
        raise PluginError(f"cannot reach the API server at {server}: {error}") from None


class MLModels:
    """`ModelApi` through the official client (JSON merge patches, watches). `server`
    is only for messages."""

    def __init__(self, api: client.CustomObjectsApi, namespace: str, *, server: str) -> None:
        self.namespace = namespace
        self.server = server
        self._api = api

    def get(self, name: str) -> dict[str, Any]:
        with _answers(self.server):
            body: Any = self._api.get_namespaced_custom_object(
                GROUP, VERSION, self.namespace, PLURAL, name
            )
        return dict(body)

    def merge_patch(self, name: str, patch: Mapping[str, Any]) -> dict[str, Any]:
        with _answers(self.server):
            body: Any = self._api.patch_namespaced_custom_object(
                GROUP, VERSION, self.namespace, PLURAL, name, dict(patch)
            )
        return dict(body)

    def list_named(self, name: str) -> tuple[dict[str, Any] | None, str]:
        with _answers(self.server):
            listing: Any = self._api.list_namespaced_custom_object(
                GROUP, VERSION, self.namespace, PLURAL, field_selector=f"metadata.name={name}"
            )
        items = listing.get("items") or []
        return (dict(items[0]) if items else None), str(listing["metadata"]["resourceVersion"])

    def watch(self, name: str, resource_version: str) -> Iterator[tuple[str, dict[str, Any]]]:
        # With timeout_seconds the client leaves a 410 to the caller (as Expired).
        events = watch.Watch().stream(  # type: ignore[no-untyped-call]
            self._api.list_namespaced_custom_object,
            GROUP,
            VERSION,
            self.namespace,
            PLURAL,
            field_selector=f"metadata.name={name}",
            resource_version=resource_version,
            allow_watch_bookmarks=True,
            timeout_seconds=WATCH_TIMEOUT_S,
        )
        with _answers(self.server):
            try:
                for event in events:
                    yield str(event["type"]), dict(event["raw_object"])
            except urllib3.exceptions.ProtocolError:
                return  # the connection dropped mid-watch: the caller opens the next one


def connect(args: argparse.Namespace) -> ModelApi:
    """Log in as kubectl would with the same flags; the MLModels of the namespace."""
    kubeconfig = args.kubeconfig or None
    try:
        api_client = config.new_client_from_config(  # type: ignore[no-untyped-call]
            config_file=kubeconfig, context=args.context or None, persist_config=False
        )
        contexts, current = config.list_kube_config_contexts(kubeconfig)  # type: ignore[no-untyped-call]
    except (config.ConfigException, OSError) as error:
        raise PluginError(f"kubeconfig: {error}") from None
    chosen = next((c for c in contexts if c["name"] == args.context), current) or {}
    namespace = args.namespace or (chosen.get("context") or {}).get("namespace") or "default"
    return MLModels(
        client.CustomObjectsApi(api_client), namespace, server=str(api_client.configuration.host)
    )


# ---- actions: decide from what is read, write with what was read ----------------------

Decision = tuple[dict[str, Any], str]
"""A JSON merge patch of the MLModel (None removes a key) and what to tell the person."""


def _annotate(annotations: Mapping[str, str | None]) -> dict[str, Any]:
    return {"metadata": {"annotations": dict(annotations)}}


def _canary(body: Mapping[str, Any]) -> dict[str, Any]:
    canary: dict[str, Any] = (body.get("status") or {}).get("canary") or {}
    if not canary.get("revision"):
        raise PluginError(f"{printable(body['metadata']['name'])} has no rollout in progress")
    return canary


def _key(canary: Mapping[str, Any]) -> str:
    return f"{canary['revision']}/{canary.get('attempt', 1)}"


def promote(body: Mapping[str, Any], args: argparse.Namespace) -> Decision:
    canary = _canary(body)
    if canary.get("aborted"):
        raise PluginError("the rollout was rolled back: use `retry` to start it again")
    if args.full:
        return _annotate({PROMOTE: f"{_key(canary)}/full"}), (
            f"promoting revision {printable(canary['revision'])} fully"
        )
    step = int(canary.get("step", -1))
    if step < 0:
        raise PluginError("the canary is not ready yet; step 1 starts when it is (or use --full)")
    return _annotate({PROMOTE: f"{_key(canary)}/{step}"}), (
        f"promoting revision {printable(canary['revision'])} "
        f"past step {step + 1}/{printable(canary.get('steps'))}"
    )


def abort(body: Mapping[str, Any], args: argparse.Namespace) -> Decision:
    canary = _canary(body)
    return _annotate({ABORT: _key(canary)}), f"aborting revision {printable(canary['revision'])}"


def retry(body: Mapping[str, Any], args: argparse.Namespace) -> Decision:
    canary = _canary(body)
    if not canary.get("aborted"):
        raise PluginError("the rollout was not rolled back; nothing to retry")
    return _annotate({RETRY: _key(canary)}), f"retrying revision {printable(canary['revision'])}"


def pause(body: Mapping[str, Any], args: argparse.Namespace) -> Decision:
    canary = _canary(body)
    return _annotate({PAUSE: _key(canary)}), (
        f"pausing the rollout of revision {printable(canary['revision'])}"
    )


def resume(body: Mapping[str, Any], args: argparse.Namespace) -> Decision:
    if PAUSE not in (body["metadata"].get("annotations") or {}):
        raise PluginError(
            "the rollout is not paused by a person (a `pause: {}` step needs promote)"
        )
    return _annotate({PAUSE: None}), "resumed"


# GitOps controllers put these on what they apply: an `undo` of such an object is
# reverted at their next sync, so it is refused unless forced (revert in Git instead).
GITOPS_MARKERS = {
    "label argocd.argoproj.io/instance": ("labels", "argocd.argoproj.io/instance"),
    "annotation argocd.argoproj.io/tracking-id": ("annotations", "argocd.argoproj.io/tracking-id"),
    "label kustomize.toolkit.fluxcd.io/name": ("labels", "kustomize.toolkit.fluxcd.io/name"),
    "label helm.toolkit.fluxcd.io/name": ("labels", "helm.toolkit.fluxcd.io/name"),
}


def _served(entry: Mapping[str, Any]) -> bool:
    return entry.get("outcome") in (Outcome.DEPLOYED, Outcome.PROMOTED)


def undo(body: Mapping[str, Any], args: argparse.Namespace) -> Decision:
    """spec.model back to the model source status.history recorded: --to-revision's, or
    the newest revision that served other than the one the spec names now."""
    status = body.get("status") or {}
    entries = [e for e in status.get("history") or () if e.get("model")]
    if args.to_revision:
        found = [e for e in entries if e.get("revision") == args.to_revision]
        if not found:
            raise PluginError(
                f"revision {printable(args.to_revision)} is not in status.history "
                f"(kubectl mlmodel history {printable(args.name)} lists them)"
            )
    else:
        now = status.get("revision")
        found = [e for e in entries if _served(e) and e.get("revision") != now]
        if not found:
            raise PluginError("status.history has no earlier revision that served to go back to")
    target = found[-1]
    metadata = body["metadata"]
    marked = [
        what for what, (where, key) in GITOPS_MARKERS.items() if key in (metadata.get(where) or {})
    ]
    if marked and not args.force:
        raise PluginError(
            f"{printable(metadata['name'])} is applied by a GitOps controller ({marked[0]}): "
            "it would write the spec back at its next sync; revert the model in Git instead "
            "(or --force)"
        )
    model: Mapping[str, Any] = target["model"]
    current: Mapping[str, Any] = (body.get("spec") or {}).get("model") or {}
    if dict(current) == dict(model):
        raise PluginError(
            f"spec.model already is revision {printable(target['revision'])}'s; nothing to undo"
        )
    # A merge patch merges maps: a field the older model did not set is removed (None).
    patch = {"spec": {"model": {key: model.get(key) for key in {*current, *model}}}}
    return patch, (
        f"spec.model set back to revision {printable(target['revision'])} "
        f"({printable(target.get('version'))}): {printable(model.get('uri'))}; "
        "the operator rolls it out as a new revision"
    )


def history_view(body: Mapping[str, Any]) -> str:
    """status.history as a table, newest last; `*` marks the revision serving as stable."""
    status = body.get("status") or {}
    stable = (status.get("stable") or {}).get("revision")
    rows: list[tuple[str, ...]] = [
        ("", "REVISION", "VERSION", "ATTEMPT", "OUTCOME", "STARTED", "FINISHED", "REASON")
    ]
    for entry in status.get("history") or ():
        rows.append(
            (
                "*" if entry.get("revision") == stable and _served(entry) else "",
                *(
                    printable(entry.get(key, ""))
                    for key in ("revision", "version", "attempt", "outcome", "startedAt")
                ),
                printable(entry.get("finishedAt", "-")),
                printable(entry.get("reason", "")),
            )
        )
    if len(rows) == 1:
        return f"{printable(body['metadata']['name'])}: no history yet"
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    lines = [
        "  ".join([*(cell.ljust(width) for cell, width in zip(row, widths, strict=False)), row[-1]])
        for row in rows
    ]
    return "\n".join(line.rstrip() for line in lines)


def act(models: ModelApi, name: str, decide: Callable[[Mapping[str, Any]], Decision]) -> str:
    """Read the MLModel, decide, and write the patch with the resourceVersion read; when
    the object changed in between, read and decide again."""
    for _ in range(CONFLICT_ATTEMPTS):
        body = models.get(name)
        change, told = decide(body)
        metadata = change.get("metadata") or {}
        patch = {
            **change,
            "metadata": {"resourceVersion": body["metadata"]["resourceVersion"], **metadata},
        }
        try:
            models.merge_patch(name, patch)
        except Conflict:
            continue
        return told
    raise PluginError(
        f"{printable(name)} changed every time it was read ({CONFLICT_ATTEMPTS} times); try again"
    )


# ---- the status view --------------------------------------------------------------------


def _bar(weight: int, width: int = 20) -> str:
    filled = round(width * max(0, min(weight, 100)) / 100)
    return "[" + "#" * filled + "." * (width - filled) + f"] {weight}%"


def metric_figure(value: Any) -> str:
    """A metric's value as status has it; `-` where there is none (no data, or no
    stable-side value, as for prediction divergence, a comparison)."""
    return "-" if value is None else f"{value:.4g}" if isinstance(value, float) else str(value)


def evidence_bar(value: Any, width: int = 10) -> str:
    """Sequential mode's evidence against the canary as a bar: how far its test has come
    towards a rollback (full: rolled back). '' in interval mode, which has none."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return ""
    share = min(max(float(value), 0.0), 1.0)
    filled = round(width * share)
    return f"  evidence [{'#' * filled}{'.' * (width - filled)}] {share:.0%} to rollback"


def render(body: Mapping[str, Any]) -> str:
    """The status view: phase, stable, canary with steps and weights, analysis, monitoring
    after promotion, message.
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
    scaling = ((body.get("spec") or {}).get("serving") or {}).get("autoscaling") or {}
    if scaling:
        if "cpuUtilization" in scaling:
            target = f"CPU at {p(scaling['cpuUtilization'])}% of its request"
        else:
            target = f"{p(scaling.get('requestsPerSecond'))} requests/s per pod"
        lines.append(
            f"  scaling  HPA {p(body['metadata']['name'])}, "
            f"{p(scaling.get('minReplicas', 1))} to {p(scaling.get('maxReplicas'))} replicas, "
            f"{target}"
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
        if canary.get("mirror"):
            copied = _bar(int(canary["mirror"]))
            lines.append(f"  mirror   {copied} of requests copied (answers discarded)")
        effective = canary.get("effectiveWeight")
        if effective is not None and effective != canary.get("weight"):
            lines.append(f"  applied  {_bar(int(effective))}")
    analysis = status.get("analysis") or {}
    for metric in analysis.get("metrics", ()):
        lines.append(
            f"  analysis {p(metric.get('name'))}: "
            f"stable {p(metric_figure(metric.get('stable')))}, "
            f"canary {p(metric_figure(metric.get('canary')))} -> {p(metric.get('verdict'))}"
            + evidence_bar(metric.get("evidence"))
        )
    monitoring = status.get("monitoring") or {}
    if monitoring:
        drifting = monitoring.get("drifting")
        state = "DRIFTING" if drifting is True else "within limits" if drifting is False else "-"
        lines.append(f"  monitor  {state}: {p(monitoring.get('message', ''))}")
    if status.get("message"):
        lines.append(f"  {p(status['message'])}")
    return "\n".join(lines)


def follow(models: ModelApi, name: str, seen: Callable[[dict[str, Any] | None], None]) -> None:
    """Call `seen` with the MLModel now and after every change (None once deleted), for
    ever: a list, then watches from its resourceVersion, each reopened from the last
    version seen when the server ends it, and a new list when that version is too old
    to watch from (410 Expired). A model that does not exist is an error."""
    version, first = "", True
    while True:
        if not version:
            body, version = models.list_named(name)
            if body is None and first:
                raise PluginError(
                    f'from the API server (NotFound: {PLURAL}.{GROUP} "{name}" not found)'
                )
            seen(body)
            first = False
        opened = time.monotonic()
        try:
            for kind, obj in models.watch(name, version):
                version = str(obj["metadata"]["resourceVersion"])
                if kind in ("ADDED", "MODIFIED"):
                    seen(obj)
                elif kind == "DELETED":
                    seen(None)
        except Expired:
            version = ""
        if time.monotonic() - opened < REOPEN_PAUSE_S:
            time.sleep(REOPEN_PAUSE_S)  # a watch that ends at once must not spin


def show(models: ModelApi, args: argparse.Namespace) -> str:
    """The status view; with -w redrawn on every change (at most once per interval)
    until Ctrl-C."""
    if not args.watch:
        return render(models.get(args.name))
    changes: queue.Queue[dict[str, Any] | PluginError | None] = queue.Queue()

    def watching() -> None:
        try:
            follow(models, args.name, changes.put)
        except PluginError as error:
            changes.put(error)

    threading.Thread(target=watching, name="watch", daemon=True).start()
    tty = sys.stdout.isatty()
    last = ""
    while True:
        latest = changes.get()
        while not changes.empty():  # only the newest state is worth drawing
            latest = changes.get_nowait()
        if isinstance(latest, PluginError):
            raise latest
        view = render(latest) if latest else f"{printable(args.name)}  deleted"
        if view != last:
            if tty:
                sys.stdout.write("\x1b[H\x1b[2J")
            sys.stdout.write(view + "\n" + ("" if tty else "---\n"))
            sys.stdout.flush()
            last = view
        time.sleep(args.interval)


COMMANDS: dict[
    str, tuple[Callable[[Mapping[str, Any], argparse.Namespace], Decision] | None, str]
] = {
    "promote": (promote, "finish the current step now (--full: skip every remaining step)"),
    "abort": (abort, "roll the canary back; the stable keeps serving"),
    "retry": (retry, "start a rolled-back rollout again"),
    "pause": (pause, "hold the rollout at its current step"),
    "resume": (resume, "release a pause set with `pause`"),
    "status": (None, "show the rollout (-w: live)"),
    "history": (None, "list the revisions rolled out, and how each ended"),
    "undo": (undo, "set spec.model back to an earlier revision's (--to-revision R)"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kubectl mlmodel", description="Control MLModel canary rollouts."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (_, help_text) in COMMANDS.items():
        command = sub.add_parser(name, help=help_text, description=help_text)
        command.add_argument("name", type=object_name, help="the MLModel")
        command.add_argument(
            "-n",
            "--namespace",
            type=namespace_name,
            default=None,
            help="its namespace (default: the context's, else default)",
        )
        command.add_argument("--kubeconfig", default="", help="the kubeconfig file to use")
        command.add_argument("--context", default="", help="the kubeconfig context to use")
        if name == "promote":
            command.add_argument("--full", action="store_true")
        if name == "undo":
            command.add_argument(
                "--to-revision",
                type=revision_name,
                default=None,
                help="a revision from `history` (default: the newest that served, other "
                "than the one the spec names now)",
            )
            command.add_argument(
                "--force", action="store_true", help="even if a GitOps controller applies it"
            )
        if name == "status":
            command.add_argument("-w", "--watch", action="store_true")
            command.add_argument(
                "--interval",
                type=watch_interval,
                default=1.0,
                help=f"at least this many seconds between redraws with -w "
                f"(at least {MIN_WATCH_INTERVAL})",
            )
    return parser


def main(
    argv: Sequence[str] | None = None,
    *,
    connect: Callable[[argparse.Namespace], ModelApi] = connect,
) -> int:
    args = build_parser().parse_args(argv)
    decide = COMMANDS[args.command][0]
    try:
        models = connect(args)
        if args.command == "history":
            print(history_view(models.get(args.name)))
        elif decide is None:
            print(show(models, args))
        else:
            print(act(models, args.name, lambda body: decide(body, args)))
    except PluginError as error:
        print(f"error: {_printable_lines(str(error))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        # Ctrl-C ends `status -w`. The watch thread may be blocked in a socket read that
        # nothing can interrupt, and the client's pools join their threads at exit: leave
        # at once, as kubectl does, with what was printed flushed.
        sys.stdout.flush()
        os._exit(0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
