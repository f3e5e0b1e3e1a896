"""What a conversion learned becomes the report's fields, for as far as it got."""

from __future__ import annotations

from typing import Any

import pytest

from mlmodel_runtime.convert.learned import Learned
from mlmodel_runtime.modeldir import TensorSpec

pytestmark = pytest.mark.unit

SOURCE = {"uri": "s3://models/iris.skops", "format": "skops"}
INPUTS = (TensorSpec("input", "FP32", (-1, 4)),)
OUTPUTS = (TensorSpec("label", "INT64", (-1,)), TensorSpec("probabilities", "FP32", (-1, 3)))


@pytest.mark.parametrize(
    ("learned", "fields"),
    [
        (Learned(), {}),
        (Learned(source=SOURCE, timings={"fetch": 0.5}),
         {"source": SOURCE, "timings": {"fetch": 0.5}}),
        (Learned(source=SOURCE, estimator="sklearn.svm.SVC", task="classification",
                 version_warning="saved with 1.5", inputs=INPUTS, timings={}),
         {"estimator": "sklearn.svm.SVC", "task": "classification",
          "schema": {"inputs": ["input:FP32[-1,4]"], "outputs": []},
          "source": SOURCE, "version_warning": "saved with 1.5", "timings": {}}),
        (Learned(estimator="onnx", task="other", inputs=INPUTS, outputs=OUTPUTS,
                 parity={"passed": True}),
         {"estimator": "onnx", "task": "other",
          "schema": {"inputs": ["input:FP32[-1,4]"],
                     "outputs": ["label:INT64[-1]", "probabilities:FP32[-1,3]"]},
          "parity": {"passed": True}}),
    ],
    ids=["nothing yet", "fetched", "loaded with its inputs", "everything but the source"],
)  # fmt: skip
def test_the_report_says_what_was_learned_and_nothing_else(
    learned: Learned, fields: dict[str, Any]
) -> None:
    assert learned.report_fields() == fields


def test_the_report_fields_are_copies_the_report_may_change() -> None:
    learned = Learned(source=dict(SOURCE), parity={"passed": False, "worst_rows": [1, 2]})
    fields = learned.report_fields()
    fields["source"]["uri"] = "changed"
    assert learned.report_fields()["source"] == SOURCE
