"""Health of one revision, judged from its Deployment and Pods as the API reports them.

Pure. Catches what a Deployment's own status hides: an init container whose
fetch or conversion failed (with the report it wrote to its termination message), a
crash loop, an image that cannot be pulled, a config error. A fetch that failed for a
reason another attempt can fix (its report says `retryable`: a network error, a 5xx)
is not a failure: the kubelet runs the init container again with a backoff, and the
revision is given until its progress deadline; status says that it is retrying.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

MAX_LAST_WORDS = 300  # characters of a crashed container's last log line kept in status
# Waiting reasons that will not fix themselves.
_STUCK_WAITING = {
    "CrashLoopBackOff": "CrashLoop",
    "ImagePullBackOff": "ImagePullFailed",
    "ErrImagePull": "ImagePullFailed",
    "InvalidImageName": "ImagePullFailed",
    "CreateContainerConfigError": "ConfigError",
    "CreateContainerError": "ConfigError",
}
CRASH_RESTARTS = 3


@dataclass(frozen=True)
class Failure:
    reason: str  # ConversionFailed | CrashLoop | ImagePullFailed | ConfigError | ...
    message: str
    report: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RevisionHealth:
    exists: bool
    desired: int
    ready: int
    updated: int
    failure: Failure | None = None
    # The conversion report of a pod whose init container succeeded.
    conversion: Mapping[str, Any] = field(default_factory=dict)
    deadline_exceeded: bool = False
    retrying: str = ""  # why pods are not ready yet but may still become so, or ""

    @property
    def fully_ready(self) -> bool:
        return self.exists and self.ready >= self.desired and self.updated >= self.desired


def parse_report(message: str | None) -> dict[str, Any]:
    """The JSON report `mlmodel-runtime convert` writes to its termination message."""
    if not message:
        return {}
    try:
        report = json.loads(message.strip().splitlines()[-1])
    except (json.JSONDecodeError, IndexError):
        return {"message": message.strip()[-500:]}
    return report if isinstance(report, dict) else {"message": str(report)}


def _terminated(status: Mapping[str, Any]) -> Mapping[str, Any] | None:
    state = status.get("state") or {}
    last = status.get("lastState") or {}
    return state.get("terminated") or last.get("terminated")


FETCH, CONVERT = "fetch", "convert"  # the init containers (desired.pod_template)


def _retryable_fetch(status: Mapping[str, Any]) -> str:
    """Why the fetch container failed, if another attempt may succeed; else ''."""
    if status.get("name") != FETCH:
        return ""
    terminated = _terminated(status)
    if not terminated or terminated.get("exitCode", 0) == 0:
        return ""
    report = parse_report(terminated.get("message"))
    if report.get("retryable") is not True:
        return ""
    detail = report.get("message") or terminated.get("reason") or "failed"
    return f"fetching the model failed and is retried: {detail}"


def _init_failure(pod: Mapping[str, Any]) -> Failure | None:
    for status in (pod.get("status") or {}).get("initContainerStatuses") or ():
        terminated = _terminated(status)
        if not terminated or terminated.get("exitCode", 0) == 0 or _retryable_fetch(status):
            continue
        report = parse_report(terminated.get("message"))
        ended = _exit(terminated)
        if status.get("name") == FETCH:
            text = report.get("message") or "the fetch failed"
            return Failure(
                reason="FetchFailed",
                message=f"fetching the model failed ({ended}): {text}",
                report=report,
            )
        text = report.get("message") or "the init container failed"
        return Failure(
            reason="ConversionFailed",
            message=f"conversion failed ({ended}): {text}",
            report=report,
        )
    return None


def _exit(terminated: Mapping[str, Any]) -> str:
    """`exit 137, OOMKilled`: the code, and the kubelet's reason when it says more than
    `Error`. An OOM kill leaves no report, and the log tail that FallbackToLogsOnError
    puts in its place ends mid-work: without the reason a person would not know that
    the memory limit, not the model, is at fault."""
    reason = str(terminated.get("reason") or "")
    told = f", {reason}" if reason not in ("", "Error", "Completed") else ""
    return f"exit {terminated.get('exitCode')}{told}"


def _container_failure(pod: Mapping[str, Any]) -> Failure | None:
    status = pod.get("status") or {}
    for container in [
        *(status.get("initContainerStatuses") or ()),
        *(status.get("containerStatuses") or ()),
    ]:
        if _retryable_fetch(container):
            continue  # backing off between fetch attempts is not a crash loop
        waiting = (container.get("state") or {}).get("waiting") or {}
        reason = waiting.get("reason", "")
        if reason in _STUCK_WAITING:
            detail = waiting.get("message") or reason
            ended = _last_exit(container)
            return Failure(
                reason=_STUCK_WAITING[reason],
                message=f"container {container.get('name')}: {reason}: {detail}"
                + (f"; {ended}" if ended else ""),
            )
        restarts = int(container.get("restartCount", 0))
        last = (container.get("lastState") or {}).get("terminated")
        if restarts >= CRASH_RESTARTS and last and not container.get("ready"):
            return Failure(
                reason="CrashLoop",
                message=f"container {container.get('name')} restarted {restarts} times, "
                + _last_exit(container),
            )
    return None


def _last_exit(container: Mapping[str, Any]) -> str:
    """How the container's previous run ended, in its own last words when it left any:
    the kubelet's termination message, which with `FallbackToLogsOnError` is the tail
    of its log (a crash loop's "back-off" alone does not tell a person what to fix)."""
    last = (container.get("lastState") or {}).get("terminated")
    if not last:
        return ""
    lines = [line.strip() for line in str(last.get("message") or "").splitlines()]
    words = [line for line in lines if line]
    said = f": {words[-1][:MAX_LAST_WORDS]}" if words else ""
    return f"last exit code {last.get('exitCode')} ({last.get('reason', 'Error')}){said}"


def _conversion_report(pod: Mapping[str, Any]) -> dict[str, Any]:
    for status in (pod.get("status") or {}).get("initContainerStatuses") or ():
        if status.get("name") != CONVERT:
            continue
        terminated = (status.get("state") or {}).get("terminated") or {}
        if terminated.get("exitCode") == 0 and terminated.get("message"):
            return parse_report(terminated["message"])
    return {}


def _retrying(pod: Mapping[str, Any]) -> str:
    for status in (pod.get("status") or {}).get("initContainerStatuses") or ():
        if why := _retryable_fetch(status):
            return why
    return ""


def assess(
    deployment: Mapping[str, Any] | None, pods: Sequence[Mapping[str, Any]]
) -> RevisionHealth:
    """Judge a revision. Pods being deleted are ignored."""
    if deployment is None:
        return RevisionHealth(exists=False, desired=0, ready=0, updated=0)
    spec = deployment.get("spec") or {}
    status = deployment.get("status") or {}
    live = [p for p in pods if not (p.get("metadata") or {}).get("deletionTimestamp")]
    failure = None
    conversion: dict[str, Any] = {}
    retrying = ""
    for pod in live:
        failure = failure or _init_failure(pod) or _container_failure(pod)
        conversion = conversion or _conversion_report(pod)
        retrying = retrying or _retrying(pod)
    deadline = any(
        c.get("type") == "Progressing"
        and c.get("status") == "False"
        and c.get("reason") == "ProgressDeadlineExceeded"
        for c in status.get("conditions") or ()
    )
    generation_seen = status.get("observedGeneration", 0) >= (deployment.get("metadata") or {}).get(
        "generation", 0
    )
    return RevisionHealth(
        exists=True,
        desired=int(spec.get("replicas", 1)),
        ready=int(status.get("readyReplicas", 0)) if generation_seen else 0,
        updated=int(status.get("updatedReplicas", 0)) if generation_seen else 0,
        failure=failure,
        conversion=conversion,
        deadline_exceeded=deadline,
        retrying=retrying,
    )
