"""The README's commands are the ones that exist and that CI runs, and the kind
quickstart is built from the same Dockerfiles and manifests as everything else."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
MAKEFILE = (ROOT / "Makefile").read_text()
CI = (ROOT / ".ci" / "run").read_text()
KIND_SCRIPT = (ROOT / "examples" / "kind" / "demo.sh").read_text()


def section(heading: str) -> str:
    match = re.search(rf"^## {re.escape(heading)}\n(.*?)(?=^## )", README, re.M | re.S)
    assert match, f"README has no '## {heading}' section"
    return match.group(1)


def commands(text: str) -> list[str]:
    """Every line of every fenced code block."""
    blocks = re.findall(r"^```[a-z]*\n(.*?)^```", text, re.M | re.S)
    return [line.strip() for block in blocks for line in block.splitlines() if line.strip()]


def make_targets() -> set[str]:
    return set(re.findall(r"^([a-z][a-z-]*):", MAKEFILE, re.M))


def test_the_two_commands_are_make_demo_and_make_test() -> None:
    found = [c for c in commands(section("The two commands")) if c.startswith("make ")]
    assert found == ["make demo", "make test"]
    assert {"demo", "test"} <= make_targets()


def test_ci_runs_the_readme_test_command_and_nothing_in_its_place() -> None:
    ci_commands = [line.strip() for line in CI.splitlines() if line.strip().startswith("make")]
    assert ci_commands == ["make test"]


def test_every_make_command_in_the_readme_exists() -> None:
    for command in commands(README):
        if command.startswith("make "):
            target = command.split()[1]
            assert target in make_targets(), (
                f"README runs `{command}`; the Makefile has no {target}"
            )


def test_make_kind_demo_runs_the_script() -> None:
    assert "kind-demo" in make_targets()
    assert "examples/kind/demo.sh" in MAKEFILE
    assert "make kind-demo" in commands(section("On a kind cluster"))


def test_the_kind_script_builds_the_images_the_manifests_run() -> None:
    operator = yaml.safe_load((ROOT / "manifests" / "operator.yaml").read_text())
    [container] = operator["spec"]["template"]["spec"]["containers"]
    runtime_image = next(
        e["value"] for e in container["env"] if e["name"] == "MLMODEL_OPERATOR_RUNTIME_IMAGE"
    )
    assert f"OPERATOR_IMAGE={container['image']}" in KIND_SCRIPT
    assert f"RUNTIME_IMAGE={runtime_image}" in KIND_SCRIPT
    assert "-f operator/Dockerfile" in KIND_SCRIPT
    assert "-f runtime/Dockerfile" in KIND_SCRIPT
    assert "kubectl apply -k manifests/" in KIND_SCRIPT
    # Every file the script applies exists, and its containers run the runtime image.
    applied = re.findall(r"kubectl apply -f (examples/\S+)", KIND_SCRIPT)
    assert applied, KIND_SCRIPT
    for path in applied:
        for document in yaml.safe_load_all((ROOT / path).read_text()):
            spec = (document.get("spec") or {}).get("template", {}).get("spec", {})
            for c in [*spec.get("initContainers", ()), *spec.get("containers", ())]:
                assert c["image"] == runtime_image, (path, c["name"])
