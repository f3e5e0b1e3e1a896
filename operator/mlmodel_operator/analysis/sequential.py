"""Anytime-valid statistics for sequential canary analysis.

Interval mode judges each window on its own with a fixed-horizon test; looking again
and again inflates its false alarms, and a rollback waits for `failureLimit + 1`
windows. The tests here stay valid however often they are evaluated: each is an
*e-process* (or a confidence sequence, its dual), a statistic E_t >= 0 such that for
a canary within its limits P(E_t >= 1/alpha at any t) <= alpha (Ville's inequality).
The operator can therefore evaluate them at every metrics read and roll back the
moment one crosses its threshold, and a good canary keeps a false-alarm probability
of at most alpha over the whole rollout.

Construction (Wasserman, Ramdas and Balakrishnan, "Universal inference", PNAS 2020;
Howard, Ramdas, McAuliffe and Sekhon, "Time-uniform, nonparametric, nonasymptotic
confidence sequences", Ann. Stat. 2021; Lindon et al., "Rapid regression detection in
software deployments through sequential testing", KDD 2022):

- The numerator is the *mixture* likelihood of the counts, a Beta(1/2, 1/2) prior
  over each Bernoulli rate: B(a + x, b + n - x) / B(a, b). It is the product of the
  Bayesian predictive probabilities in any order, so it depends only on the
  cumulative counts, never on when they were read.
- The denominator is the *largest* likelihood of the same counts under the null
  hypothesis (the canary within its limits). For any true rates inside the null it
  is at least their likelihood, so the ratio is at most the mixture martingale
  mixture / likelihood(true rates), which has mean 1: an e-process.

Every function here is pure and takes the counts accumulated since the canary
attempt started (a reset counter's new counts are added, never subtracted).
The assumption, stated in docs/analysis.md: within an attempt each request fails (or
is slow, or predicts a class) independently with a rate that does not drift.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from mlmodel_operator.analysis.metric import Verdict

# Beta(1/2, 1/2), Jeffreys' prior: its mass near 0 and 1 suits rates such as error
# rates and tail fractions, which sit near 0, without favouring any one of them.
PRIOR_A = 0.5
PRIOR_B = 0.5
TAIL = 0.01  # a p99 leaves 1% of the requests above it
_SEARCH_STEPS = 50  # bisection steps: the bound to 1e-15 of the unit interval


def _log_beta(a: float, b: float) -> float:
    return math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)


def log_mixture(successes: float, trials: float) -> float:
    """ln of the Beta(1/2, 1/2)-mixture likelihood of `successes` in `trials`."""
    return _log_beta(PRIOR_A + successes, PRIOR_B + trials - successes) - _log_beta(
        PRIOR_A, PRIOR_B
    )


def log_likelihood(successes: float, trials: float, rate: float) -> float:
    """ln of rate^x (1 - rate)^(n - x), with 0 ln 0 = 0."""
    failures = trials - successes
    total = 0.0
    if successes > 0:
        total += -math.inf if rate <= 0 else successes * math.log(rate)
    if failures > 0:
        total += -math.inf if rate >= 1 else failures * math.log1p(-rate)
    return total


def _mle(successes: float, trials: float) -> float:
    return successes / trials if trials > 0 else 0.0


def max_log_likelihood(successes: float, trials: float, low: float, high: float) -> float:
    """The largest ln-likelihood over rates in [low, high]: at the sample rate clamped
    into the range (the likelihood is unimodal)."""
    return log_likelihood(successes, trials, min(max(_mle(successes, trials), low), high))


def _golden_max(f: Callable[[float], float], low: float, high: float) -> float:
    """The maximum of a concave function on [low, high], by golden-section search to
    1e-10 (the likelihood is flat at its top, so the value is then exact to far more
    digits than any threshold needs), compared with both ends (where the maximum of a
    monotone function lies)."""
    ratio = (math.sqrt(5) - 1) / 2
    a, b = low, high
    c, d = b - ratio * (b - a), a + ratio * (b - a)
    fc, fd = f(c), f(d)
    while b - a > 1e-10:
        if fc >= fd:
            b, d, fd = d, c, fc
            c = b - ratio * (b - a)
            fc = f(c)
        else:
            a, c, fc = c, d, fd
            d = a + ratio * (b - a)
            fd = f(d)
    return max(fc, fd, f(low), f(high))


def verdict_of(
    log_e: float, alpha: float, too_few: str, beyond: str = ""
) -> tuple[Verdict, float, str]:
    """(verdict, evidence in [0, 1], why) for an e-value: Fail once E >= 1/alpha,
    whatever the amount of data (the guarantee holds at every sample size). Otherwise
    Pass only with enough data and the observed figures within the limits: a canary
    that looks beyond a limit (`beyond` says how) but is not shown to be yet is
    Inconclusive, held where it is while the evidence builds, neither advanced nor
    rolled back."""
    threshold = math.log(1 / alpha)
    evidence = min(max(log_e, 0.0) / threshold, 1.0)
    e_value = f"e-value {math.exp(min(log_e, 700.0)):.3g} of {1 / alpha:.3g} (alpha {alpha:.2g})"
    if log_e >= threshold:
        return Verdict.FAIL, 1.0, e_value
    if too_few:
        return Verdict.INCONCLUSIVE, evidence, f"{too_few}; {e_value}"
    if beyond:
        return Verdict.INCONCLUSIVE, evidence, f"{beyond}, not shown beyond chance yet; {e_value}"
    return Verdict.PASS, evidence, e_value


# --- error rate -----------------------------------------------------------------------------


def error_rate_log_e(
    canary: tuple[float, float],
    stable: tuple[float, float] | None,
    *,
    max_rate: float | None,
    max_increase: float | None,
    stable_ceiling: float = 1.0,
) -> float:
    """ln E against "the canary's error rate is within its limits":
    p_c <= max_rate and p_c <= p_s + max_increase (either limit may be absent).

    `canary`/`stable` are (errors, requests) since the attempt started; `stable` is
    needed only with `max_increase`. One e-value for both limits: the null is their
    intersection, so its largest likelihood is smaller than for either alone, and a
    canary breaking either limit is found sooner than by two tests at alpha/2.

    `stable_ceiling` brings in what the stable served before the attempt: the null is
    taken with p_s <= stable_ceiling, an upper confidence bound of its rate over all
    it served since its pods started (the caller spends part of alpha on that bound),
    so a stable known to be almost error-free does not let the null explain a canary's
    errors by a stable rate its history rules out. (The stable's history is not put into
    the numerator's prior: a history that disagrees with today's rate would then cost
    the test all its power.)

    The largest null likelihood is the sup over p_c of
    l_c(p_c) + l_s(min(max(p^_s, p_c - d), ceiling)) with p_c <= ceiling + d: for a given
    p_c the best p_s is the stable's own rate moved just enough to stay within the
    null, and that sum is concave in p_c, so a golden-section search finds it.
    """
    x_c, n_c = canary
    high = 1.0 if max_rate is None else min(max(max_rate, 0.0), 1.0)
    numerator = log_mixture(x_c, n_c)
    if max_increase is None or stable is None:
        return numerator - max_log_likelihood(x_c, n_c, 0.0, high)
    x_s, n_s = stable
    numerator += log_mixture(x_s, n_s)
    ceiling = min(max(stable_ceiling, 0.0), 1.0)
    high = min(high, max(ceiling + max_increase, 0.0))
    p_s, p_c_hat = _mle(x_s, n_s), _mle(x_c, n_c)
    if p_c_hat <= high and p_c_hat <= p_s + max_increase and p_s <= ceiling:
        # The sample rates are inside the null: they are its best fit.
        return numerator - log_likelihood(x_c, n_c, p_c_hat) - log_likelihood(x_s, n_s, p_s)

    def null(p_c: float) -> float:
        return log_likelihood(x_c, n_c, p_c) + log_likelihood(
            x_s, n_s, min(max(p_s, p_c - max_increase), ceiling)
        )

    return numerator - _golden_max(null, 0.0, high)


# --- latency tails ----------------------------------------------------------------------------


def tail_log_e_above(tail: float, total: float, limit: float = TAIL) -> float:
    """ln E against "at most `limit` of the requests are slower" (tail <= limit)."""
    return log_mixture(tail, total) - max_log_likelihood(tail, total, 0.0, limit)


def tail_log_e_below(tail: float, total: float, limit: float = TAIL) -> float:
    """ln E against "more than `limit` of the requests are slower" (tail >= limit):
    evidence that the quantile is at most the bound."""
    return log_mixture(tail, total) - max_log_likelihood(tail, total, limit, 1.0)


def _log_mean_exp(values: Sequence[float]) -> float:
    if not values:
        return 0.0  # no test: E = 1, no evidence either way
    top = max(values)
    if top == -math.inf:
        return -math.inf
    return top + math.log(sum(math.exp(v - top) for v in values) / len(values))


def _tails(cumulative: Sequence[tuple[float, float]]) -> tuple[float, dict[float, float]]:
    """(observations, {finite bound: observations above it}) of a cumulative histogram."""
    total = cumulative[-1][1] if cumulative else 0.0
    return total, {b: total - c for b, c in cumulative if b != math.inf}


def latency_log_e(
    canary: Sequence[tuple[float, float]],
    stable: Sequence[tuple[float, float]] | None,
    *,
    max_seconds: float | None,
    max_ratio: float | None,
) -> float:
    """ln E against "the canary's p99 is within its limits", from cumulative histogram
    buckets ((upper bound, observations <= bound), +Inf last) since the attempt started.

    maxSeconds s: p99 <= s means at most 1% above s, so at most 1% above the first
    bucket bound b >= s; the e-value tests that tail fraction.

    maxRatio r: under the null (p99_c <= r p99_s), for each stable bucket bound u either
    the stable's p99 is above u (more than 1% of stable requests above u) or the
    canary's p99 is at most r u, so at most 1% of its requests are above the first bound
    v >= r u. min(E_stable(u), E_canary(v)) is then at most an e-process whichever of
    the two holds, and the mean over the (fixed) bounds u is one too: no search over u,
    no multiple-testing penalty beyond the mean's.

    With both limits the null is both at once, and the mean of the two e-values is one.
    """
    tests: list[float] = []
    n_c, above_c = _tails(canary)
    bounds_c = sorted(above_c)
    if max_seconds is not None:
        b = next((bound for bound in bounds_c if bound >= max_seconds), None)
        tests.append(0.0 if b is None else tail_log_e_above(above_c[b], n_c))
    if max_ratio is not None and stable is not None:
        n_s, above_s = _tails(stable)
        terms = []
        for u in sorted(above_s):
            v = next((bound for bound in bounds_c if bound >= max_ratio * u), None)
            if v is None:
                continue  # no canary bound that high: this u cannot show anything
            terms.append(min(tail_log_e_below(above_s[u], n_s), tail_log_e_above(above_c[v], n_c)))
        tests.append(_log_mean_exp(terms))
    return _log_mean_exp(tests)


# --- prediction divergence ----------------------------------------------------------------------


def rate_bounds(successes: float, trials: float, alpha: float) -> tuple[float, float]:
    """The Beta-mixture confidence sequence for a Bernoulli rate at level alpha: every rate
    whose likelihood-ratio martingale has not reached 1/alpha. Valid at every time at
    once; ln M(p) is convex in p, so the set is an interval found by bisection from the
    sample rate."""
    return _rate_edge(successes, trials, alpha, 0.0), _rate_edge(successes, trials, alpha, 1.0)


def upper_rate_bound(successes: float, trials: float, alpha: float) -> float:
    """The upper end of `rate_bounds` alone."""
    return _rate_edge(successes, trials, alpha, 1.0)


def _rate_edge(successes: float, trials: float, alpha: float, out: float) -> float:
    if trials <= 0:
        return out
    threshold = math.log(1 / alpha)
    mixture = log_mixture(successes, trials)
    into = _mle(successes, trials)

    def inside(rate: float) -> bool:
        return mixture - log_likelihood(successes, trials, rate) < threshold

    if inside(out):
        return out
    for _ in range(_SEARCH_STEPS):
        middle = (out + into) / 2
        if inside(middle):
            into = middle
        else:
            out = middle
    return out  # the excluded side: the interval is a little wider, never narrower


def _fill(low: Sequence[float], high: Sequence[float]) -> list[float]:
    """A distribution inside the box: each coordinate the same fraction of its range."""
    spare, room = 1.0 - sum(low), sum(h - lo for lo, h in zip(low, high, strict=True))
    t = 0.0 if room <= 0 else min(max(spare / room, 0.0), 1.0)
    return [lo + t * (h - lo) for lo, h in zip(low, high, strict=True)]


def _vertex(gradient: Sequence[float], low: Sequence[float], high: Sequence[float]) -> list[float]:
    """argmin of gradient . s over distributions s in the box: the lows, then the spare
    mass poured into the coordinates with the smallest gradient first (exact for this
    linear program)."""
    s = list(low)
    spare = 1.0 - sum(low)
    for k in sorted(range(len(s)), key=lambda i: gradient[i]):
        if spare <= 0:
            break
        add = min(high[k] - low[k], spare)
        s[k] += add
        spare -= add
    return s


def _jsd(p: Sequence[float], q: Sequence[float]) -> float:
    total = 0.0
    for a, b in zip(p, q, strict=True):
        m = (a + b) / 2
        if a > 0:
            total += a / 2 * math.log2(a / m)
        if b > 0:
            total += b / 2 * math.log2(b / m)
    return total


def _jsd_gradient(p: Sequence[float], q: Sequence[float]) -> tuple[list[float], list[float]]:
    def part(a: float, b: float) -> float:
        return -math.inf if a <= 0 else math.log2(2 * a / (a + b)) / 2

    return [part(a, b) for a, b in zip(p, q, strict=True)], [
        part(b, a) for a, b in zip(p, q, strict=True)
    ]


def divergence_lower_bound(
    stable: Sequence[float], canary: Sequence[float], alpha: float, *, steps: int = 200
) -> float:
    """A lower confidence bound (level alpha, valid at every time at once) on the
    Jensen-Shannon divergence (base 2) of the two output distributions, from counts
    over the same bins since the attempt started.

    Each bin's share on each side gets a confidence sequence at alpha / (2 K), so all
    2 K hold together with probability 1 - alpha; the bound is the smallest JSD of any
    two distributions inside those boxes. JSD is jointly convex, so that minimum is a
    convex program: Frank-Wolfe steps towards it, and at every step the linearisation
    f(x) + grad f(x) . (s - x) at the best vertex s is a lower bound of the minimum
    (convexity), so the bound is valid whenever the search stops.
    """
    bins = len(stable)
    if bins == 0 or sum(stable) <= 0 or sum(canary) <= 0:
        return 0.0
    per_bin = alpha / (2 * bins)
    ns, nc = sum(stable), sum(canary)
    box_s = [rate_bounds(c, ns, per_bin) for c in stable]
    box_c = [rate_bounds(c, nc, per_bin) for c in canary]
    low_s, high_s = [b[0] for b in box_s], [b[1] for b in box_s]
    low_c, high_c = [b[0] for b in box_c], [b[1] for b in box_c]
    # One distribution in both boxes: the divergence may be 0.
    both_low = [max(a, b) for a, b in zip(low_s, low_c, strict=True)]
    both_high = [min(a, b) for a, b in zip(high_s, high_c, strict=True)]
    if all(lo <= h for lo, h in zip(both_low, both_high, strict=True)) and (
        sum(both_low) <= 1.0 <= sum(both_high)
    ):
        return 0.0
    p, q = _fill(low_s, high_s), _fill(low_c, high_c)
    best = 0.0
    for step in range(steps):
        value = _jsd(p, q)
        g_p, g_q = _jsd_gradient(p, q)
        s_p, s_q = _vertex(g_p, low_s, high_s), _vertex(g_q, low_c, high_c)
        gap = sum(g * (s - x) for g, s, x in zip(g_p + g_q, s_p + s_q, p + q, strict=True))
        if not math.isnan(gap):
            best = max(best, value + gap)
        if value - best < 1e-6:
            break
        gamma = 2 / (step + 3)  # never 1: the iterate stays inside, where f is smooth
        p = [x + gamma * (s - x) for x, s in zip(p, s_p, strict=True)]
        q = [x + gamma * (s - x) for x, s in zip(q, s_q, strict=True)]
    return max(best - 1e-9, 0.0)
