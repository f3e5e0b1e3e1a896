"""The ASGI app before its model is loaded, and settings validation; no processes."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
from pathlib import Path

import httpx
import pytest

from mlmodel_runtime.modeldir import ModelMetadata, TensorSpec, write_metadata
from mlmodel_runtime.serve.app import ServeApp
from mlmodel_runtime.serve.config import ServeConfig, config_from_args, configure_parser

pytestmark = pytest.mark.unit


def _config(tmp_path: Path) -> ServeConfig:
    write_metadata(
        tmp_path,
        ModelMetadata(
            inputs=(TensorSpec("X", "FP32", (-1, 4)),),
            outputs=(TensorSpec("label", "INT64", (-1,)),),
            task="classification",
            classes=(0, 1),
            label_output="label",
        ),
    )
    return ServeConfig(model_dir=tmp_path, name="iris", version="v1")


def test_not_ready_until_loaded(tmp_path: Path) -> None:
    # Without the ASGI lifespan the model is never loaded: the app must say so.
    app = ServeApp(_config(tmp_path))

    async def main() -> dict[str, httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
            return {
                "live": await client.get("/v2/health/live"),
                "ready": await client.get("/v2/health/ready"),
                "model_ready": await client.get("/v2/models/iris/ready"),
                "infer": await client.post("/v2/models/iris/infer", content=b"{}"),
                "metrics": await client.get("/metrics"),
            }

    answers = asyncio.run(main())
    assert answers["live"].status_code == 200
    assert answers["ready"].status_code == 503
    assert answers["model_ready"].status_code == 503
    assert answers["infer"].status_code == 503
    assert "not ready" in answers["infer"].json()["error"]
    # Only the inference request counts; the model-ready probe does not.
    assert 'mlmodel_requests_total{code="503",model="iris",version="v1"} 1.0' in (
        answers["metrics"].text
    )


def test_draining_turns_readiness_off(tmp_path: Path) -> None:
    app = ServeApp(_config(tmp_path))
    app.ready = True
    app.begin_drain()

    async def main() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
            return await client.get("/v2/health/ready")

    assert asyncio.run(main()).status_code == 503


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
