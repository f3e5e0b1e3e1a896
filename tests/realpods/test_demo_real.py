"""`make demo DEMO_ARGS=--pods=real`, run as people run it: in a network sandbox of its
own, a real node running the images built from the Dockerfiles, the operator installed
with `kubectl apply -k manifests/`, the quickstart's model store, and the same story as
the process demo: v2 promoted step by step through the gateway, v3 rolled back by its
predictions, no failed request."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.helpers.demo import check_demo_story, run_make_demo

pytestmark = [pytest.mark.realpods, pytest.mark.timeout(1000)]


def test_make_demo_on_real_containers_promotes_v2_and_rolls_v3_back(tmp_path: Path) -> None:
    state = tmp_path / "demo"
    try:
        output = run_make_demo(state, "--pods=real")
    finally:
        # The node's state (containerd's unpacked images, over a GB) is under /tmp when
        # the test's directory was too long for its sockets (localenv/realnode.py).
        node = state / "realnode"
        if node.is_symlink():
            shutil.rmtree(node.resolve(), ignore_errors=True)
    check_demo_story(output, state)
    # The real path, as its narration says: images imported, the operator installed
    # from manifests/ and leading, the quickstart's store in the restricted namespace.
    assert "importing the operator and runtime images" in output, output
    assert "$ kubectl apply -k manifests/" in output, output
    assert " leads, " in output, output
    assert "2 pods ready" in output, output
    assert "Pod Security `restricted`" in output, output
    assert (state / "realnode").is_symlink() or (state / "realnode" / "kubelet.yaml").exists()
    # The start-up and rollout timings, for the CI log (docs/benchmarks.md quotes them).
    print("\n" + "\n".join(line for line in output.splitlines() if line.startswith("[")))
