"""assess: a revision's health from its Deployment and Pods, as the API server reports them."""

from __future__ import annotations

import json
from typing import Any

import pytest

from mlmodel_operator.health import assess, parse_report

pytestmark = pytest.mark.unit

PARITY_REPORT = {
    "status": "failed",
    "error": "parity",
    "exit_code": 7,
    "message": "the ONNX model predicts differently: vs_original: 200 values outside tolerance",
    "parity": {"passed": False, "rows": 256},
}
OK_REPORT = {
    "status": "ok",
    "error": None,
    "exit_code": 0,
    "schema": {"inputs": ["input:FP32[-1,4]"], "outputs": ["label:INT64[-1]"]},
    "model_sha256": "cd" * 32,
}


def deployment(
    *,
    replicas: int = 2,
    ready: int = 2,
    updated: int = 2,
    generation: int = 1,
    observed: int | None = 1,
    conditions: list[dict[str, str]] | None = None,
) -> dict[str, Any]:
    status: dict[str, Any] = {"readyReplicas": ready, "updatedReplicas": updated}
    if observed is not None:
        status["observedGeneration"] = observed
    if conditions:
        status["conditions"] = conditions
    return {
        "metadata": {"name": "iris-7f3c9a1e2d", "generation": generation},
        "spec": {"replicas": replicas},
        "status": status,
    }


def terminated(exit_code: int, message: str = "", reason: str = "Error") -> dict[str, Any]:
    state: dict[str, Any] = {"exitCode": exit_code, "reason": reason}
    if message:
        state["message"] = message
    return {"terminated": state}


def container(
    name: str,
    *,
    state: dict[str, Any] | None = None,
    last: dict[str, Any] | None = None,
    restarts: int = 0,
    ready: bool = False,
) -> dict[str, Any]:
    return {
        "name": name,
        "state": state or {"running": {"startedAt": "2024-05-01T10:00:00Z"}},
        "lastState": last or {},
        "restartCount": restarts,
        "ready": ready,
    }


def pod(
    init: dict[str, Any] | None = None,
    serve: dict[str, Any] | None = None,
    *,
    deleting: bool = False,
) -> dict[str, Any]:
    converted = container("convert", state=terminated(0, json.dumps(OK_REPORT), "Completed"))
    metadata: dict[str, Any] = {"name": "iris-7f3c9a1e2d-abcde"}
    if deleting:
        metadata["deletionTimestamp"] = "2024-05-01T10:05:00Z"
    return {
        "metadata": metadata,
        "status": {
            "phase": "Running",
            "initContainerStatuses": [init or converted],
            "containerStatuses": [serve or container("serve", ready=True)],
        },
    }


def waiting(reason: str, message: str = "") -> dict[str, Any]:
    return {"waiting": {"reason": reason, **({"message": message} if message else {})}}


def test_a_missing_deployment_does_not_exist_and_is_not_ready() -> None:
    health = assess(None, [])

    assert not health.exists
    assert not health.fully_ready
    assert health.failure is None


def test_a_ready_revision_is_fully_ready_and_shows_its_conversion_report() -> None:
    health = assess(deployment(), [pod(), pod()])

    assert health.exists
    assert (health.desired, health.ready, health.updated) == (2, 2, 2)
    assert health.fully_ready
    assert health.failure is None
    assert health.conversion == OK_REPORT


@pytest.mark.parametrize(
    ("dep", "ready", "updated", "fully_ready"),
    [
        (deployment(ready=1), 1, 2, False),
        (deployment(ready=2, updated=1), 2, 1, False),
        # The controller manager has not seen the latest spec yet: its counts are stale.
        (deployment(generation=2, observed=1), 0, 0, False),
        (deployment(generation=2, observed=None), 0, 0, False),
        (deployment(generation=3, observed=3), 2, 2, True),
    ],
)
def test_replica_counts_count_only_once_the_spec_was_observed(
    dep: dict[str, Any], ready: int, updated: int, fully_ready: bool
) -> None:
    health = assess(dep, [])

    assert (health.ready, health.updated, health.fully_ready) == (ready, updated, fully_ready)


def test_a_deployment_past_its_progress_deadline_says_so() -> None:
    stuck = {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}
    progressing = {"type": "Progressing", "status": "True", "reason": "ReplicaSetUpdated"}

    assert assess(deployment(ready=0, conditions=[stuck]), []).deadline_exceeded
    assert not assess(deployment(ready=0, conditions=[progressing]), []).deadline_exceeded
    assert not assess(deployment(ready=0), []).deadline_exceeded


@pytest.mark.parametrize(
    ("init", "serve", "reason", "message_has"),
    [
        pytest.param(
            container("convert", state=terminated(7, json.dumps(PARITY_REPORT))),
            container("serve", state=waiting("PodInitializing")),
            "ConversionFailed",
            ["conversion failed (exit 7)", "predicts differently"],
            id="init-terminated-with-report",
        ),
        pytest.param(
            container(
                "convert",
                state={"running": {}},
                last=terminated(3, json.dumps({"error": "fetch", "message": "404 Not Found"})),
                restarts=1,
            ),
            container("serve", state=waiting("PodInitializing")),
            "ConversionFailed",
            ["exit 3", "404 Not Found"],
            id="init-restarted-after-failing",
        ),
        pytest.param(
            container(
                "convert",
                state=waiting("CrashLoopBackOff", "back-off 40s restarting failed container"),
                last=terminated(7, json.dumps(PARITY_REPORT)),
                restarts=3,
            ),
            container("serve", state=waiting("PodInitializing")),
            "ConversionFailed",
            ["exit 7", "predicts differently"],
            id="init-crash-looping-keeps-the-report",
        ),
        pytest.param(
            container("convert", state=terminated(137, reason="OOMKilled")),
            container("serve", state=waiting("PodInitializing")),
            "ConversionFailed",
            ["exit 137", "OOMKilled"],
            id="init-oom-killed-without-report",
        ),
        pytest.param(
            # What a real kubelet reported: FallbackToLogsOnError put the log's tail in
            # the message, which ends mid-work; only the reason says why it stopped.
            container(
                "convert",
                state=terminated(
                    137,
                    "mlmodel-runtime convert: reading /models/source/model (942556 bytes)",
                    reason="OOMKilled",
                ),
            ),
            container("serve", state=waiting("PodInitializing")),
            "ConversionFailed",
            ["conversion failed (exit 137, OOMKilled): mlmodel-runtime convert: reading"],
            id="init-oom-killed-with-a-log-tail",
        ),
        pytest.param(
            None,
            container(
                "serve",
                state=waiting("CrashLoopBackOff", "back-off 5m0s restarting failed container"),
                last=terminated(1),
                restarts=5,
            ),
            "CrashLoop",
            ["container serve", "CrashLoopBackOff", "back-off 5m0s"],
            id="serve-crash-loop-back-off",
        ),
        pytest.param(
            None,
            container(
                "serve",
                state=waiting("CrashLoopBackOff", "back-off 20s restarting failed container"),
                last=terminated(
                    2,
                    "usage: mlmodel-runtime serve [-h]\nmlmodel-runtime serve: error: argument "
                    "--max-batch-size: invalid int value: 'lots'\n",
                ),
                restarts=2,
            ),
            "CrashLoop",
            ["CrashLoopBackOff", "last exit code 2 (Error): ", "invalid int value: 'lots'"],
            id="serve-crash-loop-says-its-last-words",
        ),
        pytest.param(
            None,
            container(
                "serve",
                state={"running": {}},
                last=terminated(137, reason="OOMKilled"),
                restarts=3,
            ),
            "CrashLoop",
            ["restarted 3 times", "137", "OOMKilled"],
            id="serve-restarted-three-times",
        ),
        pytest.param(
            container(
                "convert",
                state=waiting("ImagePullBackOff", 'Back-off pulling image "registry/rt:9"'),
            ),
            container("serve", state=waiting("PodInitializing")),
            "ImagePullFailed",
            ["container convert", "ImagePullBackOff", "registry/rt:9"],
            id="init-image-pull-back-off",
        ),
        pytest.param(
            None,
            container("serve", state=waiting("ErrImagePull", "manifest unknown")),
            "ImagePullFailed",
            ["ErrImagePull", "manifest unknown"],
            id="serve-err-image-pull",
        ),
        pytest.param(
            None,
            container("serve", state=waiting("InvalidImageName")),
            "ImagePullFailed",
            ["InvalidImageName"],
            id="invalid-image-name",
        ),
        pytest.param(
            container(
                "convert",
                state=waiting("CreateContainerConfigError", 'secret "s3-credentials" not found'),
            ),
            container("serve", state=waiting("PodInitializing")),
            "ConfigError",
            ["CreateContainerConfigError", 'secret "s3-credentials" not found'],
            id="missing-credentials-secret",
        ),
    ],
)
def test_a_failing_pod_is_reported_with_its_reason_and_message(
    init: dict[str, Any] | None,
    serve: dict[str, Any],
    reason: str,
    message_has: list[str],
) -> None:
    health = assess(deployment(ready=0), [pod(), pod(init, serve)])

    assert health.failure is not None
    assert health.failure.reason == reason
    for text in message_has:
        assert text in health.failure.message
    assert not health.fully_ready


def test_a_failed_conversion_carries_the_whole_report() -> None:
    failing = container("convert", state=terminated(7, json.dumps(PARITY_REPORT) + "\n"))

    health = assess(deployment(ready=0), [pod(failing, container("serve"))])

    assert health.failure is not None
    assert health.failure.report == PARITY_REPORT


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        pytest.param(
            "Traceback (most recent call last):\n  ...\nKeyError: 'coef_'",
            "KeyError: 'coef_'",
            id="log-tail-not-json",
        ),
        pytest.param(
            "fetching s3://models/iris\n" + json.dumps({"message": "access denied"}),
            "access denied",
            id="report-after-log-lines",
        ),
        pytest.param('["not", "an", "object"]', "not", id="json-but-not-an-object"),
    ],
)
def test_a_termination_message_that_is_not_a_report_still_explains(
    message: str, expected: str
) -> None:
    failing = container("convert", state=terminated(1, message))

    health = assess(deployment(ready=0), [pod(failing, container("serve"))])

    assert health.failure is not None
    assert health.failure.reason == "ConversionFailed"
    assert expected in health.failure.message


@pytest.mark.parametrize(
    ("message", "report"),
    [
        (None, {}),
        ("", {}),
        (json.dumps(OK_REPORT), OK_REPORT),
        ("line one\n" + json.dumps(OK_REPORT) + "\n", OK_REPORT),
        ("plain text", {"message": "plain text"}),
        ("x" * 2000, {"message": "x" * 500}),  # a long log tail is cut to its end
    ],
)
def test_parse_report(message: str | None, report: dict[str, Any]) -> None:
    assert parse_report(message) == report


@pytest.mark.parametrize(
    "serve",
    [
        pytest.param(container("serve", state=waiting("ContainerCreating")), id="creating"),
        pytest.param(container("serve", state=waiting("PodInitializing")), id="initializing"),
        pytest.param(container("serve", last=terminated(1), restarts=2), id="two-restarts"),
        pytest.param(
            container("serve", last=terminated(1), restarts=6, ready=True), id="restarted-but-ready"
        ),
        pytest.param(container("serve", restarts=4), id="restarts-without-last-state"),
    ],
)
def test_pods_on_their_way_up_are_not_failures(serve: dict[str, Any]) -> None:
    health = assess(deployment(ready=1), [pod(serve=serve)])

    assert health.failure is None


def test_an_init_container_that_failed_once_then_succeeded_is_not_a_failure() -> None:
    recovered = container(
        "convert",
        state=terminated(0, json.dumps(OK_REPORT), "Completed"),
        last=terminated(3, json.dumps({"message": "timeout"})),
        restarts=1,
    )

    health = assess(deployment(), [pod(recovered)])

    assert health.failure is None
    assert health.conversion == OK_REPORT


def test_pods_being_deleted_are_ignored() -> None:
    crashing = container("serve", state=waiting("CrashLoopBackOff"), last=terminated(1), restarts=9)
    failed_conversion = container("convert", state=terminated(7, json.dumps(PARITY_REPORT)))

    health = assess(
        deployment(),
        [pod(serve=crashing, deleting=True), pod(failed_conversion, deleting=True), pod()],
    )

    assert health.failure is None
    assert health.fully_ready


def test_a_pod_without_status_yet_is_no_failure() -> None:
    health = assess(deployment(ready=0), [{"metadata": {"name": "iris-x"}}])

    assert health.failure is None
    assert health.conversion == {}


# --- fetching the model: its own init container -----------------------------------------------


def fetch_failed(
    retryable: bool, *, restarts: int = 0, crash_looping: bool = False
) -> dict[str, Any]:
    report = {
        "status": "failed",
        "error": "fetch",
        "exit_code": 3,
        "message": "could not fetch https://models.example/iris.skops: HTTP 503",
        "retryable": retryable,
    }
    ended = terminated(3, json.dumps(report))
    if crash_looping:  # the kubelet backs off between attempts
        return container(
            "fetch",
            state=waiting("CrashLoopBackOff", "back-off 40s"),
            last=ended,
            restarts=restarts,
        )
    return container("fetch", state=ended, restarts=restarts)


@pytest.mark.parametrize("crash_looping", [False, True])
def test_a_fetch_that_another_attempt_may_fix_is_retried_not_a_failure(crash_looping: bool) -> None:
    fetching = fetch_failed(True, restarts=4, crash_looping=crash_looping)
    health = assess(deployment(replicas=1, ready=0, updated=1), [pod(init=fetching)])

    assert health.failure is None
    assert not health.fully_ready
    assert health.retrying == (
        "fetching the model failed and is retried: "
        "could not fetch https://models.example/iris.skops: HTTP 503"
    )


def test_a_fetch_that_cannot_succeed_fails_at_once_with_its_reason() -> None:
    health = assess(deployment(replicas=1, ready=0, updated=1), [pod(init=fetch_failed(False))])

    assert health.failure is not None
    assert health.failure.reason == "FetchFailed"
    assert health.failure.message.startswith("fetching the model failed (exit 3): could not")
    assert health.failure.report["retryable"] is False


def test_only_the_convert_containers_report_is_the_conversion_report() -> None:
    fetched = container("fetch", state=terminated(0, '{"status": "ok", "message": "fetched"}'))
    converting = pod()
    converting["status"]["initContainerStatuses"].insert(0, fetched)
    health = assess(deployment(), [converting])

    assert health.conversion == OK_REPORT
