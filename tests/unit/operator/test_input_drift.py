"""input-drift: the served inputs against the training baseline, per feature, judged on
the worst one; relative to the stable by default, so a shift of the world that reaches
both passes; the series read from a runtime's exposition, kept across windows."""

from __future__ import annotations

import pytest

from mlmodel_operator.analysis.exposition import Snapshot, parse
from mlmodel_operator.analysis.kinds.input_drift import NO_BASELINE, InputDrift
from mlmodel_operator.analysis.metric import MetricSpec, Verdict, Window
from mlmodel_operator.analysis.spec import parse_analysis
from mlmodel_operator.analysis.windows import window

pytestmark = pytest.mark.unit

TRAINED = {"0": 0.25, "1": 0.25, "2": 0.25, "3": 0.25}
BASELINE = {"input[0]": TRAINED, "input[1]": TRAINED}
LIKE_TRAINING = {"0": 25.0, "1": 25.0, "2": 25.0, "3": 25.0}
SHIFTED = {"0": 0.0, "1": 0.0, "2": 10.0, "3": 90.0}


def served(**features: dict[str, float]) -> Snapshot:
    inputs = {"input[0]": LIKE_TRAINING, "input[1]": LIKE_TRAINING, **features}
    return Snapshot(requests={"200": 100.0}, inputs=inputs, input_baseline=BASELINE)


def judged(metric: MetricSpec, stable: Snapshot, canary: Snapshot) -> tuple[Verdict, str]:
    found = InputDrift().judge(metric, Window(stable, canary, 20, 10.0, {}))
    assert found is not None
    return found.verdict, found.reason


RELATIVE = parse_analysis({"metrics": [{"name": "input-drift"}]}).metrics[0]
ABSOLUTE = MetricSpec("input-drift", max=0.1)


def test_the_default_is_relative_to_the_stable() -> None:
    assert (RELATIVE.max, RELATIVE.max_increase) == (None, 0.05)
    assert InputDrift().needs_baseline(RELATIVE)
    assert InputDrift().absolute(RELATIVE) is None  # nothing left at 100%


def test_a_shift_of_the_world_reaching_both_passes_relative_and_fails_absolute() -> None:
    both = served(**{"input[1]": SHIFTED})
    verdict, reason = judged(RELATIVE, both, both)
    assert verdict is Verdict.PASS, reason
    verdict, reason = judged(ABSOLUTE, both, both)
    assert verdict is Verdict.FAIL
    assert "on input[1]" in reason


def test_a_canary_seeing_one_feature_differently_fails_naming_it() -> None:
    verdict, reason = judged(RELATIVE, served(), served(**{"input[1]": SHIFTED}))
    assert verdict is Verdict.FAIL
    assert "on input[1]" in reason
    assert "maxIncrease" in reason
    verdict, _ = judged(RELATIVE, served(), served())
    assert verdict is Verdict.PASS


def test_no_baseline_or_too_few_rows_is_inconclusive() -> None:
    bare = Snapshot(requests={"200": 100.0})
    verdict, reason = judged(RELATIVE, bare, bare)
    assert verdict is Verdict.INCONCLUSIVE
    assert NO_BASELINE in reason
    few = served(**{"input[0]": {"0": 1.0}, "input[1]": {"0": 1.0}})
    verdict, reason = judged(ABSOLUTE, few, few)
    assert verdict is Verdict.INCONCLUSIVE
    assert "minSamples" in reason


EXPOSITION = """\
# TYPE mlmodel_requests_total counter
mlmodel_requests_total{model="iris",version="v1",code="200"} 100
# TYPE mlmodel_input_bucket_total counter
mlmodel_input_bucket_total{model="iris",version="v1",feature="input[0]",bucket="0"} 60
mlmodel_input_bucket_total{model="iris",version="v1",feature="input[0]",bucket="1"} 40
# TYPE mlmodel_input_baseline_share gauge
mlmodel_input_baseline_share{model="iris",version="v1",feature="input[0]",bucket="0"} 0.5
mlmodel_input_baseline_share{model="iris",version="v1",feature="input[0]",bucket="1"} 0.5
"""


def test_the_series_are_read_from_the_exposition_merged_and_windowed() -> None:
    snapshot = parse(EXPOSITION)
    assert snapshot.inputs == {"input[0]": {"0": 60.0, "1": 40.0}}
    assert snapshot.input_baseline == {"input[0]": {"0": 0.5, "1": 0.5}}
    two_pods = snapshot.merge(snapshot)
    assert two_pods.inputs["input[0]"]["0"] == 120.0
    assert two_pods.input_baseline == snapshot.input_baseline
    # The window start is kept in status: the counts survive the round trip.
    start = Snapshot.from_json(snapshot.to_json())
    assert start.inputs == snapshot.inputs
    later = parse(EXPOSITION.replace("} 60", "} 90"))
    assert window(start, later).inputs == {"input[0]": {"0": 30.0, "1": 0.0}}
    assert window(start, later).input_baseline == snapshot.input_baseline


def test_output_drift_compares_predictions_with_the_training_ones() -> None:
    """A classifier's live classes, or a regressor's value buckets, against the shares
    the model predicted on the training sample."""
    from mlmodel_operator.analysis.kinds.output_drift import OutputDrift

    trained = {"0": 1 / 3, "1": 1 / 3, "2": 1 / 3}

    def classifier(classes: dict[str, float]) -> Snapshot:
        return Snapshot(requests={"200": 90.0}, classes=classes, output_baseline=trained)

    like = classifier({"0": 30.0, "1": 30.0, "2": 30.0})
    never_versicolor = classifier({"0": 30.0, "1": 0.0, "2": 60.0})
    found = OutputDrift().judge(MetricSpec("output-drift", max_increase=0.05),
                                Window(like, never_versicolor, 20, 10.0, {}))  # fmt: skip
    assert found is not None
    assert found.verdict is Verdict.FAIL, found.reason
    assert "on output" in found.reason
    regressor = Snapshot(requests={"200": 90.0}, outputs={"0": 45.0, "1": 45.0},
                         output_baseline={"0": 0.5, "1": 0.5})  # fmt: skip
    found = OutputDrift().judge(MetricSpec("output-drift", max=0.1),
                                Window(regressor, regressor, 20, 10.0, {}))  # fmt: skip
    assert found is not None
    assert found.verdict is Verdict.PASS, found.reason


def test_a_shift_of_both_alike_passes_naming_the_worst_feature_not_the_first() -> None:
    both = served(**{"input[1]": SHIFTED})
    verdict, reason = judged(RELATIVE, both, both)
    assert verdict is Verdict.PASS
    assert "worst input[1]" in reason
    assert "at most stable + 0 on input[1]" in reason
