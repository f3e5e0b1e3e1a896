"""The Grafana dashboard of examples/grafana/ as Grafana reads it, and the pure parts of
localenv.dashboard (variables as Grafana fills them in). Its queries are executed
against a real Prometheus during a rollout in tests/e2e/test_dashboard_e2e.py."""

from __future__ import annotations

import json
import re
from collections import Counter

import pytest

from localenv import dashboard

pytestmark = pytest.mark.unit

RAW = json.loads(dashboard.DASHBOARD.read_text())
VARIABLES = {v["name"] for v in RAW["templating"]["list"]}
BUILTINS = {"__interval", "__rate_interval", "__range"}


def test_it_loads_with_every_panel_drawable_and_queried() -> None:
    board = dashboard.load()
    assert board.panels
    for panel in board.panels:
        assert panel.kind in dashboard.PANEL_TYPES
        assert panel.targets, panel.title
    assert [v.name for v in board.variables] == ["namespace", "model"]


def test_panels_tile_the_24_column_grid_without_overlap() -> None:
    cells: Counter[tuple[int, int]] = Counter()
    for panel in dashboard.load().panels:
        x, y, w, h = panel.grid
        assert x >= 0, panel.title
        assert x + w <= 24, panel.title
        cells.update((col, row) for col in range(x, x + w) for row in range(y, y + h))
    assert max(cells.values()) == 1


def test_panels_and_targets_are_identified_as_grafana_needs() -> None:
    """Unique panel ids and titles (Grafana links and the tests find panels by them),
    a unique refId per target, and the data source picked by the variable, so the
    dashboard imports into any Grafana."""
    panels = RAW["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    assert len({p["title"] for p in panels}) == len(panels)
    for panel in panels:
        refs = [t["refId"] for t in panel["targets"]]
        assert len(set(refs)) == len(refs), panel["title"]
        for item in (panel, *panel["targets"]):
            assert item["datasource"] == {"type": "prometheus", "uid": "${datasource}"}


def test_every_variable_a_query_uses_is_defined() -> None:
    pattern = re.compile(r"\$\{?(\w+)")
    for panel in RAW["panels"]:
        for target in panel["targets"]:
            used = set(pattern.findall(target["expr"])) - {"1"}  # "$1": label_replace's
            assert used <= VARIABLES | BUILTINS, (panel["title"], used)


def test_the_model_queries_join_on_the_operators_revision_roles() -> None:
    """The runtime's series carry a revision only: stable and canary come from
    mlmodel_operator_revision, never from a guess."""
    for panel in RAW["panels"]:
        for target in panel["targets"]:
            if "mlmodel_requests_total" in target["expr"] or "predictions_total" in target["expr"]:
                assert "mlmodel_operator_revision" in target["expr"], panel["title"]


def test_variables_are_filled_in_as_grafana_does() -> None:
    values = {"namespace": "team-a", "model": "iris"}
    text = 'x{namespace="$namespace", name="${model}"} [[model]] ${model:regex} "$1" $other'
    assert (
        dashboard.interpolate(text, values)
        == 'x{namespace="team-a", name="iris"} iris iris "$1" $other'
    )


def test_builtin_intervals_follow_grafanas_rules() -> None:
    """$__interval: the range over the points, rounded to a round interval, never below
    the scrape interval; $__rate_interval = max($__interval + scrape, 4 * scrape)."""
    short = dashboard.Window(start=0, end=600, scrape_s=15)
    assert short.builtins() == {
        "__interval": "15s",
        "__rate_interval": "60s",
        "__range": "600s",
    }
    long = dashboard.Window(start=0, end=86_400, scrape_s=15)
    assert long.builtins()["__interval"] == "60s"  # 86.4 s a point, rounded to 1 min
    assert long.builtins()["__rate_interval"] == "75s"
    assert dashboard.round_interval(4 * 3600) == 3 * 3600


def test_a_variable_query_that_is_not_label_values_is_refused() -> None:
    client = dashboard.Client("http://127.0.0.1:9")
    try:
        with pytest.raises(dashboard.DashboardError, match="label_values"):
            client.label_values("query_result(up)", dashboard.Window(0, 60))
    finally:
        client.close()


def test_legends_are_filled_from_the_series_labels() -> None:
    executed = dashboard.Executed(panel="p", legend="{{class}} (canary)", promql="", instant=False)
    series = dashboard.Series(labels={"class": "2"}, points=[])
    assert executed.name(series) == "2 (canary)"
