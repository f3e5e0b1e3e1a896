"""Gateway benchmark: what the front door costs, and how soon it follows a route.

    .venv/bin/python -m localenv.sandbox -- env PYTHONPATH=. .venv/bin/python \\
        bench/gateway_bench.py [--rounds 5] [--rate 100] [--requests 1000] [--json PATH]

Inside the network sandbox, starts the environment of `make demo` (timed: the
**environment start**, binaries already built), serves v1 behind the Traefik gateway,
then measures:

- **Gateway overhead**: `--rounds` rounds, each sending `--requests` requests at
  `--rate` requests/s (open loop, keep-alive, one client) straight to the pod's IP
  and then the same through the gateway; p50 and p99 of each, and their differences
  within the round. Medians over the rounds are reported: side by side in one round,
  so that the machine's noise hits both alike.
- **Route to data plane**: `--rounds` times, a canary v2 with one manual 50% step:
  from the moment the HTTPRoute in the API carries weight 50 (polled every 20 ms) to
  the canary's first answer through the gateway (load at 200 requests/s); then an
  abort (the annotation `kubectl mlmodel abort` writes): from the route at weight 0
  to the canary's last answer. A retry starts the next round.

Prints each round and the medians; `--json` writes the raw figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from localenv import LoadGenerator, gateway_traffic, gateway_url, mlmodel, models, until_answering
from localenv.environment import LocalEnvironment
from localenv.kubeapi import ApiAccess, KubeApi
from localenv.scenario import SERVE_PORT, pods_of, wait_for
from mlmodel_operator.rollout import ABORT, RETRY

NAME = "iris"
ROLLOUT = {"steps": [{"weight": 50, "pause": {}}], "scaleDownDelaySeconds": 5}


async def latencies(url: str, body: dict[str, Any], *, rate: float, count: int) -> list[float]:
    """Milliseconds of each of `count` requests sent at `rate` a second (open loop)."""
    out: list[float] = []
    async with httpx.AsyncClient(trust_env=False, timeout=10) as client:

        async def one() -> None:
            began = time.perf_counter()
            response = await client.post(url, json=body)
            response.raise_for_status()
            out.append((time.perf_counter() - began) * 1000)

        start = time.monotonic()
        tasks = []
        for index in range(count):
            await asyncio.sleep(max(0.0, start + index / rate - time.monotonic()))
            tasks.append(asyncio.create_task(one()))
        await asyncio.gather(*tasks)
    return out


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# The API client's own loop (asyncio.run() elsewhere makes and closes loops of its own).
LOOP = asyncio.new_event_loop()


def route_weight(api: KubeApi, namespace: str) -> int | None:
    async def read() -> int | None:
        route = await api.get(
            f"/apis/gateway.networking.k8s.io/v1/namespaces/{namespace}/httproutes/{NAME}"
        )
        if not route:
            return None
        # The split lists the stable's Service first, then the canary's, if any (the
        # per-revision or the variant Services: routers.gatewayapi).
        weights = [int(b.get("weight", 1)) for b in route["spec"]["rules"][-1]["backendRefs"]]
        return round(100 * sum(weights[1:]) / sum(weights)) if sum(weights) else 0

    return LOOP.run_until_complete(read())


def wait_route_weight(api: KubeApi, namespace: str, weight: int, timeout: float = 300) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if route_weight(api, namespace) == weight:
            return time.monotonic()
        time.sleep(0.02)
    raise RuntimeError(f"the route did not reach weight {weight}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    directory = Path(tempfile.mkdtemp(prefix="gateway-bench-"))
    good = models.train_good(directory)
    env = LocalEnvironment(directory / "env")
    body = models.infer_body(models.sample_rows()[0])
    overhead: list[dict[str, float]] = []
    routing: list[dict[str, float]] = []
    load_before = os.getloadavg()[0]
    began = time.monotonic()
    env.start()
    start_s = time.monotonic() - began
    print(f"environment started in {start_s:.1f} s", flush=True)
    api = KubeApi(ApiAccess.of(env.plane))
    try:

        def version(v: str, path: Path) -> dict[str, Any]:
            return mlmodel(
                NAME, version=v, model_file=path, rollout=ROLLOUT, traffic=gateway_traffic()
            )

        env.apply(version("v1", good["v1"]))
        wait_for(
            lambda: env.mlmodel(NAME).get("status", {}).get("phase") == "Healthy",
            timeout=240,
            what="v1 to serve",
        )
        url = gateway_url(env.gateway_url, NAME)
        asyncio.run(until_answering(url, body=body))
        [pod] = pods_of(env.plane, env.namespace, "")
        direct = f"http://{pod['status']['podIP']}:{SERVE_PORT}/v2/models/{NAME}/infer"
        for n in range(1, args.rounds + 1):
            row: dict[str, float] = {}
            for side, target in (("direct", direct), ("gateway", url)):
                ms = asyncio.run(latencies(target, body, rate=args.rate, count=args.requests))
                row[f"{side}_p50_ms"] = percentile(ms, 0.50)
                row[f"{side}_p99_ms"] = percentile(ms, 0.99)
            row["added_p50_ms"] = row["gateway_p50_ms"] - row["direct_p50_ms"]
            row["added_p99_ms"] = row["gateway_p99_ms"] - row["direct_p99_ms"]
            overhead.append(row)
            print(
                f"overhead round {n}: p50 {row['direct_p50_ms']:.2f} -> "
                f"{row['gateway_p50_ms']:.2f} ms, p99 {row['direct_p99_ms']:.2f} -> "
                f"{row['gateway_p99_ms']:.2f} ms",
                flush=True,
            )

        env.apply(version("v2", good["v2"]))

        def act(annotation: str) -> None:
            """What `kubectl mlmodel abort|retry` writes (docs/rollouts.md)."""
            canary = env.mlmodel(NAME)["status"]["canary"]
            key = f"{canary['revision']}/{canary['attempt']}"
            env.kubectl("annotate", "mlmodel", NAME, "-n", env.namespace, "--overwrite",
                        f"{annotation}={key}")  # fmt: skip

        for n in range(1, args.rounds + 1):
            load = LoadGenerator(url, body=body, rate=200.0).start()
            weighted_at = wait_route_weight(api, env.namespace, 50)
            canary = str(env.mlmodel(NAME)["status"]["canary"]["revision"])
            answered = load.snapshot
            wait_for(
                lambda: answered().first_answer.get(canary),  # noqa: B023 (called at once)
                timeout=30,
                what="the canary's first answer",
            )
            time.sleep(2)
            act(ABORT)
            unweighted_at = wait_route_weight(api, env.namespace, 0)
            time.sleep(4)  # within the drain (scaleDownDelaySeconds 5)
            load.stop()
            result = load.wait()
            first = result.first_answer[canary] - weighted_at
            last = result.last_answer[canary] - unweighted_at
            failed = sum(result.failures().values())
            routing.append({"to_first_answer_s": first, "to_last_answer_s": last, "failed": failed})
            print(
                f"route round {n}: weight 50 in the API -> first canary answer {first:.2f} s; "
                f"weight 0 -> last canary answer {last:.2f} s; failed requests {failed}",
                flush=True,
            )
            if n < args.rounds:
                act(RETRY)
    finally:
        LOOP.run_until_complete(api.aclose())
        env.stop()

    def median(rows: list[dict[str, float]], key: str) -> float:
        return statistics.median(r[key] for r in rows)

    summary = {
        "environment_start_s": start_s,
        "rate": args.rate,
        "requests": args.requests,
        "load_avg_before": load_before,
        "overhead": {k: median(overhead, k) for k in overhead[0]},
        "routing": {k: median(routing, k) for k in routing[0]},
        "rounds": {"overhead": overhead, "routing": routing},
    }
    o, r = summary["overhead"], summary["routing"]
    print(
        f"environment start {start_s:.1f} s\n"
        f"gateway overhead (median of {args.rounds} rounds at {args.rate:g}/s): "
        f"p50 {o['direct_p50_ms']:.2f} -> {o['gateway_p50_ms']:.2f} ms "
        f"(+{o['added_p50_ms']:.2f}), p99 {o['direct_p99_ms']:.2f} -> "
        f"{o['gateway_p99_ms']:.2f} ms (+{o['added_p99_ms']:.2f})\n"
        f"route to data plane (median): {r['to_first_answer_s']:.2f} s to the first answer, "
        f"{r['to_last_answer_s']:.2f} s to the last"
    )
    if args.json:
        args.json.write_text(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
