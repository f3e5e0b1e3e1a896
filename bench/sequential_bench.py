"""Sequential against interval analysis on simulated canaries: false alarms of good
canaries looked at again and again, and how soon bad ones are rolled back.

    PYTHONPATH=.:operator .venv/bin/python bench/sequential_bench.py \
        [--rollouts 2000] [--json PATH]

Every rollout runs through `analysis.loop.step`, the code the operator runs, one
reading a second with `--rate` requests per second per side, each failing
independently at the scenario's rate; the stable has served 5,000 requests before
(its history). Interval mode: 2 s intervals, minSamples 50, failureLimit 1, the
z-test at p < 0.05; sequential mode: alpha 0.01. Both judge error-rate with the
scenario's limits. The e2e side (real pods, a canary answering 504s) is
`bench/rollout_bench.py --mode both --bad errors`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from mlmodel_operator.analysis.spec import parse_analysis
from tests.helpers.simulate import simulate_rollouts

SCENARIOS: list[dict[str, Any]] = [
    # name, stable rate, canary rate, limits, reads (seconds)
    {
        "name": "identical (1% both)",
        "stable": 0.01,
        "canary": 0.01,
        "metric": {"name": "error-rate", "maxIncrease": 0.01},
        "reads": 120,
    },
    {
        "name": "at the limit (2% vs 1%, maxIncrease 0.01)",
        "stable": 0.01,
        "canary": 0.02,
        "metric": {"name": "error-rate", "maxIncrease": 0.01},
        "reads": 120,
    },
    {
        "name": "5x the stable's errors (5% vs 1%)",
        "stable": 0.01,
        "canary": 0.05,
        "metric": {"name": "error-rate", "maxIncrease": 0.01},
        "reads": 120,
    },
    {
        "name": "10% errors vs none (max 0.01, maxIncrease 0.01)",
        "stable": 0.0,
        "canary": 0.10,
        "metric": {"name": "error-rate", "max": 0.01, "maxIncrease": 0.01},
        "reads": 60,
    },
]


def run(scenario: dict[str, Any], mode: str, rollouts: int, rate: int) -> dict[str, Any]:
    spec = parse_analysis(
        {
            "interval": "2s",
            "minSamples": 50,
            "failureLimit": 1,
            "mode": mode,
            "alpha": 0.01,
            "metrics": [scenario["metric"]],
        }
    )
    began = time.perf_counter()
    outcomes = simulate_rollouts(
        spec,
        stable_rate=scenario["stable"],
        canary_rate=scenario["canary"],
        rollouts=rollouts,
        reads=scenario["reads"],
        per_read=rate,
        seed=11,
    )
    caught = sorted(at for at in outcomes if at is not None)
    return {
        "rolled_back": len(caught) / rollouts,
        "median_s": statistics.median(caught) if caught else None,
        "p10_s": caught[len(caught) // 10] if caught else None,
        "p90_s": caught[(9 * len(caught)) // 10] if caught else None,
        "cpu_s": time.perf_counter() - began,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rollouts", type=int, default=2000)
    parser.add_argument("--rate", type=int, default=40, help="requests/s per side")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    results = []
    for scenario in SCENARIOS:
        row: dict[str, Any] = {"scenario": scenario["name"], "seconds": scenario["reads"]}
        for mode in ("interval", "sequential"):
            row[mode] = run(scenario, mode, args.rollouts, args.rate)
        results.append(row)
        cells = []
        for mode in ("interval", "sequential"):
            r = row[mode]
            when = (
                f", median {r['median_s']} s (p10 {r['p10_s']}, p90 {r['p90_s']})"
                if r["median_s"] is not None
                else ""
            )
            cells.append(f"{mode}: {r['rolled_back']:.1%} rolled back{when}")
        print(f"{scenario['name']} over {scenario['reads']} s: " + "; ".join(cells), flush=True)
    if args.json:
        args.json.write_text(json.dumps({"rate": args.rate, "results": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
