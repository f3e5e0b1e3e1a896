"""What a conversion has learned about the model so far, as one value.

`pipeline.convert` builds a new `Learned` after each phase (the source once
fetched, what the model is once loaded, its inputs, its outputs, the parity
figures, the timings) and returns it with the result, or raises
`ConversionFailed` carrying it: a failure report still says what the model was
and how far the conversion got. `command.py` turns it into the report's fields.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mlmodel_runtime.convert.report import schema_summary
from mlmodel_runtime.modeldir import TensorSpec


@dataclass(frozen=True)
class Learned:
    """Each field is None (or empty) until the phase that learns it has passed."""

    source: Mapping[str, Any] | None = None  # uri (redacted), format, sha256, bytes
    estimator: str | None = None
    task: str | None = None
    version_warning: str = ""
    inputs: tuple[TensorSpec, ...] | None = None
    outputs: tuple[TensorSpec, ...] | None = None
    parity: Mapping[str, Any] | None = None
    evaluation: Mapping[str, Any] | None = None  # the score on a labelled holdout set
    baseline: Mapping[str, Any] | None = None  # the training baseline written, if any
    timings: Mapping[str, float] | None = None  # seconds per phase, once the run started
    # With --cache-dir: whether an earlier conversion was reused, and if not, why not.
    cache: Mapping[str, Any] | None = None

    def report_fields(self) -> dict[str, Any]:
        """The report's `estimator`, `task`, `schema`, `parity`, `source`,
        `version_warning`, `timings` and `cache`, for what is known."""
        fields: dict[str, Any] = {}
        if self.estimator is not None:
            fields["estimator"] = self.estimator
        if self.task is not None:
            fields["task"] = self.task
        if self.inputs is not None or self.outputs is not None:
            fields["schema"] = {
                "inputs": schema_summary(self.inputs or ()),
                "outputs": schema_summary(self.outputs or ()),
            }
        if self.parity is not None:
            fields["parity"] = dict(self.parity)
        if self.evaluation is not None:
            fields["evaluation"] = dict(self.evaluation)
        if self.baseline is not None:
            fields["baseline"] = dict(self.baseline)
        if self.source is not None:
            fields["source"] = dict(self.source)
        if self.version_warning:
            fields["version_warning"] = self.version_warning
        if self.timings is not None:
            fields["timings"] = dict(self.timings)
        if self.cache is not None:
            fields["cache"] = dict(self.cache)
        return fields


class ConversionFailed(Exception):
    """A conversion failed with `error` after learning `learned`."""

    def __init__(self, error: Exception, learned: Learned) -> None:
        super().__init__(str(error))
        self.error = error
        self.learned = learned
