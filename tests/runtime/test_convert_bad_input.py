"""Bad input: every refusal is one clear line, a report, a distinct exit code, and
no new model.onnx. Runs `mlmodel-runtime convert` as a real process unless noted.
"""

from __future__ import annotations

import json
import pickle
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pandas.api.types import is_numeric_dtype

from tests.runtime.convert_fixtures import (
    MATRIX,
    customers,
    diabetes,
    dump_joblib,
    dump_skops,
    iris,
    run_cli,
    run_in_process,
)

pytestmark = pytest.mark.runtime


def _case(case_id: str) -> Any:
    return next(c for c in MATRIX if c.id == case_id).build()


@pytest.fixture(scope="module")
def logistic() -> Any:
    return _case("logistic_regression")


def _convert(source: Path, fmt: str, out: Path, *extra: str) -> Any:
    return run_cli(["--uri", str(source), "--format", fmt, "--out", str(out), *extra])


def _refused(result: Any, code: int, error: str, out: Path) -> str:
    assert result.code == code, f"{result.report}\n{result.stderr[-1500:]}"
    assert result.report["status"] == "failed"
    assert result.report["error"] == error
    assert result.report["exit_code"] == code
    assert not (out / "model.onnx").exists(), "a failed conversion must not leave model.onnx"
    assert len(result.stdout.encode()) <= 4096
    message: str = result.report["message"]
    assert "\n" not in message
    return message


def test_pickle_refused_without_flag_and_accepted_with_it(logistic: Any, tmp_path: Path) -> None:
    source = dump_joblib(logistic, tmp_path / "model.joblib")
    message = _refused(_convert(source, "sklearn", tmp_path / "a"), 5, "unsafe", tmp_path / "a")
    assert "arbitrary code" in message
    assert "--allow-unsafe-pickle" in message
    ok = _convert(source, "sklearn", tmp_path / "b", "--allow-unsafe-pickle")
    assert ok.code == 0, ok.report
    plain = tmp_path / "model.pkl"
    plain.write_bytes(pickle.dumps(logistic))
    assert _convert(plain, "sklearn", tmp_path / "c", "--allow-unsafe-pickle").code == 0


def test_untrusted_skops_type_is_named_and_can_be_trusted(tmp_path: Path) -> None:
    model = _case("logistic_regression")  # not the shared fixture: this one is altered
    model.extra_notes_ = types.SimpleNamespace(owner="team-a")
    source = dump_skops(model, tmp_path / "model.skops")
    message = _refused(_convert(source, "skops", tmp_path / "a"), 5, "unsafe", tmp_path / "a")
    assert "types.SimpleNamespace" in message
    assert "--trust-type" in message
    ok = _convert(source, "skops", tmp_path / "b", "--trust-type", "types.SimpleNamespace")
    assert ok.code == 0, ok.report


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty"])
def test_corrupt_or_truncated_file(logistic: Any, tmp_path: Path, damage: str) -> None:
    good = dump_skops(logistic, tmp_path / "good.skops").read_bytes()
    data = {
        "garbage": np.random.default_rng(0).bytes(4096),
        "truncated": good[: len(good) // 2],
        "empty": b"",
    }[damage]
    source = tmp_path / "bad.skops"
    source.write_bytes(data)
    _refused(_convert(source, "skops", tmp_path / "out"), 4, "integrity", tmp_path / "out")


def test_truncated_pickle_and_onnx(logistic: Any, tmp_path: Path) -> None:
    data = pickle.dumps(logistic)
    pkl = tmp_path / "bad.pkl"
    pkl.write_bytes(data[: len(data) // 2])
    result = _convert(pkl, "sklearn", tmp_path / "a", "--allow-unsafe-pickle")
    assert "corrupt or truncated" in _refused(result, 4, "integrity", tmp_path / "a")
    onnx_file = tmp_path / "bad.onnx"
    onnx_file.write_bytes(b"\x08\x07\x12\x04junk" + np.random.default_rng(1).bytes(300))
    _refused(_convert(onnx_file, "onnx", tmp_path / "b"), 4, "integrity", tmp_path / "b")


def test_wrong_format(logistic: Any, tmp_path: Path) -> None:
    skops_file = dump_skops(logistic, tmp_path / "model.skops")
    joblib_file = dump_joblib(logistic, tmp_path / "model.joblib")
    message = _refused(_convert(skops_file, "onnx", tmp_path / "a"), 2, "usage", tmp_path / "a")
    assert "--format skops" in message
    message = _refused(_convert(joblib_file, "skops", tmp_path / "b"), 2, "usage", tmp_path / "b")
    assert "--format sklearn" in message
    result = _convert(skops_file, "sklearn", tmp_path / "c", "--allow-unsafe-pickle")
    assert "--format skops" in _refused(result, 2, "usage", tmp_path / "c")


def test_unsupported_estimator_is_named(tmp_path: Path) -> None:
    from sklearn.kernel_ridge import KernelRidge

    x, y = diabetes()
    source = dump_skops(KernelRidge().fit(x, y), tmp_path / "kr.skops")
    message = _refused(
        _convert(source, "skops", tmp_path / "out"), 6, "unsupported", tmp_path / "out"
    )
    assert "KernelRidge" in message
    assert "docs/models.md" in message


def test_transformer_alone_is_unsupported(tmp_path: Path) -> None:
    from sklearn.cluster import KMeans

    source = dump_skops(KMeans(n_clusters=2, n_init=1).fit(iris()[0]), tmp_path / "km.skops")
    result = run_in_process(["--uri", str(source), "--format", "skops", "--out", str(tmp_path)])
    assert result.code == 6, result.report
    assert "neither a classifier nor a regressor" in result.report["message"]


def test_nan_outputs_are_refused(tmp_path: Path) -> None:
    from sklearn.linear_model import LinearRegression

    x, y = diabetes()
    model = LinearRegression().fit(x, y)
    model.coef_[3] = np.nan
    source = dump_skops(model, tmp_path / "nan.skops")
    message = _refused(
        _convert(source, "skops", tmp_path / "out"), 6, "unsupported", tmp_path / "out"
    )
    assert "NaN" in message


def test_parity_failure_reports_worst_rows(tmp_path: Path) -> None:
    # float32 ONNX arithmetic cannot match float64 scikit-learn with zero tolerance.
    source = dump_skops(_case("mlp_regressor"), tmp_path / "mlp.skops")
    out = tmp_path / "out"
    result = _convert(source, "skops", out, "--rtol", "0", "--atol", "0")
    message = _refused(result, 7, "parity", out)
    assert "max abs diff" in message
    figures = result.report["parity"]["vs_original"]
    assert figures["passed"] is False
    assert figures["max_abs_diff"] > 0
    assert 1 <= len(figures["worst_rows"]) <= 5
    worst = figures["worst_rows"][0]
    assert worst["abs_diff"] == figures["max_abs_diff"]
    assert not (out / "metadata.json").exists()


def test_failure_keeps_the_previous_model(logistic: Any, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "model.onnx").write_bytes(b"previous model")
    source = tmp_path / "bad.skops"
    source.write_bytes(b"PK\x03\x04 not really a zip")
    _convert(source, "skops", out)
    assert (out / "model.onnx").read_bytes() == b"previous model"
    assert sorted(p.name for p in out.iterdir()) == ["model.onnx"], "no temporary files left"


def test_version_mismatch(logistic: Any, tmp_path: Path) -> None:
    import sklearn

    current = sklearn.__version__.encode()
    older = b"0" + current[1:] if not current.startswith(b"0") else b"9" + current[1:]
    data = pickle.dumps(logistic)
    assert data.count(current) == 1
    source = tmp_path / "old.pkl"
    source.write_bytes(data.replace(current, older))
    message = _refused(
        _convert(source, "sklearn", tmp_path / "a", "--allow-unsafe-pickle"),
        8, "version-mismatch", tmp_path / "a",
    )  # fmt: skip
    assert older.decode() in message
    allowed = _convert(source, "sklearn", tmp_path / "b", "--allow-unsafe-pickle",
                       "--allow-version-mismatch")  # fmt: skip
    assert allowed.code == 0, allowed.report
    assert older.decode() in allowed.report["version_warning"]


def test_reference_predictions(tmp_path: Path) -> None:
    model = _case("random_forest_classifier")
    x = iris()[0][::2]
    source = dump_skops(model, tmp_path / "rf.skops")
    good = tmp_path / "good.npz"
    np.savez(good, inputs=x, label=model.predict(x), probabilities=model.predict_proba(x))
    ok = _convert(source, "skops", tmp_path / "a", "--reference", str(good))
    assert ok.code == 0, ok.report
    assert ok.report["parity"]["source"] == "reference good.npz"
    assert ok.report["parity"]["rows"] == len(x)
    assert ok.report["parity"]["vs_reference"]["label_agreement"] == 1.0
    # What the user saw in training differs from what this model predicts now.
    drifted = tmp_path / "drifted.npz"
    np.savez(drifted, inputs=x, label=np.roll(model.predict(x), 1),
             probabilities=np.roll(model.predict_proba(x), 1, axis=0))  # fmt: skip
    out = tmp_path / "b"
    result = _convert(source, "skops", out, "--reference", str(drifted))
    message = _refused(result, 7, "parity", out)
    assert "vs_reference" in message
    assert result.report["parity"]["vs_original"]["passed"] is True


def test_reference_for_named_columns_and_sample_files(tmp_path: Path) -> None:
    model = _case("column_transformer")
    frame = customers(rows=40, seed=3)[0]
    source = dump_skops(model, tmp_path / "ct.skops")
    reference = tmp_path / "ref.npz"
    arrays: dict[str, Any] = {
        c: frame[c].to_numpy().astype(float if is_numeric_dtype(frame[c]) else str)
        for c in frame.columns
    }
    arrays["label"] = model.predict(frame)
    arrays["probabilities"] = model.predict_proba(frame)
    np.savez(reference, allow_pickle=False, **arrays)
    assert _convert(source, "skops", tmp_path / "a", "--reference", str(reference)).code == 0
    frame.to_csv(tmp_path / "rows.csv", index=False)
    frame.to_parquet(tmp_path / "rows.parquet")
    for name in ("rows.csv", "rows.parquet"):
        result = _convert(
            source, "skops", tmp_path / f"out-{name}", "--sample-data", str(tmp_path / name)
        )
        assert result.code == 0, result.report
        assert result.report["parity"]["rows"] == 40
    np.save(tmp_path / "rows.npy", np.zeros((3, 4)))
    bad = _convert(source, "skops", tmp_path / "c", "--sample-data", str(tmp_path / "rows.npy"))
    assert _refused(bad, 2, "usage", tmp_path / "c")


def test_onnx_passthrough(tmp_path: Path) -> None:
    from skl2onnx import to_onnx

    model = _case("logistic_regression")
    onx = to_onnx(model, iris()[0][:1].astype(np.float32), options={"zipmap": False})
    source = tmp_path / "model.onnx"
    source.write_bytes(onx.SerializeToString())
    out = tmp_path / "out"
    result = _convert(source, "onnx", out)
    assert result.code == 0, result.report
    assert result.report["parity"]["status"] == "skipped: onnx passthrough"
    metadata = json.loads((out / "metadata.json").read_text())
    assert metadata["task"] == "classification"
    assert (out / "model.onnx").read_bytes() == source.read_bytes()


def test_usage_errors_still_report(tmp_path: Path, logistic: Any) -> None:
    source = dump_skops(logistic, tmp_path / "m.skops")
    bad_hash = _convert(source, "skops", tmp_path / "a", "--sha256", "xyz")
    assert "--sha256" in _refused(bad_hash, 2, "usage", tmp_path / "a")
    # argparse's own errors (a missing required flag) also leave a report line.
    result = run_cli(["--format", "skops", "--out", str(tmp_path / "b")])
    assert result.code == 2
    assert result.report["error"] == "usage"
    assert "--uri" in result.report["message"]


def test_json_logs_on_stderr_only(tmp_path: Path, logistic: Any) -> None:
    source = dump_skops(logistic, tmp_path / "m.skops")
    result = _convert(source, "skops", tmp_path / "out", "--log-format", "json")
    assert result.code == 0
    phases = [json.loads(line)["msg"] for line in result.stderr.splitlines()]
    assert any(m.startswith("parity on 256 rows") for m in phases)


def test_unexpected_exception_is_internal(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from mlmodel_runtime.convert import pipeline

    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(pipeline, "convert", boom)
    report_file = tmp_path / "report.json"
    result = run_in_process(["--uri", "x.skops", "--format", "skops", "--out", str(tmp_path),
                             "--report-file", str(report_file)])  # fmt: skip
    assert result.code == 1
    assert result.report["error"] == "internal"
    assert "disk on fire" in result.report["message"]
    assert json.loads(report_file.read_text()) == result.report
