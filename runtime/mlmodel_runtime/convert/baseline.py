"""The training baseline: what the model's inputs and outputs looked like in training.

Drift monitoring compares live traffic with the data the model was trained on; the
init container is the one place that sees a sample of it (the parity reference, made
in the training environment, or `--sample-data`). From that sample it writes
`baseline.json` beside the model: per input feature, buckets and the share of training
rows in each (numeric: edges at the sample's deciles, deduplicated; strings: the
`TOP_CATEGORIES` most frequent values and "other"), and the same for the output (the
predicted class shares, or the predicted values' buckets). The runtime counts live
inputs into the same buckets, so a distance between shares needs no raw data.

A value's bucket is the number of edges at or below it (`np.searchsorted(edges, v,
side="right")`): with edges e0 < e1 < ... < ek the buckets are (-inf, e0), [e0, e1),
..., [ek, inf). Non-finite values are left out of numeric shares.

The file's size is bounded whatever the data: at most `MAX_FEATURES` features (the
first ones, in input order; `features_total` says how many there are), at most
`NUMERIC_BUCKETS` buckets or `TOP_CATEGORIES` + 1 categories each, category names cut
to `MAX_CATEGORY_CHARS`. Generated inputs are not training data: without a sample,
there is no baseline.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from mlmodel_runtime.convert.schema import SINGLE_INPUT, InputSchema
from mlmodel_runtime.modeldir import BASELINE_FILE

FILE: Final = BASELINE_FILE
FORMAT_VERSION: Final = 1
MAX_FEATURES: Final = 1000
NUMERIC_BUCKETS: Final = 10
TOP_CATEGORIES: Final = 10
MAX_CATEGORY_CHARS: Final = 64
OTHER: Final = "__other__"


@dataclass(frozen=True)
class Distribution:
    """One feature's (or the output's) training shares.

    numeric: `edges` (ascending) and len(edges) + 1 `shares`; categorical: `categories`
    and as many `shares` (a feature's last category is OTHER; the output's are the
    model's classes)."""

    name: str
    kind: str  # "numeric" | "categorical"
    shares: tuple[float, ...]
    edges: tuple[float, ...] = ()
    categories: tuple[str, ...] = ()


@dataclass(frozen=True)
class Baseline:
    source: str  # which sample: "reference <file>" or "file <file>"
    rows: int
    features: tuple[Distribution, ...]
    features_total: int  # features of the model; more than len(features) when capped
    output: Distribution | None

    def to_json(self) -> str:
        body = asdict(self)
        body["version"] = FORMAT_VERSION
        return json.dumps(body, separators=(",", ":"))

    def summary(self) -> dict[str, Any]:
        """What the report says about it."""
        return {
            "file": FILE,
            "source": self.source,
            "rows": self.rows,
            "features": len(self.features),
            "features_total": self.features_total,
        }


def numeric(name: str, values: npt.ArrayLike) -> Distribution:
    data = np.asarray(values, dtype=np.float64).reshape(-1)
    data = data[np.isfinite(data)]
    if data.size == 0:
        return Distribution(name, "numeric", shares=(1.0,))
    quantiles = np.linspace(0.0, 1.0, NUMERIC_BUCKETS + 1)[1:-1]
    edges = np.unique(np.quantile(data, quantiles))
    counts = np.bincount(np.searchsorted(edges, data, side="right"), minlength=edges.size + 1)
    return Distribution(
        name,
        "numeric",
        shares=tuple(float(c) / data.size for c in counts),
        edges=tuple(float(e) for e in edges),
    )


def categorical(name: str, values: Sequence[Any] | npt.NDArray[Any]) -> Distribution:
    texts = [_text(v) for v in np.asarray(values, dtype=object).reshape(-1)]
    if not texts:
        return Distribution(name, "categorical", shares=(1.0,), categories=(OTHER,))
    counts = Counter(texts)
    top = [c for c, _ in counts.most_common(TOP_CATEGORIES)]
    other = len(texts) - sum(counts[c] for c in top)
    return Distribution(
        name,
        "categorical",
        shares=(*(counts[c] / len(texts) for c in top), other / len(texts)),
        categories=(*top, OTHER),
    )


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return str(value)[:MAX_CATEGORY_CHARS]


def _columns(feeds: Mapping[str, npt.NDArray[Any]], schema: InputSchema) -> list[tuple[str, Any]]:
    """(feature name, values) in input order: `input[i]` for a matrix input."""
    if not schema.dataframe:
        matrix = np.asarray(feeds[SINGLE_INPUT])
        return [(f"{SINGLE_INPUT}[{i}]", matrix[:, i]) for i in range(matrix.shape[1])]
    return [(c.name, np.asarray(feeds[c.name]).reshape(-1)) for c in schema.columns]


def build(
    feeds: Mapping[str, npt.NDArray[Any]],
    schema: InputSchema,
    *,
    task: str,
    predicted: npt.NDArray[Any] | None,
    classes: Sequence[str | int] = (),
    source: str,
) -> Baseline:
    """The baseline of a sample (`feeds`) and the model's outputs on it (`predicted`:
    labels of a classifier, values of a regressor)."""
    columns = _columns(feeds, schema)
    features = tuple(
        categorical(name, values)
        if np.asarray(values).dtype.kind in "OUS"
        else numeric(name, values)
        for name, values in columns[:MAX_FEATURES]
    )
    output: Distribution | None = None
    if predicted is not None and task == "classification":
        labels = [_text(v) for v in np.asarray(predicted, dtype=object).reshape(-1)]
        counts = Counter(labels)
        names = [_text(c) for c in classes] or sorted(counts)
        total = max(len(labels), 1)
        output = Distribution(
            "label",
            "categorical",
            shares=tuple(counts[c] / total for c in names),
            categories=tuple(names),
        )
    elif predicted is not None:
        output = numeric("value", predicted)
    rows = int(np.asarray(next(iter(feeds.values()))).shape[0]) if feeds else 0
    return Baseline(
        source=source,
        rows=rows,
        features=features,
        features_total=len(columns),
        output=output,
    )
