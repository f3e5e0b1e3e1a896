"""The serving runtime in-process: a tiny ONNX model made with `onnx.helper`.

For unit tests of the serving runtime that need no server process. What only a
real process over a socket can show (connection guards, signals, workers) stays
in `tests/runtime/`.
"""

from __future__ import annotations

from pathlib import Path

from onnx import TensorProto, helper

from mlmodel_runtime.modeldir import ModelMetadata, TensorSpec, write_metadata

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
