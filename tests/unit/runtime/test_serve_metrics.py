"""The runtime's metrics set up in one worker of several (PROMETHEUS_MULTIPROC_DIR)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlmodel_runtime.modeldir import ModelMetadata, TensorSpec
from mlmodel_runtime.serve.metrics import RuntimeMetrics

pytestmark = pytest.mark.unit


def test_a_worker_starts_while_a_sibling_is_still_creating_its_metric_files(
    tmp_path: Path,
) -> None:
    # prometheus_client creates a value file empty, then sizes it: a sibling worker
    # starting at that moment must not read it.
    (tmp_path / "counter_4242.db").touch()
    metadata = ModelMetadata(
        inputs=(TensorSpec("X", "FP32", (-1, 4)),),
        outputs=(TensorSpec("label", "INT64", (-1,)),),
        task="classification",
        classes=(0, 1),
        label_output="label",
    )
    # Raised struct.error (an empty header unpacked) when registration read the files.
    RuntimeMetrics(
        model="iris", version="v1", revision="r1", metadata=metadata, multiprocess_dir=str(tmp_path)
    )
