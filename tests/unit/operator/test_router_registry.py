"""The router registry is the only list of routers: the CRD and the RBAC agree with it, and
a new router is one module plus one registry entry (shown here with a router defined in
this test and nothing else changed)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlmodel_operator.naming import ModelRef
from mlmodel_operator.reconcile import Inputs, Observed, plan
from mlmodel_operator.routers import REGISTRY, ApiResource, Attachments, Backends, owned
from mlmodel_operator.settings import Settings
from mlmodel_operator.spec import parse_or_error

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[3]


def crd_traffic_schema() -> dict[str, Any]:
    crd = yaml.safe_load((ROOT / "crds" / "mlmodels.mlops.dev.yaml").read_text())
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    traffic: dict[str, Any] = schema["properties"]["spec"]["properties"]["traffic"]
    return traffic


def test_the_crd_offers_exactly_the_registered_routers_each_with_its_settings() -> None:
    traffic = crd_traffic_schema()
    assert traffic["properties"]["router"]["enum"] == list(REGISTRY)
    for name, router in REGISTRY.items():
        if router.api is not None:
            assert name in traffic["properties"], f"traffic.{name} settings missing in the CRD"


def test_the_operator_may_write_what_each_router_writes() -> None:
    rules = next(
        doc["rules"]
        for doc in yaml.safe_load_all((ROOT / "manifests" / "rbac.yaml").read_text())
        if doc and doc["kind"] == "ClusterRole"
    )
    for router in REGISTRY.values():
        if router.api is None:
            continue
        verbs = {
            verb
            for rule in rules
            if router.api.group in rule["apiGroups"] and router.api.plural in rule["resources"]
            for verb in rule["verbs"]
        }
        assert verbs >= {"get", "list", "create", "patch"}, router.name


# --- a router added by a test: one class and one registry entry ----------------------------------


ECHO_ROUTE = ApiResource("echo.example", "v1", "echoroutes", "EchoRoute")


@dataclass(frozen=True)
class EchoSettings:
    host: str


class EchoRouter:
    """A made-up router: one EchoRoute carrying the canary percentage as is."""

    name = "echo"
    api: ApiResource | None = ECHO_ROUTE
    mirrors = False
    splits_by_revision = False

    def parse(self, raw: Mapping[str, Any] | None) -> EchoSettings:
        return EchoSettings(host=str((raw or {}).get("host", "")))

    def attachments(self, settings: EchoSettings, namespace: str) -> Attachments:
        return Attachments(hostnames=(settings.host,))

    def replicas(self, total: int, weight: int) -> tuple[int, int]:
        return total, 1

    def desired(
        self,
        ref: ModelRef,
        settings: EchoSettings,
        *,
        canary_weight: int,
        mirror: int = 0,
        backends: Backends | None = None,
    ) -> list[dict[str, Any]]:
        return [owned(ref, ECHO_ROUTE, {"host": settings.host, "canary": canary_weight})]

    def effective_weight(
        self,
        *,
        applied: Mapping[str, Any] | None,
        stable_ready: int,
        canary_ready: int,
        backends: Backends | None = None,
    ) -> int | None:
        return None if applied is None else int(applied["spec"]["canary"])


def test_a_new_router_is_one_class_and_one_registry_entry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(REGISTRY, "echo", EchoRouter())
    ref = ModelRef(name="iris", namespace="models", uid="uid-1")
    spec = {
        "model": {"uri": "s3://models/iris/v2/model.skops", "version": "v2"},
        "traffic": {"router": "echo", "echo": {"host": "iris.example"}},
        "rollout": {"steps": [{"weight": 30, "pause": {}}, {"weight": 100}]},
    }
    settings = Settings()

    def run(status: Mapping[str, Any], observed: Mapping[str, Observed], **extra: Any) -> Any:
        return plan(
            Inputs(
                ref=ref,
                generation=1,
                spec=parse_or_error(spec),
                status=status,
                observed=observed,
                settings=settings,
                now="2024-05-01T10:00:00Z",
                now_s=1_714_557_600.0,
                **extra,
            )
        )

    def ready(replicas: int) -> Observed:
        status = {"observedGeneration": 1, "readyReplicas": replicas, "updatedReplicas": replicas}
        return Observed(
            {"metadata": {"generation": 1}, "spec": {"replicas": replicas}, "status": status}
        )

    v1_status = {"phase": "Healthy", "stable": {"revision": "r1", "version": "v1"}}
    waiting = run(v1_status, {"r1": ready(1)})
    candidate = waiting.status["canary"]["revision"]
    stepped = run(waiting.status, {"r1": ready(1), candidate: ready(1)})
    [route] = [o for o in stepped.apply if o["kind"] == "EchoRoute"]
    assert route["spec"] == {"host": "iris.example", "canary": 30}
    assert stepped.status["canary"]["weight"] == 30
    carried = run(stepped.status, {"r1": ready(1), candidate: ready(1)}, route=route)
    assert carried.status["canary"]["effectiveWeight"] == 30
    # The administrator's hostname policy applies to it like to any router.
    strict = Settings(allowed_hostnames=("*.internal",))
    settings = strict
    refused = run(stepped.status, {"r1": ready(1), candidate: ready(1)})
    assert "hostname iris.example is not one MLModels may claim" in refused.status["message"]
