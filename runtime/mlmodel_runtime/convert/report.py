"""The one-line JSON report: stdout and the container's termination message.

The kubelet keeps at most 4096 bytes of a termination message, and the operator
copies it into the MLModel status, so `render` guarantees a line that fits:
it shortens, in this order, the worst rows of the parity figures, the message,
the schema summary and finally the optional fields — never `status`, `error`,
`exit_code` or `retryable`, which the operator acts on. `render` is pure; `emit`
does I/O. Shared by `mlmodel-runtime fetch` and `convert`.
"""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path
from typing import Any, TextIO

from mlmodel_runtime.modeldir import TensorSpec

LIMIT_BYTES = 4096
MESSAGE_CHARS = 1000
DEFAULT_TERMINATION_LOG = Path("/dev/termination-log")
# Fields that are never shortened or dropped.
ESSENTIAL = ("status", "error", "exit_code", "retryable")
# Optional fields, dropped last-first when nothing else helps.
# `evaluation` goes last: the operator's quality gate compares its score.
DROP_ORDER = (
    "libraries", "timings", "cache", "schema", "baseline", "source", "parity", "estimator",
    "uri", "evaluation",
)  # fmt: skip


def one_line(message: str, limit: int = MESSAGE_CHARS) -> str:
    """Collapse whitespace (tracebacks, skl2onnx's multi-page errors) and cap the length."""
    flat = " ".join(message.split())
    return flat if len(flat) <= limit else flat[: max(limit - 1, 0)] + "…"


def schema_summary(specs: tuple[TensorSpec, ...], limit: int | None = None) -> list[str]:
    """`name:DATATYPE[shape]` per tensor, e.g. `input:FP32[-1,4]`."""
    items = [f"{s.name}:{s.datatype}[{','.join(str(d) for d in s.shape)}]" for s in specs]
    if limit is not None and len(items) > limit:
        items = [*items[:limit], f"... {len(items) - limit} more"]
    return items


def _finite(value: Any) -> Any:
    """JSON has no NaN or Infinity; keep the fact readable as a string instead."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _dump(report: dict[str, Any]) -> str:
    return json.dumps(report, separators=(",", ":"), ensure_ascii=False, default=str)


def _size(report: dict[str, Any]) -> int:
    return len(_dump(report).encode()) + 1  # the newline


def _parity_sections(report: dict[str, Any]) -> list[dict[str, Any]]:
    parity = report.get("parity")
    if not isinstance(parity, dict):
        return []
    sections = [parity, *(v for v in parity.values() if isinstance(v, dict))]
    return [s for s in sections if isinstance(s.get("worst_rows"), list)]


def render(report: dict[str, Any], limit: int = LIMIT_BYTES) -> str:
    """The report as one JSON line of at most `limit` bytes including the newline."""
    data: dict[str, Any] = _finite(dict(report))
    if "message" in data:
        data["message"] = one_line(str(data["message"]))
    if _size(data) <= limit:
        return _dump(data)
    for section in _parity_sections(data):
        # Halving keeps this to a few serialisations however many rows came in.
        while section["worst_rows"] and _size(data) > limit:
            del section["worst_rows"][len(section["worst_rows"]) // 2 :]
    if _size(data) > limit and "message" in data:
        for chars in (500, 200, 80):
            data["message"] = one_line(data["message"], chars)
            if _size(data) <= limit:
                break
    schema = data.get("schema")
    if _size(data) > limit and isinstance(schema, dict):
        for keep in (16, 4, 1):
            for key in ("inputs", "outputs"):
                items = schema.get(key)
                if isinstance(items, list) and len(items) > keep:
                    schema[key] = [*items[:keep], f"... {len(items) - keep} more"]
            if _size(data) <= limit:
                break
    for key in DROP_ORDER:
        if _size(data) <= limit:
            break
        data.pop(key, None)
    if _size(data) > limit:
        # Only essentials left (or unknown extra keys): keep essentials and a stub message.
        data = {k: data[k] for k in ESSENTIAL if k in data}
        data["message"] = one_line(str(report.get("message", "")), 200)
    return _dump(data)


def emit(line: str, *, report_file: Path | None, stdout: TextIO | None = None) -> None:
    """Print the line on stdout and write it to the report file (best effort there)."""
    out = stdout if stdout is not None else sys.stdout
    out.write(line + "\n")
    out.flush()
    if report_file is None:
        return
    try:
        with report_file.open("w", encoding="utf-8") as handle:
            handle.write(line + "\n")
    except OSError as exc:
        # The report is already on stdout (kubectl logs); a read-only
        # termination log must not turn a success into a failure.
        print(f"could not write report to {report_file}: {exc}", file=sys.stderr)


def default_report_file() -> Path | None:
    """`/dev/termination-log` when the kubelet provides it, otherwise nothing."""
    path = DEFAULT_TERMINATION_LOG
    return path if path.exists() and os.access(path, os.W_OK) else None
