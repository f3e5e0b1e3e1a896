"""The binomial bounds the e2e tests judge a measured split by."""

from __future__ import annotations

import doctest
import random

import pytest

from localenv import shares
from localenv.shares import binomial_bounds

pytestmark = pytest.mark.unit


def test_the_examples_in_the_docstrings_hold() -> None:
    assert doctest.testmod(shares).failed == 0


@pytest.mark.parametrize(("n", "p"), [(400, 0.25), (400, 0.5), (200, 0.1), (300, 0.9)])
def test_chance_alone_leaves_the_bounds_about_once_in_a_thousand(n: int, p: float) -> None:
    """Drawn splits fall inside the 99.9% bounds; a split off by 10 points does not."""
    draws = random.Random(7)
    bounds = binomial_bounds(n, p)
    inside = sum(sum(draws.random() < p for _ in range(n)) in bounds for _ in range(2000))
    assert inside >= 1990, inside  # 0.999 expected; at most a few of 2000 outside
    assert round(n * (p + 0.1)) not in bounds
    assert round(n * (p - 0.1)) not in bounds


def test_certain_shares_allow_no_stray_request() -> None:
    assert (99 in binomial_bounds(100, 1.0), 100 in binomial_bounds(100, 1.0)) == (False, True)
    assert (0 in binomial_bounds(100, 0.0), 1 in binomial_bounds(100, 0.0)) == (True, False)


@pytest.mark.parametrize(("n", "p", "confidence"), [(-1, 0.5, 0.9), (10, 1.5, 0.9), (10, 0.5, 1)])
def test_impossible_arguments_are_refused(n: int, p: float, confidence: float) -> None:
    with pytest.raises(ValueError, match="need n >= 0"):
        binomial_bounds(n, p, confidence)
