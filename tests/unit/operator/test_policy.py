"""policy: what a cluster administrator's flags refuse, before the operator acts."""

from __future__ import annotations

from typing import Any

import pytest

from mlmodel_operator.policy import display_url, url_allowed, violations
from mlmodel_operator.settings import Settings
from mlmodel_operator.spec import parse_spec

pytestmark = pytest.mark.unit

ALLOWED = ("http://prometheus.monitoring:9090", "https://metrics.example/prom", "http://10.1.2.3:*")


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("http://prometheus.monitoring:9090", True),
        ("http://prometheus.monitoring:9090/", True),
        ("HTTP://Prometheus.Monitoring:9090", True),
        ("https://metrics.example/prom/api", True),
        ("https://metrics.example:443/prom", True),
        ("http://10.1.2.3:7777", True),
        ("http://prometheus.monitoring:9091", False),
        ("https://prometheus.monitoring:9090", False),
        ("https://metrics.example/promx", False),
        ("https://metrics.example/", False),
        ("http://prometheus.monitoring:9090.evil.example", False),
        ("http://user:secret@prometheus.monitoring:9090", False),
        ("http://prometheus.monitoring:9090/?x=1", False),
        ("http://169.254.169.254/latest/meta-data", False),
    ],
)
def test_a_url_is_allowed_only_under_an_allowed_entry(url: str, allowed: bool) -> None:
    assert url_allowed(url, ALLOWED) is allowed


def test_no_entry_allows_nothing() -> None:
    assert not url_allowed("http://prometheus.monitoring:9090", ())


def test_a_url_is_shown_without_credentials_or_query() -> None:
    assert display_url("https://u:p@host:8443/a/b?token=x#f") == "https://host:8443/a/b"


def spec(**traffic: Any) -> Any:
    model: dict[str, Any] = {"uri": "s3://m/model.pkl", "format": "sklearn"}
    model["allowUnsafePickle"] = True
    return parse_spec({"model": model, "traffic": traffic} if traffic else {"model": model})


def test_unsafe_pickle_is_refused_when_the_cluster_forbids_it() -> None:
    assert violations(spec(), namespace="ml", prometheus_urls=(), settings=Settings()) == []
    [reason] = violations(
        spec(), namespace="ml", prometheus_urls=(), settings=Settings(forbid_unsafe_pickle=True)
    )
    assert "allowUnsafePickle is forbidden" in reason


def test_a_prometheus_url_outside_the_allow_list_is_refused_without_its_secrets() -> None:
    settings = Settings(prometheus_url="http://prometheus.monitoring:9090")
    assert not violations(
        spec(), namespace="ml", prometheus_urls=[settings.prometheus_url], settings=settings
    )
    [reason] = violations(
        spec(),
        namespace="ml",
        prometheus_urls=["http://me:pw@10.0.0.1:22/x?t=1"],
        settings=settings,
    )
    assert "http://10.0.0.1:22/x is not allowed" in reason
    assert "pw" not in reason


def test_gateways_and_hostnames_outside_the_allow_lists_are_refused() -> None:
    settings = Settings(allowed_gateways=("infra/web",), allowed_hostnames=("*.models.example",))
    ok = spec(
        router="gatewayAPI",
        gatewayAPI={
            "parentRefs": [{"name": "web", "namespace": "infra"}],
            "hostnames": ["iris.models.example"],
        },
    )
    assert violations(ok, namespace="ml", prometheus_urls=(), settings=settings) == []
    bad = spec(
        router="gatewayAPI",
        gatewayAPI={"parentRefs": [{"name": "web"}], "hostnames": ["models.example", "pay.bank"]},
    )
    reasons = violations(bad, namespace="ml", prometheus_urls=(), settings=settings)
    assert any("gateway ml/web" in r for r in reasons)
    assert any("hostname models.example" in r for r in reasons)
    assert any("hostname pay.bank" in r for r in reasons)
    istio = spec(router="istio", istio={"hosts": ["a.models.example"], "gateways": ["mesh"]})
    assert violations(istio, namespace="ml", prometheus_urls=(), settings=settings) == []
    traefik = spec(router="traefik", traefik={"hostnames": ["a.models.example"]})
    assert violations(traefik, namespace="ml", prometheus_urls=(), settings=settings) == []
    # Without hostnames Traefik's route matches every host: more than the list allows.
    every_host = spec(router="traefik", traefik={"entryPoints": ["web"]})
    reasons = violations(every_host, namespace="ml", prometheus_urls=(), settings=settings)
    assert any("hostname * is not" in r for r in reasons), reasons
