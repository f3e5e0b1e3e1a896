"""Settings of `mlmodel-runtime serve`, validated once at start-up.

`command.py` builds a `ServeConfig` from the command line (every flag also has an
`MLMODEL_<FLAG>` environment variable as its default); the server, the app and
the batching queue receive it as one frozen value, never read the environment.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

LogFormat = Literal["text", "json"]


@dataclass(frozen=True)
class ServeConfig:
    model_dir: Path
    name: str
    version: str = ""
    revision: str = ""
    host: str = "0.0.0.0"
    port: int = 8080
    workers: int = 1
    max_batch_size: int = 32
    max_batch_delay_ms: float = 0.0
    intra_op_threads: int = 1
    max_body_bytes: int = 64 * 1024 * 1024
    request_timeout_s: float = 30.0
    drain_timeout_s: float = 30.0
    allow_non_finite: bool = False
    log_format: LogFormat = "text"
    log_level: str = "info"

    def __post_init__(self) -> None:
        problems = []
        if not self.name:
            problems.append("--name must not be empty")
        if "/" in self.name or "/" in self.version:
            problems.append("--name and --version must not contain '/'")
        if self.workers < 1:
            problems.append(f"--workers must be at least 1, got {self.workers}")
        if self.max_batch_size < 1:
            problems.append(f"--max-batch-size must be at least 1, got {self.max_batch_size}")
        if self.max_batch_delay_ms < 0:
            problems.append(f"--max-batch-delay-ms must be >= 0, got {self.max_batch_delay_ms}")
        if self.intra_op_threads < 0:
            problems.append(f"--intra-op-threads must be >= 0, got {self.intra_op_threads}")
        if self.max_body_bytes < 1:
            problems.append(f"--max-body-bytes must be positive, got {self.max_body_bytes}")
        if self.request_timeout_s <= 0:
            problems.append(f"--request-timeout-s must be positive, got {self.request_timeout_s}")
        if self.drain_timeout_s < 0:
            problems.append(f"--drain-timeout-s must be >= 0, got {self.drain_timeout_s}")
        if not 0 <= self.port <= 65535:
            problems.append(f"--port must be in 0..65535, got {self.port}")
        if self.log_format not in ("text", "json"):
            problems.append(f"--log-format must be text or json, got {self.log_format!r}")
        if problems:
            raise ValueError("; ".join(problems))

    def to_json(self) -> str:
        data = asdict(self)
        data["model_dir"] = str(self.model_dir)
        return json.dumps(data)

    @classmethod
    def from_json(cls, text: str) -> ServeConfig:
        data: dict[str, Any] = json.loads(text)
        data["model_dir"] = Path(data["model_dir"])
        return cls(**data)


def _env_bool(text: str) -> bool:
    return text.strip().lower() in ("1", "true", "yes", "on")


# flag, type, help. The environment variable is MLMODEL_<FLAG in upper case>.
_FLAGS: tuple[tuple[str, Callable[[str], Any], str], ...] = (
    ("model-dir", Path, "directory with model.onnx and metadata.json (written by convert)"),
    ("name", str, "model name in the URL paths and metric labels"),
    ("version", str, "model version (label shown to people; /versions/{v} paths)"),
    ("revision", str, "revision hash of the serving pods, for mlmodel_info"),
    ("host", str, "address to bind"),
    ("port", int, "port to bind"),
    ("workers", int, "server processes sharing the port (metrics are aggregated)"),
    ("max-batch-size", int, "most rows merged into one model execution; 1 turns batching off"),
    ("max-batch-delay-ms", float, "how long the first queued request may wait for others"),
    ("intra-op-threads", int, "ONNX Runtime intra-op threads (0: ONNX Runtime decides)"),
    ("max-body-bytes", int, "largest request body accepted (413 beyond)"),
    ("request-timeout-s", float, "per-request deadline for reading the body and inferring"),
    ("drain-timeout-s", float, "on SIGTERM, how long in-flight requests may take to finish"),
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
        workers=args.workers,
        max_batch_size=args.max_batch_size,
        max_batch_delay_ms=args.max_batch_delay_ms,
        intra_op_threads=args.intra_op_threads,
        max_body_bytes=args.max_body_bytes,
        request_timeout_s=args.request_timeout_s,
        drain_timeout_s=args.drain_timeout_s,
        allow_non_finite=args.allow_non_finite,
        log_format=args.log_format,
        log_level=args.log_level,
    )
