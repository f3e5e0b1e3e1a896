"""The model contract of the data plane: what it needs from a loaded model, and no more.

`dataplane.py` serves any `Session`; `session.py`'s `ModelSession` (ONNX Runtime over a
model directory) is the one the server process uses. The data plane takes a
`SessionFactory` rather than a session, because loading is slow and must happen in a
thread after the port is open (liveness answers meanwhile); tests hand it a factory of
a fake, or of a real session built in-process, and need no server process.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from mlmodel_runtime.modeldir import TensorSpec
from mlmodel_runtime.serve.batching import Arrays
from mlmodel_runtime.serve.codec import ModelRules


class ModelLoadError(Exception):
    """A session factory cannot serve its model; the message says why (the process then
    exits with it, no traceback)."""


class InputRejected(Exception):
    """The model itself refused inputs that passed the codec's checks (a 400, not a 500:
    a client must not be able to cause a 500, which counts against a canary)."""


class Session(Protocol):
    """One loaded model, called from the batching thread only (after `warm_up`)."""

    @property
    def inputs(self) -> tuple[TensorSpec, ...]:
        """The model's inputs, in the order `run` takes them."""

    @property
    def outputs(self) -> tuple[TensorSpec, ...]:
        """The model's outputs, in the order `run` returns them."""

    @property
    def rules(self) -> ModelRules:
        """What a request must match, for the codec."""

    @property
    def batchable(self) -> bool:
        """Whether requests may be merged: every input and output has a free first dimension."""

    def run(self, arrays: Arrays) -> Arrays:
        """Outputs for inputs in model order; raises `InputRejected` for inputs it refuses."""

    def warm_up(self, max_rows: int) -> None:
        """Run on synthetic inputs, so the first requests are not slow."""


SessionFactory = Callable[[], Session]
