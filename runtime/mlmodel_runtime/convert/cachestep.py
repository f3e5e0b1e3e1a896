"""The cache phase of `pipeline.convert` (`--cache-dir`): the key of this conversion,
the look-up, what a reused conversion reports, and the store after a new one passed.

The decisions are `reuse.py`'s (pure), the directory is `cache.py`'s; this module puts
a request's values into them and their answers into the report's `cache` field. Like
them it imports nothing heavy, so that a reuse pays for no NumPy, ONNX or
scikit-learn.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from mlmodel_runtime.convert import cache, reuse
from mlmodel_runtime.convert.learned import Learned
from mlmodel_runtime.convert.plan import ParityPlan
from mlmodel_runtime.modeldir import METADATA_FILE, ModelMetadata, metadata_bytes


@dataclass(frozen=True)
class CacheOptions:
    """`--cache-dir` and `--cache-max-bytes`."""

    root: Path
    max_bytes: int = cache.DEFAULT_MAX_BYTES


@dataclass(frozen=True)
class KeyParts:
    """What, besides the versions, makes a conversion: the file, and every option that
    changes what it accepts, writes or proves."""

    source_sha256: str
    fmt: str
    trust: tuple[str, ...]
    allow_unsafe_pickle: bool
    allow_version_mismatch: bool
    max_unpacked_bytes: int
    plan: ParityPlan
    evaluation_sha256: str | None
    evaluation_metric: str | None

    def options(self) -> dict[str, object]:
        plan, reference = self.plan, self.plan.reference_source or {}
        return {
            "trust_types": self.trust,
            "allow_unsafe_pickle": self.allow_unsafe_pickle,
            "allow_version_mismatch": self.allow_version_mismatch,
            "max_unpacked_bytes": self.max_unpacked_bytes,
            "parity_samples": plan.samples,
            "rtol": plan.tolerance.rtol,
            "atol": plan.tolerance.atol,
            "sample_data_sha256": (
                cache.file_digest(plan.sample_data) if plan.sample_data is not None else None
            ),
            "reference_sha256": reference.get("sha256"),
            "evaluation_sha256": self.evaluation_sha256,
            "evaluation_metric": self.evaluation_metric,
        }


@dataclass(frozen=True)
class LookedUp:
    """Where, under which key, and what was decided."""

    options: CacheOptions
    key: reuse.Key
    decision: reuse.Decision

    def report(self) -> dict[str, Any]:
        """The report's `cache`: reused or not, and why not."""
        if isinstance(self.decision, reuse.Reuse):
            return {"reused": True, "entry": self.key.digest}
        return {"reused": False, "reason": self.decision.reason, "entry": self.key.digest}

    def says(self) -> str:
        """The progress line."""
        if isinstance(self.decision, reuse.Reuse):
            return f"cache: reusing the conversion stored as {self.key.digest[:16]}"
        return f"cache: converting: {self.decision.reason}"


def look_up(options: CacheOptions, parts: KeyParts, *, unpickles: bool) -> LookedUp:
    key = reuse.key_for(
        source_sha256=parts.source_sha256,
        fmt=parts.fmt,
        versions=cache.versions(),
        options=parts.options(),
    )
    # A format that unpickles never reads the cache (nor writes it): decide says why.
    found = None if unpickles else cache.lookup(options.root, key)
    return LookedUp(options, key, reuse.decide(key, found, unpickles=unpickles))


def recorded(entry: reuse.Entry, metadata: ModelMetadata, learned: Learned) -> Learned:
    """What the reused conversion learned, as its entry recorded it: its parity figures
    are the proof of the model now served."""
    report = entry.report
    return replace(
        learned,
        estimator=metadata.estimator,
        task=metadata.task,
        version_warning=str(report.get("version_warning") or ""),
        inputs=metadata.inputs,
        outputs=metadata.outputs,
        parity=metadata.parity,
        evaluation=report.get("evaluation"),
        baseline=report.get("baseline"),
    )


def store(
    looked_up: LookedUp,
    written: Mapping[str, bytes],
    metadata: ModelMetadata,
    learned: Learned,
) -> dict[str, Any]:
    """Store the passed conversion for the next pod; the report's word on it."""
    fields = learned.report_fields()
    kept = {k: v for k, v in fields.items() if k not in ("source", "timings", "cache")}
    decision = looked_up.decision
    outcome = cache.store(
        looked_up.options.root,
        looked_up.key,
        files={**written, METADATA_FILE: metadata_bytes(metadata)},
        report=kept,
        max_bytes=looked_up.options.max_bytes,
        # An entry that could not be reused (damaged, another key) gives way to this one.
        replace=isinstance(decision, reuse.Convert) and decision.miss is not reuse.Miss.NO_ENTRY,
    )
    stored: dict[str, Any] = {"stored": outcome.stored}
    if outcome.detail:
        stored["store_detail"] = outcome.detail
    if outcome.evicted:
        stored["evicted"] = outcome.evicted
    return stored
