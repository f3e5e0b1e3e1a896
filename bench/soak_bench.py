"""Soak: rollouts back to back under steady load, with faults at random moments.

    .venv/bin/python -m localenv.sandbox -- env PYTHONPATH=. .venv/bin/python \\
        bench/soak_bench.py [--minutes 30] [--seed 1] [--fault-every 75] [--pause 5] \\
        [--rate 40] [--faults KIND,...] [--json PATH]

Inside the network sandbox, starts the environment of `make demo` (control plane,
operator as its ServiceAccount, pod runner, Prometheus, the Traefik gateway) and
serves v1 with `--rate` requests/s through the gateway. Then, for `--minutes`, it
rolls out canaries one after another, alternating a good one (expected: promoted) and
a bad one trained on shuffled labels (expected: rolled back by prediction divergence),
each through 10/30/60/100% judged every 2 s from Prometheus.

Meanwhile a fault thread injects one fault at a time at moments drawn from `--seed`
(exponential gaps of mean `--fault-every` s, at least 20 s apart), the kind drawn too:

- `operator-crash`: the operator SIGKILLed; a new one takes the Lease once it expires;
- `operator-stop`: SIGTERM (it hands the Lease over), a new one starts;
- `apiserver-restart` / `etcd-restart`: SIGKILLed, back 3 s later;
- `canary-pod-hang`: a pod of the canary (of the stable when there is none) SIGSTOPped
  for 8 s, then SIGCONT: the data plane's own fault.

Reports rollouts by expected and actual outcome; **wrong decisions** (a good canary
rolled back, a bad one promoted: should be 0) and stuck ones (neither within the
timeout); every request that failed, with its code and what it is put down to (the
fault under way or up to 10 s after it, else a rollout that ended within 5 s, else
nothing known: `cause_of`); the operator's VmRSS every 10 s, per operator process (each
restart is a new one); reconcile durations from every operator's own histogram.
Figures only: it asserts nothing and keeps going after a stuck rollout. `--faults`
narrows the kinds (e.g. without the operator restarts, to watch one process's memory
over the whole run).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import signal
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

from localenv import models
from localenv.demo import NAME, READY_TIMEOUT_S, Demo, Screen, promoted, rolled_back
from localenv.environment import LocalEnvironment
from localenv.scenario import pods_of

FAULTS = ("operator-crash", "operator-stop", "apiserver-restart", "etcd-restart", "canary-pod-hang")
HANG_S = 8.0
FAULT_TAIL_S = 10.0  # requests sent this long after a fault ends still count as its own
ROLLOUT_END_S = 5.0  # ... and this long around a rollout's end, as that end's
RECORDED_FAILURES = 100_000  # every failure is kept whole, to say what caused it
MIN_GAP_S = 20.0
RSS_EVERY_S = 10.0


@dataclass
class Fault:
    kind: str
    at: float  # time.monotonic()
    took_s: float = 0.0
    detail: str = ""


@dataclass
class Round:
    version: str
    expected: str  # Promoted | RolledBack
    applied_at: float
    outcome: str = ""  # Promoted | RolledBack | Stuck
    ended_at: float = 0.0
    message: str = ""


@dataclass
class Soak:
    env: LocalEnvironment
    demo: Demo
    rng: random.Random
    fault_every_s: float
    kinds: tuple[str, ...] = FAULTS
    faults: list[Fault] = field(default_factory=list)
    # (s since start, operator identity, MiB): each fault that restarts the operator
    # starts a new process, so its memory is judged per process over its own lifetime.
    rss: list[tuple[float, str, float]] = field(default_factory=list)
    histograms: list[dict[str, float]] = field(default_factory=list)  # one per operator
    stop: threading.Event = field(default_factory=threading.Event)
    started: float = field(default_factory=time.monotonic)

    # ---- the faults -----------------------------------------------------------------

    def inject(self) -> None:
        while not self.stop.is_set():
            gap = max(MIN_GAP_S, self.rng.expovariate(1 / self.fault_every_s))
            if self.stop.wait(gap):
                return
            kind = self.rng.choice(self.kinds)
            fault = Fault(kind, time.monotonic())
            try:
                fault.detail = self._inject(kind)
            except Exception as error:  # a fault that could not be injected is reported
                fault.detail = f"not injected: {type(error).__name__}: {error}"
            fault.took_s = time.monotonic() - fault.at
            self.faults.append(fault)
            print(f"[{self.elapsed():6.0f} s] fault {kind}: {fault.detail}", flush=True)

    def _inject(self, kind: str) -> str:
        env = self.env
        if kind in ("operator-crash", "operator-stop"):
            self.histograms.append(self._histogram())
            new = env.restart_operator(crash=kind == "operator-crash")
            return f"now {new.identity}"
        if kind in ("apiserver-restart", "etcd-restart"):
            env.plane.restart(
                kind.removesuffix("-restart").replace("apiserver", "kube-apiserver"), down_s=3
            )
            return "back"
        status = env.mlmodel(NAME).get("status") or {}
        role = "canary" if status.get("canary") else "stable"
        revision = str((status.get(role) or {}).get("revision", ""))
        pods = [p for p in pods_of(env.plane, env.namespace, revision) if p["status"].get("podIP")]
        if not pods:
            return f"no {role} pod to hang"
        pod = self.rng.choice(pods)["metadata"]["name"]
        env.runner.signal_container(env.namespace, pod, "serve", signal.SIGSTOP)
        try:
            time.sleep(HANG_S)
        finally:
            env.runner.signal_container(env.namespace, pod, "serve", signal.SIGCONT)
        return f"{role} pod {pod} hung {HANG_S:g} s"

    # ---- what is measured alongside -------------------------------------------------

    def sample_rss(self) -> None:
        while not self.stop.wait(RSS_EVERY_S):
            with contextlib.suppress(OSError, ValueError):
                operator = self.env.operator
                status = Path(f"/proc/{operator.process.pid}/status").read_text()
                [line] = [x for x in status.splitlines() if x.startswith("VmRSS:")]
                self.rss.append((self.elapsed(), operator.identity, int(line.split()[1]) / 1024))

    def _histogram(self) -> dict[str, float]:
        """The current operator's reconcile-duration buckets (cumulative, by `le`)."""
        buckets: dict[str, float] = {}
        with contextlib.suppress(OSError):
            for line in self.env.operator.metrics().splitlines():
                if line.startswith("mlmodel_operator_reconcile_duration_seconds_bucket{"):
                    le = line.split('le="', 1)[1].split('"', 1)[0]
                    buckets[le] = float(line.rsplit(" ", 1)[1])
        return buckets

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    # ---- the rollouts ---------------------------------------------------------------

    def rollout(self, version: str, expected: str, timeout_s: float) -> Round:
        record = Round(version, expected, time.monotonic())
        self.demo.apply(version)
        deadline = record.applied_at + timeout_s
        status: dict[str, Any] = {}
        while time.monotonic() < deadline:
            try:
                status = self.env.mlmodel(NAME).get("status") or {}
            except httpx.HTTPError:  # the API server is being restarted
                time.sleep(1)
                continue
            if promoted(status, version) or rolled_back(status, version):
                record.outcome = "Promoted" if promoted(status, version) else "RolledBack"
                break
            time.sleep(0.5)
        record.outcome = record.outcome or "Stuck"
        record.ended_at = time.monotonic()
        record.message = str(status.get("message", ""))[:300]
        return record


def cause_of(sent_at: float, faults: list[Fault], rounds: list[Round]) -> str:
    """What a failed request is put down to: the fault under way when it was sent (or
    up to `FAULT_TAIL_S` after), else a rollout that ended within `ROLLOUT_END_S` of
    it (the pods of the side that lost are taken away), else nothing known."""
    for fault in faults:
        if fault.at <= sent_at <= fault.at + fault.took_s + FAULT_TAIL_S:
            return fault.kind
    for r in rounds:
        if r.ended_at and abs(sent_at - r.ended_at) <= ROLLOUT_END_S:
            return f"end of a rollout ({r.outcome})"
    return "none known"


def rss_by_operator(samples: list[tuple[float, str, float]]) -> list[dict[str, Any]]:
    """Per operator process: how long it was sampled, and its RSS at the start, the
    median of its first and second halves, the end and the peak, in MiB. Flat means the
    halves agree; the first samples are taken while it lists every object."""
    rows: list[dict[str, Any]] = []
    for identity in dict.fromkeys(i for _, i, _ in samples):
        own = [(t, mib) for t, i, mib in samples if i == identity]
        mibs = [mib for _, mib in own]
        half = len(mibs) // 2
        rows.append(
            {
                "identity": identity,
                "sampled_s": round(own[-1][0] - own[0][0]),
                "samples": len(mibs),
                "first": round(mibs[0], 1),
                "median_first_half": round(statistics.median(mibs[:half] or mibs), 1),
                "median_second_half": round(statistics.median(mibs[half:]), 1),
                "last": round(mibs[-1], 1),
                "max": round(max(mibs), 1),
            }
        )
    return rows


def percentile(buckets: dict[str, float], q: float) -> str:
    """The bucket bound under which a share `q` of the reconciles fell."""
    total = buckets.get("+Inf", 0.0)
    for le, count in sorted(buckets.items(), key=lambda kv: float(kv[0])):
        if total and count >= q * total:
            return f"<= {le} s"
    return "-"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--fault-every", type=float, default=75.0)
    parser.add_argument("--pause", type=float, default=5.0)
    parser.add_argument("--rate", type=float, default=40.0)
    parser.add_argument(
        "--faults", default=",".join(FAULTS), help="the kinds to draw from, comma-separated"
    )
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    kinds = tuple(k for k in args.faults.split(",") if k)
    if unknown := set(kinds) - set(FAULTS):
        parser.error(f"unknown fault kinds {sorted(unknown)}; known: {', '.join(FAULTS)}")
    directory = Path(tempfile.mkdtemp(prefix="soak-bench-"))
    screen = Screen(sys.stderr, live=False)
    good = models.train_good(directory)
    bad = models.train_shuffled(directory).path
    rounds_max = int(args.minutes * 60 / 20) + 2  # more versions than can be rolled out
    paths: dict[str, Path | str] = {"v1": good["v1"]}
    for n in range(1, rounds_max + 1):
        paths[f"good-{n}"] = good["v2"] if n % 2 else good["v1"]
        paths[f"bad-{n}"] = bad
    env = LocalEnvironment(directory, say=screen.say)
    demo = Demo(
        env=env,
        screen=screen,
        pause_s=args.pause,
        rate=args.rate,
        models=paths,
        recorded_failures=RECORDED_FAILURES,
    )
    soak = Soak(env, demo, random.Random(args.seed), args.fault_every, kinds)
    rounds: list[Round] = []
    threads: list[threading.Thread] = []
    try:
        env.start()
        demo.serve_first("v1")
        demo.start_load()
        soak.started = time.monotonic()
        end = soak.started + args.minutes * 60
        threads = [
            threading.Thread(target=soak.inject, daemon=True, name="faults"),
            threading.Thread(target=soak.sample_rss, daemon=True, name="rss"),
        ]
        for thread in threads:
            thread.start()
        n = 0
        while time.monotonic() < end:
            n += 1
            for version, expected in ((f"good-{n}", "Promoted"), (f"bad-{n}", "RolledBack")):
                record = soak.rollout(version, expected, READY_TIMEOUT_S + 4 * args.pause + 120)
                rounds.append(record)
                print(
                    f"[{soak.elapsed():6.0f} s] {version}: {record.outcome} (expected "
                    f"{expected}) in {record.ended_at - record.applied_at:.0f} s; load "
                    f"{os.getloadavg()[0]:.1f}",
                    flush=True,
                )
        soak.stop.set()
        for thread in threads:
            thread.join(timeout=60)
        soak.histograms.append(soak._histogram())
    finally:
        soak.stop.set()
        load = demo.load.snapshot() if demo.load is not None else None
        if demo.load is not None:
            demo.load.stop()
        env.stop()
    assert load is not None
    failed = [
        {
            "at_s": round(f.sent_at - soak.started, 2),
            "revision": f.revision,
            "code": f.code,
            "detail": f.detail[:160],
            "cause": cause_of(f.sent_at, soak.faults, rounds),
        }
        for f in load.first_failures
    ]
    merged: dict[str, float] = {}
    for buckets in soak.histograms:
        for le, count in buckets.items():
            merged[le] = merged.get(le, 0.0) + count
    rss = [mib for _, _, mib in soak.rss]
    wrong = [r for r in rounds if r.outcome not in (r.expected, "Stuck")]
    summary: dict[str, Any] = {
        "minutes": args.minutes,
        "seed": args.seed,
        "fault_every_s": args.fault_every,
        "rate": args.rate,
        "rollouts": len(rounds),
        "outcomes": {
            f"{e}->{o}": sum(1 for r in rounds if (r.expected, r.outcome) == (e, o))
            for e in ("Promoted", "RolledBack")
            for o in ("Promoted", "RolledBack", "Stuck")
        },
        "wrong_decisions": len(wrong),
        "stuck": sum(1 for r in rounds if r.outcome == "Stuck"),
        "faults": {k: sum(1 for f in soak.faults if f.kind == k) for k in kinds},
        "requests": load.total,
        "failed_requests": sum(load.failures().values()),
        "failures_by_cause": dict(Counter(f["cause"] for f in failed)),
        "failures_by_code": dict(Counter(f["code"] for f in failed)),
        "rss_mib_first_last_max": [rss[0], rss[-1], max(rss)] if rss else [],
        "rss_by_operator": rss_by_operator(soak.rss),
        "reconciles": merged.get("+Inf", 0.0),
        "reconcile_p50": percentile(merged, 0.5),
        "reconcile_p99": percentile(merged, 0.99),
        "rounds": [asdict(r) for r in rounds],
        "fault_log": [{**asdict(f), "at_s": round(f.at - soak.started, 2)} for f in soak.faults],
        "failures": failed,
        "rss_samples": soak.rss,
    }
    print(
        json.dumps(
            {
                k: v
                for k, v in summary.items()
                if k not in ("rounds", "fault_log", "rss_samples", "failures")
            },
            indent=1,
        )
    )
    if args.json:
        args.json.write_text(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
