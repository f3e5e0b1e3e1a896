"""The kubectl plugin: its status view from an MLModel as the API has it, what it prints
of strings the object carries, what it refuses to send to the API, how it writes (with
the resourceVersion it decided on, again after a conflict), how it logs in, and how
`status -w` follows an object across the ends of its watches."""

from __future__ import annotations

import argparse
import json
import re
import unicodedata
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, cast

import pytest
import urllib3
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from kubernetes.config import kube_config

from mlmodel_operator import plugin
from mlmodel_operator.plugin import (
    CONFLICT_ATTEMPTS,
    Expired,
    MLModels,
    PluginError,
    build_parser,
    connect,
    follow,
    main,
    render,
)

pytestmark = pytest.mark.unit

GROUP_VERSION_PLURAL = ("mlops.dev", "v1alpha1")


def test_the_status_view_shows_both_revisions_the_weight_and_each_metric() -> None:
    body = {
        "metadata": {"name": "iris"},
        "status": {
            "phase": "Progressing",
            "stable": {"version": "v1", "revision": "aaa", "readyReplicas": 2, "replicas": 2},
            "canary": {
                "version": "v2",
                "revision": "bbb",
                "readyReplicas": 1,
                "replicas": 1,
                "step": 1,
                "steps": 4,
                "weight": 30,
                "effectiveWeight": 30,
            },
            "analysis": {
                "metrics": [
                    {"name": "error-rate", "stable": 0.0, "canary": 0.0123456, "verdict": "Fail"},
                    {
                        "name": "prediction-divergence",
                        "stable": None,
                        "canary": 0.02,
                        "verdict": "Pass",
                    },
                ]
            },
            "message": "step 2/4: canary at 30%, 4s left in this step",
        },
    }
    view = render(body).splitlines()
    assert view[0] == "iris  phase: Progressing"
    assert view[1] == "  stable   v1 (revision aaa), ready 2/2"
    assert view[2] == "  canary   v2 (revision bbb), ready 1/1, step 2/4"
    assert view[3] == "  weight   [######..............] 30%"
    # Figures are rounded for the eye; a value status does not have shows as "-".
    assert view[4] == "  analysis error-rate: stable 0, canary 0.01235 -> Fail"
    assert view[5] == "  analysis prediction-divergence: stable -, canary 0.02 -> Pass"
    assert view[6] == "  step 2/4: canary at 30%, 4s left in this step"


def test_the_status_view_names_the_hpa_of_an_autoscaled_model() -> None:
    def view(scaling: dict[str, Any]) -> str:
        body = {
            "metadata": {"name": "iris"},
            "spec": {"serving": {"autoscaling": scaling}},
            "status": {"stable": {"version": "v1", "revision": "aaa", "replicas": 5}},
        }
        return render(body).splitlines()[2]

    cpu = {"minReplicas": 2, "maxReplicas": 20, "cpuUtilization": 70}
    assert view(cpu) == "  scaling  HPA iris, 2 to 20 replicas, CPU at 70% of its request"
    rps = {"maxReplicas": 4, "requestsPerSecond": 50}
    assert view(rps) == "  scaling  HPA iris, 1 to 4 replicas, 50 requests/s per pod"


def test_the_status_view_says_whether_the_monitored_stable_drifts() -> None:
    message = "revision aaa: input-drift 0.61 on input[2] > max 0.1 (JSD vs training)"

    def view(monitoring: dict[str, Any]) -> str:
        body = {
            "metadata": {"name": "iris"},
            "status": {"phase": "Healthy", "monitoring": monitoring},
        }
        return render(body).splitlines()[1]

    assert view({"drifting": True, "message": message}) == f"  monitor  DRIFTING: {message}"
    unjudged = {"drifting": None, "message": "revision aaa: not judged"}
    assert view(unjudged) == "  monitor  -: revision aaa: not judged"


def test_the_status_view_draws_sequential_evidence_as_a_bar() -> None:
    body = {
        "metadata": {"name": "iris"},
        "status": {
            "analysis": {
                "metrics": [
                    {
                        "name": "error-rate",
                        "stable": 0.0,
                        "canary": 0.05,
                        "verdict": "Inconclusive",
                        "evidence": 0.42,
                    },
                    {"name": "latency-p99", "verdict": "Pass", "evidence": "lots"},
                ]
            },
        },
    }
    view = render(body).splitlines()
    assert view[1] == (
        "  analysis error-rate: stable 0, canary 0.05 -> Inconclusive"
        "  evidence [####......] 42% to rollback"
    )
    # Not a number (a hand-edited status): no bar rather than a crash.
    assert view[2] == "  analysis latency-p99: stable -, canary - -> Pass"


class FakeCustomObjects:
    """Stands in for the client's CustomObjectsApi: answers each GET with the next of
    `bodies` (the last one again when they run out), records every call, and raises
    the next of `patch_errors` (None: accept) for each PATCH."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.get_error: Exception | None = None
        self.patch_errors: list[Exception | None] = []
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    def get_namespaced_custom_object(self, *path: str) -> dict[str, Any]:
        self.calls.append(("get", path))
        if self.get_error is not None:
            raise self.get_error
        return self.bodies.pop(0) if len(self.bodies) > 1 else self.bodies[0]

    def patch_namespaced_custom_object(self, *args: Any) -> dict[str, Any]:
        self.calls.append(("patch", args))
        if self.patch_errors and (error := self.patch_errors.pop(0)) is not None:
            raise error
        return dict(args[-1])


@pytest.fixture
def api() -> FakeCustomObjects:
    return FakeCustomObjects()


def run(api: FakeCustomObjects, *argv: str) -> int:
    """`kubectl mlmodel <argv>` against the fake API, logged in as `connect` would be
    (the namespace `-n` names, else default)."""

    def fake_connect(args: argparse.Namespace) -> MLModels:
        namespace = args.namespace or "default"
        api_objects = cast(client.CustomObjectsApi, api)
        return MLModels(api_objects, namespace, server="https://api.example:6443")

    return main(list(argv), connect=fake_connect)


def in_rollout(resource_version: str = "7", **canary: Any) -> dict[str, Any]:
    """An MLModel as the API has it, with a rollout in progress."""
    return {
        "metadata": {"name": "iris", "annotations": {}, "resourceVersion": resource_version},
        "status": {
            "phase": "Paused",
            "canary": {"revision": "bbb", "attempt": 1, "step": 0, "steps": 3, **canary},
        },
    }


def conflict() -> ApiException:
    status = {"kind": "Status", "reason": "Conflict", "message": "the object has been modified"}
    return ApiException(status=409, reason="Conflict", body=json.dumps(status))


HOSTILE = "v2\x1b]0;owned\x07\x1b[2J\x9b31m\r\n  stable   v9\u202e"


def test_the_status_view_escapes_terminal_control_sequences_taken_from_the_object() -> None:
    body = {
        "metadata": {"name": "iris"},
        "status": {
            "phase": "Progressing\x1b[8m",
            "stable": {"version": "modèle ✓ 🚀", "revision": "aaa\x00", "replicas": 1},
            "canary": {"version": HOSTILE, "revision": "bbb", "step": 0, "steps": "3\x1b[A"},
            "analysis": {
                "metrics": [{"name": "error\x1brate", "canary": "0.1\x07", "verdict": "Pass\x9d"}]
            },
            "message": "rolled back\x1b[1A\x1b[2K  phase: Healthy",
        },
    }
    view = render(body)
    lines = view.splitlines()
    # Nothing from the object can move the cursor, retitle the window, reverse the text or
    # forge a line of the view: every control character shows as an escape instead.
    assert not [c for c in view if c != "\n" and unicodedata.category(c) == "Cc"]
    assert "\u202e" not in view
    assert len(lines) == 6
    assert lines[0] == "iris  phase: Progressing\\x1b[8m"
    # Ordinary Unicode is kept as it is.
    assert lines[1] == "  stable   modèle ✓ 🚀 (revision aaa\\x00), ready 0/1"
    assert lines[2].startswith(
        "  canary   v2\\x1b]0;owned\\x07\\x1b[2J\\x9b31m\\r\\n  stable   v9\\u202e (revision bbb)"
    )
    assert lines[2].endswith("step 1/3\\x1b[A")
    assert lines[4] == "  analysis error\\x1brate: stable -, canary 0.1\\x07 -> Pass\\x9d"
    assert lines[5] == "  rolled back\\x1b[1A\\x1b[2K  phase: Healthy"


def test_an_action_prints_the_revision_from_status_escaped(
    api: FakeCustomObjects, capsys: pytest.CaptureFixture[str]
) -> None:
    api.bodies = [in_rollout(revision="bbb\x1b]52;c;ZWNobyBvd25lZA==\x07")]
    assert run(api, "abort", "iris") == 0
    assert capsys.readouterr().out == "aborting revision bbb\\x1b]52;c;ZWNobyBvd25lZA==\\x07\n"


def test_an_error_from_the_api_server_is_printed_escaped_line_by_line(
    api: FakeCustomObjects, capsys: pytest.CaptureFixture[str]
) -> None:
    status = {"kind": "Status", "reason": "Invalid", "message": '"x\x1b[2J" is invalid\nline\x07'}
    api.get_error = ApiException(status=422, reason="Unprocessable", body=json.dumps(status))
    assert run(api, "status", "iris") == 1
    err = capsys.readouterr().err
    assert err == 'error: from the API server (Invalid: "x\\x1b[2J" is invalid\nline\\x07)\n'


def test_an_api_server_out_of_reach_is_named(
    api: FakeCustomObjects, capsys: pytest.CaptureFixture[str]
) -> None:
    api.get_error = urllib3.exceptions.MaxRetryError(None, "/apis", "connection refused")  # type: ignore[arg-type]
    assert run(api, "promote", "iris") == 1
    assert "cannot reach the API server at https://api.example:6443" in capsys.readouterr().err


def test_the_name_and_namespace_reach_the_api_as_the_objects_and_the_write_carries_what_was_read(
    api: FakeCustomObjects,
) -> None:
    api.bodies = [in_rollout(resource_version="41")]
    assert run(api, "promote", "iris.v2", "-n", "models") == 0
    [(verb_get, get), (verb_patch, patch)] = api.calls
    assert (verb_get, verb_patch) == ("get", "patch")
    assert get == (*GROUP_VERSION_PLURAL, "models", "mlmodels", "iris.v2")
    assert patch[:5] == (*GROUP_VERSION_PLURAL, "models", "mlmodels", "iris.v2")
    # A JSON merge patch of the annotation alone, conditional on the version decided on.
    assert patch[5] == {
        "metadata": {"resourceVersion": "41", "annotations": {"mlops.dev/promote": "bbb/1/0"}}
    }


def test_a_change_between_reading_and_writing_is_read_again_and_decided_again(
    api: FakeCustomObjects, capsys: pytest.CaptureFixture[str]
) -> None:
    """The operator moved the canary on to step 2 while the person typed `promote`: the
    write conditional on the old version is refused, and the promote names step 2."""
    api.bodies = [in_rollout("41", step=0), in_rollout("42", step=1)]
    api.patch_errors = [conflict(), None]
    assert run(api, "promote", "iris") == 0
    patches = [args[5]["metadata"] for kind, args in api.calls if kind == "patch"]
    assert patches == [
        {"resourceVersion": "41", "annotations": {"mlops.dev/promote": "bbb/1/0"}},
        {"resourceVersion": "42", "annotations": {"mlops.dev/promote": "bbb/1/1"}},
    ]
    assert "past step 2/3" in capsys.readouterr().out


def test_an_object_that_keeps_changing_gives_up_after_a_few_attempts(
    api: FakeCustomObjects, capsys: pytest.CaptureFixture[str]
) -> None:
    api.bodies = [in_rollout()]
    api.patch_errors = [conflict()] * (CONFLICT_ATTEMPTS + 1)
    assert run(api, "pause", "iris") == 1
    assert sum(kind == "patch" for kind, _ in api.calls) == CONFLICT_ATTEMPTS
    assert "changed every time it was read" in capsys.readouterr().err


def test_resume_removes_the_pause_annotation(api: FakeCustomObjects) -> None:
    body = in_rollout()
    body["metadata"]["annotations"] = {"mlops.dev/pause": "bbb/1"}
    api.bodies = [body]
    assert run(api, "resume", "iris") == 0
    [patch] = [args[5] for kind, args in api.calls if kind == "patch"]
    assert patch["metadata"]["annotations"] == {"mlops.dev/pause": None}  # null deletes


# ---- logging in ---------------------------------------------------------------------


def kubeconfig(path: Path) -> Path:
    """Two clusters and three contexts: the current one with a namespace, one without,
    one whose namespace differs."""

    def cluster(name: str, port: int) -> dict[str, Any]:
        return {"name": name, "cluster": {"server": f"https://127.0.0.1:{port}"}}

    def context(name: str, cluster: str, **namespace: str) -> dict[str, Any]:
        return {"name": name, "context": {"cluster": cluster, "user": "me", **namespace}}

    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [cluster("prod", 6443), cluster("staging", 7443)],
                "users": [{"name": "me", "user": {"token": "t0ken"}}],
                "contexts": [
                    context("prod", "prod", namespace="models"),
                    context("staging", "staging"),
                    context("team", "staging", namespace="fraud"),
                ],
                "current-context": "prod",
            }
        )
    )
    return path


def login(*argv: str) -> MLModels:
    args = build_parser().parse_args(["status", "iris", *argv])
    return cast(MLModels, connect(args))


def test_the_context_picks_the_cluster_and_its_namespace_and_n_overrides_it(
    tmp_path: Path,
) -> None:
    config_file = str(kubeconfig(tmp_path / "config"))
    current = login("--kubeconfig", config_file)
    assert (current.server, current.namespace) == ("https://127.0.0.1:6443", "models")
    staging = login("--kubeconfig", config_file, "--context", "staging")
    assert (staging.server, staging.namespace) == ("https://127.0.0.1:7443", "default")
    team = login("--kubeconfig", config_file, "--context", "team", "-n", "other")
    assert (team.server, team.namespace) == ("https://127.0.0.1:7443", "other")


def test_without_kubeconfig_flag_the_default_kubeconfig_is_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The client's default: $KUBECONFIG (read when it is imported), else ~/.kube/config."""
    default = str(kubeconfig(tmp_path / "k"))
    monkeypatch.setattr(kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", default)
    assert login().namespace == "models"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--kubeconfig", "/nonexistent/config"], "kubeconfig:"),
        (["--context", "nowhere"], "kubeconfig:"),
    ],
    ids=["no-file", "no-context"],
)
def test_a_kubeconfig_that_cannot_log_in_is_an_error_not_a_traceback(
    argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if "--kubeconfig" not in argv:
        argv = ["--kubeconfig", str(kubeconfig(tmp_path / "config")), *argv]
    assert main(["status", "iris", *argv]) == 1
    assert message in capsys.readouterr().err


# ---- status -w --------------------------------------------------------------------------


class FakeWatchedModels:
    """A ModelApi whose lists and watches are scripted: `lists` answer list_named in
    turn; `watches` are the events of each watch in turn, where an exception is raised
    in place (a 410), and a watch ends after its events (as the server's timeout ends
    one)."""

    namespace = "default"

    def __init__(
        self,
        lists: list[tuple[dict[str, Any] | None, str]],
        watches: list[list[tuple[str, dict[str, Any]] | Exception]],
    ) -> None:
        self.lists = lists
        self.watches = watches
        self.watched_from: list[str] = []

    def get(self, name: str) -> dict[str, Any]:
        raise AssertionError("status -w lists and watches; it never GETs")

    def merge_patch(self, name: str, patch: Mapping[str, Any]) -> dict[str, Any]:
        raise AssertionError("status -w never writes")

    def list_named(self, name: str) -> tuple[dict[str, Any] | None, str]:
        return self.lists.pop(0)

    def watch(self, name: str, resource_version: str) -> Iterator[tuple[str, dict[str, Any]]]:
        self.watched_from.append(resource_version)
        if not self.watches:
            raise Stop
        for event in self.watches.pop(0):
            if isinstance(event, Exception):
                raise event
            yield event


class Stop(Exception):
    """Ends a test's `follow`, which otherwise follows for ever."""


def model(version: str, phase: str) -> dict[str, Any]:
    return {"metadata": {"name": "iris", "resourceVersion": version}, "status": {"phase": phase}}


def test_status_watch_follows_through_watch_ends_and_an_expired_version(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(plugin, "REOPEN_PAUSE_S", 0.0)
    bookmark = {"metadata": {"resourceVersion": "15"}}
    models = FakeWatchedModels(
        lists=[(model("10", "Progressing"), "10"), (model("30", "Healthy"), "30")],
        watches=[
            [("MODIFIED", model("12", "Paused")), ("BOOKMARK", bookmark)],  # the server ends it
            [("MODIFIED", model("20", "Progressing")), Expired("410: too old resource version")],
            [("DELETED", model("31", "Healthy"))],
        ],
    )
    seen: list[str] = []

    def phase(body: dict[str, Any] | None) -> None:
        seen.append(body["status"]["phase"] if body else "gone")

    with pytest.raises(Stop):
        follow(models, "iris", phase)
    assert seen == ["Progressing", "Paused", "Progressing", "Healthy", "gone"]
    # Each watch resumes from the last version seen (a bookmark's too), and after the
    # 410 from a fresh list's.
    assert models.watched_from == ["10", "15", "30", "31"]


def test_status_watch_of_a_model_that_does_not_exist_is_an_error() -> None:
    models = FakeWatchedModels(lists=[(None, "10")], watches=[])
    with pytest.raises(PluginError, match=re.escape('mlmodels.mlops.dev "iris" not found')):
        follow(models, "iris", lambda body: None)


@pytest.mark.parametrize("interval", ["0", "-1", "0.01", "nan", "inf", "soon"])
def test_status_watch_refuses_an_interval_that_would_hammer_the_api_server(
    interval: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(["status", "iris", "-w", "--interval", interval])
    assert exited.value.code == 2
    assert "argument --interval" in capsys.readouterr().err


def test_status_watch_accepts_an_interval_of_half_a_second_or_more() -> None:
    assert build_parser().parse_args(["status", "iris", "-w", "--interval", "0.5"]).interval == 0.5
    assert build_parser().parse_args(["status", "iris", "-w"]).interval == 1.0


@pytest.mark.parametrize(
    "argv",
    [
        ["status", "--", "--raw=/api/v1/secrets"],
        ["promote", "--", "-oyaml"],
        ["abort", "Iris"],
        ["pause", "iris model"],
        ["resume", ""],
        ["status", "a" * 254],
        ["status", "iris", "--namespace=-A"],
        ["status", "iris", "-n", "Models"],
    ],
    ids=["flag", "short-flag", "uppercase", "space", "empty", "too-long", "ns-flag", "ns-upper"],
)
def test_a_name_that_is_not_a_kubernetes_object_name_is_refused_before_any_request(
    argv: list[str], api: FakeCustomObjects, capsys: pytest.CaptureFixture[str]
) -> None:
    api.bodies = [in_rollout()]
    with pytest.raises(SystemExit) as exited:
        run(api, *argv)
    assert exited.value.code == 2
    assert "not a valid" in capsys.readouterr().err
    assert api.calls == []


# ---- history and undo ----------------------------------------------------------------


def with_history(resource_version: str = "9", **metadata: Any) -> dict[str, Any]:
    """An MLModel whose v2 was promoted over v1, whose v3 was then rolled back."""
    v1 = {"uri": "s3://m/v1.skops", "format": "skops", "version": "v1"}
    v2 = {"uri": "s3://m/v2.skops", "format": "skops", "version": "v2", "sha256": "a" * 64}
    v3 = {"uri": "s3://m/v3.onnx", "format": "onnx", "version": "v3"}

    def entry(revision: str, version: str, outcome: str, model: dict[str, Any]) -> dict[str, Any]:
        return {
            "revision": revision,
            "version": version,
            "attempt": 1,
            "outcome": outcome,
            "startedAt": "2026-11-30T10:00:00Z",
            "finishedAt": "2026-11-30T10:05:00Z",
            "reason": "error-rate 0.2 > max 0.05" if outcome == "RolledBack" else "",
            "model": model,
        }

    return {
        "metadata": {"name": "iris", "resourceVersion": resource_version, **metadata},
        "spec": {"model": v3},
        "status": {
            "revision": "ccc",
            "stable": {"revision": "bbb"},
            "history": [
                entry("aaa", "v1", "Deployed", v1),
                entry("bbb", "v2", "Promoted", v2),
                entry("ccc", "v3", "RolledBack", v3),
            ],
        },
    }


def test_history_lists_each_rollout_and_marks_the_serving_stable(
    api: FakeCustomObjects, capsys: pytest.CaptureFixture[str]
) -> None:
    api.bodies = [with_history()]
    assert run(api, "history", "iris") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == [
        "REVISION", "VERSION", "ATTEMPT", "OUTCOME", "STARTED", "FINISHED", "REASON"
    ]  # fmt: skip
    assert lines[1].split()[:4] == ["aaa", "v1", "1", "Deployed"]
    assert lines[2].split()[:5] == ["*", "bbb", "v2", "1", "Promoted"]
    assert lines[3].endswith("error-rate 0.2 > max 0.05")
    assert [kind for kind, _ in api.calls] == ["get"]  # reading only


def test_undo_writes_back_the_newest_model_that_served_other_than_the_specs(
    api: FakeCustomObjects, capsys: pytest.CaptureFixture[str]
) -> None:
    api.bodies = [with_history("9")]
    assert run(api, "undo", "iris") == 0
    [(_, patch)] = [call for call in api.calls if call[0] == "patch"]
    # v2's source, fields v3 had and v2 had not removed, conditional on what was read.
    assert patch[5] == {
        "metadata": {"resourceVersion": "9"},
        "spec": {
            "model": {
                "uri": "s3://m/v2.skops",
                "format": "skops",
                "version": "v2",
                "sha256": "a" * 64,
            }
        },
    }
    assert "set back to revision bbb (v2)" in capsys.readouterr().out


def test_undo_to_a_revision_removes_what_that_model_did_not_set(api: FakeCustomObjects) -> None:
    body = with_history()
    body["spec"]["model"] = {**body["status"]["history"][1]["model"]}  # v2's, with sha256
    api.bodies = [body]
    assert run(api, "undo", "iris", "--to-revision", "aaa") == 0
    [(_, patch)] = [call for call in api.calls if call[0] == "patch"]
    model = patch[5]["spec"]["model"]
    assert model == {"uri": "s3://m/v1.skops", "format": "skops", "version": "v1", "sha256": None}


def test_undo_refuses_what_it_cannot_do(
    api: FakeCustomObjects, capsys: pytest.CaptureFixture[str]
) -> None:
    api.bodies = [with_history()]
    assert run(api, "undo", "iris", "--to-revision", "fff") == 1
    assert "revision fff is not in status.history" in capsys.readouterr().err
    assert run(api, "undo", "iris", "--to-revision", "ccc") == 1
    assert "already is revision ccc's" in capsys.readouterr().err
    first_only = with_history()
    first_only["status"]["history"] = first_only["status"]["history"][:1]
    first_only["status"]["revision"] = "aaa"
    api.bodies = [first_only]
    assert run(api, "undo", "iris") == 1
    assert "no earlier revision that served" in capsys.readouterr().err
    assert not any(kind == "patch" for kind, _ in api.calls)


def test_undo_of_a_model_a_gitops_controller_applies_is_refused_unless_forced(
    api: FakeCustomObjects, capsys: pytest.CaptureFixture[str]
) -> None:
    api.bodies = [with_history(labels={"kustomize.toolkit.fluxcd.io/name": "models"})]
    assert run(api, "undo", "iris") == 1
    assert "revert the model in Git instead" in capsys.readouterr().err
    assert run(api, "undo", "iris", "--force") == 0
    assert sum(kind == "patch" for kind, _ in api.calls) == 1


def test_the_status_view_shows_a_shadow_steps_mirrored_share() -> None:
    body = {
        "metadata": {"name": "iris"},
        "status": {
            "phase": "Paused",
            "canary": {"version": "v2", "revision": "bbb", "step": 0, "steps": 3,
                       "weight": 0, "mirror": 20, "effectiveWeight": 0},
        },
    }  # fmt: skip
    view = render(body).splitlines()
    assert "  weight   [....................] 0%" in view
    assert "  mirror   [####................] 20% of requests copied (answers discarded)" in view
