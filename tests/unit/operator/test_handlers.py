"""kopf's settings: the watches of Pods and Deployments are filtered by the API server."""

from __future__ import annotations

import kopf
import pytest

from mlmodel_operator.handlers import configure_kopf

pytestmark = pytest.mark.unit


def test_pods_and_deployments_are_watched_with_a_server_side_label_selector() -> None:
    settings = kopf.OperatorSettings()
    configure_kopf(settings)
    selectors = settings.watching.label_selectors
    managed = "app.kubernetes.io/managed-by=mlmodel-operator"
    deployments = kopf.Resource("apps", "v1", "deployments", kind="Deployment")
    pods = kopf.Resource("", "v1", "pods", kind="Pod")
    mlmodels = kopf.Resource("mlops.dev", "v1alpha1", "mlmodels", kind="MLModel")
    assert list(selectors.collect(deployments)) == [managed]
    assert list(selectors.collect(pods)) == [managed]
    assert list(selectors.collect(mlmodels)) == []  # every MLModel is the operator's
    assert settings.posting.enabled is False
