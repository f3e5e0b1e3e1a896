"""What parity is asked to prove: the tolerance and the rows.

`--parity-samples`, `--rtol`, `--atol`, `--sample-data` and `--reference` as plain
values, built by `command.py` before anything is loaded. They live apart from the
numeric code that proves them (`parity.py`, `check.py`, which import NumPy) because a
conversion reused from the cache (`reuse.py`) is keyed on them and must not pay for
NumPy to say so.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Tolerance:
    """`|actual - expected| <= atol + rtol * |expected|`, as `numpy.isclose`."""

    rtol: float = 1e-4
    atol: float = 1e-5


@dataclass(frozen=True)
class ParityPlan:
    """How parity is proven: --parity-samples, --rtol/--atol, --sample-data, --reference."""

    samples: int = 256
    tolerance: Tolerance = field(default_factory=Tolerance)
    sample_data: Path | None = None
    reference: Path | None = None
    # Which reference that is, for the report: {uri, sha256, bytes} as fetched.
    reference_source: Mapping[str, Any] | None = None
