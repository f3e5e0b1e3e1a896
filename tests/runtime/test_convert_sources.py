"""Where models come from: local paths, file://, pvc://, HTTP and S3 on loopback.

Every case runs `mlmodel-runtime convert` as a real process, as the init
container does; every server listens on 127.0.0.1.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from tests.runtime.convert_fixtures import (
    MATRIX,
    dump_skops,
    free_port,
    http_server,
    moto_s3,
    run_cli,
    sha256_of,
)

pytestmark = pytest.mark.runtime


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    case = next(c for c in MATRIX if c.id == "logistic_regression")
    return dump_skops(case.build(), tmp_path_factory.mktemp("models") / "model.skops")


def _ok(result: Any, out: Path) -> dict[str, Any]:
    assert result.code == 0, f"{result.report}\n{result.stderr[-2000:]}"
    assert result.report["status"] == "ok"
    assert (out / "model.onnx").is_file()
    metadata: dict[str, Any] = json.loads((out / "metadata.json").read_text())
    return metadata


def test_local_path_and_file_uri(model_file: Path, tmp_path: Path) -> None:
    for name, uri in (("plain", str(model_file)), ("file", model_file.as_uri())):
        out = tmp_path / name
        result = run_cli(["--uri", uri, "--format", "skops", "--out", str(out)])
        metadata = _ok(result, out)
        assert metadata["source"] == {
            "uri": uri, "format": "skops", "sha256": sha256_of(model_file),
            "bytes": model_file.stat().st_size,
        }  # fmt: skip


def test_pvc_uri_resolves_under_mount_root(model_file: Path, tmp_path: Path) -> None:
    claim = tmp_path / "mnt" / "models-claim" / "iris"
    claim.mkdir(parents=True)
    (claim / "v1.skops").write_bytes(model_file.read_bytes())
    out = tmp_path / "out"
    result = run_cli(["--uri", "pvc://models-claim/iris/v1.skops", "--format", "skops",
                      "--out", str(out), "--mount-root", str(tmp_path / "mnt")])  # fmt: skip
    _ok(result, out)
    escape = run_cli(["--uri", "pvc://models-claim/../../etc/passwd", "--format", "skops",
                      "--out", str(out), "--mount-root", str(tmp_path / "mnt")])  # fmt: skip
    assert escape.code == 2, escape.report
    assert "outside" in escape.report["message"]


def test_http_source_with_sha256(model_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    with http_server(model_file.parent) as base:
        result = run_cli(["--uri", f"{base}/model.skops", "--format", "skops", "--out", str(out),
                          "--sha256", sha256_of(model_file).upper()])  # fmt: skip
    metadata = _ok(result, out)
    assert metadata["source"]["sha256"] == sha256_of(model_file)
    assert "fetched" in result.stderr


@pytest.mark.parametrize(("status", "retries"), [(404, "3"), (500, "1")])
def test_http_error_status_is_a_fetch_failure(
    model_file: Path, tmp_path: Path, status: int, retries: str
) -> None:
    out = tmp_path / "out"
    with http_server(model_file.parent, status=status) as base:
        result = run_cli(["--uri", f"{base}/model.skops", "--format", "skops", "--out", str(out),
                          "--timeout", "2", "--retries", retries])  # fmt: skip
    assert result.code == 3, result.report
    assert result.report["error"] == "fetch"
    assert result.report["retryable"] is (status == 500)
    assert not (out / "model.onnx").exists()
    if status == 404:
        assert "not found" in result.report["message"]
        assert "retrying" not in result.stderr  # a missing file is not retried
    else:
        assert "retrying" in result.stderr


def test_unreachable_http_fails_fast(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there any more
    start = time.monotonic()
    uri = f"http://127.0.0.1:{port}/model.skops"
    result = run_cli(["--uri", uri, "--format", "skops", "--out", str(tmp_path / "out"),
                      "--timeout", "1", "--retries", "1"])  # fmt: skip
    elapsed = time.monotonic() - start
    assert result.code == 3, result.report
    assert result.report["error"] == "fetch"
    assert "after 2 attempt(s)" in result.report["message"]
    assert elapsed < 30


def test_s3_source_with_credentials_and_endpoint(model_file: Path, tmp_path: Path) -> None:
    with moto_s3(tmp_path) as s3:
        s3.client().create_bucket(Bucket="models")
        s3.client().upload_file(str(model_file), "models", "iris/v2/model.skops")
        # The endpoint from the standard environment variable...
        out = tmp_path / "env"
        result = run_cli(["--uri", "s3://models/iris/v2/model.skops", "--format", "skops",
                          "--out", str(out), "--sha256", sha256_of(model_file)],
                         env={**s3.env, "AWS_ENDPOINT_URL": s3.endpoint})  # fmt: skip
        assert _ok(result, out)["source"]["uri"] == "s3://models/iris/v2/model.skops"
        # ... or from the flag.
        out = tmp_path / "flag"
        result = run_cli(["--uri", "s3://models/iris/v2/model.skops", "--format", "skops",
                          "--out", str(out), "--s3-endpoint-url", s3.endpoint],
                         env=s3.env)  # fmt: skip
        _ok(result, out)


@pytest.mark.parametrize("uri", ["s3://models/missing.skops", "s3://no-such-bucket/model.skops"])
def test_s3_missing_object_or_bucket(tmp_path: Path, uri: str) -> None:
    with moto_s3(tmp_path) as s3:
        s3.client().create_bucket(Bucket="models")
        out = tmp_path / "out"
        result = run_cli(["--uri", uri, "--format", "skops", "--out", str(out),
                          "--s3-endpoint-url", s3.endpoint, "--retries", "1", "--timeout", "5"],
                         env=s3.env)  # fmt: skip
    assert result.code == 3, result.report
    assert result.report["error"] == "fetch"
    assert not (out / "model.onnx").exists()


def test_sha256_mismatch_is_refused(model_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = run_cli(["--uri", str(model_file), "--format", "skops", "--out", str(out),
                      "--sha256", "0" * 64])  # fmt: skip
    assert result.code == 4, result.report
    assert result.report["error"] == "integrity"
    assert "sha256 mismatch" in result.report["message"]
    assert sha256_of(model_file) in result.report["message"]
    assert not (out / "model.onnx").exists()
    assert not list(out.iterdir()), "no temporary download may be left behind"


def test_size_limit(model_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    with http_server(model_file.parent) as base:
        result = run_cli(["--uri", f"{base}/model.skops", "--format", "skops", "--out", str(out),
                          "--max-bytes", "1000"])  # fmt: skip
    assert result.code == 4, result.report
    assert "limit of 1000 bytes" in result.report["message"]
    assert not (out / "model.onnx").exists()


def test_missing_local_file_and_unknown_scheme(tmp_path: Path) -> None:
    missing = run_cli(["--uri", str(tmp_path / "nope.skops"), "--format", "skops",
                       "--out", str(tmp_path / "out")])  # fmt: skip
    assert missing.code == 3, missing.report
    scheme = run_cli(["--uri", "ftp://example.invalid/m.skops", "--format", "skops",
                      "--out", str(tmp_path / "out")])  # fmt: skip
    assert scheme.code == 2, scheme.report
    assert "unsupported URI scheme" in scheme.report["message"]
