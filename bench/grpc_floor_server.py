"""The gRPC floor for the serving benchmark: grpcio's asyncio server calling ONNX Runtime
directly, as `floor_server.py` is for REST.

No validation, no batching, no metrics, no thread: parse the ModelInferRequest, run
the model on the event loop (uvloop, as the runtime runs), answer with raw outputs.
`bench/serve_bench.py` starts it beside the runtime's gRPC port: the best a Python
gRPC server on this stack can do, so that the runtime's gRPC figure reads against
what grpcio itself allows, not against REST.

    python bench/grpc_floor_server.py MODEL.onnx PORT
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import grpc
import numpy as np
import onnxruntime as ort
import uvloop
from grpc import aio

from mlmodel_runtime.serve.oip import grpc_predict_v2_pb2 as pb


async def serve(model_path: str, port: int) -> None:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(model_path, options, providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name
    output_names = [o.name for o in session.get_outputs()]

    async def infer(request: bytes, context: Any) -> bytes:
        message = pb.ModelInferRequest.FromString(request)
        tensor = message.inputs[0]
        x = np.array(tensor.contents.fp32_contents, dtype=np.float32).reshape(tensor.shape)
        outputs = session.run(output_names, {input_name: x})
        response = pb.ModelInferResponse(model_name="floor")
        for name, out in zip(output_names, outputs, strict=True):
            response.outputs.add(name=name, datatype="FP32", shape=out.shape)
            response.raw_output_contents.append(np.ascontiguousarray(out).tobytes())
        return response.SerializeToString()

    server = aio.server()
    handler = grpc.unary_unary_rpc_method_handler(infer)
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                "inference.GRPCInferenceService", {"ModelInfer": handler}
            ),
        )
    )
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    await server.wait_for_termination()


def main() -> None:
    uvloop.install()
    asyncio.run(serve(sys.argv[1], int(sys.argv[2])))


if __name__ == "__main__":
    main()
