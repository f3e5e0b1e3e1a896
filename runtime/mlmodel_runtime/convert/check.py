"""Run the original model and its ONNX conversion on the same rows and judge parity.

Called by the formats' `parity` phase (`formats/`): `against_original` picks
the rows (the --reference file's, the --sample-data file's, or generated from
the input schema), runs both models and judges; the arithmetic of the verdict
lives in the pure `parity.py`. A model that emits NaN or infinities is refused
here as unsupported: the serving runtime could not encode such answers, and
they usually mean a broken model rather than a conversion problem.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from mlmodel_runtime.convert import sampling
from mlmodel_runtime.convert.errors import ParityError, UnsupportedModelError, UsageError
from mlmodel_runtime.convert.parity import (
    ParityResult,
    compare_classification,
    compare_regression,
    count_nonfinite,
)
from mlmodel_runtime.convert.plan import ParityPlan as ParityPlan  # formats name it here
from mlmodel_runtime.convert.plan import Tolerance
from mlmodel_runtime.convert.sampling import Feeds, Reference
from mlmodel_runtime.convert.sanitize import describe
from mlmodel_runtime.convert.schema import InputSchema, dotted_name

LABEL = "label"
PROBABILITIES = "probabilities"


@dataclass(frozen=True)
class Outputs:
    label: npt.NDArray[Any] | None = None
    probabilities: npt.NDArray[Any] | None = None
    predictions: npt.NDArray[Any] | None = None


def run_original(estimator: Any, inputs: Any, task: str) -> Outputs:
    try:
        predicted = np.asarray(estimator.predict(inputs))
        if task != "classification":
            return Outputs(predictions=predicted)
        proba = (
            np.asarray(estimator.predict_proba(inputs))
            if hasattr(estimator, "predict_proba")
            else None
        )
    except Exception as exc:  # any estimator error on these rows
        raise UsageError(
            f"the original {dotted_name(estimator)} fails on the sample data "
            f"({describe(exc)}); give rows it accepts with --sample-data or --reference"
        ) from exc
    return Outputs(label=predicted, probabilities=proba)


def run_onnx(session: Any, feeds: Feeds, task: str) -> Outputs:
    try:
        names = [o.name for o in session.get_outputs()]
        values = dict(zip(names, session.run(None, feeds), strict=True))
    except Exception as exc:  # onnxruntime raises its own exception types
        raise UnsupportedModelError(f"the converted model fails to run: {describe(exc)}") from exc
    if task == "classification":
        return Outputs(label=values.get(LABEL), probabilities=values.get(PROBABILITIES))
    return Outputs(predictions=np.asarray(values[names[0]]))


def ensure_finite(outputs: Outputs, who: str) -> None:
    bad = count_nonfinite(outputs.probabilities, outputs.predictions)
    if bad:
        raise UnsupportedModelError(
            f"the {who} model's outputs contain {bad} NaN or infinite values on the sample data; "
            "a model that answers NaN cannot be served"
        )


def compare(
    *, task: str, classes: npt.NDArray[Any], expected: Outputs, actual: Outputs, tol: Tolerance
) -> ParityResult:
    if task == "classification":
        assert expected.label is not None
        assert actual.label is not None
        return compare_classification(
            classes=classes,
            expected_labels=expected.label,
            actual_labels=actual.label,
            expected_probabilities=expected.probabilities,
            actual_probabilities=actual.probabilities,
            tolerance=tol,
        )
    assert expected.predictions is not None
    assert actual.predictions is not None
    return compare_regression(
        expected=expected.predictions, actual=actual.predictions, tolerance=tol
    )


def check_parity(
    *,
    task: str,
    classes: npt.NDArray[Any],
    original: Outputs,
    converted: Outputs,
    reference: Reference | None,
    tol: Tolerance,
    source: str,
    reference_source: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Parity figures for metadata.json; raises ParityError carrying them when they fail."""
    ensure_finite(original, "original")
    ensure_finite(converted, "converted")
    results = {
        "vs_original": compare(
            task=task, classes=classes, expected=original, actual=converted, tol=tol
        )
    }
    if reference is not None:
        truth = Outputs(reference.label, reference.probabilities, reference.predictions)
        if task == "classification" and truth.label is None:
            raise UsageError("the reference has no 'label' array, but the model is a classifier")
        if task == "regression" and truth.predictions is None:
            raise UsageError("the reference has no 'predictions' array; the model is a regressor")
        results["vs_reference"] = compare(
            task=task, classes=classes, expected=truth, actual=converted, tol=tol
        )
        # How far the re-loaded original itself drifted from training: a hint, not a verdict.
        results["original_vs_reference"] = compare(
            task=task, classes=classes, expected=truth, actual=original, tol=tol
        )
    judged = [k for k in ("vs_original", "vs_reference") if k in results]
    passed = all(results[k].passed for k in judged)
    figures: dict[str, Any] = {
        "passed": passed,
        "source": source,
        "rows": results["vs_original"].rows,
        **{k: v.to_json() for k, v in results.items()},
    }
    if reference is not None and reference_source:
        figures["reference"] = dict(reference_source)
    if not passed:
        failed = [k for k in judged if not results[k].passed]
        summary = "; ".join(_summary(k, results[k]) for k in failed)
        raise ParityError(
            f"the ONNX model predicts differently: {summary}", details={"parity": figures}
        )
    return figures


def against_original(
    session: Any,
    schema: InputSchema,
    plan: ParityPlan,
    *,
    task: str,
    classes: npt.NDArray[Any],
    predict: Callable[[Feeds], Outputs],
    log: Callable[[str], None],
) -> dict[str, Any]:
    """Parity figures of the ONNX model (`session`) against the original (`predict`,
    which gets the same feeds) on the plan's rows; ParityError carrying them when they
    fail. Every format with an original to compare with proves parity through here."""
    reference = None
    if plan.reference is not None:
        reference = sampling.read_reference(plan.reference, schema)
        feeds, source = reference.feeds, f"reference {plan.reference.name}"
    elif plan.sample_data is not None:
        feeds = sampling.read_samples(plan.sample_data, schema, plan.samples)
        source = f"file {plan.sample_data.name}"
    else:
        feeds = sampling.generate(schema, plan.samples)
        source = "generated"
    rows = sampling.row_count(feeds)
    if rows == 0:
        raise UsageError("the sample data has no rows")
    log(f"parity on {rows} rows ({source})")
    original = predict(feeds)
    converted = run_onnx(session, feeds, task)
    return check_parity(
        task=task,
        classes=classes,
        original=original,
        converted=converted,
        reference=reference,
        tol=plan.tolerance,
        source=source,
        reference_source=plan.reference_source,
    )


def _summary(name: str, result: ParityResult) -> str:
    f = result.figures
    if result.kind == "classification":
        proba = f["max_probability_diff"]
        proba_text = "n/a" if proba is None else f"{proba:.3g}"
        return (
            f"{name}: label agreement {f['label_agreement']:.4f} "
            f"({f['label_mismatches']} of {result.rows} rows differ), "
            f"max probability diff {proba_text} (rtol {f['rtol']}, atol {f['atol']})"
        )
    return (
        f"{name}: {f['values_outside_tolerance']} values outside tolerance, max abs diff "
        f"{f['max_abs_diff']:.3g}, max rel diff {f['max_rel_diff']:.3g} "
        f"(rtol {f['rtol']}, atol {f['atol']})"
    )
