"""The ASGI app in-process around a fake session (readiness while loading and draining,
what is counted, unknown paths), and settings validation; no processes."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import threading
from pathlib import Path

import httpx
import pytest

from mlmodel_runtime.serve.app import ServeApp
from mlmodel_runtime.serve.config import ServeConfig, config_from_args, configure_parser
from tests.helpers.inprocess import FakeSession, config, fake_metadata, running, until_ready

pytestmark = pytest.mark.unit

ONE_ROW = {"inputs": [{"name": "X", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]}]}


def test_liveness_answers_while_the_model_loads_and_readiness_once_it_is_loaded(
    tmp_path: Path,
) -> None:
    loaded = threading.Event()

    def load_slowly() -> FakeSession:
        loaded.wait(10)
        return FakeSession()

    app = ServeApp(config(tmp_path), metadata=fake_metadata(), load_session=load_slowly)

    async def main() -> tuple[dict[str, httpx.Response], dict[str, httpx.Response]]:
        async with running(app, wait_ready=False) as client:
            paths = [
                "/v2/health/live",
                "/v2/health/ready",
                "/v2/models/tiny/ready",
                "/v2/models/tiny",
            ]
            loading = {path: await client.get(path) for path in paths}
            loading["infer"] = await client.post("/v2/models/tiny/infer", json=ONE_ROW)
            loading["metrics"] = await client.get("/metrics")
            loaded.set()
            await until_ready(client)
            ready = {path: await client.get(path) for path in paths}
            ready["infer"] = await client.post("/v2/models/tiny/infer", json=ONE_ROW)
            return loading, ready

    loading, ready = asyncio.run(main())
    assert loading["/v2/health/live"].status_code == 200
    for what in ("/v2/health/ready", "/v2/models/tiny/ready", "/v2/models/tiny", "infer"):
        assert loading[what].status_code == 503, what
    assert loading["infer"].headers["retry-after"] == "1"
    assert "not ready" in loading["infer"].json()["error"]
    # Only the inference request counts; the probes and metadata do not.
    assert 'mlmodel_requests_total{code="503",model="tiny",version="v1"} 1.0' in (
        loading["metrics"].text
    )
    assert all(response.status_code == 200 for response in ready.values()), ready
    assert ready["infer"].json()["outputs"][0]["data"] == [2, 4, 6, 8]


def test_draining_turns_readiness_off_while_inference_goes_on_asking_clients_to_close(
    tmp_path: Path,
) -> None:
    app = ServeApp(config(tmp_path), metadata=fake_metadata(), load_session=FakeSession)

    async def main() -> dict[str, httpx.Response]:
        async with running(app) as client:
            app.begin_drain()
            return {
                "ready": await client.get("/v2/health/ready"),
                "model_ready": await client.get("/v2/models/tiny/versions/v1/ready"),
                "metadata": await client.get("/v2/models/tiny"),
                "infer": await client.post("/v2/models/tiny/infer", json=ONE_ROW),
            }

    answers = asyncio.run(main())
    assert answers["ready"].status_code == 503
    assert answers["model_ready"].json() == {"name": "tiny", "ready": False}
    assert answers["metadata"].status_code == 200
    assert answers["infer"].status_code == 200
    assert answers["infer"].headers["connection"] == "close"


def test_unknown_paths_and_wrong_methods_are_answered_and_not_counted(tmp_path: Path) -> None:
    app = ServeApp(config(tmp_path), metadata=fake_metadata(), load_session=FakeSession)

    async def main() -> tuple[httpx.Response, httpx.Response, httpx.Response]:
        async with running(app) as client:
            unknown = await client.post("/v2/models/rose/infer", json=ONE_ROW)
            wrong_method = await client.get("/v1/models/tiny:predict")
            return unknown, wrong_method, await client.get("/metrics")

    unknown, wrong_method, metrics = asyncio.run(main())
    assert unknown.status_code == 404
    assert "'rose'" in unknown.json()["error"]
    assert wrong_method.status_code == 405
    assert "takes POST" in wrong_method.json()["error"]
    assert "mlmodel_requests_total{" not in metrics.text


def test_flags_and_environment(tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    environ = {
        "MLMODEL_MAX_BATCH_SIZE": "8",
        "MLMODEL_REVISION": "r9",
        "MLMODEL_SHUTDOWN_DELAY_S": "5",
        "MLMODEL_MAX_INFLIGHT_BYTES": "300000000",
        "MLMODEL_HEADER_TIMEOUT_S": "2.5",
    }
    configure_parser(parser, environ=environ)
    args = parser.parse_args(
        ["--model-dir", str(tmp_path), "--name", "iris", "--port", "9000", "--max-connections", "9"]
    )
    config = config_from_args(args)
    assert config.max_batch_size == 8
    assert config.revision == "r9"
    assert config.port == 9000
    assert config.shutdown_delay_s == 5.0
    assert config.max_inflight_bytes == 300_000_000
    assert config.header_timeout_s == 2.5
    assert config.max_connections == 9
    assert ServeConfig.from_json(config.to_json()) == config


def test_every_setting_is_a_flag() -> None:
    parser = argparse.ArgumentParser()
    configure_parser(parser, environ={})
    args = parser.parse_args(["--model-dir", ".", "--name", "iris"])
    assert set(vars(args)) == {field.name for field in dataclasses.fields(ServeConfig)}


def test_bad_environment_value_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    parser = argparse.ArgumentParser()
    configure_parser(parser, environ={"MLMODEL_PORT": "eighty"})
    with pytest.raises(SystemExit) as caught:
        parser.parse_args(["--model-dir", str(tmp_path), "--name", "iris"])
    assert caught.value.code == 2
    assert "--port" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("field", "value", "word"),
    [
        ("workers", 0, "--workers"),
        ("max_batch_size", 0, "--max-batch-size"),
        ("request_timeout_s", 0.0, "--request-timeout-s"),
        ("name", "", "--name"),
        ("port", 70000, "--port"),
        ("max_json_body_bytes", 0, "--max-json-body-bytes"),
        ("max_request_elements", 0, "--max-request-elements"),
        ("max_concurrent_requests", 0, "--max-concurrent-requests"),
        ("max_queued_requests", -1, "--max-queued-requests"),
        ("max_connections", 0, "--max-connections"),
        ("max_header_bytes", 0, "--max-header-bytes"),
        ("header_timeout_s", 0.0, "--header-timeout-s"),
        ("idle_timeout_s", 0.0, "--idle-timeout-s"),
        ("shutdown_delay_s", -1.0, "--shutdown-delay-s"),
        # One largest JSON body (40 x 2 MiB) must fit the budget, or it could never run.
        ("max_inflight_bytes", 10_000_000, "--max-inflight-bytes"),
    ],
)
def test_invalid_settings_are_refused(field: str, value: object, word: str) -> None:
    settings: dict[str, object] = {"model_dir": Path("."), "name": "iris", field: value}
    with pytest.raises(ValueError, match=word):
        ServeConfig(**settings)  # type: ignore[arg-type]
