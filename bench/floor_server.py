"""The floor for the serving benchmark: a minimal raw ASGI app calling ONNX Runtime directly.

No validation, no batching, no metrics, no thread: parse the v2 JSON body, run the
model on the event loop, answer. `bench/serve_bench.py` starts it with uvicorn
(httptools + uvloop, one process) as the best a Python server on this stack can do.

    python bench/floor_server.py MODEL.onnx PORT
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import numpy as np
import onnxruntime as ort
import orjson
import uvicorn

Message = MutableMapping[str, Any]


def make_app(model_path: str) -> Callable[..., Awaitable[None]]:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(model_path, options, providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name
    output_names = [o.name for o in session.get_outputs()]
    headers = [(b"content-type", b"application/json")]

    async def app(
        scope: MutableMapping[str, Any],
        receive: Callable[[], Awaitable[Message]],
        send: Callable[[Message], Awaitable[None]],
    ) -> None:
        if scope["type"] != "http":
            return
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        if scope["method"] == "GET":
            payload = b"{}"
        else:
            item = orjson.loads(body)["inputs"][0]
            x = np.asarray(item["data"], dtype=np.float32).reshape(item["shape"])
            outputs = session.run(output_names, {input_name: x})
            payload = orjson.dumps(
                {
                    "model_name": "floor",
                    "outputs": [
                        {
                            "name": name,
                            "datatype": "FP32",
                            "shape": list(out.shape),
                            "data": out.reshape(-1),
                        }
                        for name, out in zip(output_names, outputs, strict=True)
                    ],
                },
                option=orjson.OPT_SERIALIZE_NUMPY,
            )
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": payload})

    return app


def main() -> None:
    model_path, port = sys.argv[1], int(sys.argv[2])
    uvicorn.run(
        make_app(model_path),
        host="127.0.0.1",
        port=port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level="warning",
        lifespan="off",
    )


if __name__ == "__main__":
    main()
