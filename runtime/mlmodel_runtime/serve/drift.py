"""Live input histograms over the training baseline's own buckets.

`convert` writes `baseline.json` beside the model when it saw a sample of training
data (`convert/baseline.py`): per feature, bucket edges (numbers) or top categories
(strings) and the share of training rows in each. The runtime counts every row it
serves into the same buckets, so drift is a distance between two sets of shares that
Prometheus or a scrape can read, with no raw inputs kept:

- `mlmodel_input_bucket_total{feature, bucket}`: rows served per bucket;
- `mlmodel_input_baseline_share{feature, bucket}`: the training share of that bucket.

`bucket` is the bucket's index ("0", "1", ...; for strings, the index of the category
in the baseline, the last being "other"). A numeric value's bucket is the number of
edges at or below it, as the baseline computed it.

Cardinality is bounded: at most `max_features` features are watched (the first ones
of the baseline, `--drift-max-features`), each with at most 11 buckets; the log line
at start names them. Counting is vectorised per batch in the batching thread and
added to the counters at most every `FLUSH_S` seconds (and at each scrape), so the
hot path pays one NumPy comparison per batch, not a counter increment per row.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np

log = logging.getLogger("mlmodel_runtime.serve.drift")

BASELINE_FILE: Final = "baseline.json"
DEFAULT_MAX_FEATURES: Final = 20
FLUSH_S: Final = 1.0


@dataclass(frozen=True)
class _Feature:
    name: str
    tensor: int  # index among the session's inputs
    column: int  # column of that tensor
    edges: tuple[float, ...] = ()  # numeric
    categories: tuple[str, ...] = ()  # categorical; the last is "other"
    shares: tuple[float, ...] = ()

    @property
    def buckets(self) -> int:
        return len(self.categories) if self.categories else len(self.edges) + 1


def read_baseline(model_dir: Path) -> Mapping[str, Any] | None:
    """baseline.json if convert wrote one; None when there is none or it is unreadable
    (drift is then not watched, and the log says why)."""
    path = model_dir / BASELINE_FILE
    if not path.exists():
        return None
    try:
        body: Mapping[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        log.warning("ignoring %s: %s", path, exc)
        return None
    return body


def _locate(name: str, input_names: Sequence[str]) -> tuple[int, int] | None:
    """(tensor, column) of a baseline feature: `input[i]` is column i of the input
    `input`; a DataFrame model's column is an input of its own."""
    if name in input_names:
        return input_names.index(name), 0
    base, _, rest = name.partition("[")
    if base in input_names and rest.endswith("]") and rest[:-1].isdigit():
        return input_names.index(base), int(rest[:-1])
    return None


class InputHistograms:
    """Counts of served rows per baseline bucket, for the watched features."""

    def __init__(
        self,
        baseline: Mapping[str, Any],
        input_names: Sequence[str],
        *,
        max_features: int,
        counter: Callable[[str, str], Any],  # (feature, bucket) -> a counter child
        share: Callable[[str, str], Any],  # (feature, bucket) -> a gauge child
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        features: list[_Feature] = []
        for raw in baseline.get("features") or ():
            if len(features) >= max_features:
                break
            where = _locate(str(raw.get("name", "")), list(input_names))
            if where is None:
                continue
            features.append(
                _Feature(
                    name=str(raw["name"]),
                    tensor=where[0],
                    column=where[1],
                    edges=tuple(float(e) for e in raw.get("edges") or ()),
                    categories=tuple(str(c) for c in raw.get("categories") or ()),
                    shares=tuple(float(s) for s in raw.get("shares") or ()),
                )
            )
        self.features = tuple(features)
        self.total = int(baseline.get("features_total", len(baseline.get("features") or ())))
        self._offsets = np.cumsum([0, *(f.buckets for f in features)])
        self._pending = np.zeros(int(self._offsets[-1]), dtype=np.int64)
        self._children = [counter(f.name, str(b)) for f in features for b in range(f.buckets)]
        for f in features:
            for b, value in enumerate(f.shares[: f.buckets]):
                share(f.name, str(b)).set(value)
        self._numeric = self._numeric_groups()
        self._lookups = {
            i: {c: b for b, c in enumerate(f.categories[:-1])}
            for i, f in enumerate(features)
            if f.categories
        }
        self._lock = threading.Lock()
        self._clock = clock
        self._flushed = clock()

    def _numeric_groups(self) -> list[tuple[int, Any, Any, Any]]:
        """Per tensor: (tensor, columns, edges padded with +inf to one width, offsets)."""
        groups: dict[int, list[int]] = {}
        for i, f in enumerate(self.features):
            if not f.categories:
                groups.setdefault(f.tensor, []).append(i)
        out = []
        for tensor, indices in groups.items():
            width = max(1, *(len(self.features[i].edges) for i in indices))
            edges = np.full((len(indices), width), np.inf)
            for row, i in enumerate(indices):
                found = self.features[i].edges
                edges[row, : len(found)] = found
            columns = np.array([self.features[i].column for i in indices])
            offsets = self._offsets[indices]
            out.append((tensor, columns, edges, offsets))
        return out

    def describe(self) -> str:
        names = ", ".join(f.name for f in self.features)
        return f"watching {len(self.features)} of {self.total} input features for drift: {names}"

    def observe(self, inputs: Sequence[np.ndarray[Any, Any]]) -> None:
        """Count one batch's rows (the batching thread); flush now and then."""
        counts = np.zeros_like(self._pending)
        for tensor, columns, edges, offsets in self._numeric:
            matrix = inputs[tensor]
            values = matrix.reshape(matrix.shape[0], -1)[:, columns].astype(np.float64)
            buckets = (values[:, :, None] >= edges[None, :, :]).sum(axis=2)
            counts += np.bincount((buckets + offsets[None, :]).reshape(-1), minlength=counts.size)
        for i, lookup in self._lookups.items():
            f = self.features[i]
            other = len(f.categories) - 1
            base = int(self._offsets[i])
            column = inputs[f.tensor].reshape(inputs[f.tensor].shape[0], -1)[:, f.column]
            for value in column.tolist():
                text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
                counts[base + lookup.get(text[:64], other)] += 1
        with self._lock:
            self._pending += counts
            due = self._clock() - self._flushed >= FLUSH_S
        if due:
            self.flush()

    def flush(self) -> None:
        """Add the pending counts to the counters (also before each scrape)."""
        with self._lock:
            pending, self._pending = self._pending, np.zeros_like(self._pending)
            self._flushed = self._clock()
        for index in np.flatnonzero(pending):
            self._children[int(index)].inc(int(pending[index]))
