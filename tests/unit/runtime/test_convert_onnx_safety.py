"""ONNX tensors with external data are refused wherever they sit in the model."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from onnx import TensorProto, helper

from mlmodel_runtime.convert.errors import UnsafeFormatError
from mlmodel_runtime.convert.onnx_safety import refuse_external_data

pytestmark = pytest.mark.unit


def _external(name: str = "w", location: str = "../secret") -> TensorProto:
    tensor = TensorProto(name=name, data_type=TensorProto.FLOAT, dims=[2])
    tensor.data_location = TensorProto.EXTERNAL
    entry = tensor.external_data.add()
    entry.key, entry.value = "location", location
    return tensor


def _plain(name: str = "w") -> TensorProto:
    return helper.make_tensor(name, TensorProto.FLOAT, [2], [1.0, 2.0])


def _model(*, initializer: Any = None, nodes: Any = (), sparse: Any = None,
           functions: Any = ()) -> Any:  # fmt: skip
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])
    graph = helper.make_graph(list(nodes) or [helper.make_node("Identity", ["x"], ["y"])], "g",
                              [x], [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
                              initializer=[initializer] if initializer else [],
                              sparse_initializer=[sparse] if sparse else [])  # fmt: skip
    return helper.make_model(graph, functions=list(functions))


def _subgraph_model(tensor: TensorProto) -> Any:
    branch = helper.make_graph([helper.make_node("Identity", ["w"], ["z"])], "b", [],
                               [helper.make_tensor_value_info("z", TensorProto.FLOAT, [2])],
                               initializer=[tensor])  # fmt: skip
    inner_if = helper.make_node("If", ["c"], ["z"], then_branch=branch, else_branch=branch)
    loop_body = helper.make_graph([inner_if], "body", [], [])
    loop = helper.make_node("Loop", ["", ""], [], body=loop_body)
    return _model(nodes=[loop])


def _function_model(tensor: TensorProto) -> Any:
    constant = helper.make_node("Constant", [], ["k"], value=tensor)
    function = helper.make_function("custom", "f", [], ["k"], [constant],
                                    [helper.make_opsetid("", 17)])  # fmt: skip
    return _model(functions=[function])


def _constant_model() -> Any:
    return _model(nodes=[helper.make_node("Constant", [], ["y"], value=_external())])


def _sparse_model(*, external_values: bool) -> Any:
    indices = helper.make_tensor("i", TensorProto.INT64, [1], [0])
    if external_values:
        return _model(sparse=helper.make_sparse_tensor(_external(), indices, [2]))
    return _model(sparse=helper.make_sparse_tensor(_plain(), _external("i"), [2]))


EXTERNAL_PLACES: dict[str, Callable[[], Any]] = {
    "initializer": lambda: _model(initializer=_external()),
    "constant node": _constant_model,
    "sparse initializer values": lambda: _sparse_model(external_values=True),
    "sparse initializer indices": lambda: _sparse_model(external_values=False),
    "subgraph of a subgraph": lambda: _subgraph_model(_external()),
    "function body": lambda: _function_model(_external()),
}


@pytest.mark.parametrize("place", EXTERNAL_PLACES)
def test_external_data_is_refused_anywhere(place: str) -> None:
    with pytest.raises(UnsafeFormatError, match=r"external files .*'\.\./secret'"):
        refuse_external_data(EXTERNAL_PLACES[place]())


def test_external_data_entries_without_the_location_flag_are_refused_too() -> None:
    tensor = _plain()
    entry = tensor.external_data.add()
    entry.key, entry.value = "location", "secret"
    with pytest.raises(UnsafeFormatError, match="'secret'"):
        refuse_external_data(_model(initializer=tensor))


def test_self_contained_models_pass() -> None:
    refuse_external_data(_model(initializer=_plain()))
    refuse_external_data(_subgraph_model(_plain()))
    refuse_external_data(_function_model(_plain()))


def test_the_message_names_a_few_tensors_only() -> None:
    nodes = [helper.make_node("Constant", [], [f"c{i}"], value=_external(f"t{i}"))
             for i in range(10)]  # fmt: skip
    with pytest.raises(UnsafeFormatError, match="and 7 more") as refused:
        refuse_external_data(_model(nodes=[*nodes, helper.make_node("Identity", ["x"], ["y"])]))
    assert len(str(refused.value)) < 600
