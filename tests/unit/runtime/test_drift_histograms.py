"""Live input histograms over the baseline's buckets: the same bucket rule as the
baseline, strings by category with "other", a bounded number of series, counts added
to the counters in batches."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np
import pytest

from mlmodel_runtime.convert import baseline
from mlmodel_runtime.convert.schema import InputColumn, InputSchema
from mlmodel_runtime.serve.drift import InputHistograms

pytestmark = pytest.mark.unit


class Child:
    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1) -> None:
        self.value += amount

    def set(self, value: float) -> None:
        self.value = value


class Families:
    def __init__(self) -> None:
        self.counts: dict[tuple[str, str], Child] = defaultdict(Child)
        self.shares: dict[tuple[str, str], Child] = defaultdict(Child)

    def counter(self, feature: str, bucket: str) -> Child:
        return self.counts[(feature, bucket)]

    def share(self, feature: str, bucket: str) -> Child:
        return self.shares[(feature, bucket)]

    def counted(self, feature: str) -> list[float]:
        found = sorted((int(b), c.value) for (f, b), c in self.counts.items() if f == feature)
        return [v for _, v in found]


def histograms(made: baseline.Baseline, names: list[str], families: Families,
               **kw: Any) -> InputHistograms:  # fmt: skip
    import json

    return InputHistograms(json.loads(made.to_json()), names, counter=families.counter,
                           share=families.share, **{"max_features": 20, **kw})  # fmt: skip


def test_numeric_rows_land_in_the_buckets_the_baseline_defined() -> None:
    rng = np.random.default_rng(1)
    train = rng.normal(size=(500, 3)).astype(np.float32)
    made = baseline.build({"input": train}, InputSchema(n_features=3), task="regression",
                          predicted=None, source="r")  # fmt: skip
    families = Families()
    watched = histograms(made, ["input"], families)
    live = rng.normal(loc=0.5, size=(300, 3)).astype(np.float32)
    watched.observe([live[:100]])
    watched.observe([live[100:]])
    watched.flush()
    for i, feature in enumerate(made.features):
        expected = np.bincount(
            np.searchsorted(feature.edges, live[:, i].astype(np.float64), side="right"),
            minlength=len(feature.edges) + 1,
        )
        assert families.counted(f"input[{i}]") == expected.tolist()
        shares = [families.shares[(f"input[{i}]", str(b))].value for b in range(len(expected))]
        assert shares == pytest.approx(list(feature.shares))


def test_strings_count_by_category_and_unknown_values_as_other() -> None:
    schema = InputSchema(
        n_features=2, columns=(InputColumn("age", "FP32"), InputColumn("city", "BYTES"))
    )
    train = {
        "age": np.arange(100, dtype=np.float32).reshape(-1, 1),
        "city": np.array([["paris"]] * 60 + [["lyon"]] * 40, dtype=object),
    }
    made = baseline.build(train, schema, task="regression", predicted=None, source="r")
    families = Families()
    watched = histograms(made, ["age", "city"], families)
    watched.observe([np.array([[5.0], [95.0]], np.float32),
                     np.array([[b"lyon"], ["nice"]], dtype=object)])  # fmt: skip
    watched.flush()
    categories = made.features[1].categories
    counted = families.counted("city")
    assert counted[categories.index("lyon")] == 1
    assert counted[categories.index(baseline.OTHER)] == 1
    assert sum(families.counted("age")) == 2


def test_at_most_the_cap_of_features_is_watched_and_the_log_line_names_them() -> None:
    rng = np.random.default_rng(2)
    train = rng.normal(size=(100, 500)).astype(np.float32)
    made = baseline.build({"input": train}, InputSchema(n_features=500), task="regression",
                          predicted=None, source="r")  # fmt: skip
    families = Families()
    watched = histograms(made, ["input"], families, max_features=20)
    assert len(watched.features) == 20
    assert len({f for f, _ in families.counts}) == 20
    assert len(families.counts) <= 20 * (baseline.NUMERIC_BUCKETS + 1)
    assert watched.describe().startswith("watching 20 of 500 input features for drift: input[0]")


def test_counts_reach_the_counters_at_most_every_second_and_at_each_flush() -> None:
    train = np.arange(100, dtype=np.float32).reshape(-1, 1)
    made = baseline.build({"input": train}, InputSchema(n_features=1), task="regression",
                          predicted=None, source="r")  # fmt: skip
    now = [0.0]
    families = Families()
    watched = histograms(made, ["input"], families, clock=lambda: now[0])
    watched.observe([np.array([[1.0]], np.float32)])
    assert sum(families.counted("input[0]")) == 0  # pending
    now[0] = 1.5
    watched.observe([np.array([[2.0]], np.float32)])
    assert sum(families.counted("input[0]")) == 2
    watched.observe([np.array([[3.0]], np.float32)])
    watched.flush()
    assert sum(families.counted("input[0]")) == 3
