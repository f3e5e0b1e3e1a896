"""The model session: an ONNX Runtime `InferenceSession` over a model directory.

The `Session` of `model.py` that the server process serves: `server.py` hands the
data plane a factory of it, which loads it once per process (in a thread, so
liveness answers while it loads); it is checked against `metadata.json`, warmed
up, then called only from the batching thread (`batching.py`). `run` takes arrays
in model input order.

ONNX Runtime refuses inputs it cannot run with `InvalidArgument` (or `InvalidGraph`),
exception classes its extension module registers; `run` turns them into the
contract's `InputRejected`, so that nothing past this module knows ONNX Runtime.
They are imported by name from that module rather than matched by class name:
an ONNX Runtime that moved them fails at import, and `tests/unit/runtime/
test_serve_session.py` checks that a real refusal still becomes `InputRejected`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from onnxruntime.capi.onnxruntime_pybind11_state import InvalidArgument, InvalidGraph

from mlmodel_runtime.datatypes import ORT_TO_V2, V2_TO_NUMPY
from mlmodel_runtime.modeldir import MODEL_FILE, ModelMetadata, TensorSpec, read_metadata
from mlmodel_runtime.serve.codec import ModelRules
from mlmodel_runtime.serve.model import InputRejected, ModelLoadError


@dataclass(frozen=True)
class SessionOptions:
    intra_op_threads: int = 1
    allow_non_finite: bool = False
    max_request_elements: int = 4_194_304


class ModelSession:
    """One loaded model: its metadata, the request rules derived from it, and `run`."""

    def __init__(self, model_dir: Path, options: SessionOptions) -> None:
        try:
            self.metadata: ModelMetadata = read_metadata(model_dir)
        except FileNotFoundError:
            raise ModelLoadError(f"{model_dir} has no metadata.json; run convert first") from None
        except (ValueError, KeyError, TypeError) as exc:
            raise ModelLoadError(f"{model_dir}/metadata.json is not readable: {exc}") from None
        so = ort.SessionOptions()
        so.intra_op_num_threads = options.intra_op_threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            self._session = ort.InferenceSession(
                str(model_dir / MODEL_FILE), sess_options=so, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:
            raise ModelLoadError(
                f"ONNX Runtime cannot load {model_dir / MODEL_FILE}: {exc}"
            ) from exc
        self.inputs = self._checked_inputs()
        self.outputs: tuple[TensorSpec, ...] = tuple(
            TensorSpec(
                name=o.name,
                datatype=ORT_TO_V2.get(o.type, "BYTES"),
                shape=tuple(d if isinstance(d, int) else -1 for d in (o.shape or ())),
            )
            for o in self._session.get_outputs()
        )
        self.output_names: list[str] = [o.name for o in self.outputs]
        self._input_names = [spec.name for spec in self.inputs]
        self.rules = ModelRules(
            inputs=self.inputs,
            outputs=tuple(self.output_names),
            allow_non_finite=options.allow_non_finite,
            label_output=self.metadata.label_output,
            max_elements=options.max_request_elements,
        )
        # Merging requests needs the first dimension to be the batch for every tensor.
        self.batchable = all(s.shape and s.shape[0] == -1 for s in self.inputs) and all(
            s.shape and s.shape[0] == -1 for s in self.outputs
        )

    def _checked_inputs(self) -> tuple[TensorSpec, ...]:
        declared = {spec.name: spec for spec in self.metadata.inputs}
        actual = {i.name: i for i in self._session.get_inputs()}
        if set(declared) != set(actual):
            raise ModelLoadError(
                f"metadata.json lists inputs {sorted(declared)} but model.onnx has {sorted(actual)}"
            )
        specs = []
        for name, node in actual.items():
            spec = declared[name]
            ort_type = ORT_TO_V2.get(node.type)
            if ort_type != spec.datatype:
                raise ModelLoadError(
                    f"input '{name}' is {spec.datatype} in metadata.json but {node.type} in "
                    "model.onnx"
                )
            specs.append(spec)
        return tuple(specs)

    def run(self, arrays: list[np.ndarray[Any, Any]]) -> list[np.ndarray[Any, Any]]:
        feeds = dict(zip(self._input_names, arrays, strict=True))
        try:
            result: list[np.ndarray[Any, Any]] = self._session.run(self.output_names, feeds)
        except (InvalidArgument, InvalidGraph) as exc:
            raise InputRejected(str(exc)) from exc
        return result

    def example_inputs(self, rows: int) -> list[np.ndarray[Any, Any]]:
        """Synthetic inputs (zeros, empty strings) with `rows` rows, for the warm-up."""
        arrays = []
        for spec in self.inputs:
            shape = [rows if i == 0 and d == -1 else max(d, 1) for i, d in enumerate(spec.shape)]
            if spec.datatype == "BYTES":
                arr = np.full(shape, "", dtype=np.object_)
            else:
                arr = np.zeros(shape, dtype=V2_TO_NUMPY[spec.datatype])
            arrays.append(arr)
        return arrays

    def warm_up(self, max_rows: int) -> None:
        """Run once with one row and once with a full batch so first requests are not slow."""
        self.run(self.example_inputs(1))
        if self.batchable and max_rows > 1:
            self.run(self.example_inputs(max_rows))
