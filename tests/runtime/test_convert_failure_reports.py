"""A failure report still says what was learned before the failure: the source once
fetched, the estimator and task once loaded, the schema once inferred, the timings of
the phases that ran. Runs the CLI entry point in-process.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.runtime.convert_fixtures import MATRIX, dump_skops, run_in_process, sha256_of

pytestmark = pytest.mark.runtime


def _skops(case_id: str, tmp_path: Path) -> Path:
    model = next(c for c in MATRIX if c.id == case_id).build()
    return dump_skops(model, tmp_path / f"{case_id}.skops")


def _convert(source: Path | str, out: Path, *extra: str) -> Any:
    return run_in_process(["--uri", str(source), "--format", "skops", "--out", str(out), *extra])


def test_a_parity_failure_names_the_model_its_schema_and_where_it_came_from(
    tmp_path: Path,
) -> None:
    source = _skops("linear_regression", tmp_path)
    result = _convert(source, tmp_path / "out", "--rtol", "0", "--atol", "0")
    assert result.code == 7, result.report
    report = result.report
    assert report["estimator"] == "sklearn.linear_model.LinearRegression"
    assert report["task"] == "regression"
    assert report["schema"] == {"inputs": ["input:FP32[-1,10]"], "outputs": ["variable:FP32[-1,1]"]}
    fetched = {"sha256": sha256_of(source), "bytes": source.stat().st_size}
    assert report["source"] == {"uri": str(source), "format": "skops", **fetched}
    assert report["parity"]["passed"] is False
    assert set(report["timings"]) == {"fetch", "load", "schema", "export", "parity"}


def test_an_estimator_skl2onnx_cannot_convert_is_reported_with_its_inputs(tmp_path: Path) -> None:
    result = _convert(_skops("hist_gradient_boosting_regressor", tmp_path), tmp_path / "out")
    assert result.code == 6, result.report
    report = result.report
    assert report["estimator"].endswith(".HistGradientBoostingRegressor")
    assert report["task"] == "regression"
    assert report["schema"] == {"inputs": ["input:FP32[-1,10]"], "outputs": []}
    assert "parity" not in report
    assert set(report["timings"]) == {"fetch", "load", "schema", "export"}


def test_a_failed_download_reports_only_the_uri_it_tried(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "model.skops"
    result = _convert(missing, tmp_path / "out")
    assert result.code == 3, result.report
    report = result.report
    assert report["source"] == {"uri": str(missing), "format": "skops"}
    assert set(report["timings"]) == {"fetch"}
    assert not {"estimator", "task", "schema", "parity"} & set(report)
