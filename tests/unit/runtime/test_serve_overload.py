"""When the loop counts as late (`serve/overload.py`), and the answer it sheds with."""

from __future__ import annotations

import asyncio
import http.client
import io
import time

import orjson
import pytest

from mlmodel_runtime.serve.overload import BEAT_S, DECAY, GAIN, MAX_SHARE, LoopGuard, LoopLag

pytestmark = pytest.mark.unit

BOUND = 0.010


def lagged(*lags_ms: float) -> LoopLag:
    lag = LoopLag(BOUND)
    for ms in lags_ms:
        lag.observe(ms / 1000)
    return lag


@pytest.mark.parametrize(
    "lags_ms",
    [
        (),
        (3, 4, 2, 9),  # on time
        (50,),  # one long iteration (a collection, a decode on the loop) sheds nothing
        (50, 1, 50, 3, 80),  # nor long ones apart
    ],
)
def test_an_on_time_loop_or_a_lone_late_beat_sheds_nothing(lags_ms: tuple[float, ...]) -> None:
    assert lagged(*lags_ms).share == 0.0


def test_late_beats_in_a_row_raise_the_share_by_how_late_they_are() -> None:
    # The first late beat only arms; each next one adds GAIN per bound beyond the bound.
    assert lagged(20).share == 0.0
    assert lagged(20, 20).share == pytest.approx(GAIN)
    assert lagged(20, 20, 40).share == pytest.approx(GAIN + 3 * GAIN)
    # Never more than MAX_SHARE: clients that resend at once would otherwise be
    # refused all but one request in a hundred (docs/benchmarks.md, "Overload").
    assert lagged(*[200] * 10).share == MAX_SHARE


def test_however_late_the_loop_one_request_in_ten_is_still_served() -> None:
    lag = lagged(*[500] * 50)
    assert sum(lag.admit() for _ in range(1000)) == 100


def test_the_share_comes_down_as_the_loop_runs_on_time() -> None:
    lag = lagged(20, 40)  # 3 x GAIN
    lag.observe(0.0)
    assert lag.share == pytest.approx(3 * GAIN - DECAY)
    lag.observe(0.005)  # on time, half the bound: half the decay
    assert lag.share == pytest.approx(3 * GAIN - 1.5 * DECAY)
    for _ in range(20):
        lag.observe(0.0)
    assert lag.share == 0.0


@pytest.mark.parametrize("share", [0.0, 0.25, 0.5, 0.9, 1.0])
def test_admit_serves_the_rest_of_the_requests_evenly(share: float) -> None:
    lag = LoopLag(BOUND, share=share)
    admitted = [lag.admit() for _ in range(1000)]
    assert sum(admitted) == pytest.approx(1000 * (1 - share), abs=1)
    if 0 < share < 1:  # spread out, not in runs
        assert max(len(run) for run in "".join("x" if a else "." for a in admitted).split(".")) <= (
            int(1 / share) + 1
        )


def test_the_worst_beat_is_kept() -> None:
    assert lagged(1, 30, 2).worst_s == pytest.approx(0.030)


def test_a_blocked_loop_is_seen_late_by_its_beats_and_caught_up_after() -> None:
    async def scenario() -> tuple[float, float]:
        lag = LoopLag(BOUND)
        lag.start(asyncio.get_running_loop())
        await asyncio.sleep(BEAT_S * 2)
        for _ in range(4):  # iterations one after another, each blocking the loop 30 ms
            time.sleep(0.030)  # noqa: ASYNC251 (blocking the loop is the point)
            await asyncio.sleep(0)
        late = lag.share
        await asyncio.sleep(BEAT_S * 40)  # 40 beats on time
        after = lag.share
        lag.stop()
        return late, after

    late, after = asyncio.run(scenario())
    assert late > 0
    assert after == 0.0


def _parsed(raw: bytes) -> http.client.HTTPResponse:
    class Sock:
        def makefile(self, mode: str) -> io.BytesIO:
            return io.BytesIO(raw)

    response = http.client.HTTPResponse(Sock())  # type: ignore[arg-type]
    response.begin()
    return response


def test_the_shed_answer_is_a_complete_503_with_retry_after_and_the_revision() -> None:
    guard = LoopGuard.build(
        LoopLag(0.020), lambda: None, headers=[(b"x-mlmodel-revision", b"7f3c9a1e2d")]
    )
    for raw, closes in ((guard.answer, False), (guard.closing_answer, True)):
        response = _parsed(raw)
        assert response.status == 503
        assert response.getheader("retry-after") == "1"
        assert response.getheader("x-mlmodel-revision") == "7f3c9a1e2d"
        assert response.getheader("content-type") == "application/json"
        assert (response.getheader("connection") == "close") is closes
        message = orjson.loads(response.read())["error"]
        assert "20 ms" in message
        assert "--max-loop-lag-ms" in message
