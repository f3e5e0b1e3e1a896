"""A fitted scikit-learn estimator, however it was saved: what `skops` and `sklearn` share.

Called by `formats/skops.py` and `formats/sklearn.py`, which each read their
own file safely and hand the reading to `open_estimator`. From there on a
model is a model: its schema is inferred from the fitted estimator
(`schema.py`), it is converted with skl2onnx (`export.py`), and parity runs
its `predict`/`predict_proba` against the ONNX model (`check.py`).

Loading under another scikit-learn than the one the model was trained with can
change its predictions, so scikit-learn's InconsistentVersionWarning is an
error unless --allow-version-mismatch allows it.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mlmodel_runtime.convert.errors import (
    IntegrityError,
    UnsupportedModelError,
    VersionMismatchError,
)
from mlmodel_runtime.convert.formats import LoadOptions, Log
from mlmodel_runtime.convert.plan import ParityPlan
from mlmodel_runtime.convert.sanitize import describe
from mlmodel_runtime.modeldir import Task

if TYPE_CHECKING:
    from mlmodel_runtime.convert.sampling import Feeds
    from mlmodel_runtime.convert.schema import InputSchema


@dataclass(frozen=True)
class EstimatorModel:
    """A fitted estimator with predict(); the `Model` of both scikit-learn formats."""

    fitted: Any
    estimator: str
    task: Task
    classes: tuple[str | int, ...]
    version_warning: str = ""

    def schema(self) -> InputSchema:
        from mlmodel_runtime.convert import export
        from mlmodel_runtime.convert.schema import infer_schema

        if self.task == "other":
            raise UnsupportedModelError(
                f"{self.estimator} is neither a classifier nor a regressor; only those are "
                f"converted (supported estimators: {export.SUPPORTED_DOC})"
            )
        return infer_schema(self.fitted)

    def to_onnx(self, schema: InputSchema, log: Log) -> bytes:
        from mlmodel_runtime.convert import export

        log(f"converting with skl2onnx: {len(schema.tensor_specs())} input(s)")
        return export.to_onnx(self.fitted, schema)

    def parity(
        self, schema: InputSchema, session: Any, plan: ParityPlan, log: Log
    ) -> dict[str, Any]:
        import numpy as np

        from mlmodel_runtime.convert import check
        from mlmodel_runtime.convert.sampling import to_sklearn_input

        def predict(feeds: Feeds) -> check.Outputs:
            return check.run_original(self.fitted, to_sklearn_input(feeds, schema), self.task)

        return check.against_original(
            session,
            schema,
            plan,
            task=self.task,
            classes=np.asarray(getattr(self.fitted, "classes_", [])),
            predict=predict,
            log=log,
        )


def open_estimator(read: Callable[[], Any], options: LoadOptions, log: Log) -> EstimatorModel:
    """The estimator `read` returns (a format's own safe loader), refused when it was
    saved by another scikit-learn without --allow-version-mismatch, or cannot predict."""
    from mlmodel_runtime.convert.schema import dotted_name, task_of

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fitted = read()
    version_warning = _check_version(caught, options.allow_version_mismatch)
    if version_warning:
        log(f"warning: {version_warning} (allowed by --allow-version-mismatch)")
    if not callable(getattr(fitted, "predict", None)):
        raise UnsupportedModelError(
            f"the file holds a {type(fitted).__module__}.{type(fitted).__qualname__}, "
            "not a fitted estimator with predict()"
        )
    task = task_of(fitted)
    return EstimatorModel(
        fitted=fitted,
        estimator=dotted_name(fitted),
        task=task,
        classes=_classes(fitted) if task == "classification" else (),
        version_warning=version_warning,
    )


@contextmanager
def library_errors(doing: str) -> Iterator[None]:
    """What a library raises while building the estimator from the file: a missing
    module or class means code this runtime lacks, anything else a damaged file."""
    try:
        yield
    except (ImportError, AttributeError) as exc:
        raise UnsupportedModelError(
            f"the model needs code this runtime lacks: {describe(exc)}"
        ) from exc
    except Exception as exc:  # pickle and skops raise many types on bad data
        raise IntegrityError(f"could not {doing} (corrupt or truncated?): {describe(exc)}") from exc


def _check_version(caught: Iterable[warnings.WarningMessage], allow: bool) -> str:
    from sklearn.exceptions import InconsistentVersionWarning

    for item in caught:
        if isinstance(item.message, InconsistentVersionWarning):
            w = item.message
            text = (
                f"model was saved with scikit-learn {w.original_sklearn_version} but this "
                f"runtime has {w.current_sklearn_version}; its predictions may differ from "
                "what you saw in training"
            )
            if not allow:
                raise VersionMismatchError(
                    f"{text}. Rebuild the model with scikit-learn {w.current_sklearn_version}, "
                    "or pass --allow-version-mismatch (best with --reference to prove parity "
                    "against predictions from the training environment)"
                )
            return text
    return ""


def _classes(fitted: Any) -> tuple[str | int, ...]:
    """metadata.json's `classes`: JSON-friendly, integral floats as ints."""
    import numpy as np

    return tuple(_plain_class(c) for c in np.asarray(getattr(fitted, "classes_", [])).tolist())


def _plain_class(value: Any) -> str | int:
    import numpy as np

    value = value.item() if isinstance(value, np.generic) else value
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return str(value)
