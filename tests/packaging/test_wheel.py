"""The distribution the images install holds every package of the repository.

The Dockerfiles `pip install` the project; a package missing from the wheel is a
container that cannot start (an explicit list of the two top-level packages once left
every sub-package out). Built by pip with the venv's setuptools (no build isolation: the
tests run in the network sandbox, where no build backend can be fetched).
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.runtime

ROOT = Path(__file__).resolve().parents[2]


def packages_in_tree() -> set[str]:
    found = set()
    for top in ("operator", "runtime"):
        for init in (ROOT / top).rglob("__init__.py"):
            found.add(init.parent.relative_to(ROOT / top).as_posix())
    return found


def test_the_wheel_holds_every_package_and_its_type_marker(tmp_path: Path) -> None:
    built = subprocess.run(
        [
            *(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation"),
            *("-v", "-w", str(tmp_path), str(ROOT)),
        ],
        check=True,
        timeout=600,
        capture_output=True,
        text=True,
    )
    # Sub-packages that setuptools includes only as data, with a warning that it will stop.
    assert "absent from the `packages` configuration" not in built.stdout + built.stderr
    [wheel] = tmp_path.glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    packaged = {n.rsplit("/", 1)[0] for n in names if n.endswith("/__init__.py")}
    assert packaged == packages_in_tree()
    assert {"mlmodel_operator/py.typed", "mlmodel_runtime/py.typed"} <= set(names)
