"""XGBoost and LightGBM in a cluster: the real fetch and convert init containers turn a
native LightGBM booster file, then an XGBoost classifier inside a scikit-learn Pipeline
saved with skops, into the revisions that serve, each promoted as a canary under load
through the Service; what the Service answers is what the booster predicts.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from sklearn.datasets import load_iris

from localenv import mlmodel
from localenv.controlplane.cluster import ControlPlane
from localenv.loadgen import REVISION_HEADER, service_url
from localenv.operator_process import OperatorEnv
from localenv.podrunner import PodRunner
from localenv.scenario import wait_for
from tests.helpers.kube import apply, wait_healthy
from tests.helpers.serving import UP_TIMEOUT_S, IrisModels, bring_up_v1, start_load

pytestmark = pytest.mark.e2e

QUICK = {
    "steps": [{"weight": 50, "pause": {"duration": "3s"}}],
    "scaleDownDelaySeconds": 1,
    "progressDeadlineSeconds": 180,
}


def lightgbm_booster(directory: Path) -> tuple[Path, Any]:
    """A multiclass booster trained with LightGBM's own API, saved as its text model."""
    import lightgbm

    x, y = load_iris(return_X_y=True)
    params = {"objective": "multiclass", "num_class": 3, "num_leaves": 8, "verbose": -1,
              "num_threads": 1, "seed": 0}  # fmt: skip
    booster = lightgbm.train(params, lightgbm.Dataset(x, label=y), num_boost_round=20)
    path = directory / "iris-lightgbm.txt"
    booster.save_model(str(path))
    return path, booster


def xgboost_pipeline(directory: Path) -> tuple[Path, Any]:
    """StandardScaler + XGBClassifier, saved with skops as a training job would."""
    import skops.io
    import xgboost
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, y = load_iris(return_X_y=True)
    model = make_pipeline(
        StandardScaler(),
        xgboost.XGBClassifier(n_estimators=20, max_depth=3, n_jobs=1, random_state=0),
    ).fit(x, y)
    path = directory / "iris-xgboost.skops"
    skops.io.dump(model, path)
    return path, model


def served(url: str, rows: np.ndarray, revision: str) -> tuple[list[int], np.ndarray]:
    """Labels and probabilities `revision` answers for `rows` through the Service (the
    promoted stable's predecessor keeps answering a few seconds while it drains)."""
    body = {"inputs": [{"name": "input", "shape": list(rows.shape), "datatype": "FP32",
                        "data": rows.astype(np.float32).ravel().tolist()}]}  # fmt: skip

    def ask() -> httpx.Response | None:
        answer = httpx.post(url, json=body, timeout=10, trust_env=False)
        assert answer.status_code == 200, answer.text
        return answer if answer.headers.get(REVISION_HEADER) == revision else None

    answer = wait_for(ask, timeout=60, interval=0.2, what=f"an answer from {revision}")
    outputs = {o["name"]: o for o in answer.json()["outputs"]}
    proba = np.asarray(outputs["probabilities"]["data"]).reshape(outputs["probabilities"]["shape"])
    return [int(v) for v in outputs["label"]["data"]], proba


def test_native_lightgbm_and_a_pipelined_xgboost_convert_roll_out_and_answer_as_trained(
    cluster: ControlPlane,
    namespace: str,
    operators: OperatorEnv,
    runner: PodRunner,
    iris: IrisModels,
    tmp_path: Path,
) -> None:
    rows = load_iris(return_X_y=True)[0][::5]
    bring_up_v1(cluster, namespace, iris, operators, QUICK)
    load = start_load(cluster, namespace, iris, seconds=600)
    try:
        booster_file, booster = lightgbm_booster(tmp_path)
        apply(cluster, mlmodel("iris", namespace, version="v2", model_file=booster_file,
                               model={"format": "lightgbm"}, rollout=QUICK))  # fmt: skip
        status = wait_healthy(cluster, namespace, "v2", timeout=UP_TIMEOUT_S, interval=0.5)
        report = status["stable"]["conversion"]
        assert report["estimator"] == "lightgbm.basic.Booster", report
        assert report["parity"]["passed"] is True, report
        url = asyncio.run(service_url(cluster, namespace, "iris"))
        labels, proba = served(url, rows, status["stable"]["revision"])
        expected = booster.predict(rows.astype(np.float32))
        np.testing.assert_allclose(proba, expected, atol=1e-4)
        assert labels == expected.argmax(axis=1).tolist()

        pipeline_file, pipeline = xgboost_pipeline(tmp_path)
        apply(cluster, mlmodel("iris", namespace, version="v3", model_file=pipeline_file,
                               rollout=QUICK))  # fmt: skip
        status = wait_healthy(cluster, namespace, "v3", timeout=UP_TIMEOUT_S, interval=0.5)
        report = status["stable"]["conversion"]
        assert report["estimator"] == "sklearn.pipeline.Pipeline", report
        assert report["parity"]["passed"] is True, report
        labels, proba = served(url, rows, status["stable"]["revision"])
        # The request carries FP32, as the protocol's datatype says: the pipeline given
        # the same float32 values (its scaler keeps float32) predicts what is served. In
        # float64 a scaled value can land on the other side of a tree's split
        # (docs/models.md, "Precision").
        rows32 = rows.astype(np.float32)
        np.testing.assert_allclose(proba, pipeline.predict_proba(rows32), atol=1e-4)
        assert labels == pipeline.predict(rows32).tolist()
    finally:
        load.stop()
    result = load.wait()
    assert not result.failures(), result.explain()
    assert {h["version"]: h["outcome"] for h in status["history"]}.items() >= {
        "v2": "Promoted",
        "v3": "Promoted",
    }.items(), status["history"]
