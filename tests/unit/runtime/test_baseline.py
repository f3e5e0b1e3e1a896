"""The training baseline's shares: buckets at the sample's deciles, top categories plus
"other", the output's class shares or value buckets, and a size bounded whatever the
data."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mlmodel_runtime.convert import baseline
from mlmodel_runtime.convert.schema import InputColumn, InputSchema

pytestmark = pytest.mark.unit


def test_numeric_shares_follow_the_deciles_and_the_bucket_rule() -> None:
    values = np.arange(1000, dtype=float)
    dist = baseline.numeric("x", values)
    assert len(dist.edges) == baseline.NUMERIC_BUCKETS - 1
    assert list(dist.edges) == sorted(dist.edges)
    assert sum(dist.shares) == pytest.approx(1.0)
    assert all(s == pytest.approx(0.1, abs=0.002) for s in dist.shares)
    # The rule the runtime applies: the bucket is the number of edges at or below.
    below, at = np.searchsorted(dist.edges, [dist.edges[0] - 1, dist.edges[0]], side="right")
    assert (below, at) == (0, 1)


def test_a_constant_or_empty_feature_has_one_or_two_buckets_and_non_finite_is_left_out() -> None:
    constant = baseline.numeric("c", [3.0] * 50 + [np.nan, np.inf])
    assert constant.edges == (3.0,)
    assert constant.shares == (0.0, 1.0)
    assert baseline.numeric("e", [np.nan]).shares == (1.0,)


def test_categories_keep_the_most_frequent_and_pool_the_rest() -> None:
    values = ["a"] * 50 + ["b"] * 30 + [f"rare{i}" for i in range(20)]
    dist = baseline.categorical("city", values)
    assert dist.categories[:2] == ("a", "b")
    assert dist.categories[-1] == baseline.OTHER
    assert len(dist.categories) == baseline.TOP_CATEGORIES + 1
    assert dist.shares[0] == pytest.approx(0.5)
    assert dist.shares[-1] == pytest.approx(12 / 100)  # 20 rare values, 8 of them kept
    assert sum(dist.shares) == pytest.approx(1.0)
    long = baseline.categorical("s", [b"x" * 500])
    assert len(long.categories[0]) == baseline.MAX_CATEGORY_CHARS


def test_the_output_is_class_shares_or_value_buckets() -> None:
    feeds = {"input": np.zeros((4, 2), dtype=np.float32)}
    schema = InputSchema(n_features=2)
    classified = baseline.build(feeds, schema, task="classification",
                                predicted=np.array([0, 0, 2, 2]), classes=(0, 1, 2),
                                source="file s.npy")  # fmt: skip
    assert classified.output is not None
    assert classified.output.categories == ("0", "1", "2")
    assert classified.output.shares == (0.5, 0.0, 0.5)
    assert [f.name for f in classified.features] == ["input[0]", "input[1]"]
    regressed = baseline.build(feeds, schema, task="regression",
                               predicted=np.array([[1.0], [2.0], [3.0], [4.0]]),
                               source="file s.npy")  # fmt: skip
    assert regressed.output is not None
    assert regressed.output.kind == "numeric"


def test_a_dataframe_sample_gives_one_distribution_per_column_by_its_type() -> None:
    schema = InputSchema(
        n_features=2, columns=(InputColumn("age", "FP32"), InputColumn("city", "BYTES"))
    )
    feeds = {
        "age": np.array([[20.0], [30.0], [40.0]], dtype=np.float32),
        "city": np.array([["paris"], ["lyon"], ["paris"]], dtype=object),
    }
    made = baseline.build(feeds, schema, task="regression", predicted=None, source="r")
    assert [(f.name, f.kind) for f in made.features] == [
        ("age", "numeric"),
        ("city", "categorical"),
    ]


def test_the_file_is_bounded_whatever_the_width_of_the_data() -> None:
    rng = np.random.default_rng(0)
    feeds = {"input": rng.standard_normal((200, 3000)).astype(np.float32)}
    made = baseline.build(feeds, InputSchema(n_features=3000), task="regression",
                          predicted=rng.standard_normal(200), source="r")  # fmt: skip
    assert len(made.features) == baseline.MAX_FEATURES
    assert made.features_total == 3000
    text = made.to_json()
    assert len(text) < 400_000, len(text)
    body = json.loads(text)
    assert body["version"] == baseline.FORMAT_VERSION
    assert made.summary()["features"] == baseline.MAX_FEATURES
