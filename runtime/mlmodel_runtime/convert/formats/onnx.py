"""`--format onnx`: an ONNX model, checked and served as given.

Loading refuses tensors with external data first (`onnx_safety.py`: they would
read files of the container into the model), then checks the model with
onnx.checker and opens it in onnxruntime. There is no original to compare the
served model with, so its parity phase is a self-check: it runs the model once
on generated inputs and refuses NaN or infinite answers. It is a classifier
when it answers `label` and `probabilities` (the convention every format
converts to), otherwise its task is "other".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from mlmodel_runtime.convert.errors import IntegrityError, UnsupportedModelError, UsageError
from mlmodel_runtime.convert.formats import Format, LoadOptions, Log
from mlmodel_runtime.convert.plan import ParityPlan
from mlmodel_runtime.convert.sanitize import describe
from mlmodel_runtime.modeldir import Task, TensorSpec

SELF_CHECK_ROWS = 64


@dataclass(frozen=True)
class OnnxInputs:
    """The graph's own inputs: the self-check feeds them from the session."""

    specs: tuple[TensorSpec, ...]

    def tensor_specs(self) -> tuple[TensorSpec, ...]:
        return self.specs


@dataclass(frozen=True)
class OnnxModel:
    """The file is the model to serve: nothing to convert, no original to compare with.
    `session` is the ONNX Runtime session loading opened on these very bytes: the
    self-check runs on it, rather than on a second session of the same model."""

    data: bytes
    inputs: OnnxInputs
    task: Task
    session: Any = field(default=None, repr=False, compare=False)
    estimator: ClassVar[str] = "onnx"
    classes: ClassVar[tuple[str | int, ...]] = ()
    version_warning: ClassVar[str] = ""

    def schema(self) -> OnnxInputs:
        return self.inputs

    def to_onnx(self, schema: OnnxInputs, log: Log) -> bytes:
        return self.data

    def parity(
        self, schema: OnnxInputs, session: Any, plan: ParityPlan, log: Log
    ) -> dict[str, Any]:
        """Run the model once on generated rows: it loads, and answers finitely."""
        import numpy as np

        from mlmodel_runtime.convert import check, sampling

        if plan.reference is not None:
            # Nothing here knows which of an arbitrary ONNX model's outputs is the label
            # or the probabilities: accepting the reference would prove nothing.
            raise UsageError(
                "a parity reference needs a model format with an original to compare "
                "(skops, sklearn); an ONNX model is served as is"
            )
        rows = min(plan.samples, SELF_CHECK_ROWS)
        feeds = sampling.generate_for_onnx(
            [(i.name, i.type, list(i.shape or ())) for i in session.get_inputs()], rows
        )
        log(f"onnx passthrough: running the model once on {rows} generated rows")
        try:
            values = session.run(None, feeds)
        except Exception as exc:
            raise UnsupportedModelError(
                f"the ONNX model fails on generated inputs: {describe(exc)}"
            ) from exc
        floats = [
            np.asarray(v, dtype=np.float64).reshape(-1)
            for v in values
            if isinstance(v, np.ndarray) and v.dtype.kind == "f"
        ]
        check.ensure_finite(
            check.Outputs(predictions=np.concatenate(floats or [np.zeros(0)])), "ONNX"
        )
        return {"status": "skipped: onnx passthrough", "passed": True, "rows": rows, "finite": True}


class OnnxFormat(Format):
    # Protobuf has no magic number: an ONNX file is never recognised, only loaded.
    name = "onnx"
    doc = "an ONNX model, checked and served as is (parity is a self-check)"
    file_kind = "ONNX"

    def load(self, path: Path, options: LoadOptions, log: Log) -> OnnxModel:
        import onnx

        from mlmodel_runtime.convert import check, ortsession
        from mlmodel_runtime.convert.onnx_safety import refuse_external_data

        data = path.read_bytes()
        try:
            model = onnx.load_from_string(data)
        except Exception as exc:  # protobuf DecodeError and friends
            raise IntegrityError(
                f"not a readable ONNX file (corrupt or truncated?): {describe(exc)}"
            ) from exc
        if not model.graph.node and not model.graph.output:
            # Protobuf accepts almost any bytes as an empty message.
            raise IntegrityError("not an ONNX model: the file parses to an empty graph")
        refuse_external_data(model)
        try:
            onnx.checker.check_model(model)
        except Exception as exc:
            raise UnsupportedModelError(f"onnx.checker rejects the model: {describe(exc)}") from exc
        session = ortsession.session(data, what="the model")
        outputs = {o.name for o in session.get_outputs()}
        classifier = {check.LABEL, check.PROBABILITIES} <= outputs
        return OnnxModel(
            data=data,
            inputs=OnnxInputs(ortsession.tensor_specs(session.get_inputs())),
            task="classification" if classifier else "other",
            session=session,
        )
