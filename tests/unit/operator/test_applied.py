"""An apply is skipped only when it would change nothing (applied.py)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from mlmodel_operator.applied import APPLIED_ANNOTATION, stamped, unchanged

pytestmark = pytest.mark.unit


def deployment(**env: str) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "iris-abc", "namespace": "ns", "labels": {"app": "iris"}},
        "spec": {
            "replicas": 2,
            "template": {
                "spec": {
                    "containers": [
                        {
                            "name": "serve",
                            "image": "runtime:1",
                            "env": [{"name": k, "value": v} for k, v in env.items()],
                        }
                    ]
                }
            },
        },
    }


def as_listed(desired: dict[str, Any]) -> dict[str, Any]:
    """What a list of the API returns after the apply: no kind or apiVersion of the
    item, defaults and other managers' fields added."""
    obj = copy.deepcopy({k: v for k, v in desired.items() if k not in ("apiVersion", "kind")})
    obj["metadata"].update(uid="u1", resourceVersion="7", generation=1)
    obj["metadata"]["annotations"]["deployment.kubernetes.io/revision"] = "1"
    obj["spec"]["strategy"] = {"type": "RollingUpdate"}
    obj["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] = "IfNotPresent"
    obj["status"] = {"readyReplicas": 2}
    return obj


def test_the_same_desired_object_on_an_object_that_holds_it_is_skipped() -> None:
    want = stamped(deployment(A="1"))
    assert unchanged(stamped(deployment(A="1")), as_listed(want))


def test_a_changed_value_is_applied() -> None:
    observed = as_listed(stamped(deployment(A="1")))
    assert not unchanged(stamped(deployment(A="2")), observed)


def test_a_field_the_operator_stops_setting_is_applied_so_that_it_is_released() -> None:
    """The replicas handed to an HPA, an env var taken out of the spec: every value left
    still matches, only the stamp tells the desired object changed."""
    observed = as_listed(stamped(deployment(A="1", B="2")))
    fewer = deployment(A="1", B="2")
    del fewer["spec"]["replicas"]
    assert not unchanged(stamped(fewer), observed)
    assert not unchanged(stamped(deployment(A="1")), observed)


def test_a_persons_edit_of_an_owned_field_is_put_back() -> None:
    observed = as_listed(stamped(deployment(A="1")))
    observed["spec"]["replicas"] = 5  # kubectl scale
    assert not unchanged(stamped(deployment(A="1")), observed)
    observed = as_listed(stamped(deployment(A="1")))
    observed["spec"]["template"]["spec"]["containers"][0]["env"].append({"name": "X"})
    assert not unchanged(stamped(deployment(A="1")), observed)


def test_an_object_without_the_stamp_or_not_observed_is_applied() -> None:
    want = stamped(deployment(A="1"))
    observed = as_listed(want)
    del observed["metadata"]["annotations"][APPLIED_ANNOTATION]
    assert not unchanged(want, observed)
    assert not unchanged(want, None)


def test_a_value_of_another_type_is_a_change() -> None:
    observed = as_listed(stamped(deployment(A="1")))
    observed["spec"]["replicas"] = 2.0
    assert not unchanged(stamped(deployment(A="1")), observed)
