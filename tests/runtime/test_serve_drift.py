"""Input drift as the runtime exports it: a model converted with a training sample
(`--sample-data`) serves `mlmodel_input_bucket_total` and `mlmodel_input_baseline_share`
for its features, counting every served row into the baseline's buckets, with one
worker and with two (whose counts add up in any scrape); a 500-feature model exports
at most the cap; a model without a baseline exports none of it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_iris

from mlmodel_runtime.serve.drift import DEFAULT_MAX_FEATURES
from tests.helpers.metrics import scrape, value
from tests.runtime.conftest import ServerFactory
from tests.runtime.convert_fixtures import dump_skops, run_in_process

pytestmark = pytest.mark.runtime


def converted(tmp_path: Path, model: object, sample: np.ndarray, name: str) -> Path:
    """`mlmodel-runtime convert --sample-data` of `model`: model.onnx and baseline.json."""
    source = dump_skops(model, tmp_path / f"{name}.skops")
    rows = tmp_path / f"{name}-rows.npy"
    np.save(rows, sample)
    out = tmp_path / name
    result = run_in_process(["--uri", str(source), "--format", "skops", "--out", str(out),
                             "--sample-data", str(rows)])  # fmt: skip
    assert result.code == 0, result.report
    assert (out / "baseline.json").exists()
    return out


def infer(rows: np.ndarray) -> dict[str, object]:
    return {"inputs": [{"name": "input", "datatype": "FP32", "shape": list(rows.shape),
                        "data": rows.ravel().tolist()}]}  # fmt: skip


@pytest.mark.parametrize("workers", [1, 2])
def test_served_rows_are_counted_into_the_training_buckets(
    fresh_server: ServerFactory, tmp_path: Path, workers: int
) -> None:
    from sklearn.ensemble import RandomForestClassifier

    x, y = load_iris(return_X_y=True)
    model = RandomForestClassifier(n_estimators=10, random_state=0).fit(x, y)
    model_dir = converted(tmp_path, model, x, "iris")
    server = fresh_server(model_dir, name="iris", extra=("--workers", str(workers)))
    live = x[::3].astype(np.float32)
    with server.client() as client:
        for start in range(0, len(live), 10):
            answer = client.post("/v2/models/iris/infer", json=infer(live[start : start + 10]))
            assert answer.status_code == 200, answer.text
        samples = scrape(client)
    trained = json.loads((model_dir / "baseline.json").read_text())
    for i, feature in enumerate(trained["features"]):
        expected = np.bincount(
            np.searchsorted(feature["edges"], live[:, i].astype(np.float64), side="right"),
            minlength=len(feature["edges"]) + 1,
        )
        got = [
            value(
                samples,
                "mlmodel_input_bucket_total",
                model="iris",
                version="v1",
                feature=f"input[{i}]",
                bucket=str(b),
            )
            for b in range(len(expected))
        ]
        assert got == expected.tolist(), (feature["name"], got, expected.tolist())
        shares = [
            value(
                samples,
                "mlmodel_input_baseline_share",
                model="iris",
                version="v1",
                feature=f"input[{i}]",
                bucket=str(b),
            )
            for b in range(len(expected))
        ]
        assert shares == pytest.approx(feature["shares"])


def test_a_wide_model_exports_at_most_the_cap_and_no_baseline_none(
    fresh_server: ServerFactory, tmp_path: Path
) -> None:
    from sklearn.linear_model import Ridge

    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 500))
    model_dir = converted(tmp_path, Ridge().fit(x, x[:, 0]), x, "wide")
    server = fresh_server(model_dir, name="wide")
    with server.client() as client:
        answer = client.post("/v2/models/wide/infer", json=infer(x[:5].astype(np.float32)))
        assert answer.status_code == 200, answer.text
        samples = scrape(client)
    features = {dict(labels)["feature"] for name, labels in samples
                if name == "mlmodel_input_bucket_total"}  # fmt: skip
    assert len(features) == DEFAULT_MAX_FEATURES
    assert f"watching {DEFAULT_MAX_FEATURES} of 500 input features" in server.log()

    (model_dir / "baseline.json").unlink()
    plain = fresh_server(model_dir, name="wide")
    with plain.client() as client:
        samples = scrape(client)
    assert not [name for name, _ in samples if name.startswith("mlmodel_input_")]


def test_the_output_baseline_is_served_beside_the_predictions(
    fresh_server: ServerFactory, tmp_path: Path
) -> None:
    """A classifier's training class shares beside mlmodel_predictions_total; a
    regressor's predicted values counted into the training buckets."""
    from sklearn.datasets import load_diabetes
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import Ridge

    x, y = load_iris(return_X_y=True)
    iris_dir = converted(tmp_path, RandomForestClassifier(n_estimators=5, random_state=0)
                         .fit(x, y), x, "iris")  # fmt: skip
    trained = json.loads((iris_dir / "baseline.json").read_text())["output"]
    server = fresh_server(iris_dir, name="iris")
    with server.client() as client:
        samples = scrape(client)
    for cls, share in zip(trained["categories"], trained["shares"], strict=True):
        assert value(samples, "mlmodel_output_baseline_share", model="iris", version="v1",
                     output="label", bucket=cls) == pytest.approx(share)  # fmt: skip

    dx, dy = load_diabetes(return_X_y=True)
    model = Ridge().fit(dx, dy)
    ridge_dir = converted(tmp_path, model, dx, "ridge")
    trained = json.loads((ridge_dir / "baseline.json").read_text())["output"]
    server = fresh_server(ridge_dir, name="ridge")
    live = dx[:40].astype(np.float32)
    with server.client() as client:
        answer = client.post("/v2/models/ridge/infer", json=infer(live))
        assert answer.status_code == 200, answer.text
        predicted = np.asarray(answer.json()["outputs"][0]["data"], dtype=np.float64)
        samples = scrape(client)
    expected = np.bincount(np.searchsorted(trained["edges"], predicted, side="right"),
                           minlength=len(trained["edges"]) + 1)  # fmt: skip
    output = json.loads((ridge_dir / "metadata.json").read_text())["label_output"]
    got = [value(samples, "mlmodel_output_bucket_total", model="ridge", version="v1",
                 output=output, bucket=str(b)) for b in range(len(expected))]  # fmt: skip
    assert got == expected.tolist()
