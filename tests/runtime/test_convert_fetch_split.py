"""`mlmodel-runtime fetch` then `convert --source`: the two init containers.

The first holds the credentials and downloads; the second parses the model
with neither credentials nor network. Both run as real processes; every
server listens on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.runtime.convert_fixtures import (
    FETCH_CLI,
    MATRIX,
    Seen,
    dump_skops,
    http_routes,
    run_cli,
    run_fetch,
    sha256_of,
)

pytestmark = pytest.mark.runtime
MODEL_PARSERS = ("sklearn", "skops", "onnx", "onnxruntime", "skl2onnx", "scipy", "numpy")


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    case = next(c for c in MATRIX if c.id == "logistic_regression")
    return dump_skops(case.build(), tmp_path_factory.mktemp("models") / "model.skops")


def _status(code: int) -> Any:
    def route(_: Seen) -> tuple[int, dict[str, str], bytes]:
        return code, {}, b"no"

    return route


def _file(data: bytes) -> Any:
    def route(_: Seen) -> tuple[int, dict[str, str], bytes]:
        return 200, {}, data

    return route


def test_fetch_then_convert_from_the_source_directory(model_file: Path, tmp_path: Path) -> None:
    source, out = tmp_path / "source", tmp_path / "models"
    with http_routes({"/m.skops": _file(model_file.read_bytes())}) as (base, _):
        uri = f"{base}/m.skops?sig=abcdef123456"
        fetched = run_fetch(["--uri", uri, "--out", str(source), "--sha256", sha256_of(model_file),
                             "--report-file", str(tmp_path / "f.json")])  # fmt: skip
    assert fetched.code == 0, fetched.report
    expected_source = {"uri": f"{base}/m.skops?<redacted>", "sha256": sha256_of(model_file),
                       "bytes": model_file.stat().st_size}  # fmt: skip
    assert fetched.report == {"status": "ok", "error": None, "exit_code": 0,
                              "message": f"fetched {model_file.stat().st_size} bytes",
                              "source": expected_source}  # fmt: skip
    assert json.loads((tmp_path / "f.json").read_text()) == fetched.report
    assert (source / "model").read_bytes() == model_file.read_bytes()
    assert json.loads((source / "source.json").read_text()) == expected_source
    assert sorted(p.name for p in source.iterdir()) == ["model", "source.json"]

    # The server is gone: converting needs no network.
    converted = run_cli(["--source", str(source), "--format", "skops", "--out", str(out)])
    assert converted.code == 0, converted.report
    assert converted.report["source"] == {**expected_source, "format": "skops"}
    metadata = json.loads((out / "metadata.json").read_text())
    assert metadata["source"] == {**expected_source, "format": "skops"}
    assert not (source / "model").exists(), "the model must not be kept twice"
    assert (source / "source.json").exists()


def test_convert_from_a_source_directory_loads_no_network_code(
    model_file: Path, tmp_path: Path
) -> None:
    source = tmp_path / "source"
    assert run_fetch(["--uri", str(model_file), "--out", str(source)]).code == 0
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "mlmodel_runtime.cli", "convert",
         "--source", str(source), "--format", "skops", "--out", str(tmp_path / "out")],
        capture_output=True, text=True, check=False, env=dict(os.environ), timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr[-2000:]
    imported = _imported(proc.stderr)
    assert "sklearn" in imported  # the measurement works
    assert not imported & {"aiohttp", "fsspec", "s3fs", "gcsfs", "botocore", "aiobotocore"}


def _imported(importtime: str) -> set[str]:
    """Top-level package names from `python -X importtime` output."""
    names = set()
    for line in importtime.splitlines():
        if line.startswith("import time:") and "|" in line:
            names.add(line.rsplit("|", 1)[1].strip().split(".")[0])
    return names


def test_fetch_does_not_import_libraries_that_parse_models(
    model_file: Path, tmp_path: Path
) -> None:
    with http_routes({"/m.skops": _file(model_file.read_bytes())}) as (base, _):
        proc = subprocess.run(
            [sys.executable, "-X", "importtime", *FETCH_CLI[1:], "--uri", f"{base}/m.skops",
             "--out", str(tmp_path / "source")],
            capture_output=True, text=True, check=False, env=dict(os.environ), timeout=120,
        )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr[-2000:]
    imported = _imported(proc.stderr)
    assert "aiohttp" in imported  # the measurement works
    assert not imported & set(MODEL_PARSERS), sorted(imported & set(MODEL_PARSERS))


@pytest.mark.parametrize(
    ("status", "retryable", "phrase"),
    [(404, False, "not found"), (403, False, "access denied"), (400, False, "HTTP 400"),
     (500, True, "HTTP 500"), (503, True, "HTTP 503"), (429, True, "HTTP 429")],
)  # fmt: skip
def test_fetch_failures_say_whether_retrying_can_help(
    tmp_path: Path, status: int, retryable: bool, phrase: str
) -> None:
    with http_routes({"/m.skops": _status(status)}) as (base, seen):
        result = run_fetch(["--uri", f"{base}/m.skops", "--out", str(tmp_path / "src"),
                            "--retries", "1", "--timeout", "2"])  # fmt: skip
    assert result.code == 3, result.report
    assert result.report["error"] == "fetch"
    assert result.report["retryable"] is retryable
    assert phrase in result.report["message"]
    assert result.report["source"] == {"uri": f"{base}/m.skops"}
    assert len(seen) == (2 if retryable else 1), "only transient failures are retried"
    assert not (tmp_path / "src" / "source.json").exists()


def test_an_unreachable_server_is_a_retryable_fetch_failure(tmp_path: Path) -> None:
    from tests.runtime.convert_fixtures import free_port

    result = run_fetch(["--uri", f"http://127.0.0.1:{free_port()}/m.skops",
                        "--out", str(tmp_path), "--retries", "0", "--timeout", "1"])  # fmt: skip
    assert (result.code, result.report["retryable"]) == (3, True), result.report


def test_a_pinned_digest_refuses_an_object_that_changed(model_file: Path, tmp_path: Path) -> None:
    pin = tmp_path / "pinned-sha256"
    source = tmp_path / "source"
    args = ["--uri", str(model_file), "--out", str(source), "--sha256-file", str(pin)]
    assert run_fetch(args).code == 0, "a missing pin file is fine"
    pin.write_text(sha256_of(model_file) + "\n")
    assert run_fetch(args).code == 0
    pin.write_text("ab" * 32)
    changed = run_fetch(args)
    assert changed.code == 4, changed.report
    assert changed.report["error"] == "integrity"
    assert "changed since the revision was pinned" in changed.report["message"]
    assert not (source / "source.json").exists(), "a refused download leaves no description"
    pin.write_text("not a digest")
    assert run_fetch(args).code == 2
    mismatch = run_fetch([*args[:4], "--sha256", "0" * 64])
    assert (mismatch.code, mismatch.report["error"]) == (4, "integrity")
    assert "sha256 mismatch" in mismatch.report["message"]


def test_convert_refuses_a_model_that_is_not_the_one_fetched(
    model_file: Path, tmp_path: Path
) -> None:
    source = tmp_path / "source"
    assert run_fetch(["--uri", str(model_file), "--out", str(source)]).code == 0
    (source / "model").write_bytes(model_file.read_bytes()[:-10])
    out = tmp_path / "out"
    result = run_cli(["--source", str(source), "--format", "skops", "--out", str(out)])
    assert (result.code, result.report["error"]) == (4, "integrity"), result.report
    assert "source.json" in result.report["message"]
    assert not (out / "model.onnx").exists()
    assert (source / "model").exists(), "a failed conversion keeps the fetched model"
    (source / "source.json").unlink()
    missing = run_cli(["--source", str(source), "--format", "skops", "--out", str(out)])
    assert (missing.code, missing.report["error"]) == (4, "integrity"), missing.report
    assert "mlmodel-runtime fetch" in missing.report["message"]


def test_convert_takes_exactly_one_of_uri_and_source(model_file: Path, tmp_path: Path) -> None:
    both = run_cli(["--uri", str(model_file), "--source", str(tmp_path), "--format", "skops",
                    "--out", str(tmp_path / "out")])  # fmt: skip
    neither = run_cli(["--format", "skops", "--out", str(tmp_path / "out")])
    for result in (both, neither):
        assert (result.code, result.report["error"]) == (2, "usage"), result.report
        assert "--source" in result.report["message"]
