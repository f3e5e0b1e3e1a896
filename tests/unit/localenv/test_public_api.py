"""A scenario needs only what `localenv` exports: the worked example in docs/e2e.md
compiles and imports nothing from the package's modules."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import localenv

pytestmark = pytest.mark.unit

E2E_DOC = Path(__file__).resolve().parents[3] / "docs" / "e2e.md"


def scenario_example() -> str:
    [code] = re.findall(r"^```python\n(.*?)^```", E2E_DOC.read_text(), re.M | re.S)
    return str(code)


def test_every_exported_name_exists() -> None:
    assert sorted(localenv.__all__) == sorted(set(localenv.__all__))
    for name in localenv.__all__:
        assert getattr(localenv, name) is not None


def test_the_documented_scenario_compiles_and_uses_the_public_api() -> None:
    tree = ast.parse(scenario_example())
    imported = {
        (node.module, alias.name)
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
    }
    assert {name for module, name in imported if module == "localenv"} <= set(localenv.__all__)
    assert not {m for m, _ in imported if m and m.startswith("localenv.")}, "past the API"
    compile(tree, str(E2E_DOC), "exec")
