"""The ONNX Runtime session over a model directory, as the data plane's `Session`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mlmodel_runtime.serve.model import InputRejected, Session
from mlmodel_runtime.serve.session import ModelSession, SessionOptions
from tests.helpers.inprocess import TINY_INPUTS, TINY_OUTPUTS, tiny_classifier

pytestmark = pytest.mark.unit


def _session(model_dir: Path) -> Session:
    return ModelSession(model_dir, SessionOptions())


def test_the_session_describes_the_model_and_runs_it(tmp_path: Path) -> None:
    session = _session(tiny_classifier(tmp_path))
    assert session.inputs == TINY_INPUTS
    assert session.outputs == TINY_OUTPUTS
    assert session.rules.outputs == ("label", "probabilities")
    assert session.batchable
    session.warm_up(8)
    label, probabilities = session.run([np.array([[0, 3, 1, 2], [9, 0, 0, 0]], dtype=np.float32)])
    assert label.tolist() == [1, 0]
    assert probabilities.shape == (2, 4)


def test_inputs_onnx_runtime_refuses_become_input_rejected(tmp_path: Path) -> None:
    # ONNX Runtime raises its own InvalidArgument; past the session only the contract's
    # InputRejected is known (the app answers it with a 400).
    session = _session(tiny_classifier(tmp_path, declared_shape=(-1, -1)))
    with pytest.raises(InputRejected, match="invalid dimensions"):
        session.run([np.zeros((1, 3), dtype=np.float32)])
