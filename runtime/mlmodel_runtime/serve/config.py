"""Settings of `mlmodel-runtime serve`, validated once at start-up.

`command.py` builds a `ServeConfig` from the command line (every flag also has an
`MLMODEL_<FLAG>` environment variable as its default); the server, the app and
the batching queue receive it as one frozen value, never read the environment.
"""

from __future__ import annotations

import argparse
import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final, Literal

from mlmodel_runtime.serve.admission import JSON_WEIGHT, NUMERIC_BINARY_WEIGHT

LogFormat = Literal["text", "json"]
MIB: Final = 1024 * 1024
_REVISION: Final = re.compile(r"[A-Za-z0-9._-]{0,63}")


@dataclass(frozen=True)
class ServeConfig:
    model_dir: Path
    name: str
    version: str = ""
    revision: str = ""
    host: str = "0.0.0.0"
    port: int = 8080
    # The Open Inference Protocol's gRPC service (grpc_server.py); 0: not served.
    grpc_port: int = 0
    workers: int = 1
    max_batch_size: int = 32
    max_batch_delay_ms: float = 0.0
    intra_op_threads: int = 1
    # Memory bounds of one worker; see "Limits" in docs/runtime-api.md for why these defaults.
    max_body_bytes: int = 64 * MIB
    max_json_body_bytes: int = 2 * MIB
    max_request_elements: int = 4_194_304
    max_inflight_bytes: int = 256 * MIB
    max_concurrent_requests: int = 256
    max_queued_requests: int = 128
    # While the event loop runs this late, inference requests are shed at their head
    # (overload.py); 0: never, the default (docs/runtime-api.md says why).
    max_loop_lag_ms: float = 0.0
    max_connections: int = 1024
    max_header_bytes: int = 64 * 1024
    request_timeout_s: float = 30.0
    header_timeout_s: float = 10.0
    idle_timeout_s: float = 5.0
    shutdown_delay_s: float = 0.0
    drain_timeout_s: float = 30.0
    allow_non_finite: bool = False
    # Input features counted into the training baseline's buckets (0: none).
    drift_max_features: int = 20
    log_format: LogFormat = "text"
    log_level: str = "info"

    def __post_init__(self) -> None:
        problems = []
        if not self.name:
            problems.append("--name must not be empty")
        if "/" in self.name or "/" in self.version:
            problems.append("--name and --version must not contain '/'")
        if not _REVISION.fullmatch(self.revision):
            # It is sent back as a response header (x-mlmodel-revision).
            problems.append(
                "--revision must be at most 63 letters, digits, '.', '_' or '-', "
                f"got {self.revision!r}"
            )
        if self.drift_max_features < 0:
            problems.append(f"--drift-max-features must be >= 0, got {self.drift_max_features}")
        if self.workers < 1:
            problems.append(f"--workers must be at least 1, got {self.workers}")
        if self.max_batch_size < 1:
            problems.append(f"--max-batch-size must be at least 1, got {self.max_batch_size}")
        if self.max_batch_delay_ms < 0:
            problems.append(f"--max-batch-delay-ms must be >= 0, got {self.max_batch_delay_ms}")
        if self.max_loop_lag_ms < 0:
            problems.append(f"--max-loop-lag-ms must be >= 0, got {self.max_loop_lag_ms}")
        if self.intra_op_threads < 0:
            problems.append(f"--intra-op-threads must be >= 0, got {self.intra_op_threads}")
        for flag in _POSITIVE:
            value = getattr(self, flag.replace("-", "_"))
            if value <= 0:
                problems.append(f"--{flag} must be positive, got {value}")
        for flag in ("shutdown-delay-s", "drain-timeout-s"):
            value = getattr(self, flag.replace("-", "_"))
            if value < 0:
                problems.append(f"--{flag} must be >= 0, got {value}")
        problems.extend(self._budget_problems())
        if not 0 <= self.port <= 65535:
            problems.append(f"--port must be in 0..65535, got {self.port}")
        if not 0 <= self.grpc_port <= 65535:
            problems.append(f"--grpc-port must be in 0..65535 (0: off), got {self.grpc_port}")
        if self.grpc_port and self.grpc_port == self.port:
            problems.append(f"--grpc-port and --port must differ, both are {self.port}")
        if self.log_format not in ("text", "json"):
            problems.append(f"--log-format must be text or json, got {self.log_format!r}")
        if problems:
            raise ValueError("; ".join(problems))

    @property
    def json_limit(self) -> tuple[int, str]:
        """The largest JSON body and the flag that sets it: --max-body-bytes bounds all bodies."""
        if self.max_json_body_bytes <= self.max_body_bytes:
            return self.max_json_body_bytes, "--max-json-body-bytes"
        return self.max_body_bytes, "--max-body-bytes"

    def _budget_problems(self) -> list[str]:
        """A body the limits accept must also fit the in-flight budget, or it could never run."""
        problems = []
        json_weight = self.json_limit[0] * JSON_WEIGHT
        if json_weight > self.max_inflight_bytes:
            problems.append(
                f"--max-inflight-bytes ({self.max_inflight_bytes}) is smaller than the weight of "
                f"one largest JSON request ({JSON_WEIGHT} x {self.json_limit[1]} = {json_weight})"
            )
        binary_weight = self.max_body_bytes * NUMERIC_BINARY_WEIGHT
        if binary_weight > self.max_inflight_bytes:
            problems.append(
                f"--max-inflight-bytes ({self.max_inflight_bytes}) is smaller than the weight of "
                f"one largest binary request ({NUMERIC_BINARY_WEIGHT} x --max-body-bytes = "
                f"{binary_weight})"
            )
        return problems

    def to_json(self) -> str:
        data = asdict(self)
        data["model_dir"] = str(self.model_dir)
        return json.dumps(data)

    @classmethod
    def from_json(cls, text: str) -> ServeConfig:
        data: dict[str, Any] = json.loads(text)
        data["model_dir"] = Path(data["model_dir"])
        return cls(**data)


# Flags whose value must be above zero.
_POSITIVE: Final = (
    "max-body-bytes",
    "max-json-body-bytes",
    "max-request-elements",
    "max-inflight-bytes",
    "max-concurrent-requests",
    "max-queued-requests",
    "max-connections",
    "max-header-bytes",
    "request-timeout-s",
    "header-timeout-s",
    "idle-timeout-s",
)


def _env_bool(text: str) -> bool:
    return text.strip().lower() in ("1", "true", "yes", "on")


# flag, type, help. The environment variable is MLMODEL_<FLAG in upper case>.
_FLAGS: tuple[tuple[str, Callable[[str], Any], str], ...] = (
    ("model-dir", Path, "directory with model.onnx and metadata.json (written by convert)"),
    ("name", str, "model name in the URL paths and metric labels"),
    ("version", str, "model version (label shown to people; /versions/{v} paths)"),
    ("revision", str, "revision of the serving pods (mlmodel_info, x-mlmodel-revision)"),
    ("host", str, "address to bind"),
    ("port", int, "port to bind"),
    ("grpc-port", int, "port of the Open Inference Protocol gRPC service (0: off)"),
    ("workers", int, "server processes sharing the port (metrics are aggregated)"),
    ("max-batch-size", int, "most rows merged into one model execution; 1 turns batching off"),
    ("max-batch-delay-ms", float, "how long the first queued request may wait for others"),
    ("intra-op-threads", int, "ONNX Runtime intra-op threads (0: ONNX Runtime decides)"),
    ("max-body-bytes", int, "largest request body, binary tensor data (413 beyond)"),
    ("max-json-body-bytes", int, "largest JSON body, or JSON header of a binary body (413 beyond)"),
    ("max-request-elements", int, "most tensor elements in one request, all inputs (413 beyond)"),
    ("max-inflight-bytes", int, "budget of weighted request bytes in flight per worker (503)"),
    ("max-concurrent-requests", int, "inference requests in flight per worker (503 beyond)"),
    ("max-queued-requests", int, "requests waiting for the model per worker (503 beyond)"),
    ("max-loop-lag-ms", float, "shed requests (503) while the event loop runs this late (0: off)"),
    ("max-connections", int, "open connections per worker; more are closed at once"),
    ("max-header-bytes", int, "largest request line and headers of a request (431 beyond)"),
    ("request-timeout-s", float, "per-request deadline for reading the body and inferring"),
    ("header-timeout-s", float, "deadline for a request's headers, from the connection's start"),
    ("idle-timeout-s", float, "an idle keep-alive connection is closed after this long"),
    ("shutdown-delay-s", float, "on SIGTERM, keep serving (unready) this long before draining"),
    ("drain-timeout-s", float, "then, how long in-flight requests may take to finish"),
    ("drift-max-features", int, "input features counted into baseline.json's buckets (0: none)"),
    ("log-format", str, "text or json"),
    ("log-level", str, "debug, info, warning or error"),
)


def configure_parser(
    parser: argparse.ArgumentParser, environ: Mapping[str, str] | None = None
) -> None:
    env = os.environ if environ is None else environ
    defaults = ServeConfig(model_dir=Path("."), name="x")
    for flag, kind, help_text in _FLAGS:
        dest = flag.replace("-", "_")
        env_name = "MLMODEL_" + dest.upper()
        default: Any = env.get(env_name)
        required = False
        if default is None:
            if dest in ("model_dir", "name"):
                required = True
            else:
                default = getattr(defaults, dest)
        # A string default goes through `type` like a command-line value, so a bad
        # environment value is reported by argparse with the flag's name.
        kwargs: dict[str, Any] = {"type": kind, "help": f"{help_text} (env {env_name})"}
        if flag == "log-format":
            kwargs["choices"] = ["text", "json"]
        if required:
            kwargs["required"] = True
        else:
            kwargs["default"] = default
        parser.add_argument(f"--{flag}", **kwargs)
    allow_default = _env_bool(env.get("MLMODEL_ALLOW_NON_FINITE", "false"))
    parser.add_argument(
        "--allow-non-finite",
        action=argparse.BooleanOptionalAction,
        default=allow_default,
        help="accept NaN and Inf in floating-point inputs (env MLMODEL_ALLOW_NON_FINITE)",
    )


def config_from_args(args: argparse.Namespace) -> ServeConfig:
    return ServeConfig(
        model_dir=Path(args.model_dir),
        name=args.name,
        version=args.version,
        revision=args.revision,
        host=args.host,
        port=args.port,
        grpc_port=args.grpc_port,
        workers=args.workers,
        max_batch_size=args.max_batch_size,
        max_batch_delay_ms=args.max_batch_delay_ms,
        intra_op_threads=args.intra_op_threads,
        max_body_bytes=args.max_body_bytes,
        max_json_body_bytes=args.max_json_body_bytes,
        max_request_elements=args.max_request_elements,
        max_inflight_bytes=args.max_inflight_bytes,
        max_concurrent_requests=args.max_concurrent_requests,
        max_queued_requests=args.max_queued_requests,
        max_loop_lag_ms=args.max_loop_lag_ms,
        max_connections=args.max_connections,
        max_header_bytes=args.max_header_bytes,
        request_timeout_s=args.request_timeout_s,
        header_timeout_s=args.header_timeout_s,
        idle_timeout_s=args.idle_timeout_s,
        shutdown_delay_s=args.shutdown_delay_s,
        drain_timeout_s=args.drain_timeout_s,
        allow_non_finite=args.allow_non_finite,
        drift_max_features=args.drift_max_features,
        log_format=args.log_format,
        log_level=args.log_level,
    )
