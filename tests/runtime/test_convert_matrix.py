"""The estimator matrix: every supported kind converts with parity; the others exit 6.

Most cases run the CLI entry point in-process (process start-up would dominate
on two cores); a few run `mlmodel-runtime convert` as a real process. Each
converted model is also checked here, independently of the tool's own parity
check, against scikit-learn on real rows of its training data.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.runtime.convert_fixtures import (
    MATRIX,
    NATIVE_MATRIX,
    MatrixCase,
    NativeCase,
    Result,
    customers,
    diabetes,
    dump_skops,
    edit_skops,
    iris,
    run_cli,
    run_in_process,
)

pytestmark = pytest.mark.runtime
AS_PROCESS = {"random_forest_classifier", "column_transformer", "hist_gradient_boosting_classifier"}


def _real_rows(case: MatrixCase, model: Any) -> Any:
    if case.id.endswith("column_transformer"):
        return customers(rows=60, seed=99)[0]
    if case.id == "dataframe_random_forest":
        from sklearn.datasets import load_diabetes

        return load_diabetes(as_frame=True).data.iloc[:60]
    if case.id.endswith("_binary"):
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


@pytest.mark.parametrize("case", NATIVE_MATRIX, ids=[c.id for c in NATIVE_MATRIX])
def test_native_booster_files(case: NativeCase, tmp_path: Path) -> None:
    """A booster saved with its library's save_model converts with parity (or is
    refused as unsupported), and the ONNX model answers as the booster did on the
    rows it was trained on."""
    import onnxruntime as ort

    source, booster, rows = case.write(tmp_path / "model")
    out = tmp_path / "out"
    as_process = case.id == "lightgbm_native_binary"
    args = ["--uri", str(source), "--format", case.format, "--out", str(out),
            "--parity-samples", "200"]  # fmt: skip
    result = run_cli(args) if as_process else run_in_process(args)
    if not case.supported:
        assert result.code == 6, result.stderr
        assert result.report["error"] == "unsupported"
        assert case.objective.split(":")[0] in result.report["message"]
        assert not (out / "model.onnx").exists()
        return
    assert result.code == 0, f"{case.id}: {result.report.get('message')}\n{result.stderr[-2000:]}"
    report = result.report
    assert report["parity"]["passed"] is True
    assert report["parity"]["rows"] == 200
    metadata = json.loads((out / "metadata.json").read_text())
    assert metadata["source"]["format"] == case.format
    booster_module = "core" if case.format == "xgboost" else "basic"
    assert metadata["estimator"] == f"{case.format}.{booster_module}.Booster"
    assert metadata["task"] == case.task
    session = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    got = session.run(None, {"input": np.asarray(rows, dtype=np.float32)})
    if case.format == "xgboost":
        import xgboost

        expected = booster.predict(xgboost.DMatrix(np.asarray(rows, dtype=np.float32)))
    else:
        expected = booster.predict(np.asarray(rows, dtype=np.float32))
    if case.task == "classification":
        proba = expected if expected.ndim == 2 else np.column_stack([1 - expected, expected])
        assert metadata["classes"] == list(range(proba.shape[1]))
        np.testing.assert_allclose(got[1], proba, atol=1e-4)
        assert (got[0] == proba.argmax(axis=1)).mean() >= 0.98
    else:
        np.testing.assert_allclose(got[0].reshape(-1), expected, rtol=1e-3, atol=1e-3)


def test_a_booster_file_given_as_skops_names_its_format(tmp_path: Path) -> None:
    """The user picked the wrong --format: the refusal names the right one."""
    for case in (NATIVE_MATRIX[0], NATIVE_MATRIX[4]):
        source, _, _ = case.write(tmp_path / case.id)
        result = run_in_process(["--uri", str(source), "--format", "skops",
                                 "--out", str(tmp_path / "out")])  # fmt: skip
        assert result.code != 0
        assert f"--format {case.format}" in result.report["message"], result.report


def test_a_truncated_booster_file_is_an_integrity_error(tmp_path: Path) -> None:
    """The library's parser refuses half a model: exit 4, nothing written."""
    for case in (NATIVE_MATRIX[0], NATIVE_MATRIX[4]):
        source, _, _ = case.write(tmp_path / case.id)
        source.write_bytes(source.read_bytes()[: source.stat().st_size // 2])
        out = tmp_path / f"{case.id}-out"
        result = run_in_process(["--uri", str(source), "--format", case.format,
                                 "--out", str(out)])  # fmt: skip
        assert result.code == 4, result.report
        assert result.report["error"] == "integrity"
        assert not (out / "model.onnx").exists()


def _xgboost_json_edit(source: Path, edit: Callable[[dict[str, Any]], None]) -> Path:
    model = json.loads(source.read_text())
    edit(model["learner"]["gradient_booster"]["model"]["trees"][0])
    source.write_text(json.dumps(model))
    return source


@pytest.mark.parametrize(
    ("problem", "edit"),
    [
        ("left child 100000", lambda t: t["left_children"].__setitem__(0, 100000)),
        ("splits on feature 99999", lambda t: t["split_indices"].__setitem__(0, 99999)),
        ("one child", lambda t: t["right_children"].__setitem__(0, -1)),
    ],
    ids=["child", "feature", "one-child"],
)
def test_an_xgboost_tree_pointing_outside_itself_is_refused_before_it_predicts(
    tmp_path: Path, problem: str, edit: Callable[[dict[str, Any]], None]
) -> None:
    """XGBoost loads such a file, and predict then reads out of bounds (a segfault
    here): the converter refuses it with exit 4 first, as a file and inside a skops
    wrapper alike."""
    import xgboost

    source, _, _ = NATIVE_MATRIX[0].write(tmp_path / "model")
    _xgboost_json_edit(source, edit)
    result = run_cli(["--uri", str(source), "--format", "xgboost", "--out", str(tmp_path / "a")])
    assert result.code == 4, result.stderr[-2000:]
    assert problem in result.report["message"], result.report
    wrapper = xgboost.XGBClassifier()
    wrapper.load_model(str(source))  # loads: only predicting would crash
    wrapped = dump_skops(wrapper, tmp_path / "wrapped.skops")
    result = run_cli(["--uri", str(wrapped), "--format", "skops", "--out", str(tmp_path / "b")])
    assert result.code == 4, result.stderr[-2000:]
    assert problem in result.report["message"], result.report


def _lightgbm_edit(text: str, key: str, value: str) -> str:
    """Set `key` of the first tree, and its size in the header as a crafter would."""
    head, _, rest = text.partition("\nTree=0\n")
    lines = rest.split("\n")
    at = next(i for i, line in enumerate(lines) if line.startswith(f"{key}="))
    grown = len(value) - len(lines[at].split("=", 1)[1])
    lines[at] = f"{key}={value}"
    header = head.split("\n")
    sizes_at = next(i for i, line in enumerate(header) if line.startswith("tree_sizes="))
    sizes = header[sizes_at].split("=", 1)[1].split()
    sizes[0] = str(int(sizes[0]) + grown)
    header[sizes_at] = "tree_sizes=" + " ".join(sizes)
    return "\n".join(header) + "\nTree=0\n" + "\n".join(lines)


@pytest.mark.parametrize(
    ("key", "value", "problem"),
    [
        ("left_child", "7 -1", "left child 7"),
        ("right_child", "-2 -9", "right leaf beyond"),
        ("split_feature", "2 40", "feature beyond"),
    ],
    ids=["child", "leaf", "feature"],
)
def test_a_lightgbm_tree_pointing_outside_itself_is_refused_before_lightgbm_parses_it(
    tmp_path: Path, key: str, value: str, problem: str
) -> None:
    """The text is checked before LightGBM reads it (it parses without bounds checks),
    as a native file and as the model text inside a skops wrapper."""
    import lightgbm

    text = _lightgbm_edit(_small_lightgbm_text(), key, value)
    source = tmp_path / "model.txt"
    source.write_text(text)
    result = run_cli(["--uri", str(source), "--format", "lightgbm", "--out", str(tmp_path / "a")])
    assert result.code == 4, result.stderr[-2000:]
    assert problem in result.report["message"], result.report
    # The same text inside an LGBMClassifier saved with skops.
    wrapper = lightgbm.LGBMClassifier(n_estimators=2, num_leaves=3, verbose=-1)
    wrapper.fit(*iris())
    archive = dump_skops(wrapper, tmp_path / "wrapped.skops")
    good = wrapper.booster_.model_to_string()
    crafted = _lightgbm_edit(good, key, value)

    def craft(schema: dict[str, Any]) -> None:
        _replace_model_text(schema, good, crafted)

    edited = edit_skops(archive, tmp_path / "edited.skops", craft)
    result = run_cli(["--uri", str(edited), "--format", "skops", "--out", str(tmp_path / "b")])
    assert result.code == 4, result.stderr[-2000:]
    assert problem in result.report["message"], result.report


def _small_lightgbm_text() -> str:
    import lightgbm

    x, y = iris()
    params = {"objective": "multiclass", "num_class": 3, "num_leaves": 3, "verbose": -1}
    return str(lightgbm.train(params, lightgbm.Dataset(x, label=y), 2).model_to_string())


def _replace_model_text(schema: dict[str, Any], old: str, new: str) -> None:
    stack: list[Any] = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if node.get("content") == json.dumps(old):
                node["content"] = json.dumps(new)
                return
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    raise AssertionError("the booster's model text is not in the skops schema")


def test_a_scikit_learn_model_converts_without_importing_the_boosting_libraries(
    tmp_path: Path,
) -> None:
    """Families register once their library is loaded: a plain scikit-learn model's
    init container never pays for importing XGBoost, LightGBM or onnxmltools."""
    import subprocess
    import sys

    source = dump_skops(MATRIX[0].build(), tmp_path / "model.skops")
    program = (
        "import sys\n"
        "from mlmodel_runtime.cli import main\n"
        "uri, out = sys.argv[1:]\n"
        "code = main(['convert', '--uri', uri, '--format', 'skops', '--out', out])\n"
        "boosting = ('xgboost', 'lightgbm', 'onnxmltools')\n"
        "print(code, sorted(m for m in boosting if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", program, str(source), str(tmp_path / "out")],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.stdout.strip().splitlines()[-1] == "0 []", done.stdout + done.stderr[-2000:]
