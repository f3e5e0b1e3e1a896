"""The kubectl plugin: its status view from an MLModel as the API has it, what it prints
of strings the object carries, and what it refuses to pass to kubectl."""

from __future__ import annotations

import json
import subprocess
import unicodedata
from collections.abc import Callable
from typing import Any

import pytest

from mlmodel_operator.plugin import build_parser, main, render

pytestmark = pytest.mark.unit


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


class FakeKubectl:
    """Stands in for `subprocess.run` of kubectl: records each argv, answers `get` with
    `body` as JSON and fails with `stderr` when given one."""

    def __init__(self, body: dict[str, Any], stderr: str = "") -> None:
        self.body = body
        self.stderr = stderr
        self.calls: list[list[str]] = []

    def __call__(self, argv: list[str], **_: Any) -> subprocess.CompletedProcess[str]:
        self.calls.append(list(argv))
        if self.stderr:
            return subprocess.CompletedProcess(argv, 1, "", self.stderr)
        return subprocess.CompletedProcess(argv, 0, json.dumps(self.body), "")


@pytest.fixture
def fake_kubectl(monkeypatch: pytest.MonkeyPatch) -> Callable[..., FakeKubectl]:
    def install(body: dict[str, Any], stderr: str = "") -> FakeKubectl:
        fake = FakeKubectl(body, stderr)
        monkeypatch.setenv("KUBECTL", "kubectl")
        monkeypatch.setattr(subprocess, "run", fake)
        return fake

    return install


def in_rollout(**canary: Any) -> dict[str, Any]:
    """An MLModel as the API has it, with a rollout in progress."""
    return {
        "metadata": {"name": "iris", "annotations": {}},
        "status": {
            "phase": "Paused",
            "canary": {"revision": "bbb", "attempt": 1, "step": 0, "steps": 3, **canary},
        },
    }


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
    fake_kubectl: Callable[..., FakeKubectl], capsys: pytest.CaptureFixture[str]
) -> None:
    fake_kubectl(in_rollout(revision="bbb\x1b]52;c;ZWNobyBvd25lZA==\x07"))
    assert main(["abort", "iris"]) == 0
    assert capsys.readouterr().out == "aborting revision bbb\\x1b]52;c;ZWNobyBvd25lZA==\\x07\n"


def test_an_error_from_kubectl_is_printed_escaped_line_by_line(
    fake_kubectl: Callable[..., FakeKubectl], capsys: pytest.CaptureFixture[str]
) -> None:
    fake_kubectl({}, stderr='Error from server: "x\x1b[2J" is invalid\nsecond line\x07\n')
    assert main(["status", "iris"]) == 1
    err = capsys.readouterr().err
    assert err == 'error: Error from server: "x\\x1b[2J" is invalid\nsecond line\\x07\n'


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
def test_a_name_that_is_not_a_kubernetes_object_name_is_refused_before_kubectl_runs(
    argv: list[str],
    fake_kubectl: Callable[..., FakeKubectl],
    capsys: pytest.CaptureFixture[str],
) -> None:
    fake = fake_kubectl(in_rollout())
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    assert "not a valid" in capsys.readouterr().err
    assert fake.calls == []


def test_kubectl_is_given_the_name_after_a_double_dash(
    fake_kubectl: Callable[..., FakeKubectl],
) -> None:
    fake = fake_kubectl(in_rollout())
    assert main(["promote", "iris.v2", "-n", "models"]) == 0
    get, annotate = fake.calls
    assert get[1:] == ["--namespace=models", "get", "mlmodel", "-o", "json", "--", "iris.v2"]
    assert annotate[1:] == [
        "--namespace=models",
        "annotate",
        "mlmodel",
        "--overwrite",
        "--",
        "iris.v2",
        "mlops.dev/promote=bbb/1/0",
    ]
