"""What a pod's start costs in its init containers, and what keeps it short: with
`convert --cache-dir` the next pod on a node reuses the conversion the first one made
and proved instead of importing scikit-learn again; an ONNX passthrough never imports
it at all; and `fetch` and `convert` end without tearing the interpreter down. Every
run is a real process, as in the pod."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

from tests.runtime.convert_fixtures import CLI, MATRIX, Result, dump_skops, run_cli, run_fetch

pytestmark = pytest.mark.runtime
# What a conversion reused from the cache, or an ONNX passthrough, has no use for.
MODEL_LIBRARIES = {"sklearn", "skl2onnx", "skops", "scipy", "pandas", "onnxmltools", "xgboost",
                   "lightgbm"}  # fmt: skip


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    case = next(c for c in MATRIX if c.id == "logistic_regression")
    return dump_skops(case.build(), tmp_path_factory.mktemp("models") / "model.skops")


@pytest.fixture(scope="module")
def onnx_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import numpy as np
    from skl2onnx import to_onnx
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    x, y = load_iris(return_X_y=True)
    model = LogisticRegression(max_iter=500).fit(x, y)
    onx = to_onnx(model, x[:1].astype(np.float32), options={id(model): {"zipmap": False}})
    path = tmp_path_factory.mktemp("models") / "model.onnx"
    path.write_bytes(onx.SerializeToString())
    return path


def pod(model: Path, tmp: Path, name: str, *flags: str, fmt: str = "skops") -> Result:
    """What one pod's init containers do: fetch into its own source directory, then
    convert into its own model directory, with the node's cache."""
    source, out = tmp / name / "source", tmp / name / "models"
    assert run_fetch(["--uri", str(model), "--out", str(source)]).code == 0
    return run_cli(["--source", str(source), "--format", fmt, "--out", str(out), *flags])


def imported(argv: Sequence[str]) -> set[str]:
    """Top-level packages a process imported (`python -X importtime`)."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", *argv[1:]],
        capture_output=True, text=True, check=False, env=dict(os.environ), timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr[-2000:]
    names = set()
    for line in proc.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            names.add(line.rsplit("|", 1)[1].strip().split(".")[0])
    return names


def test_the_next_pod_reuses_the_first_pods_conversion_and_serves_the_same_bytes(
    model_file: Path, tmp_path: Path
) -> None:
    cache = f"--cache-dir={tmp_path / 'node-cache'}"
    first = pod(model_file, tmp_path, "first", cache)
    assert first.code == 0, first.report
    assert first.report["cache"] == {
        "reused": False,
        "reason": "no earlier conversion with this model digest, converter versions and options",
        "entry": first.report["cache"]["entry"],
        "stored": True,
    }
    assert {"load", "export", "parity", "store"} <= set(first.report["timings"])

    second = pod(model_file, tmp_path, "second", cache)
    assert second.code == 0, second.report
    assert second.report["cache"] == {"reused": True, "entry": first.report["cache"]["entry"]}
    assert second.report["message"].startswith("reused the conversion of sklearn.linear_model")
    assert set(second.report["timings"]) == {"fetch", "cache", "write"}  # nothing converted
    # The proof of the bytes served is the first pod's parity check, which they passed.
    assert second.report["parity"] == first.report["parity"]
    assert second.report["parity"]["passed"] is True
    for field in ("estimator", "task", "schema", "model_sha256", "opset", "source"):
        assert second.report[field] == first.report[field], field
    served = (tmp_path / "second" / "models" / "model.onnx").read_bytes()
    assert served == (tmp_path / "first" / "models" / "model.onnx").read_bytes()
    assert hashlib.sha256(served).hexdigest() == second.report["model_sha256"]
    metadata = json.loads((tmp_path / "second" / "models" / "metadata.json").read_text())
    assert metadata["model_sha256"] == second.report["model_sha256"]
    assert set(metadata["timings"]) == {"fetch", "cache"}
    assert not (tmp_path / "second" / "source" / "model").exists()  # as after a conversion


def test_other_options_are_converted_and_proven_again(model_file: Path, tmp_path: Path) -> None:
    cache = f"--cache-dir={tmp_path / 'node-cache'}"
    assert pod(model_file, tmp_path, "first", cache).code == 0
    stricter = pod(model_file, tmp_path, "stricter", cache, "--parity-samples=32")
    assert stricter.code == 0, stricter.report
    assert stricter.report["cache"]["reused"] is False
    assert stricter.report["parity"]["rows"] == 32
    assert len(list((tmp_path / "node-cache").iterdir())) == 2


def test_a_cached_model_edited_on_the_node_is_converted_again_and_replaced(
    model_file: Path, tmp_path: Path
) -> None:
    cache_dir = tmp_path / "node-cache"
    first = pod(model_file, tmp_path, "first", f"--cache-dir={cache_dir}")
    entry = cache_dir / first.report["cache"]["entry"]
    (entry / "model.onnx").write_bytes(b"something else entirely")
    second = pod(model_file, tmp_path, "second", f"--cache-dir={cache_dir}")
    assert second.code == 0, second.report
    assert second.report["cache"]["reused"] is False
    assert second.report["cache"]["reason"] == (
        "the cached model does not match the digest its metadata records"
    )
    assert second.report["cache"]["stored"] is True
    assert (entry / "model.onnx").read_bytes() == (
        tmp_path / "second" / "models" / "model.onnx"
    ).read_bytes()


def test_an_unpickled_model_is_never_cached(model_file: Path, tmp_path: Path) -> None:
    import joblib

    case = next(c for c in MATRIX if c.id == "logistic_regression")
    pickled = tmp_path / "model.joblib"
    joblib.dump(case.build(), pickled)
    flags = (f"--cache-dir={tmp_path / 'node-cache'}", "--allow-unsafe-pickle")
    for name in ("first", "second"):
        result = pod(pickled, tmp_path, name, *flags, fmt="sklearn")
        assert result.code == 0, result.report
        assert result.report["cache"]["reused"] is False
        assert "unpickles" in result.report["cache"]["reason"]
        assert "stored" not in result.report["cache"]
    assert not (tmp_path / "node-cache").exists()


def test_a_reused_conversion_imports_no_numpy_onnx_or_model_library(
    model_file: Path, tmp_path: Path
) -> None:
    cache = f"--cache-dir={tmp_path / 'node-cache'}"
    assert pod(model_file, tmp_path, "first", cache).code == 0
    source = tmp_path / "second" / "source"
    assert run_fetch(["--uri", str(model_file), "--out", str(source)]).code == 0
    argv = [*CLI, "--source", str(source), "--format", "skops", "--out",
            str(tmp_path / "second" / "models"), cache]  # fmt: skip
    packages = imported(argv)
    assert "mlmodel_runtime" in packages  # the measurement works
    assert not packages & (MODEL_LIBRARIES | {"numpy", "onnx", "onnxruntime", "asyncio"})
    assert json.loads((tmp_path / "second" / "models" / "metadata.json").read_text())


def test_an_onnx_passthrough_imports_no_scikit_learn_or_converter(
    onnx_file: Path, tmp_path: Path
) -> None:
    source = tmp_path / "source"
    assert run_fetch(["--uri", str(onnx_file), "--out", str(source)]).code == 0
    argv = [*CLI, "--source", str(source), "--format", "onnx", "--out", str(tmp_path / "out")]
    packages = imported(argv)
    assert {"onnx", "onnxruntime"} <= packages  # the measurement works: it was checked
    assert not packages & MODEL_LIBRARIES, sorted(packages & MODEL_LIBRARIES)
    report = json.loads((tmp_path / "out" / "metadata.json").read_text())
    assert report["estimator"] == "onnx"


def test_an_onnx_passthrough_is_reused_too(onnx_file: Path, tmp_path: Path) -> None:
    cache = f"--cache-dir={tmp_path / 'node-cache'}"
    first = pod(onnx_file, tmp_path, "first", cache, fmt="onnx")
    second = pod(onnx_file, tmp_path, "second", cache, fmt="onnx")
    assert first.code == second.code == 0, (first.report, second.report)
    assert second.report["cache"]["reused"] is True
    assert second.report["parity"]["status"] == "skipped: onnx passthrough"
    served = (tmp_path / "second" / "models" / "model.onnx").read_bytes()
    assert served == onnx_file.read_bytes()


@pytest.mark.parametrize("command", ["fetch", "convert"])
def test_an_init_container_ends_with_its_report_without_the_interpreters_teardown(
    model_file: Path, tmp_path: Path, command: str
) -> None:
    source = tmp_path / "source"
    if command == "convert":
        assert run_fetch(["--uri", str(model_file), "--out", str(source)]).code == 0
    args = {
        "fetch": ["--uri", str(model_file), "--out", str(source)],
        "convert": ["--source", str(source), "--format", "skops", "--out", str(tmp_path / "m")],
    }[command]
    # An exit handler stands for the teardown: it must not run, and the report must be whole.
    program = (
        "import atexit, sys\n"
        "atexit.register(lambda: print('torn down', file=sys.stderr))\n"
        "from mlmodel_runtime.cli import main\n"
        "sys.exit(main())\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", program, command, *args],
        capture_output=True, text=True, check=False, env=dict(os.environ), timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr[-2000:]
    assert json.loads(done.stdout)["status"] == "ok"
    assert "torn down" not in done.stderr
