"""Rollout benchmark: how much a rollout overruns its pauses, and how fast a bad
canary is rolled back, with real processes end to end.

    .venv/bin/python -m localenv.sandbox -- env PYTHONPATH=. .venv/bin/python \
        bench/rollout_bench.py [--rounds 5] [--pause 5] [--rate 40] \
        [--provider prometheus|scrape] [--mode interval|sequential|both] \
        [--bad shuffled|errors] [--weights 10,30,60,100] [--json PATH]

Inside the network sandbox, starts the environment of `make demo` once (control
plane, operator as its ServiceAccount, pod runner, Prometheus, the Traefik gateway,
`--rate` requests/s of load sent to the gateway) and serves v1. Then, `--rounds` times:

- a good canary (the other good model) through 10%, 30%, 60% and 100% with a pause of
  `--pause` s at each of the first three steps, judged every 2 s from Prometheus or
  from the pods' /metrics (`--provider`; failureLimit 1, minSamples 5), promoted.
  **Pause overrun** of a step = its length (the next step's `stepStartedAt` minus its
  own, both written by the operator) minus the configured pause. A step ends only
  after an analysis interval passed, so the overrun includes waiting for that.
- a bad canary (trained on shuffled labels) the same way, rolled back. **Rollback
  time** = from the first answer the load generator got from the bad canary to (a) the
  MLModel reporting RolledBack (polled every 0.2 s) and (b) the bad canary's last
  answer: the traffic really gone. The aim is failureLimit x interval + 5 s = 7 s.

`--bad errors` makes the bad canary the good model with a serving deadline no inference
meets (the runtime answers 504 to 10-40% of its requests) instead. `--mode` chooses
the analysis mode (`analysis.mode`); `both` runs every round in each mode, in
alternating order, so the two are compared side by side on the same machine state.

Prints each round and the medians; `--json` writes the raw figures.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from localenv import models
from localenv.demo import FAILURE_LIMIT, INTERVAL_S, WEIGHTS, Demo, Rollout, Screen
from localenv.environment import LocalEnvironment


def rollback_times(demo: Demo, record: Rollout) -> tuple[float, float]:
    assert demo.load is not None
    load = demo.load.snapshot()
    first = load.first_answer[record.revision]
    return record.ended_at - first, load.last_answer[record.revision] - first


# A serve deadline no inference meets: the runtime answers 504 (a 5xx) to the requests
# its deadline sweep catches in flight.
BROKEN_TIMEOUT_ENV = ({"name": "MLMODEL_REQUEST_TIMEOUT_S", "value": "0.000001"},)


def one_round(demo: Demo, n: int, mode: str, bad: str, pause_s: float) -> dict[str, Any]:
    """A good canary promoted and a bad one rolled back, in analysis `mode`."""
    demo.analysis_mode = mode
    promoted = demo.good_canary(f"good-{n}-{mode}")
    if bad == "errors":
        demo.bad_model = "the good model with a serving deadline no inference meets"
        rolled_back = demo.bad_canary(
            f"bad-{n}-{mode}", env=BROKEN_TIMEOUT_ENV, what="it answers 504 to many requests"
        )
    else:
        rolled_back = demo.bad_canary(f"bad-{n}-{mode}")
    to_status, to_last_answer = rollback_times(demo, rolled_back)
    return {
        "round": n,
        "mode": mode,
        "overruns_s": promoted.pause_overruns(pause_s, len(demo.weights) - 1),
        "promoted_after_apply_s": promoted.ended_at - promoted.applied_at,
        "good_intervals": dict(promoted.verdicts),
        "rollback_to_status_s": to_status,
        "rollback_to_last_answer_s": to_last_answer,
        "bad_intervals": dict(rolled_back.verdicts),
        "load_avg": os.getloadavg()[0],
    }


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    overruns = [o for row in rows for o in row["overruns_s"]]
    to_status = [float(row["rollback_to_status_s"]) for row in rows]
    to_last = [float(row["rollback_to_last_answer_s"]) for row in rows]
    return {
        "overrun_median_s": statistics.median(overruns) if overruns else None,
        "overrun_max_s": max(overruns) if overruns else None,
        "rollback_to_status_median_s": statistics.median(to_status),
        "rollback_to_status_min_s": min(to_status),
        "rollback_to_status_max_s": max(to_status),
        "rollback_to_last_answer_median_s": statistics.median(to_last),
        "rollback_to_last_answer_max_s": max(to_last),
        "good_canary_fail_intervals": sum(
            int(row["good_intervals"].get("Fail", 0)) for row in rows
        ),
        "rounds": len(rows),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--pause", type=float, default=5.0)
    parser.add_argument("--rate", type=float, default=40.0)
    parser.add_argument("--provider", choices=("prometheus", "scrape"), default="prometheus")
    parser.add_argument("--mode", choices=("interval", "sequential", "both"), default="interval")
    parser.add_argument("--bad", choices=("shuffled", "errors"), default="shuffled")
    parser.add_argument(
        "--weights",
        type=lambda text: tuple(int(w) for w in text.split(",")),
        default=WEIGHTS,
        help="the canary's steps, e.g. 50,100 (the last is 100)",
    )
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    modes = ["interval", "sequential"] if args.mode == "both" else [args.mode]
    directory = Path(tempfile.mkdtemp(prefix="rollout-bench-"))
    screen = Screen(sys.stderr, live=False)
    good = models.train_good(directory)
    bad = models.train_shuffled(directory).path
    paths: dict[str, Path | str] = {"v1": good["v1"]}
    for n in range(1, args.rounds + 1):
        for mode in modes:
            paths[f"good-{n}-{mode}"] = good["v2"] if n % 2 else good["v1"]
            # An erroring canary: the stable's own model, which fails only by its deadline.
            paths[f"bad-{n}-{mode}"] = bad if args.bad == "shuffled" else paths[f"good-{n}-{mode}"]
    env = LocalEnvironment(directory, say=screen.say)
    demo = Demo(
        env=env,
        screen=screen,
        pause_s=args.pause,
        rate=args.rate,
        models=paths,
        provider=args.provider,
        weights=args.weights,
    )
    rounds: list[dict[str, Any]] = []
    load_before = os.getloadavg()[0]
    try:
        env.start()
        demo.serve_first("v1")
        demo.start_load()
        for n in range(1, args.rounds + 1):
            order = modes if n % 2 else modes[::-1]
            for mode in order:
                row = one_round(demo, n, mode, args.bad, args.pause)
                rounds.append(row)
                print(
                    f"round {n} ({mode}): pause overruns "
                    + ", ".join(f"{o:+.2f}" for o in row["overruns_s"])
                    + f" s; good canary intervals {row['good_intervals']}; rollback "
                    f"{row['rollback_to_status_s']:.1f} s to status, "
                    f"{row['rollback_to_last_answer_s']:.1f} s to the last answer; "
                    f"load {row['load_avg']:.1f}",
                    flush=True,
                )
                time.sleep(1)
    finally:
        if demo.load is not None:
            demo.load.stop()
        env.stop()
    aim = FAILURE_LIMIT * INTERVAL_S + 5
    summary: dict[str, Any] = {
        "provider": args.provider,
        "bad": args.bad,
        "weights": list(args.weights),
        "pause_s": args.pause,
        "rate": args.rate,
        "interval_s": INTERVAL_S,
        "failure_limit": FAILURE_LIMIT,
        "aim_s": aim,
        "load_avg_before": load_before,
        "modes": {mode: summarise([r for r in rounds if r["mode"] == mode]) for mode in modes},
        "rounds": rounds,
    }
    for mode, figures in summary["modes"].items():
        overrun = (
            f"pause overrun median {figures['overrun_median_s']:+.2f} s, max "
            f"{figures['overrun_max_s']:+.2f} s; "
            if figures["overrun_median_s"] is not None
            else ""
        )
        print(
            f"{mode}: {overrun}rollback median {figures['rollback_to_status_median_s']:.1f} s "
            f"to status ({figures['rollback_to_status_min_s']:.1f}-"
            f"{figures['rollback_to_status_max_s']:.1f}), "
            f"{figures['rollback_to_last_answer_median_s']:.1f} s to the last answer "
            f"(max {figures['rollback_to_last_answer_max_s']:.1f}); failed intervals of "
            f"good canaries: {figures['good_canary_fail_intervals']}"
        )
    if args.json:
        args.json.write_text(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
