"""Rollout benchmark: how much a rollout overruns its pauses, and how fast a bad
canary is rolled back, with real processes end to end.

    .venv/bin/python -m localenv.sandbox -- env PYTHONPATH=. .venv/bin/python \
        bench/rollout_bench.py [--rounds 5] [--pause 5] [--rate 40] \
        [--provider prometheus|scrape] [--json PATH]

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
from localenv.demo import FAILURE_LIMIT, INTERVAL_S, Demo, Rollout, Screen
from localenv.environment import LocalEnvironment


def rollback_times(demo: Demo, record: Rollout) -> tuple[float, float]:
    assert demo.load is not None
    load = demo.load.snapshot()
    first = load.first_answer[record.revision]
    return record.ended_at - first, load.last_answer[record.revision] - first


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--pause", type=float, default=5.0)
    parser.add_argument("--rate", type=float, default=40.0)
    parser.add_argument("--provider", choices=("prometheus", "scrape"), default="prometheus")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    directory = Path(tempfile.mkdtemp(prefix="rollout-bench-"))
    screen = Screen(sys.stderr, live=False)
    good = models.train_good(directory)
    bad = models.train_shuffled(directory).path
    paths: dict[str, Path | str] = {"v1": good["v1"]}
    for n in range(1, args.rounds + 1):
        paths[f"good-{n}"] = good["v2"] if n % 2 else good["v1"]
        paths[f"bad-{n}"] = bad
    env = LocalEnvironment(directory, say=screen.say)
    demo = Demo(
        env=env,
        screen=screen,
        pause_s=args.pause,
        rate=args.rate,
        models=paths,
        provider=args.provider,
    )
    rounds: list[dict[str, Any]] = []
    load_before = os.getloadavg()[0]
    try:
        env.start()
        demo.serve_first("v1")
        demo.start_load()
        for n in range(1, args.rounds + 1):
            promoted = demo.good_canary(f"good-{n}")
            rolled_back = demo.bad_canary(f"bad-{n}")
            to_status, to_last_answer = rollback_times(demo, rolled_back)
            row: dict[str, Any] = {
                "round": n,
                "overruns_s": promoted.pause_overruns(args.pause),
                "promoted_after_apply_s": promoted.ended_at - promoted.applied_at,
                "rollback_to_status_s": to_status,
                "rollback_to_last_answer_s": to_last_answer,
                "bad_intervals": dict(rolled_back.verdicts),
                "load_avg": os.getloadavg()[0],
            }
            rounds.append(row)
            print(
                f"round {n}: pause overruns "
                + ", ".join(f"{o:+.2f}" for o in row["overruns_s"])
                + f" s; rollback {to_status:.1f} s to status, {to_last_answer:.1f} s to the "
                f"last answer; load {row['load_avg']:.1f}",
                flush=True,
            )
            time.sleep(1)
    finally:
        if demo.load is not None:
            demo.load.stop()
        env.stop()
    overruns = [o for row in rounds for o in row["overruns_s"]]
    to_status_all = [float(row["rollback_to_status_s"]) for row in rounds]
    to_last_all = [float(row["rollback_to_last_answer_s"]) for row in rounds]
    aim = FAILURE_LIMIT * INTERVAL_S + 5
    summary = {
        "provider": args.provider,
        "pause_s": args.pause,
        "rate": args.rate,
        "interval_s": INTERVAL_S,
        "failure_limit": FAILURE_LIMIT,
        "aim_s": aim,
        "load_avg_before": load_before,
        "overrun_median_s": statistics.median(overruns),
        "overrun_max_s": max(overruns),
        "rollback_to_status_median_s": statistics.median(to_status_all),
        "rollback_to_status_max_s": max(to_status_all),
        "rollback_to_last_answer_median_s": statistics.median(to_last_all),
        "rollback_to_last_answer_max_s": max(to_last_all),
        "rounds": rounds,
    }
    print(
        f"pause overrun: median {summary['overrun_median_s']:+.2f} s, max "
        f"{summary['overrun_max_s']:+.2f} s over {len(overruns)} pauses of {args.pause:g} s\n"
        f"rollback: median {summary['rollback_to_status_median_s']:.1f} s to status "
        f"(max {summary['rollback_to_status_max_s']:.1f}), "
        f"{summary['rollback_to_last_answer_median_s']:.1f} s to the last answer "
        f"(max {summary['rollback_to_last_answer_max_s']:.1f}); aim {aim} s"
    )
    if args.json:
        args.json.write_text(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
