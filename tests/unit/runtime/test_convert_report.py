"""The one-line report stays under the kubelet's 4 KiB and never loses its verdict."""

from __future__ import annotations

import json
from typing import Any

import pytest

from mlmodel_runtime.convert.report import LIMIT_BYTES, one_line, render, schema_summary
from mlmodel_runtime.modeldir import TensorSpec

pytestmark = pytest.mark.unit


def _failure(message: str, worst: int, inputs: int) -> dict[str, Any]:
    rows = [{"row": i, "expected": [1.0] * 4, "actual": [2.0] * 4, "abs_diff": 1.0}
            for i in range(worst)]  # fmt: skip
    return {
        "status": "failed",
        "error": "parity",
        "exit_code": 7,
        "message": message,
        "schema": {"inputs": [f"column_{i}:FP32[-1,1]" for i in range(inputs)], "outputs": []},
        "parity": {"passed": False, "vs_original": {"max_abs_diff": 1.0, "worst_rows": rows}},
        "libraries": {"scikit-learn": "1.9.1"},
    }


def test_small_report_is_unchanged() -> None:
    report = _failure("parity failed", worst=2, inputs=3)
    assert json.loads(render(report)) == report


@pytest.mark.parametrize(("message_len", "worst", "inputs"), [
    (100, 500, 3), (20_000, 5, 3), (100, 5, 2000), (50_000, 5000, 5000),
])  # fmt: skip
def test_oversized_reports_fit_and_keep_the_verdict(
    message_len: int, worst: int, inputs: int
) -> None:
    report = _failure("x" * message_len, worst, inputs)
    line = render(report)
    assert len(line.encode()) + 1 <= LIMIT_BYTES
    data = json.loads(line)
    assert (data["status"], data["error"], data["exit_code"]) == ("failed", "parity", 7)
    assert data["message"].startswith("x")


def test_worst_rows_are_trimmed_before_the_message() -> None:
    report = _failure("short message that must survive", worst=200, inputs=3)
    data = json.loads(render(report))
    assert data["message"] == "short message that must survive"
    assert 0 < len(data["parity"]["vs_original"]["worst_rows"]) < 200
    assert data["schema"]["inputs"] == report["schema"]["inputs"]


def test_non_finite_numbers_stay_valid_json() -> None:
    line = render({"status": "failed", "error": "parity", "exit_code": 7,
                   "parity": {"max_abs_diff": float("nan"), "x": float("inf")}})  # fmt: skip
    data = json.loads(line)  # strict JSON has no NaN; render must not emit it
    assert data["parity"] == {"max_abs_diff": "nan", "x": "inf"}
    assert "NaN" not in line


def test_one_line_and_schema_summary() -> None:
    assert one_line("a\n  b\tc") == "a b c"
    assert one_line("abcdef", 4) == "abc…"
    specs = (TensorSpec("input", "FP32", (-1, 4)), TensorSpec("city", "BYTES", (-1, 1)))
    assert schema_summary(specs) == ["input:FP32[-1,4]", "city:BYTES[-1,1]"]
    assert schema_summary(specs, limit=1) == ["input:FP32[-1,4]", "... 1 more"]


def test_retryable_survives_the_tightest_trimming() -> None:
    report = {"status": "failed", "error": "fetch", "exit_code": 3, "retryable": True,
              "message": "x" * 50_000, "unknown": "y" * 10_000}  # fmt: skip
    data = json.loads(render(report))
    assert (data["error"], data["exit_code"], data["retryable"]) == ("fetch", 3, True)
