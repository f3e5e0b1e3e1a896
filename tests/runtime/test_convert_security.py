"""Hostile model files and leaky URIs: refused with a clear report, and nothing leaks.

Each test runs `mlmodel-runtime convert` (or `fetch`) as a real process on files
the test builds; every server listens on 127.0.0.1.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.runtime.convert_fixtures import (
    MATRIX,
    Result,
    Seen,
    constructor_node,
    diabetes,
    dump_skops,
    edit_skops,
    http_routes,
    memmap_coefficients,
    onnx_with_external_data,
    run_cli,
    run_cli_measured,
    run_fetch,
    zip_bomb,
)

pytestmark = pytest.mark.runtime
MARKER = "MARKER-7f3a-SECRET"


def _case(case_id: str) -> Any:
    return next(c for c in MATRIX if c.id == case_id).build()


@pytest.fixture(scope="module")
def linear_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    model = _case("linear_regression")  # ten features: coef_ has ten entries
    return dump_skops(model, tmp_path_factory.mktemp("models") / "linear.skops")


def _refused(result: Result, code: int, error: str, out: Path) -> str:
    assert result.code == code, f"{result.report}\n{result.stderr[-1500:]}"
    assert result.report["error"] == error
    assert result.report["retryable"] is False
    assert not (out / "model.onnx").exists()
    message: str = result.report["message"]
    return message


def _everything(result: Result, *files: Path) -> str:
    return result.stdout + result.stderr + "".join(f.read_text() for f in files if f.is_file())


# ---------------------------------------------------------------- 1. skops trust


def test_a_skops_file_that_maps_a_local_file_into_its_coefficients_is_refused(
    linear_file: Path, tmp_path: Path
) -> None:
    secret = tmp_path / "secret"
    secret.write_bytes(b"SECRET-123")  # ten bytes: one coefficient each
    hostile = memmap_coefficients(linear_file, tmp_path / "hostile.skops", secret)
    out = tmp_path / "out"
    message = _refused(run_cli(["--uri", str(hostile), "--format", "skops", "--out", str(out)]),
                       5, "unsafe", out)  # fmt: skip
    assert "numpy.memmap" in message


def test_trust_type_cannot_trust_a_type_that_reads_files(linear_file: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_bytes(b"SECRET-123")
    hostile = memmap_coefficients(linear_file, tmp_path / "hostile.skops", secret)
    # Another spelling of the same class is the same class.
    spelled = edit_skops(hostile, tmp_path / "spelled.skops", lambda schema: schema["content"][
        "content"]["coef_"].update(__module__="numpy._core.memmap"))  # fmt: skip
    for source, name in ((hostile, "numpy.memmap"), (spelled, "numpy._core.memmap.memmap")):
        out = tmp_path / f"out-{source.stem}"
        result = run_cli(["--uri", str(source), "--format", "skops", "--out", str(out),
                          "--trust-type", name])  # fmt: skip
        message = _refused(result, 5, "unsafe", out)
        assert name in message
        assert "never trusted" in message


@pytest.mark.parametrize(
    ("module", "name", "refusal"),
    [
        ("scipy.io", "FortranFile", "never trusted"),  # FortranFile(path, "w") truncates path
        ("sklearn.utils._param_validation", "Interval", "does not trust"),
    ],
)
def test_living_under_scipy_or_sklearn_does_not_make_a_class_trusted(
    linear_file: Path, tmp_path: Path, module: str, name: str, refusal: str
) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")

    def edit(schema: dict[str, Any]) -> None:
        schema["content"]["content"]["extra_"] = constructor_node(module, name, str(victim), "w")

    hostile = edit_skops(linear_file, tmp_path / "hostile.skops", edit)
    out = tmp_path / "out"
    message = _refused(run_cli(["--uri", str(hostile), "--format", "skops", "--out", str(out)]),
                       5, "unsafe", out)  # fmt: skip
    assert f"{module}.{name}" in message
    assert refusal in message
    assert victim.read_text() == "precious"


def test_a_tree_whose_children_point_outside_it_is_refused_before_it_predicts(
    tmp_path: Path,
) -> None:
    from sklearn.tree import DecisionTreeRegressor

    x, y = diabetes()
    model = DecisionTreeRegressor(max_depth=3, random_state=0).fit(x, y)
    nodes = model.tree_.__getstate__()["nodes"]
    model_file = dump_skops(model, tmp_path / "tree.skops")
    import zipfile

    with zipfile.ZipFile(model_file) as archive:
        schema = json.loads(archive.read("schema.json"))
        tree_state = schema["content"]["content"]["tree_"]["content"]["content"]
        member = tree_state["nodes"]["file"]
    crafted = nodes.copy()
    crafted["left_child"][0] = 1_000_000  # far outside the node array

    import io

    buffer = io.BytesIO()
    np.save(buffer, crafted, allow_pickle=False)
    hostile = tmp_path / "hostile.skops"
    with zipfile.ZipFile(model_file) as source, zipfile.ZipFile(hostile, "w") as target:
        for info in source.infolist():
            data = buffer.getvalue() if info.filename == member else source.read(info)
            target.writestr(info.filename, data)
    out = tmp_path / "out"
    message = _refused(run_cli(["--uri", str(hostile), "--format", "skops", "--out", str(out)]),
                       4, "integrity", out)  # fmt: skip
    assert "tree" in message
    assert "1000000" in message


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


# ------------------------------------------------------------------ 3. zip bombs


@pytest.fixture(scope="module")
def bomb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """1 GiB of zeros deflated to about 1 MB (a few seconds of CPU to build, once)."""
    return zip_bomb(tmp_path_factory.mktemp("bomb") / "bomb.skops", unpacked=1 << 30)


def test_a_zip_bomb_is_refused_before_skops_reads_it(bomb: Path, tmp_path: Path) -> None:
    assert bomb.stat().st_size < 2 << 20
    out = tmp_path / "out"
    result, peak = run_cli_measured(
        ["--uri", str(bomb), "--format", "skops", "--out", str(out)], tmp_path
    )
    message = _refused(result, 4, "integrity", out)
    assert "zip bomb" in message
    assert peak < 600 << 20, f"peak memory {peak >> 20} MiB"


def test_unpacked_size_is_bounded_by_max_unpacked_bytes(bomb: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = run_cli(["--uri", str(bomb), "--format", "skops", "--out", str(out),
                      "--max-unpacked-bytes", str(64 << 20)])  # fmt: skip
    message = _refused(result, 4, "integrity", out)
    assert "--max-unpacked-bytes" in message


# ------------------------------------------------------------- 4. credentials


def _serve_file(data: bytes) -> Any:
    def route(_: Seen) -> tuple[int, dict[str, str], bytes]:
        return 200, {}, data

    return route


def _not_found(_: Seen) -> tuple[int, dict[str, str], bytes]:
    return 404, {}, b"gone"


@pytest.mark.parametrize("command", ["convert", "fetch"])
def test_credentials_in_the_uri_never_reach_logs_reports_or_files(
    linear_file: Path, tmp_path: Path, command: str
) -> None:
    token, password = "tok-0123456789abcdef", "hunter2-pass"
    routes = {"/m.skops": _serve_file(linear_file.read_bytes()), "/missing": _not_found}
    run = run_cli if command == "convert" else run_fetch
    extra = ["--format", "skops"] if command == "convert" else []
    with http_routes(routes) as (base, _):
        host = base.removeprefix("http://")
        good = f"http://user:{password}@{host}/m.skops?token={token}&x=1"
        bad = f"http://{host}/missing?token={token}"
        ok_out, bad_out = tmp_path / "ok", tmp_path / "bad"
        ok = run(["--uri", good, "--out", str(ok_out), *extra,
                  "--report-file", str(tmp_path / "ok.json")])  # fmt: skip
        failed = run(["--uri", bad, "--out", str(bad_out), *extra, "--retries", "0",
                      "--report-file", str(tmp_path / "bad.json")])  # fmt: skip
    assert ok.code == 0, ok.report
    assert ok.report["source"]["uri"] == f"http://***@{host}/m.skops?<redacted>"
    assert failed.code == 3, failed.report
    assert failed.report["source"]["uri"] == f"http://{host}/missing?<redacted>"
    files = [tmp_path / "ok.json", tmp_path / "bad.json", ok_out / "metadata.json",
             ok_out / "source.json"]  # fmt: skip
    everything = _everything(ok, *files) + _everything(failed)
    for secret in (token, password, "user:"):
        assert secret not in everything


def test_argument_errors_do_not_echo_a_token(tmp_path: Path) -> None:
    token = "tok-0123456789abcdef"
    uri = f"https://h.invalid/m?token={token}"
    result = run_cli(["--uri", uri, "--format", "skops", "--out", str(tmp_path),
                      f"--unknown=https://h.invalid/?t={token}"])  # fmt: skip
    assert result.code == 2
    assert token not in result.stdout + result.stderr


def test_the_authorization_header_goes_to_the_uris_origin_only(
    linear_file: Path, tmp_path: Path
) -> None:
    secret = "Bearer s3cr3t-token-value"
    data = linear_file.read_bytes()
    with http_routes({"/model": _serve_file(data)}) as (other, other_seen):

        def to_other(_: Seen) -> tuple[int, dict[str, str], bytes]:
            return 302, {"Location": f"{other}/model"}, b""

        def needs_auth(request: Seen) -> tuple[int, dict[str, str], bytes]:
            if request.headers.get("authorization") != secret:
                return 401, {}, b"who are you?"
            return 307, {"Location": "/elsewhere"}, b""  # same origin: keeps the header

        routes = {"/m.skops": needs_auth, "/elsewhere": to_other}
        with http_routes(routes) as (base, seen):
            result = run_fetch(["--uri", f"{base}/m.skops", "--out", str(tmp_path / "src")],
                               env={"MLMODEL_HTTP_AUTHORIZATION": f"{secret}\n"})  # fmt: skip
            unauthenticated = run_fetch(["--uri", f"{base}/m.skops",
                                         "--out", str(tmp_path / "no")])  # fmt: skip
    assert result.code == 0, f"{result.report}\n{result.stderr}"
    assert (tmp_path / "src" / "model").read_bytes() == data
    assert [s.headers.get("authorization") for s in seen[:2]] == [secret, secret]
    assert [s.path for s in other_seen] == ["/model"]
    assert "authorization" not in other_seen[0].headers, "sent to another origin"
    assert "s3cr3t" not in result.stdout + result.stderr
    assert unauthenticated.code == 3
    assert unauthenticated.report["retryable"] is False
    assert "access denied" in unauthenticated.report["message"]
