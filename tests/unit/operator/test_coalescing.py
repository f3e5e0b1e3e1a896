"""The controller's queue: changes of a model's children are reconciled together
(Controller.soon), and urgent work goes ahead of the backlog (Priority)."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from typing import Any, cast

import pytest
from prometheus_client import CollectorRegistry

from mlmodel_operator.controller import Controller, Priority, Requeue, event_priority
from mlmodel_operator.kube import KubeClient
from mlmodel_operator.operator_metrics import PRIORITIES, OperatorMetrics
from mlmodel_operator.settings import Settings

pytestmark = pytest.mark.unit

Key = tuple[str, str]


def controller(coalesce_seconds: float = 0.5) -> Controller:
    settings = dataclasses.replace(Settings(), coalesce_seconds=coalesce_seconds)
    return Controller(cast(KubeClient, object()), settings, OperatorMetrics(CollectorRegistry()))


async def queued(c: Controller) -> list[Key]:
    """The keys in the order the workers would take them."""
    keys = []
    while c._queued:
        keys.append(await c._next())
    return keys


def test_child_changes_within_the_window_make_one_reconcile_after_it() -> None:
    async def scenario() -> tuple[list[Key], list[Key]]:
        c = controller(0.2)
        for _ in range(10):  # created, scheduled, started, ready, ...
            c.soon("ns", "iris")
        c.soon("ns", "wine")
        before = await queued(c)
        await asyncio.sleep(0.3)
        return before, await queued(c)

    before, after = asyncio.run(scenario())
    assert before == []
    assert after == [("ns", "iris"), ("ns", "wine")]


def test_the_models_own_change_is_not_delayed_and_absorbs_a_pending_child_change() -> None:
    async def scenario() -> tuple[list[Key], list[Key]]:
        c = controller(0.2)
        c.enqueue("ns", "iris", Priority.URGENT)  # the spec changed: at once
        c.soon("ns", "iris")  # already queued: that reconcile will see this change
        first = await queued(c)
        await asyncio.sleep(0.3)
        return first, await queued(c)

    first, later = asyncio.run(scenario())
    assert first == [("ns", "iris")]
    assert later == []


def test_zero_reconciles_each_change_at_once() -> None:
    async def scenario() -> list[Key]:
        c = controller(0)
        c.soon("ns", "iris")
        return await queued(c)

    assert asyncio.run(scenario()) == [("ns", "iris")]


def test_urgent_work_goes_ahead_of_the_backlog_each_key_once() -> None:
    """With thousands of models the resyncs are a standing backlog: a new model, or a
    model whose resync is queued and then gets urgent, is taken first, and only once."""

    async def scenario() -> list[Key]:
        c = controller()
        for i in range(3):
            c.enqueue("ns", f"old-{i}", Priority.RESYNC)
        c.enqueue("ns", "child-changed", Priority.NORMAL)
        c.enqueue("ns", "new", Priority.URGENT)
        c.enqueue("ns", "old-2", Priority.URGENT)  # its pause ended
        c.enqueue("ns", "new", Priority.RESYNC)  # already queued higher: no change
        return await queued(c)

    assert asyncio.run(scenario()) == [
        ("ns", "new"),
        ("ns", "old-2"),
        ("ns", "child-changed"),
        ("ns", "old-0"),
        ("ns", "old-1"),
    ]


def mlmodel(generation: int, observed: int | None, **metadata: Any) -> dict[str, Any]:
    status = {} if observed is None else {"observedGeneration": observed}
    return {"metadata": {"generation": generation, **metadata}, "status": status}


def test_an_mlmodel_event_is_urgent_only_when_its_spec_is_unanswered() -> None:
    assert event_priority(mlmodel(1, None)) is Priority.URGENT  # new
    assert event_priority(mlmodel(3, 2)) is Priority.URGENT  # edited
    assert event_priority(mlmodel(2, 2, deletionTimestamp="now")) is Priority.URGENT
    assert event_priority(mlmodel(2, 2)) is Priority.NORMAL  # its status written


def test_queue_wait_is_reported_from_the_most_urgent_request() -> None:
    """A resync queued for a while and then made urgent (a pause ended) waited only as
    long as it was urgent: that is the wait a person raising --workers cares about."""

    async def scenario() -> Controller:
        c = controller()
        c.enqueue("ns", "iris", Priority.RESYNC)
        await asyncio.sleep(0.3)
        c.enqueue("ns", "iris", Priority.URGENT)
        await queued(c)
        return c

    c = asyncio.run(scenario())
    sample = c._metrics.registry.get_sample_value
    assert sample("mlmodel_operator_queue_wait_seconds_count", {"priority": "urgent"}) == 1
    assert sample("mlmodel_operator_queue_wait_seconds_count", {"priority": "resync"}) == 0
    waited = sample("mlmodel_operator_queue_wait_seconds_sum", {"priority": "urgent"})
    assert waited is not None
    assert waited < 0.2


def test_a_requeue_counts_from_the_decision_not_from_the_end_of_the_writes() -> None:
    """A plan that says "again in 0.6 s" is looked at 0.6 s after it decided, however
    long its writes then took (here 0.5 s); counted from their end it would be 1.1 s."""

    async def scenario() -> tuple[float, list[float], Controller]:
        c = controller()
        calls: list[float] = []
        decided = 0.0

        async def reconcile(namespace: str, name: str) -> Requeue | None:
            nonlocal decided
            calls.append(time.monotonic())
            if len(calls) > 1:
                return None
            decided = time.monotonic()
            await asyncio.sleep(0.5)  # the writes
            return Requeue(0.6, decided)

        c.reconcile = reconcile  # type: ignore[method-assign]
        worker = asyncio.create_task(c._work())
        c.enqueue("ns", "iris")
        await asyncio.sleep(1.5)
        worker.cancel()
        return decided, calls, c

    decided, calls, c = asyncio.run(scenario())
    assert len(calls) == 2
    assert 0.55 <= calls[1] - decided < 0.95
    sample = c._metrics.registry.get_sample_value
    assert sample("mlmodel_operator_requeue_lateness_seconds_count") == 1


def test_the_metrics_know_every_priority() -> None:
    assert tuple(p.name.lower() for p in Priority) == PRIORITIES
