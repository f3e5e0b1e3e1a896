"""The plugin's status view (`kubectl mlmodel status`), from an MLModel as the API has it."""

from __future__ import annotations

import pytest

from mlmodel_operator.plugin import render

pytestmark = pytest.mark.unit


def test_the_status_view_shows_both_revisions_the_weight_and_each_metric() -> None:
    body = {
        "metadata": {"name": "iris"},
        "status": {
            "phase": "Progressing",
            "stable": {"version": "v1", "revision": "aaa", "readyReplicas": 2, "replicas": 2},
            "canary": {
                "version": "v2",
                "revision": "bbb",
                "readyReplicas": 1,
                "replicas": 1,
                "step": 1,
                "steps": 4,
                "weight": 30,
                "effectiveWeight": 30,
            },
            "analysis": {
                "metrics": [
                    {"name": "error-rate", "stable": 0.0, "canary": 0.0123456, "verdict": "Fail"},
                    {
                        "name": "prediction-divergence",
                        "stable": None,
                        "canary": 0.02,
                        "verdict": "Pass",
                    },
                ]
            },
            "message": "step 2/4: canary at 30%, 4s left in this step",
        },
    }
    view = render(body).splitlines()
    assert view[0] == "iris  phase: Progressing"
    assert view[1] == "  stable   v1 (revision aaa), ready 2/2"
    assert view[2] == "  canary   v2 (revision bbb), ready 1/1, step 2/4"
    assert view[3] == "  weight   [######..............] 30%"
    # Figures are rounded for the eye; a value status does not have shows as "-".
    assert view[4] == "  analysis error-rate: stable 0, canary 0.01235 -> Fail"
    assert view[5] == "  analysis prediction-divergence: stable -, canary 0.02 -> Pass"
    assert view[6] == "  step 2/4: canary at 30%, 4s left in this step"
