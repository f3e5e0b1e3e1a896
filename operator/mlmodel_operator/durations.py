"""Durations as the CRD writes them: 30s, 2m, 1h30m, 500ms.

Pure; its own module so that every part of the spec (steps, analysis) parses them alike.
"""

from __future__ import annotations

import re

from mlmodel_operator.errors import SpecError

_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float:
    """'1h30m' -> 5400.0 seconds. Raises SpecError for anything else."""
    position, total = 0, 0.0
    for match in _DURATION_PART.finditer(text):
        if match.start() != position:
            break
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        position = match.end()
    if position != len(text) or not text:
        raise SpecError(f"{text!r} is not a duration such as 30s, 2m or 1h30m")
    return total
