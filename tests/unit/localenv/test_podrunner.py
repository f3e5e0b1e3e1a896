"""How the process runner maps a container's paths to the pod's and the node's directories."""

from __future__ import annotations

from pathlib import Path

import pytest

from localenv.podrunner import rebase_arg

pytestmark = pytest.mark.unit

MOUNTS = [
    {"name": "convert-cache", "mountPath": "/var/cache/mlmodel/convert"},
    {"name": "models", "mountPath": "/models"},
]
POD, NODE = Path("/state/pods/ns_pod_1234"), Path("/state/hostpath/var/cache/mlmodel/convert")


@pytest.mark.parametrize(
    ("arg", "rebased"),
    [
        ("--cache-dir=/var/cache/mlmodel/convert", f"--cache-dir={NODE}"),
        ("--out=/models", f"--out={POD / 'models'}"),
        ("--source=/models/source", f"--source={POD / 'models' / 'source'}"),
        ("--format=skops", "--format=skops"),
        ("--models-elsewhere=/modelsx", "--models-elsewhere=/modelsx"),
    ],
)
def test_a_host_path_volume_is_the_nodes_directory_and_the_rest_the_pods(
    arg: str, rebased: str
) -> None:
    assert rebase_arg(arg, MOUNTS, POD, {"convert-cache": NODE}) == rebased


def test_without_host_paths_every_volume_is_the_pods_own() -> None:
    assert rebase_arg("--cache-dir=/var/cache/mlmodel/convert", MOUNTS, POD) == (
        f"--cache-dir={POD / 'convert-cache'}"
    )
