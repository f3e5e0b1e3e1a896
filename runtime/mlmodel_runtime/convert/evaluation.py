"""The converted model scored on a labelled holdout set: the quality gate's figure.

Parity proves the ONNX model predicts what the original predicts; it says nothing of
whether the original is any good. Prediction divergence compares the canary's answers
with the stable's as distributions, so a model that swaps two classes is invisible to
it whenever traffic is balanced across them. A score on labelled rows sees that: the
convert init container computes it on the ONNX model it will serve, puts it in its
report, and the operator compares the canary's with the stable's before any traffic.

A metric is one registry entry: its task, which way is better, and the formula. The
registry is read by `convert --help` and by a conversion reused from the cache, so
NumPy is imported where a score is computed, not with the registry.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlmodel_runtime.convert.errors import UsageError

if TYPE_CHECKING:
    import numpy.typing as npt

    from mlmodel_runtime.convert.schema import InputSchema

    Array = npt.NDArray[Any]


@dataclass(frozen=True)
class Metric:
    name: str
    task: str  # classification | regression
    higher_is_better: bool
    score: Callable[[Array, Array], float]  # (target, predicted)
    doc: str


def _same_labels(target: Array, predicted: Array) -> tuple[Array, Array]:
    """Labels compared as numbers when both are (a target of 1.0 is class 1), else as
    text (the file may hold 1 where the model answers "1")."""
    import numpy as np

    if target.dtype.kind in "iuf" and predicted.dtype.kind in "iuf":
        return target.astype(np.float64).reshape(-1), predicted.astype(np.float64).reshape(-1)
    return target.astype(str).reshape(-1), predicted.astype(str).reshape(-1)


def _accuracy(target: Array, predicted: Array) -> float:
    import numpy as np

    truth, answer = _same_labels(target, predicted)
    return float(np.mean(truth == answer))


def _macro_f1(target: Array, predicted: Array) -> float:
    import numpy as np

    truth, answer = _same_labels(target, predicted)
    scores = []
    for label in np.unique(truth):  # the classes of the holdout set
        tp = float(np.sum((answer == label) & (truth == label)))
        fp = float(np.sum((answer == label) & (truth != label)))
        fn = float(np.sum((answer != label) & (truth == label)))
        scores.append(0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn))
    return float(np.mean(scores))


def _values(target: Array, predicted: Array) -> tuple[Array, Array]:
    import numpy as np

    truth = np.asarray(target, dtype=np.float64).reshape(-1)
    answer = np.asarray(predicted, dtype=np.float64).reshape(-1)
    if truth.shape != answer.shape:
        raise UsageError(
            f"the evaluation target has {truth.size} values, the model answered {answer.size}"
        )
    return truth, answer


def _rmse(target: Array, predicted: Array) -> float:
    import numpy as np

    truth, answer = _values(target, predicted)
    return float(np.sqrt(np.mean((truth - answer) ** 2)))


def _mae(target: Array, predicted: Array) -> float:
    import numpy as np

    truth, answer = _values(target, predicted)
    return float(np.mean(np.abs(truth - answer)))


METRICS: Mapping[str, Metric] = {
    m.name: m
    for m in (
        Metric("accuracy", "classification", True, _accuracy, "share of rows labelled right"),
        Metric("f1", "classification", True, _macro_f1, "macro F1 over the holdout's classes"),
        Metric("rmse", "regression", False, _rmse, "root mean squared error"),
        Metric("mae", "regression", False, _mae, "mean absolute error"),
    )
}


def evaluate(
    session: Any,
    schema: InputSchema,
    dataset: Path,
    metric_name: str,
    *,
    task: str,
    described: Mapping[str, Any],
    log: Callable[[str], None],
) -> dict[str, Any]:
    """The report's `evaluation`: the metric of the ONNX model (`session`) on the
    dataset's rows against its `target`, and which dataset that was (`described`)."""
    import numpy as np

    from mlmodel_runtime.convert import check, sampling

    metric = METRICS.get(metric_name)
    if metric is None:
        raise UsageError(f"unknown evaluation metric {metric_name!r} ({', '.join(METRICS)})")
    if metric.task != task:
        raise UsageError(
            f"evaluation metric {metric.name} scores a {metric.task} model; this one's task "
            f"is {task}"
        )
    feeds, target = sampling.read_labelled(dataset, schema)
    outputs = check.run_onnx(session, feeds, task)
    predicted = outputs.label if task == "classification" else outputs.predictions
    if predicted is None:
        raise UsageError("the converted model gave no label to score")
    score = metric.score(target, np.asarray(predicted))
    rows = int(target.shape[0])
    log(f"evaluation: {metric.name} {score:.6g} on {rows} labelled rows")
    return {
        "metric": metric.name,
        "score": float(f"{score:.6g}"),
        "higherIsBetter": metric.higher_is_better,
        "rows": rows,
        "dataset": dict(described),
    }
