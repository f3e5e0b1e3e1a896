"""Simulated canary rollouts through the analysis loop the operator runs
(`analysis.loop.step`): cumulative counters of both revisions as a provider reads them,
one reading a second. Shared by the unit tests of sequential analysis and
`bench/sequential_bench.py`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from mlmodel_operator.analysis.exposition import Snapshot
from mlmodel_operator.analysis.judging import Rollback
from mlmodel_operator.analysis.loop import AnalysisRecord, Progress, Reading, step
from mlmodel_operator.analysis.spec import AnalysisSpec


def requests(ok: float, errors: float, shed: float = 0.0) -> Snapshot:
    """200s, 500s and 503s shed at a bound of the runtime (overload)."""
    if not shed:
        return Snapshot(requests={"200": ok, "500": errors})
    return Snapshot(requests={"200": ok, "500": errors, "503": shed}, shed={"queue": shed})


@dataclass
class Stream:
    """Cumulative counters of both revisions, as a provider reads them."""

    stable_ok: float = 5000.0  # the stable's history before the attempt
    stable_errors: float = 0.0
    canary_ok: float = 0.0
    canary_errors: float = 0.0
    stable_shed: float = 0.0
    canary_shed: float = 0.0

    def reading(self, at: float) -> Reading:
        return Reading(
            stable=requests(self.stable_ok, self.stable_errors, self.stable_shed),
            canary=requests(self.canary_ok, self.canary_errors, self.canary_shed),
            taken_at=at,
        )


def run(
    spec: AnalysisSpec, stream: Stream, serve: Callable[[Stream], None], reads: int
) -> tuple[int | None, list[Progress]]:
    """Feed `reads` readings, one per second, `serve(stream)` adding each second's
    traffic; the read (1-based) at which the analysis rolled back, or None, and every
    Progress."""
    record: AnalysisRecord | None = None
    progresses = []
    for second in range(reads + 1):
        if second:
            serve(stream)
        progress = step(
            spec=spec,
            previous=record,
            attempt_key="r/1",
            reading=stream.reading(float(second)),
            now=float(second) + 0.01,
        )
        progresses.append(progress)
        record = progress.record
        if isinstance(progress.outcome, Rollback):
            return second, progresses
    return None, progresses


def simulate_rollouts(
    spec: AnalysisSpec,
    *,
    stable_rate: float,
    canary_rate: float,
    rollouts: int,
    reads: int,
    per_read: int,
    seed: int,
) -> list[int | None]:
    """For each simulated rollout, the read at which it was rolled back (or None):
    `per_read` requests per side between readings, each failing independently."""
    rng = np.random.default_rng(seed)

    def binomial(n: int, p: float) -> int:
        return int(rng.binomial(n, p))

    def serve(s: Stream) -> None:
        errors_s, errors_c = binomial(per_read, stable_rate), binomial(per_read, canary_rate)
        s.stable_errors += errors_s
        s.stable_ok += per_read - errors_s
        s.canary_errors += errors_c
        s.canary_ok += per_read - errors_c

    out = []
    for _ in range(rollouts):
        history = binomial(5000, stable_rate)
        stream = Stream(stable_ok=5000 - history, stable_errors=history)
        out.append(run(spec, stream, serve, reads)[0])
    return out
