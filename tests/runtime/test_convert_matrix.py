"""The estimator matrix: every supported kind converts with parity; the others exit 6.

Most cases run the CLI entry point in-process (process start-up would dominate
on two cores); a few run `mlmodel-runtime convert` as a real process. Each
converted model is also checked here, independently of the tool's own parity
check, against scikit-learn on real rows of its training data.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.runtime.convert_fixtures import (
    MATRIX,
    MatrixCase,
    Result,
    customers,
    diabetes,
    dump_skops,
    iris,
    run_cli,
    run_in_process,
)

pytestmark = pytest.mark.runtime
AS_PROCESS = {"random_forest_classifier", "column_transformer", "hist_gradient_boosting_classifier"}


def _real_rows(case: MatrixCase, model: Any) -> Any:
    if case.id == "column_transformer":
        return customers(rows=60, seed=99)[0]
    if case.id == "dataframe_random_forest":
        from sklearn.datasets import load_diabetes

        return load_diabetes(as_frame=True).data.iloc[:60]
    if case.id == "logistic_regression_binary":
        from sklearn.datasets import make_classification

        return make_classification(n_samples=60, n_features=6, random_state=1)[0]
    x = iris()[0] if case.task == "classification" else diabetes()[0]
    return x[::3]


def _feeds(rows: Any, inputs: list[dict[str, Any]]) -> dict[str, Any]:
    if len(inputs) == 1 and inputs[0]["name"] == "input":
        return {"input": np.asarray(rows, dtype=np.float32)}
    return {
        spec["name"]: (
            rows[spec["name"]].to_numpy().astype(object).reshape(-1, 1)
            if spec["datatype"] == "BYTES"
            else rows[spec["name"]].to_numpy().astype(np.float32).reshape(-1, 1)
        )
        for spec in inputs
    }


def _check_against_sklearn(case: MatrixCase, model: Any, out: Path) -> None:
    import onnxruntime as ort

    metadata = json.loads((out / "metadata.json").read_text())
    session = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    rows = _real_rows(case, model)
    sk_rows = rows if hasattr(rows, "columns") else np.asarray(rows, np.float32).astype(float)
    got = dict(
        zip(
            [o.name for o in session.get_outputs()],
            session.run(None, _feeds(rows, metadata["inputs"])),
            strict=True,
        )
    )
    if case.task == "classification":
        agreement = np.mean(got["label"].astype(str) == model.predict(sk_rows).astype(str))
        assert agreement >= 0.98, f"{case.id}: labels agree on only {agreement:.2%} of real rows"
        if hasattr(model, "predict_proba"):
            np.testing.assert_allclose(
                got["probabilities"], model.predict_proba(sk_rows), atol=1e-4
            )
        assert metadata["classes"] == [
            c if isinstance(c, str) else int(c) for c in model.classes_.tolist()
        ]
    else:
        value = got[metadata["label_output"]].reshape(-1)
        np.testing.assert_allclose(value, model.predict(sk_rows), rtol=1e-3, atol=1e-3)


def _convert(case: MatrixCase, tmp_path: Path, *, as_process: bool) -> tuple[Any, Result, Path]:
    model = case.build()
    source = dump_skops(model, tmp_path / f"{case.id}.skops")
    out = tmp_path / "out"
    args = ["--uri", str(source), "--format", "skops", "--out", str(out),
            "--report-file", str(tmp_path / "report.json"), "--parity-samples", "200"]  # fmt: skip
    result = run_cli(args) if as_process else run_in_process(args)
    file_report = json.loads((tmp_path / "report.json").read_text())
    assert file_report == result.report, "the report file and stdout must carry the same report"
    return model, result, out


@pytest.mark.parametrize("case", MATRIX, ids=[c.id for c in MATRIX])
def test_matrix(case: MatrixCase, tmp_path: Path) -> None:
    model, result, out = _convert(case, tmp_path, as_process=case.id in AS_PROCESS)
    report = result.report
    if not case.supported:
        assert result.code == 6, result.stderr
        assert report["status"] == "failed"
        assert report["error"] == "unsupported"
        assert "docs/models.md" in report["message"]
        assert case.estimator.rsplit(".", 1)[1] in report["message"]
        assert not (out / "model.onnx").exists()
        return
    assert result.code == 0, f"{case.id}: {report.get('message')}\n{result.stderr[-2000:]}"
    assert report["status"] == "ok"
    assert report["task"] == case.task
    assert report["parity"]["passed"] is True
    assert report["parity"]["rows"] == 200
    metadata = json.loads((out / "metadata.json").read_text())
    assert metadata["task"] == case.task
    assert metadata["estimator"] == case.estimator
    assert metadata["opset"] > 0
    assert metadata["source"]["format"] == "skops"
    if case.task == "classification":
        assert metadata["label_output"] == "label"
        assert metadata["probabilities_output"] == "probabilities"
        proba = next(o for o in metadata["outputs"] if o["name"] == "probabilities")
        assert proba["shape"] == [-1, len(model.classes_)]
        assert proba["datatype"] == "FP32"
        figures = report["parity"]["vs_original"]
        assert figures["label_agreement"] == 1.0 or figures["ambiguous_ties"] > 0
    else:
        assert metadata["label_output"] == metadata["outputs"][0]["name"]
        assert report["parity"]["vs_original"]["max_abs_diff"] >= 0.0
    _check_against_sklearn(case, model, out)


def test_matrix_is_large_enough() -> None:
    kinds = {c.estimator for c in MATRIX}
    assert len(kinds) >= 15, sorted(kinds)


def test_dataframe_model_keeps_feature_names(tmp_path: Path) -> None:
    case = next(c for c in MATRIX if c.id == "dataframe_random_forest")
    model, result, out = _convert(case, tmp_path, as_process=False)
    assert result.code == 0, result.report
    metadata = json.loads((out / "metadata.json").read_text())
    assert [i["name"] for i in metadata["inputs"]] == list(model.feature_names_in_)
    assert {i["datatype"] for i in metadata["inputs"]} == {"FP32"}
    assert all(i["shape"] == [-1, 1] for i in metadata["inputs"])


def test_column_transformer_schema_mixes_numbers_and_strings(tmp_path: Path) -> None:
    case = next(c for c in MATRIX if c.id == "column_transformer")
    _, result, out = _convert(case, tmp_path, as_process=False)
    assert result.code == 0, result.report
    metadata = json.loads((out / "metadata.json").read_text())
    types = {i["name"]: i["datatype"] for i in metadata["inputs"]}
    assert types == {"age": "FP32", "income": "FP32", "city": "BYTES", "plan": "BYTES"}
    assert result.report["schema"]["inputs"][2] == "city:BYTES[-1,1]"


def test_string_class_labels_are_bytes(tmp_path: Path) -> None:
    case = next(c for c in MATRIX if c.id == "logistic_regression_string_labels")
    _, result, out = _convert(case, tmp_path, as_process=False)
    assert result.code == 0, result.report
    metadata = json.loads((out / "metadata.json").read_text())
    label = next(o for o in metadata["outputs"] if o["name"] == "label")
    assert label["datatype"] == "BYTES"
    assert metadata["classes"] == ["setosa", "versicolor", "virginica"]
