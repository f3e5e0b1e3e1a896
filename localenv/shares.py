"""How far a share of requests may stray from the share a split intends, by chance alone.

Each request through a split lands on the canary with probability p (kube-proxy picks
an endpoint at random per connection; a gateway's weighted round robin is closer to
exact still), so the canary's count among n is binomial. A measured share is judged
against the bounds of that count at a two-sided confidence: outside them, the split is
not the one intended, not bad luck. The normal approximation is good for the sizes
measured here (n p (1 - p) well above 10); a fixed one-count margin covers its error
at the edges.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist


@dataclass(frozen=True)
class Bounds:
    low: int
    high: int

    def __contains__(self, count: object) -> bool:
        return isinstance(count, int) and self.low <= count <= self.high

    def __str__(self) -> str:
        return f"[{self.low}, {self.high}]"


def binomial_bounds(n: int, p: float, confidence: float = 0.999) -> Bounds:
    """The counts out of `n` that a share `p` yields with probability `confidence`.

    >>> binomial_bounds(400, 0.25)
    Bounds(low=70, high=130)
    >>> binomial_bounds(100, 1.0)
    Bounds(low=100, high=100)
    >>> binomial_bounds(100, 0.0)
    Bounds(low=0, high=0)
    """
    if n < 0 or not 0.0 <= p <= 1.0 or not 0.0 < confidence < 1.0:
        raise ValueError(
            f"need n >= 0, 0 <= p <= 1 and 0 < confidence < 1; got {n}, {p}, {confidence}"
        )
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    spread = z * math.sqrt(n * p * (1.0 - p))
    margin = 1 if 0.0 < p < 1.0 else 0
    low = max(0, math.floor(n * p - spread) - margin)
    high = min(n, math.ceil(n * p + spread) + margin)
    return Bounds(low, high)
