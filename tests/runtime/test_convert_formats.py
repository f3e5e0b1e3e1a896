"""A new model format is one module and one registry entry: shown with a format defined
here and nothing else changed, converted end to end by `pipeline.convert` and by the
CLI as a real process.

The "constant" format is a JSON object `{"classes": [...], "inputs": N}`: a
classifier that always answers its first class with certainty, converted to a
four-node ONNX graph built with `onnx.helper`. Run as `python -m` this module is
`mlmodel-runtime` with the format registered, which is how the process test
starts it.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

from mlmodel_runtime.cli import main
from mlmodel_runtime.convert import check, formats, sampling
from mlmodel_runtime.convert.errors import IntegrityError
from mlmodel_runtime.convert.formats import Format, LoadOptions, Log
from mlmodel_runtime.convert.pipeline import Request, convert
from mlmodel_runtime.convert.schema import InputSchema
from mlmodel_runtime.modeldir import Task, TensorSpec, read_metadata
from tests.runtime.convert_fixtures import REPO, run_cli, run_in_process

pytestmark = pytest.mark.runtime
AS_PROCESS_WITH_CONSTANT = [sys.executable, "-m", "tests.runtime.test_convert_formats", "convert"]


# --- the format: one class for the file, one for the loaded model ----------------------------


@dataclass(frozen=True)
class ConstantModel:
    """Always the first class, with probability 1, whatever the inputs."""

    classes: tuple[str | int, ...]
    n_inputs: int
    estimator: ClassVar[str] = "constant"
    task: ClassVar[Task] = "classification"
    version_warning: ClassVar[str] = ""

    def schema(self) -> InputSchema:
        return InputSchema(n_features=self.n_inputs)

    def to_onnx(self, schema: InputSchema, log: Log) -> bytes:
        from onnx import TensorProto, helper, numpy_helper

        (spec,) = schema.tensor_specs()
        width = len(self.classes)
        strings = isinstance(self.classes[0], str)
        label_type = TensorProto.STRING if strings else TensorProto.INT64
        labels = np.array(self.classes, dtype=object if strings else np.int64)
        certain = [1.0] + [0.0] * (width - 1)
        graph = helper.make_graph(
            [
                helper.make_node("MatMul", [spec.name, "zeros"], ["nothing"]),
                helper.make_node("Add", ["nothing", "certain"], [check.PROBABILITIES]),
                helper.make_node("ArgMax", [check.PROBABILITIES], ["index"], axis=1, keepdims=0),
                helper.make_node("Gather", ["classes", "index"], [check.LABEL], axis=0),
            ],
            "constant",
            [helper.make_tensor_value_info(spec.name, TensorProto.FLOAT, [None, self.n_inputs])],
            [
                helper.make_tensor_value_info(check.LABEL, label_type, [None]),
                helper.make_tensor_value_info(
                    check.PROBABILITIES, TensorProto.FLOAT, [None, width]
                ),
            ],
            initializer=[
                helper.make_tensor(
                    "zeros",
                    TensorProto.FLOAT,
                    [self.n_inputs, width],
                    [0.0] * self.n_inputs * width,
                ),
                helper.make_tensor("certain", TensorProto.FLOAT, [width], certain),
                numpy_helper.from_array(labels, "classes"),
            ],
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
        log("converting a constant: 4 nodes")
        data: bytes = model.SerializeToString()
        return data

    def parity(
        self, schema: InputSchema, session: Any, plan: check.ParityPlan, log: Log
    ) -> dict[str, Any]:
        def predict(feeds: sampling.Feeds) -> check.Outputs:
            rows = sampling.row_count(feeds)
            probabilities = np.zeros((rows, len(self.classes)))
            probabilities[:, 0] = 1.0
            return check.Outputs(
                label=np.asarray([self.classes[0]] * rows), probabilities=probabilities
            )

        return check.against_original(
            session,
            schema,
            plan,
            task=self.task,
            classes=np.asarray(self.classes),
            predict=predict,
            log=log,
        )


class ConstantFormat(Format):
    name = "constant"
    doc = "a JSON object naming classes and an input width (a test format)"
    file_kind = "constant JSON"

    def recognises(self, head: bytes) -> bool:
        return head.lstrip().startswith(b"{")

    def load(self, path: Path, options: LoadOptions, log: Log) -> ConstantModel:
        try:
            spec = json.loads(path.read_bytes())
            classes, inputs = tuple(spec["classes"]), int(spec["inputs"])
        except (ValueError, KeyError, TypeError) as exc:
            raise IntegrityError(f"not a constant model: {exc}") from exc
        return ConstantModel(classes=classes, n_inputs=inputs)


# --- the tests ------------------------------------------------------------------------------


@pytest.fixture
def constant_file(tmp_path: Path) -> Path:
    path = tmp_path / "model.json"
    path.write_text(json.dumps({"classes": ["no", "yes"], "inputs": 4}))
    return path


@pytest.mark.parametrize(
    ("classes", "label_datatype"), [(["no", "yes"], "BYTES"), ([3, 5], "INT64")]
)
def test_a_new_format_is_one_class_and_one_registry_entry(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, classes: list[Any], label_datatype: str
) -> None:
    monkeypatch.setitem(formats.REGISTRY, ConstantFormat.name, ConstantFormat())
    model_file = tmp_path / "model.json"
    model_file.write_text(json.dumps({"classes": classes, "inputs": 4}))
    out = tmp_path / "out"
    lines: list[str] = []
    converted = convert(
        Request(fmt="constant", uri=str(model_file), out=out), environ={}, log=lines.append
    )
    metadata = read_metadata(out)
    assert metadata == converted.metadata
    assert metadata.estimator == "constant"
    assert metadata.task == "classification"
    assert metadata.classes == tuple(classes)
    assert metadata.inputs == (TensorSpec("input", "FP32", (-1, 4)),)
    assert metadata.outputs == (
        TensorSpec("label", label_datatype, (-1,)),
        TensorSpec("probabilities", "FP32", (-1, 2)),
    )
    assert (metadata.label_output, metadata.probabilities_output) == ("label", "probabilities")
    assert metadata.opset == 17
    assert metadata.source["format"] == "constant"
    assert metadata.parity["passed"] is True
    assert metadata.parity["vs_original"]["label_agreement"] == 1.0
    assert "converting a constant: 4 nodes" in lines
    report = converted.learned.report_fields()
    assert report["schema"] == {
        "inputs": ["input:FP32[-1,4]"],
        "outputs": [f"label:{label_datatype}[-1]", "probabilities:FP32[-1,2]"],
    }
    assert set(report["timings"]) == {"fetch", "load", "schema", "export", "parity", "write"}


def test_the_cli_offers_a_registered_format_when_its_parser_is_built(
    constant_file: Path, tmp_path: Path
) -> None:
    args = ["--uri", str(constant_file), "--format", "constant", "--out", str(tmp_path / "out")]
    result = run_cli(args, command=AS_PROCESS_WITH_CONSTANT, cwd=REPO)
    assert result.code == 0, f"{result.report}\n{result.stderr[-2000:]}"
    assert result.report["estimator"] == "constant"
    assert result.report["parity"]["passed"] is True
    assert (tmp_path / "out" / "model.onnx").is_file()
    # The shipped CLI has no such format: argparse refuses it with the registered ones.
    plain = run_cli(args)
    assert plain.code == 2
    assert plain.report["error"] == "usage"
    assert "'constant'" in plain.report["message"]
    assert "skops" in plain.report["message"]


def test_a_file_of_the_new_format_given_as_another_is_refused_naming_it(
    monkeypatch: pytest.MonkeyPatch, constant_file: Path, tmp_path: Path
) -> None:
    monkeypatch.setitem(formats.REGISTRY, ConstantFormat.name, ConstantFormat())
    result = run_in_process(
        ["--uri", str(constant_file), "--format", "skops", "--out", str(tmp_path / "out")]
    )
    assert result.code == 2, result.report
    assert result.report["message"] == (
        "--format skops, but the file is a constant JSON file (--format constant)"
    )


if __name__ == "__main__":  # `mlmodel-runtime` with the constant format registered
    formats.REGISTRY[ConstantFormat.name] = ConstantFormat()
    sys.exit(main())
