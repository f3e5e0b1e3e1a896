"""KServe's Python model server for bench/serve_bench.py: a `kserve.Model` on a joblib forest.

    bench/.venv-kserve/bin/python bench/kserve_server.py --model_name iris \
        --model_path DIR/model.joblib --http_port PORT --workers 1 --enable_grpc false

What a KServe user writes for a custom predictor (KServe's "custom model" example): a
`kserve.Model` subclass that loads the estimator with joblib in `load` and calls it in
`predict`, started by `kserve.ModelServer` with its own command-line options (the
parser is KServe's, `kserve.model_server.parser`). On the v2 REST path
(`POST /v2/models/iris/infer`) KServe decodes the body into an `InferRequest` and hands
it to `predict`, which answers an `InferResponse` with the predicted labels (INT64), as
MLServer's SKLearnModel does. Runs in bench/.venv-kserve (serve_bench.py makes it), not
in the project's venv, so it is not type-checked with the project.

KServe's defaults are kept (uvloop, its per-request log lines: uvicorn's access line,
two timing lines and the latency line of `--enable_latency_logging`), with two changes:
it binds uvicorn to 0.0.0.0 with no option to change that, and servers on this host
listen on 127.0.0.1 only, so `LoopbackModelServer` sets the REST server's host before it
starts (gRPC, which binds [::], is disabled with `--enable_grpc false`); and a FastAPI
deprecation warning written with every answer is silenced (see main).
"""

from __future__ import annotations

import argparse
import warnings
from typing import Any

import joblib
from fastapi.exceptions import FastAPIDeprecationWarning
from kserve import InferOutput, InferRequest, InferResponse, Model, ModelServer, model_server
from kserve.utils.utils import generate_uuid


class IrisModel(Model):
    def __init__(self, name: str, path: str) -> None:
        super().__init__(name)
        self.path = path
        self.estimator: Any = None
        self.ready = False

    def load(self) -> bool:
        self.estimator = joblib.load(self.path)
        self.ready = True
        return self.ready

    def predict(
        self, payload: InferRequest, headers: dict[str, str] | None = None
    ) -> InferResponse:
        rows = payload.inputs[0].as_numpy()
        labels = self.estimator.predict(rows)
        output = InferOutput(name="label", shape=list(labels.shape), datatype="INT64")
        output.set_data_from_numpy(labels.astype("int64"), binary_data=False)
        return InferResponse(
            response_id=payload.id or generate_uuid(),
            model_name=self.name,
            infer_outputs=[output],
        )


class LoopbackModelServer(ModelServer):
    """KServe's ModelServer, its uvicorn bound to 127.0.0.1 instead of 0.0.0.0."""

    async def _serve(self) -> None:
        if self._rest_server is None or self.enable_grpc:
            raise SystemExit("run with --workers 1 --enable_grpc false (127.0.0.1 only)")
        self._rest_server.config.host = "127.0.0.1"
        await super()._serve()


def main() -> None:
    # KServe 0.21 answers with FastAPI's ORJSONResponse, deprecated in the FastAPI its
    # requirements resolve to (a warning per response made), and FastAPI changes the
    # warning filters on every request (warnings.catch_warnings in its request path),
    # which resets the once-per-location registry: the warning, about 450 bytes, would
    # go to stderr with every answer. Silenced, as a KServe user would.
    warnings.filterwarnings("ignore", category=FastAPIDeprecationWarning)
    parser = argparse.ArgumentParser(parents=[model_server.parser])
    parser.add_argument("--model_path", required=True, help="the estimator, saved with joblib")
    args, _ = parser.parse_known_args()
    model = IrisModel(args.model_name, args.model_path)
    model.load()
    LoopbackModelServer().start([model])


if __name__ == "__main__":
    main()
