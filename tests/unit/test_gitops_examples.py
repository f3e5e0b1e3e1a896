"""docs/gitops.md shows the GitOps health checks exactly as examples/gitops/ has them (the
files tests/cluster/test_gitops_health.py runs through Argo CD's and Flux's evaluators),
and the checks and the page's table name the phases the operator has, no others."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlmodel_operator.status import Phase

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "gitops.md"
GITOPS = ROOT / "examples" / "gitops"
ARGOCD_HEALTH = GITOPS / "argocd-health.lua"
ARGOCD_CM = GITOPS / "argocd-cm.yaml"
FLUX_KUSTOMIZATION = GITOPS / "flux-kustomization.yaml"
HEALTH_KEY = "resource.customizations.health.mlops.dev_MLModel"
PHASES = {str(phase) for phase in Phase}


def fenced_blocks(markdown: str) -> list[str]:
    return re.findall(r"^```[a-z]*\n(.*?)^```$", markdown, flags=re.MULTILINE | re.DOTALL)


def flux_expressions() -> dict[str, Any]:
    [entry] = yaml.safe_load(FLUX_KUSTOMIZATION.read_text())["spec"]["healthCheckExprs"]
    return dict(entry)


def test_the_argocd_cm_example_carries_the_lua_script_unchanged() -> None:
    data = yaml.safe_load(ARGOCD_CM.read_text())["data"]
    assert data == {HEALTH_KEY: ARGOCD_HEALTH.read_text()}


def test_docs_gitops_md_shows_the_example_files_as_they_are_and_no_other_copy() -> None:
    blocks = fenced_blocks(PAGE.read_text())
    for example in (ARGOCD_CM, FLUX_KUSTOMIZATION):
        assert example.read_text() in blocks, (
            f"docs/gitops.md does not show {example.relative_to(ROOT)} as it is: copy the "
            "file into its code block"
        )
    shown = [b for b in blocks if HEALTH_KEY in b or "healthCheckExprs" in b]
    assert sorted(shown) == sorted([ARGOCD_CM.read_text(), FLUX_KUSTOMIZATION.read_text()])


def test_the_flux_expressions_apply_to_the_mlmodel_api_the_crd_serves() -> None:
    crd = yaml.safe_load((ROOT / "crds" / "mlmodels.mlops.dev.yaml").read_text())
    [version] = [v["name"] for v in crd["spec"]["versions"] if v["served"]]
    entry = flux_expressions()
    assert entry["apiVersion"] == f"{crd['spec']['group']}/{version}"
    assert entry["kind"] == crd["spec"]["names"]["kind"]


def test_the_checks_name_only_phases_the_operator_has_and_each_at_most_once() -> None:
    lua_phases = re.findall(r'phase == "(\w+)"', ARGOCD_HEALTH.read_text())
    assert set(lua_phases) <= PHASES
    assert len(lua_phases) == len(set(lua_phases))
    entry = flux_expressions()
    # Flux stops at the first true one of inProgress, failed, current: a phase in two
    # would only ever read as the first.
    named = [re.findall(r"'(\w+)'", entry[field]) for field in ("inProgress", "failed", "current")]
    every = [phase for phases in named for phase in phases]
    assert set(every) <= PHASES
    assert len(every) == len(set(every))


def test_the_table_of_docs_gitops_md_says_how_every_phase_reads() -> None:
    section = PAGE.read_text().split("## How each phase looks", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    in_table = {phase for row in rows for phase in re.findall(r"`(\w+)`", row.split("|")[1])}
    # Pending is what `kubectl mlmodel status` shows before the operator writes a phase:
    # the table's "no status yet" row.
    assert in_table | {"Pending"} == PHASES
    assert "no status yet" in section
