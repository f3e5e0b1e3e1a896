"""Parity against the training environment: a reference made by `make_reference` (or
`mlmodel-runtime reference`), fetched beside the model by `fetch --reference-uri`, and
checked by `convert --source` as real processes.

A model converted as trained agrees with its reference; another model under the same
reference (what a conversion gone wrong looks like from the outside) fails parity
with exit 7, the report naming the reference and the worst rows; a reference that is
not the named file is refused by fetch (exit 4); a reference for an ONNX model is a
usage error, since nothing would be compared.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mlmodel_runtime.convert import sampling
from mlmodel_runtime.convert.schema import infer_schema
from mlmodel_runtime.reference import make_reference
from tests.runtime.convert_fixtures import (
    MATRIX,
    Result,
    customers,
    dump_skops,
    iris,
    run_cli,
    run_fetch,
    sha256_of,
)

pytestmark = pytest.mark.runtime


def fit(case_id: str) -> Any:
    return next(c for c in MATRIX if c.id == case_id).build()


def fetch_then_convert(
    model: Path, reference: Path, sha256: str, tmp: Path
) -> tuple[Result, Result | None]:
    source = tmp / "source"
    fetched = run_fetch(
        ["--uri", str(model), "--out", str(source), "--reference-uri", f"file://{reference}",
         "--reference-sha256", sha256, "--report-file", str(tmp / "fetch.json")]
    )  # fmt: skip
    if fetched.code != 0:
        return fetched, None
    converted = run_cli(
        ["--source", str(source), "--format", "skops", "--out", str(tmp / "models"),
         "--report-file", str(tmp / "convert.json")]
    )  # fmt: skip
    return fetched, converted


def test_a_model_converted_as_trained_agrees_with_its_reference(tmp_path: Path) -> None:
    model = fit("random_forest_classifier")
    x, _ = iris()
    made = make_reference(model, x, tmp_path / "reference.npz")
    assert (made.rows, made.task) == (len(x), "classification")
    assert made.sha256 == sha256_of(made.path)
    model_file = dump_skops(model, tmp_path / "model.skops")
    fetched, converted = fetch_then_convert(model_file, made.path, made.sha256, tmp_path)
    assert fetched.code == 0, fetched.report
    assert fetched.report["reference"]["sha256"] == made.sha256
    assert converted is not None
    assert converted.code == 0, converted.report
    parity = converted.report["parity"]
    assert parity["vs_reference"]["passed"] is True
    assert parity["rows"] == len(x)
    assert parity["reference"] == {
        "uri": f"file://{made.path}",
        "sha256": made.sha256,
        "bytes": made.path.stat().st_size,
    }


def test_another_model_under_the_same_reference_fails_parity_naming_it(tmp_path: Path) -> None:
    x, _ = iris()
    made = make_reference(fit("random_forest_classifier"), x, tmp_path / "reference.npz")
    other = dump_skops(fit("logistic_regression"), tmp_path / "other.skops")
    fetched, converted = fetch_then_convert(other, made.path, made.sha256, tmp_path)
    assert fetched.code == 0, fetched.report
    assert converted is not None
    assert converted.code == 7, converted.report
    report = converted.report
    assert report["error"] == "parity"
    parity = report["parity"]
    assert "vs_reference" in report["message"]
    assert parity["vs_original"]["passed"] is True  # the conversion of `other` is fine
    assert parity["vs_reference"]["passed"] is False
    assert parity["reference"]["sha256"] == made.sha256
    assert parity["vs_reference"]["worst_rows"], parity["vs_reference"]
    assert not (tmp_path / "models" / "model.onnx").exists()


def test_a_reference_that_is_not_the_named_file_is_refused_by_fetch(tmp_path: Path) -> None:
    x, _ = iris()
    model = fit("random_forest_classifier")
    made = make_reference(model, x, tmp_path / "reference.npz")
    model_file = dump_skops(model, tmp_path / "model.skops")
    fetched, _ = fetch_then_convert(model_file, made.path, "0" * 64, tmp_path)
    assert fetched.code == 4, fetched.report
    assert fetched.report["error"] == "integrity"
    missing = run_fetch(
        ["--uri", str(model_file), "--out", str(tmp_path / "s2"), "--reference-uri",
         f"file://{made.path}"]
    )  # fmt: skip
    assert missing.code == 2
    assert "--reference-uri and --reference-sha256 go together" in missing.report["message"]


def test_a_reference_for_an_onnx_model_is_a_usage_error(tmp_path: Path) -> None:
    x, _ = iris()
    model = fit("random_forest_classifier")
    made = make_reference(model, x, tmp_path / "reference.npz")
    first = run_cli(["--uri", str(dump_skops(model, tmp_path / "m.skops")), "--format", "skops",
                     "--out", str(tmp_path / "first")])  # fmt: skip
    assert first.code == 0, first.report
    onnx = run_cli(["--uri", str(tmp_path / "first" / "model.onnx"), "--format", "onnx",
                    "--out", str(tmp_path / "second"), "--reference", str(made.path)])  # fmt: skip
    assert onnx.code == 2, onnx.report
    assert "an ONNX model is served as is" in onnx.report["message"]


def test_a_dataframe_reference_stores_one_array_per_column_as_the_runtime_reads_them(
    tmp_path: Path,
) -> None:
    """Strings as unicode arrays (no objects), numbers rounded to float32 as the ONNX
    model sees them; the runtime reads it against the model's own schema."""
    model = fit("column_transformer")
    frame, _ = customers()
    made = make_reference(model, frame, tmp_path / "reference.npz", rows=50)
    with np.load(made.path, allow_pickle=False) as archive:
        arrays = {k: archive[k] for k in archive.files}
    assert set(arrays) == {*map(str, frame.columns), "label", "probabilities"}
    assert all(a.dtype != object for a in arrays.values())
    numeric = next(c for c in frame.columns if frame[c].dtype.kind == "f")
    column = arrays[str(numeric)]
    assert np.array_equal(column, column.astype(np.float32).astype(np.float64))
    reference = sampling.read_reference(made.path, infer_schema(model))
    assert reference.label is not None
    assert len(reference.label) == 50


def test_the_reference_command_writes_the_file_and_prints_its_digest(tmp_path: Path) -> None:
    model = fit("ridge")
    x = np.random.default_rng(0).normal(size=(40, 10))
    np.save(tmp_path / "rows.npy", x)
    model_file = dump_skops(model, tmp_path / "model.skops")
    result = subprocess.run(
        [sys.executable, "-m", "mlmodel_runtime.cli", "reference", "--model", str(model_file),
         "--format", "skops", "--data", str(tmp_path / "rows.npy"),
         "--out", str(tmp_path / "reference.npz"), "--rows", "25"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary == {
        "path": str(tmp_path / "reference.npz"),
        "sha256": sha256_of(tmp_path / "reference.npz"),
        "rows": 25,
        "task": "regression",
    }
    with np.load(tmp_path / "reference.npz", allow_pickle=False) as archive:
        assert archive["predictions"].shape == (25,)


def test_the_reference_leaves_a_training_baseline_beside_the_model(tmp_path: Path) -> None:
    """The reference is a sample of training data: the converter writes the baseline
    drift monitoring compares live traffic with, and the report says so; generated
    parity rows are not training data, so without a sample there is none."""
    model = fit("random_forest_classifier")
    x, _ = iris()
    made = make_reference(model, x, tmp_path / "reference.npz")
    model_file = dump_skops(model, tmp_path / "model.skops")
    _, converted = fetch_then_convert(model_file, made.path, made.sha256, tmp_path)
    assert converted is not None
    assert converted.code == 0, converted.report
    trained = json.loads((tmp_path / "models" / "baseline.json").read_text())
    assert converted.report["baseline"] == {
        "file": "baseline.json", "source": "reference reference.npz", "rows": len(x),
        "features": 4, "features_total": 4,
    }  # fmt: skip
    assert [f["name"] for f in trained["features"]] == [f"input[{i}]" for i in range(4)]
    petal_length = trained["features"][2]
    # The model's inputs are FP32, in the reference as in requests: so are the buckets'.
    fp32 = x[:, 2].astype(np.float32).astype(np.float64)
    shares = np.bincount(
        np.searchsorted(petal_length["edges"], fp32, side="right"),
        minlength=len(petal_length["edges"]) + 1,
    ) / len(x)
    np.testing.assert_allclose(petal_length["shares"], shares)
    predicted = np.bincount(model.predict(x).astype(int), minlength=3) / len(x)
    np.testing.assert_allclose(trained["output"]["shares"], predicted)

    plain = run_cli(["--uri", str(model_file), "--format", "skops", "--out",
                     str(tmp_path / "plain")])  # fmt: skip
    assert plain.code == 0, plain.report
    assert "baseline" not in plain.report
    assert not (tmp_path / "plain" / "baseline.json").exists()
