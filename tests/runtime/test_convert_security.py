"""Hostile model files and leaky URIs: refused with a clear report, and nothing leaks.

Each test runs `mlmodel-runtime convert` (or `fetch`) as a real process on files
the test builds; every server listens on 127.0.0.1.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.runtime.convert_fixtures import (
    Result,
    onnx_with_external_data,
    run_cli,
)

pytestmark = pytest.mark.runtime
MARKER = "MARKER-7f3a-SECRET"


def _refused(result: Result, code: int, error: str, out: Path) -> str:
    assert result.code == code, f"{result.report}\n{result.stderr[-1500:]}"
    assert result.report["error"] == error
    assert not (out / "model.onnx").exists()
    message: str = result.report["message"]
    return message


def _everything(result: Result, *files: Path) -> str:
    return result.stdout + result.stderr + "".join(f.read_text() for f in files if f.is_file())


# ---------------------------------------------------------- 2. ONNX external data


@pytest.mark.parametrize("location", ["../secret", "secret", "work/../secret"])
@pytest.mark.parametrize("where", ["initializer", "constant", "subgraph"])
def test_an_onnx_tensor_with_external_data_is_refused_and_its_bytes_never_shown(
    tmp_path: Path, location: str, where: str
) -> None:
    # The secret sits where each location resolves from the process's working
    # directory (the test starts it in `work`), from the model's directory, or both.
    (tmp_path / "work").mkdir()
    for place in (tmp_path / "secret", tmp_path / "work" / "secret"):
        place.write_text(MARKER[:16])  # sixteen bytes, the size of the tensor
    model = onnx_with_external_data(tmp_path / "work" / "model.onnx", location, where=where)
    out, report = tmp_path / "out", tmp_path / "report.json"
    result = run_cli(["--uri", "model.onnx", "--format", "onnx", "--out", str(out),
                      "--report-file", str(report)], cwd=model.parent)  # fmt: skip
    message = _refused(result, 5, "unsafe", out)
    assert "external" in message
    assert repr(location) in message
    leaked = _everything(result, report)
    assert MARKER[:16] not in leaked
    # Nor the bytes as numbers (a shape or value read from the file).
    assert ", ".join(str(b) for b in MARKER[:16].encode()[:4]) not in leaked
