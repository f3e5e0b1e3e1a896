"""Fixtures for the runtime tests: model directories and `mlmodel-runtime serve` processes.

Model directories are built here, not by `convert`: small scikit-learn models are
trained, converted with skl2onnx directly and described with
`modeldir.write_metadata`. Every server is a real process on 127.0.0.1 and a free
port; a failing test shows the stderr of the servers it used.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from onnx import TensorProto, helper
from skl2onnx import to_onnx
from skl2onnx.common.data_types import FloatTensorType, StringTensorType
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_diabetes, load_iris
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from mlmodel_runtime.modeldir import ModelMetadata, TensorSpec, write_metadata

# v2 datatype -> ONNX element type, for the identity model that covers every datatype.
ONNX_TYPES: dict[str, int] = {
    "BOOL": TensorProto.BOOL,
    "INT8": TensorProto.INT8,
    "INT16": TensorProto.INT16,
    "INT32": TensorProto.INT32,
    "INT64": TensorProto.INT64,
    "UINT8": TensorProto.UINT8,
    "UINT16": TensorProto.UINT16,
    "UINT32": TensorProto.UINT32,
    "UINT64": TensorProto.UINT64,
    "FP16": TensorProto.FLOAT16,
    "FP32": TensorProto.FLOAT,
    "FP64": TensorProto.DOUBLE,
    "BYTES": TensorProto.STRING,
}


@dataclass(frozen=True)
class TrainedModel:
    """A model directory and the scikit-learn model it was converted from."""

    path: Path
    estimator: Any
    x: Any  # training inputs, for comparing predictions


def _write_model_dir(
    path: Path,
    onnx_bytes: bytes,
    *,
    inputs: tuple[TensorSpec, ...],
    outputs: tuple[TensorSpec, ...],
    **fields: Any,
) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "model.onnx").write_bytes(onnx_bytes)
    write_metadata(
        path,
        ModelMetadata(
            inputs=inputs,
            outputs=outputs,
            model_sha256=hashlib.sha256(onnx_bytes).hexdigest(),
            **fields,
        ),
    )
    return path


@pytest.fixture(scope="session")
def models_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def iris_model(models_root: Path) -> TrainedModel:
    x, y = load_iris(return_X_y=True)
    x = x.astype(np.float32)
    clf = RandomForestClassifier(n_estimators=20, max_depth=6, random_state=0).fit(x, y)
    onx = to_onnx(clf, x[:1], options={id(clf): {"zipmap": False}}, target_opset=17)
    path = _write_model_dir(
        models_root / "iris",
        onx.SerializeToString(),
        inputs=(TensorSpec("X", "FP32", (-1, 4)),),
        outputs=(TensorSpec("label", "INT64", (-1,)), TensorSpec("probabilities", "FP32", (-1, 3))),
        task="classification",
        classes=(0, 1, 2),
        label_output="label",
        probabilities_output="probabilities",
        estimator="sklearn.ensemble.RandomForestClassifier",
    )
    return TrainedModel(path, clf, x)


@pytest.fixture(scope="session")
def regressor_model(models_root: Path) -> TrainedModel:
    x, y = load_diabetes(return_X_y=True)
    x = x.astype(np.float32)
    reg = LinearRegression().fit(x, y)
    onx = to_onnx(reg, x[:1], target_opset=17)
    path = _write_model_dir(
        models_root / "diabetes",
        onx.SerializeToString(),
        inputs=(TensorSpec("X", "FP32", (-1, 10)),),
        outputs=(TensorSpec("variable", "FP32", (-1, 1)),),
        task="regression",
        label_output="variable",
        estimator="sklearn.linear_model.LinearRegression",
    )
    return TrainedModel(path, reg, x)


@pytest.fixture(scope="session")
def mixed_model(models_root: Path) -> TrainedModel:
    """Three inputs, one of them BYTES: a ColumnTransformer with a string column."""
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "a": rng.normal(size=80).astype(np.float32),
            "b": rng.normal(size=80).astype(np.float32),
            "color": rng.choice(["red", "green", "blue"], 80),
        }
    )
    target = ((frame["a"] + (frame["color"] == "red")) > 0.5).astype(int)
    pipe = Pipeline(
        [
            (
                "columns",
                ColumnTransformer(
                    [
                        ("num", StandardScaler(), ["a", "b"]),
                        ("cat", OneHotEncoder(handle_unknown="ignore"), ["color"]),
                    ]
                ),
            ),
            ("lr", LogisticRegression()),
        ]
    ).fit(frame, target)
    onx = to_onnx(
        pipe,
        initial_types=[
            ("a", FloatTensorType([None, 1])),
            ("b", FloatTensorType([None, 1])),
            ("color", StringTensorType([None, 1])),
        ],
        options={id(pipe.steps[-1][1]): {"zipmap": False}},
        target_opset=17,
    )
    path = _write_model_dir(
        models_root / "mixed",
        onx.SerializeToString(),
        inputs=(
            TensorSpec("a", "FP32", (-1, 1)),
            TensorSpec("b", "FP32", (-1, 1)),
            TensorSpec("color", "BYTES", (-1, 1)),
        ),
        outputs=(TensorSpec("label", "INT64", (-1,)), TensorSpec("probabilities", "FP32", (-1, 2))),
        task="classification",
        classes=(0, 1),
        label_output="label",
        probabilities_output="probabilities",
    )
    return TrainedModel(path, pipe, frame)


def identity_model_dir(path: Path, datatypes: Iterable[str]) -> Path:
    """A model with one input per datatype, each returned unchanged as `out_<datatype>`."""
    inputs, outputs, nodes = [], [], []
    specs_in, specs_out = [], []
    for v2 in datatypes:
        onnx_type = ONNX_TYPES[v2]
        name = f"in_{v2.lower()}"
        out = f"out_{v2.lower()}"
        inputs.append(helper.make_tensor_value_info(name, onnx_type, [None, 2]))
        outputs.append(helper.make_tensor_value_info(out, onnx_type, [None, 2]))
        nodes.append(helper.make_node("Identity", [name], [out]))
        specs_in.append(TensorSpec(name, v2, (-1, 2)))
        specs_out.append(TensorSpec(out, v2, (-1, 2)))
    graph = helper.make_graph(nodes, "identity", inputs, outputs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return _write_model_dir(
        path,
        model.SerializeToString(),
        inputs=tuple(specs_in),
        outputs=tuple(specs_out),
        task="other",
    )


@pytest.fixture(scope="session")
def identity_model(models_root: Path) -> TrainedModel:
    """One input per v2 datatype, each returned unchanged as `out_<datatype>`."""
    return TrainedModel(identity_model_dir(models_root / "identity", ONNX_TYPES), None, None)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Server:
    """A running `mlmodel-runtime serve` process on 127.0.0.1."""

    name: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path
    args: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, trust_env=False, timeout=30.0, **kwargs)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        with httpx.Client(base_url=self.url, trust_env=False, timeout=2.0) as client:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise RuntimeError(
                        f"server {self.name} exited with {self.process.returncode}:\n{self.log()}"
                    )
                try:
                    if client.get("/v2/health/ready").status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                time.sleep(0.05)
        raise RuntimeError(f"server {self.name} not ready after {timeout} s:\n{self.log()}")

    def stop(self, timeout: float = 15.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def launch(
    model_dir: Path,
    log_dir: Path,
    *,
    name: str,
    version: str = "v1",
    extra: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
) -> Server:
    port = free_port()
    args = [
        sys.executable,
        "-m",
        "mlmodel_runtime.cli",
        "serve",
        "--model-dir",
        str(model_dir),
        "--name",
        name,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        *(["--version", version] if version else []),
        *extra,
    ]
    log_path = log_dir / f"{name}-{port}.log"
    child_env = {k: v for k, v in os.environ.items() if not k.startswith("MLMODEL_")}
    child_env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    child_env.update(env or {})
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            args, stdout=log_file, stderr=subprocess.STDOUT, env=child_env, start_new_session=True
        )
    return Server(name=name, port=port, process=process, log_path=log_path, args=args)


ServerFactory = Callable[..., Server]


def _kill_group(server: Server) -> None:
    server.stop()
    # Workers of a multi-process server share its process group.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(server.process.pid, signal.SIGKILL)


@pytest.fixture(scope="session")
def session_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerFactory]:
    """Start servers shared by the whole session (all started before the first wait)."""
    log_dir = tmp_path_factory.mktemp("server-logs")
    started: list[Server] = []

    def start(model_dir: Path, **kwargs: Any) -> Server:
        server = launch(model_dir, log_dir, **kwargs)
        started.append(server)
        return server

    yield start
    for server in started:
        _kill_group(server)


@pytest.fixture
def fresh_server(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[ServerFactory]:
    """Start servers owned by one test (for counting metrics or stopping them)."""
    started: list[Server] = []
    request.node.mlmodel_servers = started

    def start(model_dir: Path, *, wait: bool = True, **kwargs: Any) -> Server:
        server = launch(model_dir, tmp_path, **kwargs)
        started.append(server)
        if wait:
            server.wait_ready()
        return server

    yield start
    for server in started:
        _kill_group(server)


@dataclass(frozen=True)
class Servers:
    iris: Server  # batching on, a short delay so concurrent requests merge
    iris_unbatched: Server  # --max-batch-size 1
    regressor: Server
    mixed: Server
    identity: Server


@pytest.fixture(scope="session")
def servers(
    session_servers: ServerFactory,
    iris_model: TrainedModel,
    regressor_model: TrainedModel,
    mixed_model: TrainedModel,
    identity_model: TrainedModel,
) -> Servers:
    group = Servers(
        iris=session_servers(
            iris_model.path,
            name="iris",
            extra=("--max-batch-size", "64", "--max-batch-delay-ms", "2", "--revision", "r1"),
        ),
        iris_unbatched=session_servers(
            iris_model.path, name="iris", extra=("--max-batch-size", "1")
        ),
        regressor=session_servers(regressor_model.path, name="diabetes", version=""),
        mixed=session_servers(mixed_model.path, name="mixed"),
        identity=session_servers(identity_model.path, name="identity"),
    )
    for server in (group.iris, group.iris_unbatched, group.regressor, group.mixed, group.identity):
        server.wait_ready()
    return group


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None]:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()  # type: ignore[attr-defined]
    if not report.failed:
        return
    funcargs: dict[str, Any] = getattr(item, "funcargs", {})
    shown: list[Server] = list(getattr(item, "mlmodel_servers", []))
    for value in funcargs.values():
        if isinstance(value, Server):
            shown.append(value)
        elif isinstance(value, Servers):
            shown.extend(vars(value).values())
    for server in shown:
        report.sections.append((f"server {server.name}:{server.port} output", server.log()[-5000:]))
