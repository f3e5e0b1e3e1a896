"""The model directory that `convert` writes and `serve` reads.

Layout (an emptyDir shared by the init container and the serving container):

    DIR/model.onnx      the model, written atomically
    DIR/baseline.json   the training baseline for drift counting, when convert saw
                        training rows (`convert/baseline.py`), before metadata.json
    DIR/metadata.json   ModelMetadata below, written atomically after model.onnx

metadata.json is the contract between the two subcommands: schema in v2 terms,
the task, class labels of classifiers, provenance, and the parity figures.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

MODEL_FILE = "model.onnx"
METADATA_FILE = "metadata.json"
BASELINE_FILE = "baseline.json"
SCHEMA_VERSION = 1

Task = Literal["classification", "regression", "other"]


@dataclass(frozen=True)
class TensorSpec:
    """One input or output: its name, v2 datatype and shape (-1 for a free dimension)."""

    name: str
    datatype: str
    shape: tuple[int, ...]

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TensorSpec:
        return cls(
            name=str(data["name"]),
            datatype=str(data["datatype"]),
            shape=tuple(int(d) for d in data["shape"]),
        )


@dataclass(frozen=True)
class ModelMetadata:
    """What `convert` learned about the model; `serve` trusts it for schema and task."""

    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    task: Task = "other"
    # Class labels of a classifier, in the column order of its probabilities output.
    classes: tuple[str | int, ...] = ()
    # Names of the label and probabilities outputs of a classifier, the value output
    # of a regressor (empty when unknown); the runtime's prediction metrics use them.
    label_output: str = ""
    probabilities_output: str = ""
    opset: int = 0
    source: dict[str, Any] = field(default_factory=dict)  # uri, format, sha256, bytes
    model_sha256: str = ""  # digest of model.onnx
    libraries: dict[str, str] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)  # seconds per phase
    parity: dict[str, Any] = field(default_factory=dict)
    estimator: str = ""  # e.g. "sklearn.ensemble.RandomForestClassifier"

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["inputs"] = [t.to_json() for t in self.inputs]
        data["outputs"] = [t.to_json() for t in self.outputs]
        data["classes"] = list(self.classes)
        data["schemaVersion"] = SCHEMA_VERSION
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ModelMetadata:
        version = data.get("schemaVersion", SCHEMA_VERSION)
        if version != SCHEMA_VERSION:
            raise ValueError(
                f"metadata.json has schemaVersion {version}; this runtime reads {SCHEMA_VERSION}"
            )
        return cls(
            inputs=tuple(TensorSpec.from_json(t) for t in data["inputs"]),
            outputs=tuple(TensorSpec.from_json(t) for t in data["outputs"]),
            task=data.get("task", "other"),
            classes=tuple(data.get("classes", ())),
            label_output=str(data.get("label_output", "")),
            probabilities_output=str(data.get("probabilities_output", "")),
            opset=int(data.get("opset", 0)),
            source=dict(data.get("source", {})),
            model_sha256=str(data.get("model_sha256", "")),
            libraries=dict(data.get("libraries", {})),
            timings=dict(data.get("timings", {})),
            parity=dict(data.get("parity", {})),
            estimator=str(data.get("estimator", "")),
        )


def write_atomically(path: Path, payload: bytes) -> None:
    """Write to a temporary file in the same directory, fsync, then rename over `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        # mkstemp makes 0600 files; the serving container may run as another user.
        os.fchmod(fd, 0o644)
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def metadata_bytes(metadata: ModelMetadata) -> bytes:
    """metadata.json's bytes (also what the conversion cache keeps)."""
    return json.dumps(metadata.to_json(), indent=2, sort_keys=True).encode()


def write_metadata(model_dir: Path, metadata: ModelMetadata) -> None:
    write_atomically(model_dir / METADATA_FILE, metadata_bytes(metadata))


def read_metadata(model_dir: Path) -> ModelMetadata:
    with (model_dir / METADATA_FILE).open("rb") as handle:
        return ModelMetadata.from_json(json.load(handle))
