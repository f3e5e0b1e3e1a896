"""The serving app in-process: a tiny ONNX model, fake sessions, the lifespan, a client.

For unit tests of the serving runtime that need no server process: the app is built
around an injected session (a real `ModelSession` over a model made here with
`onnx.helper`, or a fake), started through its ASGI lifespan as uvicorn would, and
called through `httpx.ASGITransport`. What only a real process over a socket can
show (connection guards, signals, workers) stays in `tests/runtime/`.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

import httpx
from onnx import TensorProto, helper

from mlmodel_runtime.modeldir import ModelMetadata, TensorSpec, write_metadata
from mlmodel_runtime.serve.app import ServeApp
from mlmodel_runtime.serve.batching import Arrays
from mlmodel_runtime.serve.codec import ModelRules
from mlmodel_runtime.serve.config import ServeConfig
from mlmodel_runtime.serve.model import SessionFactory
from mlmodel_runtime.serve.session import ModelSession, SessionOptions

TINY_INPUTS = (TensorSpec("X", "FP32", (-1, 4)),)
TINY_OUTPUTS = (TensorSpec("label", "INT64", (-1,)), TensorSpec("probabilities", "FP32", (-1, 4)))


def tiny_classifier(directory: Path, *, declared_shape: tuple[int, ...] = (-1, 4)) -> Path:
    """A model directory: X FP32 [-1, 4] -> label = argmax of the row, probabilities =
    softmax of the row. `declared_shape` is what metadata.json says about X (the
    session trusts it, so a wrong one lets inputs through that the model refuses)."""
    x = helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, 4])
    label = helper.make_tensor_value_info("label", TensorProto.INT64, [None])
    probabilities = helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, 4])
    nodes = [
        helper.make_node("ArgMax", ["X"], ["label"], axis=1, keepdims=0),
        helper.make_node("Softmax", ["X"], ["probabilities"], axis=1),
    ]
    graph = helper.make_graph(nodes, "tiny", [x], [label, probabilities])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "model.onnx").write_bytes(model.SerializeToString())
    write_metadata(
        directory,
        ModelMetadata(
            inputs=(TensorSpec("X", "FP32", declared_shape),),
            outputs=TINY_OUTPUTS,
            task="classification",
            classes=(0, 1, 2, 3),
            label_output="label",
            probabilities_output="probabilities",
        ),
    )
    return directory


def onnx_session(model_dir: Path) -> SessionFactory:
    """A factory of the real ONNX Runtime session over `model_dir`, as the server uses."""
    return partial(ModelSession, model_dir, SessionOptions())


class FakeSession:
    """A model of one FP32 input X [-1, 4] whose output `double` is 2 X.

    `gate`, when given, holds every run until it is set; `running` is set while a run
    waits on it."""

    inputs = (TensorSpec("X", "FP32", (-1, 4)),)
    outputs = (TensorSpec("double", "FP32", (-1, 4)),)
    batchable = True

    def __init__(self, gate: threading.Event | None = None) -> None:
        self.rules = ModelRules(inputs=self.inputs, outputs=("double",))
        self.gate = gate
        self.running = threading.Event()

    def run(self, arrays: Arrays) -> Arrays:
        if self.gate is not None:
            self.running.set()
            self.gate.wait(10)
        return [arrays[0] * 2]

    def warm_up(self, max_rows: int) -> None:
        pass


def fake_metadata() -> ModelMetadata:
    return ModelMetadata(inputs=FakeSession.inputs, outputs=FakeSession.outputs, task="other")


def config(model_dir: Path, **settings: Any) -> ServeConfig:
    """Settings of a server of model `tiny` version `v1`, with `settings` changed."""
    return ServeConfig(model_dir=model_dir, name="tiny", version="v1", **settings)


@asynccontextmanager
async def running(app: ServeApp, *, wait_ready: bool = True) -> AsyncIterator[httpx.AsyncClient]:
    """The app started through its ASGI lifespan, and a client calling it in-process;
    the lifespan's shutdown on the way out. Waits for readiness unless told not to."""
    inbox: asyncio.Queue[Any] = asyncio.Queue()
    outbox: asyncio.Queue[Any] = asyncio.Queue()
    lifespan = asyncio.create_task(app({"type": "lifespan"}, inbox.get, outbox.put))
    await inbox.put({"type": "lifespan.startup"})
    assert (await outbox.get())["type"] == "lifespan.startup.complete"
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
            if wait_ready:
                await until_ready(client)
            yield client
    finally:
        await inbox.put({"type": "lifespan.shutdown"})
        assert (await outbox.get())["type"] == "lifespan.shutdown.complete"
        await lifespan


async def until_ready(client: httpx.AsyncClient) -> None:
    """Poll the readiness probe until it answers 200 (30 s at most)."""
    deadline = time.monotonic() + 30.0
    while (await client.get("/v2/health/ready")).status_code != 200:
        assert time.monotonic() < deadline, "the app did not turn ready"
        await asyncio.sleep(0.01)
