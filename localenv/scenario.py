"""What a scenario (a test, a benchmark, the demo) uses to look at what runs: objects
as the API server has them, the pods of a revision, an inference request to one of
them, and a bounded wait.

Everything goes through the control plane's own kubectl, as the admin, or straight
to a pod IP on loopback; nothing here knows how the environment was started.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import httpx

from localenv.controlplane.cluster import ControlPlane

SERVE_PORT = 8080  # the runtime's port in every pod; each pod has its own IP


def get_json(plane: ControlPlane, *args: str) -> Any:
    """`kubectl get <args> -o json`, parsed."""
    return json.loads(plane.kubectl("get", *args, "-o", "json").stdout)


def wait_for(
    probe: Callable[[], Any], *, timeout: float = 60, what: str, interval: float = 0.25
) -> Any:
    """Call `probe` every `interval` s until it returns something true, and return that;
    after `timeout` s fail with `what` and the last value (an AssertionError, so a test
    reports it as a failed expectation)."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}; last: {last!r}")


def pods_of(
    plane: ControlPlane, namespace: str, revision: str, *, name: str = "iris"
) -> list[dict[str, Any]]:
    """The pods of one revision of MLModel `name` (of every revision when empty)."""
    selector = f"mlops.dev/model={name}" + (f",mlops.dev/revision={revision}" if revision else "")
    items: list[dict[str, Any]] = get_json(plane, "pods", "-n", namespace, "-l", selector)["items"]
    return items


def infer(address: str, body: dict[str, Any], *, name: str = "iris") -> dict[str, Any]:
    """One Open Inference Protocol v2 request to the pod at `address`; its answer, which
    must be a 200."""
    response = httpx.post(
        f"http://{address}:{SERVE_PORT}/v2/models/{name}/infer",
        json=body,
        timeout=5,
        trust_env=False,
    )
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def labels_of(answer: dict[str, Any]) -> list[int]:
    """The predicted classes in an inference answer (its `label` output)."""
    [label] = [o for o in answer["outputs"] if o["name"] == "label"]
    return [int(v) for v in label["data"]]
