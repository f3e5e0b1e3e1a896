"""Input schema inference and URI resolution, on fitted estimators and plain strings."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlmodel_runtime.convert.errors import UnsupportedModelError, UsageError
from mlmodel_runtime.convert.fetch import FetchOptions, resolve_uri, storage_options
from mlmodel_runtime.convert.formats import sniff
from mlmodel_runtime.convert.schema import InputColumn, InputSchema, dotted_name, infer_schema
from mlmodel_runtime.modeldir import TensorSpec

pytestmark = pytest.mark.unit


def test_array_fitted_model_has_one_input() -> None:
    from sklearn.linear_model import LinearRegression

    model = LinearRegression().fit(np.zeros((4, 3)), np.arange(4))
    schema = infer_schema(model)
    assert schema == InputSchema(n_features=3)
    assert schema.tensor_specs() == (TensorSpec("input", "FP32", (-1, 3)),)
    assert dotted_name(model) == "sklearn.linear_model.LinearRegression"


def test_column_transformer_columns_and_categories() -> None:
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    frame = pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0], "city": ["b", "a", "b", "a"],
                          "n": [1, 2, 3, 4]})  # fmt: skip
    pre = ColumnTransformer([
        ("num", StandardScaler(), [0, 2]),  # positions resolve to names
        ("cat", make_pipeline(OneHotEncoder()), ["city"]),
    ])  # fmt: skip
    model = Pipeline([("pre", pre), ("clf", LogisticRegression())]).fit(frame, [0, 1, 0, 1])
    schema = infer_schema(model)
    assert schema.columns == (
        InputColumn("x", "FP32"),
        InputColumn("city", "BYTES", ("a", "b")),
        InputColumn("n", "FP32"),
    )
    assert [t.shape for t in schema.tensor_specs()] == [(-1, 1)] * 3


def test_unfitted_model_is_unsupported() -> None:
    from sklearn.linear_model import LinearRegression

    with pytest.raises(UnsupportedModelError, match="is it fitted"):
        infer_schema(LinearRegression())


@pytest.mark.parametrize(("uri", "expected"), [
    ("/models/a.skops", ("file", "/models/a.skops")),
    ("file:///models/a.skops", ("file", "/models/a.skops")),
    ("pvc://claim/a/b.skops", ("file", "/mnt/pvc/claim/a/b.skops")),
    ("s3://bucket/key.skops", ("s3", "s3://bucket/key.skops")),
    ("https://host/m.skops", ("https", "https://host/m.skops")),
    ("gs://bucket/m.skops", ("gs", "gs://bucket/m.skops")),
])  # fmt: skip
def test_resolve_uri(uri: str, expected: tuple[str, str]) -> None:
    assert resolve_uri(uri, Path("/mnt/pvc")) == expected


@pytest.mark.parametrize(
    "uri", ["pvc://claim", "pvc://claim/../../x", "ftp://h/x", "file://host/x"]
)
def test_resolve_uri_refuses(uri: str) -> None:
    with pytest.raises(UsageError):
        resolve_uri(uri, Path("/mnt/pvc"))


def test_s3_endpoint_precedence() -> None:
    env = {"AWS_ENDPOINT_URL": "http://generic", "AWS_ENDPOINT_URL_S3": "http://s3-specific"}
    flag = FetchOptions(s3_endpoint_url="http://flag")
    assert storage_options("s3", flag, env)["endpoint_url"] == "http://flag"
    assert storage_options("s3", FetchOptions(), env)["endpoint_url"] == "http://s3-specific"
    only_generic = {"AWS_ENDPOINT_URL": "http://generic"}
    assert storage_options("s3", FetchOptions(), only_generic)["endpoint_url"] == "http://generic"
    assert "endpoint_url" not in storage_options("s3", FetchOptions(), {})


def test_sniff() -> None:
    assert sniff(b"PK\x03\x04rest") == "zip"
    assert sniff(b"\x80\x05\x95") == "pickle"
    assert sniff(b"\x08\x07\x12") == "other"
