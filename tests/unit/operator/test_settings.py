"""parse_settings: flags and MLMODEL_OPERATOR_* variables, checked once; errors name the setting."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mlmodel_operator.settings import (
    DEFAULT_RESOURCES,
    DEFAULT_RUNTIME_IMAGE,
    SettingsError,
    parse_settings,
)

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The operator's own variables in the developer's shell must not leak into the tests."""
    for name in list(os.environ):
        if name.startswith("MLMODEL_OPERATOR_") or name == "POD_NAME":
            monkeypatch.delenv(name)


def test_defaults() -> None:
    settings = parse_settings([])

    assert settings.runtime_image == DEFAULT_RUNTIME_IMAGE
    assert settings.image_pull_policy == "IfNotPresent"
    assert settings.default_resources == DEFAULT_RESOURCES
    assert settings.namespaces == ()  # every namespace
    assert settings.log_format == "text"
    assert (settings.resync_seconds, settings.workers) == (30.0, 4)
    assert (settings.lease_namespace, settings.lease_name) == (
        "mlmodel-system",
        "mlmodel-operator-leader",
    )
    assert settings.lease_duration_seconds == 15.0
    assert settings.health_address == "0.0.0.0:8080"
    assert settings.leader_election is True
    assert settings.identity  # hostname-pid when no pod name is known
    assert settings.convert_cache_host_path == ""  # every pod converts


@pytest.mark.parametrize(
    "image",
    [
        "ghcr.io/mlops-dev/mlmodel-runtime:0.1.0",
        "registry.example/mlmodel-runtime:test",
        "localhost:5000/mlmodel-runtime",
        "mlmodel-runtime@sha256:" + "a" * 64,
        "mlmodel-runtime",
    ],
)
def test_image_references_are_accepted(image: str) -> None:
    assert parse_settings([f"--runtime-image={image}"]).runtime_image == image


@pytest.mark.parametrize(
    "image", ["NOT AN IMAGE", "", "Registry/runtime:1", "runtime:", "runtime:1 ", "-runtime"]
)
def test_a_bad_image_is_refused_naming_the_flag(image: str) -> None:
    with pytest.raises(SettingsError, match="--runtime-image"):
        parse_settings([f"--runtime-image={image}"])


def test_default_resources_are_json() -> None:
    settings = parse_settings(['--default-resources={"requests": {"cpu": "1"}}'])

    assert settings.default_resources == {"requests": {"cpu": "1"}}


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("cpu=1", "--default-resources is not JSON"),
        ("{'requests': {}}", "--default-resources is not JSON"),
        ('[{"requests": {}}]', "must be a JSON object with limits and/or requests"),
        ('{"cpu": "1"}', "must be a JSON object with limits and/or requests"),
        ('"1Gi"', "must be a JSON object with limits and/or requests"),
    ],
)
def test_bad_default_resources_are_refused(value: str, message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        parse_settings([f"--default-resources={value}"])


@pytest.mark.parametrize(
    ("value", "namespaces"),
    [
        ("", ()),
        ("models", ("models",)),
        ("models,fraud", ("models", "fraud")),
        (" models , fraud ,, ", ("models", "fraud")),
        (",", ()),
    ],
)
def test_namespaces_are_a_comma_separated_list(value: str, namespaces: tuple[str, ...]) -> None:
    assert parse_settings([f"--namespaces={value}"]).namespaces == namespaces


@pytest.mark.parametrize(
    "address", ["8080", ":8080", "0.0.0.0:", "0.0.0.0:http", "localhost:80a", "0.0.0.0:-1"]
)
def test_an_invalid_health_address_is_refused(address: str) -> None:
    with pytest.raises(SettingsError, match="--health-address"):
        parse_settings([f"--health-address={address}"])


@pytest.mark.parametrize("address", ["127.0.0.1:0", "0.0.0.0:8080", "localhost:1"])
def test_a_host_and_port_is_a_health_address(address: str) -> None:
    assert parse_settings([f"--health-address={address}"]).health_address == address


def test_a_health_port_out_of_range_is_refused() -> None:
    with pytest.raises(SettingsError, match="--health-address"):
        parse_settings(["--health-address=0.0.0.0:99999"])


@pytest.mark.parametrize(
    "flag",
    [
        "--workers=0",
        "--resync-seconds=0",
        "--resync-seconds=-1",
        "--lease-duration-seconds=1",
        "--coalesce-seconds=-1",
        "--coalesce-seconds=11",
    ],
)
def test_out_of_range_numbers_are_refused(flag: str) -> None:
    with pytest.raises(SettingsError, match=flag.split("=")[0]):
        parse_settings([flag])


def test_every_setting_is_read_from_its_environment_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in {
        "RUNTIME_IMAGE": "registry.example/runtime:2",
        "IMAGE_PULL_POLICY": "Never",
        "DEFAULT_RESOURCES": '{"limits": {"memory": "512Mi"}}',
        "NAMESPACES": "models,fraud",
        "LOG_FORMAT": "json",
        "RESYNC_SECONDS": "12.5",
        "WORKERS": "8",
        "COALESCE_SECONDS": "1.5",
        "LEASE_NAMESPACE": "ops",
        "LEASE_NAME": "mlm-leader",
        "LEASE_DURATION_SECONDS": "20",
        "IDENTITY": "operator-0",
        "HEALTH_ADDRESS": "127.0.0.1:9000",
        "LEADER_ELECTION": "false",
        "CONVERT_CACHE_HOST_PATH": "/var/cache/mlmodel/convert",
    }.items():
        monkeypatch.setenv(f"MLMODEL_OPERATOR_{name}", value)

    settings = parse_settings([])

    assert settings.runtime_image == "registry.example/runtime:2"
    assert settings.image_pull_policy == "Never"
    assert settings.default_resources == {"limits": {"memory": "512Mi"}}
    assert settings.namespaces == ("models", "fraud")
    assert settings.log_format == "json"
    assert (settings.resync_seconds, settings.workers) == (12.5, 8)
    assert settings.coalesce_seconds == 1.5
    assert (settings.lease_namespace, settings.lease_name) == ("ops", "mlm-leader")
    assert settings.lease_duration_seconds == 20.0
    assert settings.identity == "operator-0"
    assert settings.health_address == "127.0.0.1:9000"
    assert settings.leader_election is False
    assert settings.convert_cache_host_path == "/var/cache/mlmodel/convert"


def test_flags_win_over_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLMODEL_OPERATOR_RUNTIME_IMAGE", "registry.example/runtime:env")
    monkeypatch.setenv("MLMODEL_OPERATOR_NAMESPACES", "from-env")

    settings = parse_settings(["--runtime-image=registry.example/runtime:flag", "--namespaces=a"])

    assert settings.runtime_image == "registry.example/runtime:flag"
    assert settings.namespaces == ("a",)


def test_a_bad_image_from_the_environment_is_refused_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLMODEL_OPERATOR_RUNTIME_IMAGE", "NOT AN IMAGE")

    with pytest.raises(SettingsError, match="--runtime-image"):
        parse_settings([])


def test_the_pod_name_is_the_default_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POD_NAME", "mlmodel-operator-7d9f-abcde")

    assert parse_settings([]).identity == "mlmodel-operator-7d9f-abcde"


@pytest.mark.parametrize(("value", "enabled"), [("true", True), ("false", False), ("FALSE", False)])
def test_leader_election_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, value: str, enabled: bool
) -> None:
    monkeypatch.setenv("MLMODEL_OPERATOR_LEADER_ELECTION", value)

    assert parse_settings([]).leader_election is enabled
    assert parse_settings(["--no-leader-election"]).leader_election is False


@pytest.mark.parametrize(
    ("name", "value"), [("IMAGE_PULL_POLICY", "Sometimes"), ("LOG_FORMAT", "xml")]
)
def test_an_invalid_choice_from_the_environment_is_refused(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(f"MLMODEL_OPERATOR_{name}", value)

    with pytest.raises((SettingsError, SystemExit)):
        parse_settings([])


@pytest.mark.parametrize("name", ["WORKERS", "RESYNC_SECONDS", "LEASE_DURATION_SECONDS"])
def test_a_non_numeric_number_from_the_environment_is_refused(
    monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    monkeypatch.setenv(f"MLMODEL_OPERATOR_{name}", "many")

    with pytest.raises((SettingsError, SystemExit)):
        parse_settings([])


@pytest.mark.parametrize(
    "argv", [["--image-pull-policy=Sometimes"], ["--log-format=xml"], ["--workers=many"]]
)
def test_an_invalid_flag_value_is_a_usage_error(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        parse_settings(argv)

    assert exit_info.value.code == 2


def test_the_operator_exits_2_naming_the_bad_flag_before_connecting() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLMODEL_OPERATOR_")}
    env["KUBECONFIG"] = "/nonexistent/kubeconfig"  # nothing to connect to, were it to try

    result = subprocess.run(
        [sys.executable, "-m", "mlmodel_operator.cli", "--runtime-image", "NOT AN IMAGE"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env=env,
        check=False,
    )

    assert result.returncode == 2
    assert "--runtime-image" in result.stderr
    assert "'NOT AN IMAGE' is not an image reference" in result.stderr
    assert "Traceback" not in result.stderr


def test_allowed_webhook_urls_are_a_list_of_http_url_prefixes_and_none_by_default() -> None:
    assert parse_settings([]).allowed_webhook_urls == ()
    settings = parse_settings(["--allowed-webhook-urls=https://hooks.example/ml, http://ci:*"])
    assert settings.allowed_webhook_urls == ("https://hooks.example/ml", "http://ci:*")
    with pytest.raises(SettingsError, match="--allowed-webhook-urls entry 'ftp://hooks'"):
        parse_settings(["--allowed-webhook-urls=ftp://hooks"])


@pytest.mark.parametrize(
    ("value", "kept"), [("/var/cache/mlmodel", "/var/cache/mlmodel"), ("/srv/cache/", "/srv/cache")]
)
def test_a_conversion_cache_is_an_absolute_node_directory(value: str, kept: str) -> None:
    assert parse_settings([f"--convert-cache-host-path={value}"]).convert_cache_host_path == kept


@pytest.mark.parametrize("value", ["relative/dir", "/", "//", "/var/../etc", "cache"])
def test_a_conversion_cache_elsewhere_is_refused_naming_the_flag(value: str) -> None:
    with pytest.raises(SettingsError, match="--convert-cache-host-path"):
        parse_settings([f"--convert-cache-host-path={value}"])
