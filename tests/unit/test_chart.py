"""The Helm chart is made from manifests/ and crds/ (`python -m localenv.chart`): the
committed chart is what the generator writes, its defaults are the manifests', every
operator setting it can pass is one the operator reads, and every value is documented.
tests/cluster/test_helm.py renders it with Helm."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
import yaml

from localenv import chart
from mlmodel_operator.settings import Settings, parse_settings

pytestmark = pytest.mark.unit

HELM_DOC = chart.ROOT / "docs" / "helm.md"
VALUES: dict[str, Any] = yaml.safe_load((chart.CHART / "values.yaml").read_text())

# What each operator variable the chart can set turns into: a text the chart can render
# for the value (a list joined with commas, a map as JSON, true as "true"), the setting
# it is for, and what that setting becomes.
RENDERED_SETTINGS: dict[str, tuple[str, str, Any]] = {
    "NAMESPACES": ("models,team-a", "namespaces", ("models", "team-a")),
    "IMAGE_PULL_POLICY": ("Always", "image_pull_policy", "Always"),
    "DEFAULT_RESOURCES": (
        '{"limits":{"memory":"2Gi"}}',
        "default_resources",
        {"limits": {"memory": "2Gi"}},
    ),
    "RESYNC_SECONDS": ("12.5", "resync_seconds", 12.5),
    "WORKERS": ("8", "workers", 8),
    "COALESCE_SECONDS": ("1.5", "coalesce_seconds", 1.5),
    "LEASE_NAME": ("other-leader", "lease_name", "other-leader"),
    "LEASE_DURATION_SECONDS": ("30", "lease_duration_seconds", 30.0),
    "METRICS_TIMEOUT_SECONDS": ("2", "metrics_timeout_seconds", 2.0),
    "METRICS_CONCURRENCY": ("4", "metrics_concurrency", 4),
    "PROMETHEUS_URL": ("http://prometheus.monitoring:9090", "prometheus_url", None),
    "ALLOWED_PROMETHEUS_URLS": (
        "http://a.monitoring:9090,http://b.monitoring:*",
        "allowed_prometheus_urls",
        ("http://a.monitoring:9090", "http://b.monitoring:*"),
    ),
    "ALLOWED_WEBHOOK_URLS": (
        "https://hooks.example.com/mlmodels,http://gate.ci:*",
        "allowed_webhook_urls",
        ("https://hooks.example.com/mlmodels", "http://gate.ci:*"),
    ),
    "FORBID_UNSAFE_PICKLE": ("true", "forbid_unsafe_pickle", True),
    "ALLOWED_GATEWAYS": ("gateways/web,infra/edge", "allowed_gateways", None),
    "ALLOWED_HOSTNAMES": ("*.models.example.com", "allowed_hostnames", ("*.models.example.com",)),
    "CONVERT_CACHE_HOST_PATH": (
        "/var/cache/mlmodel",
        "convert_cache_host_path",
        "/var/cache/mlmodel",
    ),
    "LEADER_ELECTION": ("false", "leader_election", False),
}


def test_the_committed_chart_is_what_the_generator_writes_from_manifests_and_crds() -> None:
    rendered = chart.render()
    for path, text in rendered.items():
        assert path.exists(), f"{path} is missing: run `python -m localenv.chart`"
        assert path.read_text() == text, f"{path} is stale: run `python -m localenv.chart`"
    left = chart.generated_on_disk() - set(rendered)
    assert not left, f"generated from sources that are gone: {left}; run `python -m localenv.chart`"


def test_the_chart_installs_the_crd_as_crds_has_it_and_templates_every_manifest() -> None:
    rendered = chart.render()
    crds = {
        "crds/mlmodels.mlops.dev.yaml",
        "crds/mlmodelanalysistemplates.mlops.dev.yaml",
        "crds/clustermlmodelanalysistemplates.mlops.dev.yaml",
    }
    for name in crds:
        assert rendered[chart.CHART / name].endswith((chart.ROOT / name).read_text())
    templates = {p.relative_to(chart.CHART).as_posix() for p in rendered} - crds
    policies = {f"templates/policies/{p.name}" for p in chart.POLICIES.glob("*.yaml")}
    policies.discard("templates/policies/kustomization.yaml")
    assert templates == {
        "templates/namespace.yaml",
        "templates/rbac.yaml",
        "templates/operator.yaml",
        "templates/podmonitor.yaml",
        *policies,
    }


def test_a_default_that_differs_from_the_manifests_is_refused() -> None:
    assert chart.check_defaults() == []
    changed = {**VALUES, "replicas": 3, "image": {**VALUES["image"], "tag": "0.2.0"}}
    problems = chart.check_defaults(changed)
    assert any(p.startswith("replicas:") for p in problems), problems
    assert any(p.startswith("image:") for p in problems), problems
    assert any(p.startswith("Chart.yaml appVersion:") for p in problems), problems
    with_setting = {**VALUES, "settings": {**VALUES["settings"], "workers": 8}}
    assert chart.check_defaults(with_setting) == [
        "settings.workers: set by default, not in the manifests"
    ]


def test_every_variable_the_chart_can_set_changes_the_operator_setting_it_is_for(
    clean_environment: pytest.MonkeyPatch,
) -> None:
    operator_yaml = (chart.CHART / "templates" / "operator.yaml").read_text()
    variables = set(re.findall(r"name: MLMODEL_OPERATOR_(\w+)\n\s+value:", operator_yaml))
    assert variables == set(RENDERED_SETTINGS) | {"RUNTIME_IMAGE", "LOG_FORMAT"}
    assert {s.variable for s in chart.SETTINGS} | {"LEADER_ELECTION"} == set(RENDERED_SETTINGS)
    default = parse_settings([])
    for variable, (text, attribute, expected) in RENDERED_SETTINGS.items():
        clean_environment.setenv(f"MLMODEL_OPERATOR_{variable}", text)
        settings: Settings = parse_settings([])
        clean_environment.delenv(f"MLMODEL_OPERATOR_{variable}")
        got = getattr(settings, attribute)
        assert got != getattr(default, attribute), variable
        if expected is not None:
            assert got == expected, variable


def _documented_paths(values: Mapping[str, Any], prefix: str = "") -> Iterator[str]:
    for key, value in values.items():
        path = f"{prefix}{key}"
        # resources is a Kubernetes type, documented as a whole.
        if isinstance(value, dict) and value and key != "resources":
            yield from _documented_paths(value, f"{path}.")
        else:
            yield path


def _commented_paths(lines: list[str]) -> Iterator[str]:
    """The dotted path of every key of values.yaml whose line follows a comment."""
    stack: list[tuple[int, str]] = []
    for number, line in enumerate(lines):
        match = re.match(r"( *)(\w+):", line)
        if not match:
            continue
        indent = len(match.group(1))
        stack = [(i, k) for i, k in stack if i < indent] + [(indent, match.group(2))]
        if number and lines[number - 1].strip().startswith("#"):
            yield ".".join(k for _, k in stack)


def test_every_value_has_a_comment_in_values_yaml_and_a_row_in_docs_helm_md() -> None:
    commented = set(_commented_paths((chart.CHART / "values.yaml").read_text().splitlines()))
    doc = HELM_DOC.read_text()
    for path in _documented_paths(VALUES):
        assert path in commented, f"values.yaml has no comment above {path}"
        assert f"| `{path}` |" in doc, f"docs/helm.md has no row for {path}"


def test_the_readme_install_section_links_the_chart() -> None:
    readme = (chart.ROOT / "README.md").read_text()
    install = readme.split("## Install on a cluster", 1)[1].split("\n## ", 1)[0]
    assert "docs/helm.md" in install
