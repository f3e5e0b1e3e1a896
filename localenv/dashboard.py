"""The Grafana dashboard of examples/grafana/, executed and drawn without Grafana.

    python -m localenv.dashboard --prometheus URL --namespace NS --model NAME
                                 [--minutes 10 | --start T --end T] [--out PNG]

Grafana itself is not built here: its Go module is under the AGPL, which this project
does not build from. What a Grafana would do with the dashboard is small enough to do
faithfully: fill in its template variables (`$namespace`, `${model}`, and the built-in
`$__interval`, `$__rate_interval`, `$__range`, computed as Grafana computes them), run
each panel's PromQL against the Prometheus HTTP API (a range query, or an instant one
where the target says `instant`), and resolve each variable's `label_values(...)`
through the labels API. `execute` does that and returns every query with its series;
the e2e test asserts each returns some during a real rollout, and `render` draws them
with matplotlib in the dashboard's own grid (a preview, not Grafana's look: time series
and stat panels only, which is all the dashboard uses).
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

DASHBOARD = Path(__file__).resolve().parents[1] / "examples" / "grafana" / "mlmodel-rollouts.json"
# Grafana's defaults: a Prometheus data source's scrape interval when none is set, and
# the points a panel asks for (about its width in pixels).
DEFAULT_SCRAPE_S = 15.0
MAX_DATA_POINTS = 1000
PANEL_TYPES = ("timeseries", "stat")
# Grafana's variable syntaxes: $name, ${name} (optionally ${name:format}), [[name]].
_VARIABLE = re.compile(r"\$(\w+)|\$\{(\w+)(?::\w+)?\}|\[\[(\w+)\]\]")
_LABEL_VALUES = re.compile(r"^\s*label_values\(\s*(?:(.+?)\s*,\s*)?(\w+)\s*\)\s*$")


class DashboardError(RuntimeError):
    pass


# ---- the dashboard ------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    expr: str
    legend: str
    instant: bool


@dataclass(frozen=True)
class Panel:
    title: str
    kind: str
    grid: tuple[int, int, int, int]  # x, y, w, h in Grafana's 24-column grid
    unit: str
    targets: tuple[Target, ...]
    text_mode: str = "auto"  # a stat panel's: value, name, value_and_name
    decimals: int | None = None
    stepped: frozenset[str] = frozenset()  # "*" for every series, or series names


@dataclass(frozen=True)
class Variable:
    name: str
    query: str  # label_values(selector, label)


@dataclass(frozen=True)
class Dashboard:
    title: str
    panels: tuple[Panel, ...]
    variables: tuple[Variable, ...]


def load(path: Path = DASHBOARD) -> Dashboard:
    raw = json.loads(path.read_text())
    panels = []
    for item in raw.get("panels") or ():
        if item.get("type") not in PANEL_TYPES:
            raise DashboardError(f"panel {item.get('title')!r}: type {item.get('type')!r}")
        grid = item["gridPos"]
        panels.append(
            Panel(
                title=str(item["title"]),
                kind=str(item["type"]),
                grid=(int(grid["x"]), int(grid["y"]), int(grid["w"]), int(grid["h"])),
                unit=str(((item.get("fieldConfig") or {}).get("defaults") or {}).get("unit", "")),
                targets=tuple(
                    Target(
                        expr=str(t["expr"]),
                        legend=str(t.get("legendFormat", "")),
                        instant=bool(t.get("instant")),
                    )
                    for t in item.get("targets") or ()
                ),
                text_mode=str((item.get("options") or {}).get("textMode", "auto")),
                decimals=((item.get("fieldConfig") or {}).get("defaults") or {}).get("decimals"),
                stepped=_stepped(item.get("fieldConfig") or {}),
            )
        )
    variables = []
    for item in (raw.get("templating") or {}).get("list") or ():
        if item.get("type") != "query":
            continue  # the data source picker: nothing to query
        query = item.get("query")
        text = query.get("query") if isinstance(query, dict) else query
        variables.append(Variable(name=str(item["name"]), query=str(text)))
    return Dashboard(
        title=str(raw.get("title", "")), panels=tuple(panels), variables=tuple(variables)
    )


def _stepped(config: Mapping[str, Any]) -> frozenset[str]:
    """Which series a panel draws as steps (lineInterpolation stepAfter): all of them
    ("*"), or those its overrides name."""
    custom = (config.get("defaults") or {}).get("custom") or {}
    names = {"*"} if custom.get("lineInterpolation") == "stepAfter" else set()
    for override in config.get("overrides") or ():
        for prop in override.get("properties") or ():
            if prop.get("id") == "custom.lineInterpolation" and prop.get("value") == "stepAfter":
                names.add(str((override.get("matcher") or {}).get("options", "")))
    return frozenset(names)


# ---- Grafana's variables --------------------------------------------------------------


def duration(seconds: float) -> str:
    """A PromQL duration, in whole seconds (Grafana rounds its intervals likewise)."""
    return f"{max(1, math.ceil(seconds))}s"


@dataclass(frozen=True)
class Window:
    """The time range a dashboard is looked at, and what Grafana derives from it."""

    start: float
    end: float
    scrape_s: float = DEFAULT_SCRAPE_S

    @property
    def step(self) -> float:
        """$__interval: the range over the points a panel shows, rounded to a round
        interval, never below the data source's scrape interval (its 'min interval')."""
        return max(self.scrape_s, round_interval((self.end - self.start) / MAX_DATA_POINTS))

    def builtins(self) -> dict[str, str]:
        # Grafana: $__rate_interval = max($__interval + scrape interval, 4 * scrape
        # interval), so a rate() window always holds several samples.
        rate = max(self.step + self.scrape_s, 4 * self.scrape_s)
        return {
            "__interval": duration(self.step),
            "__rate_interval": duration(rate),
            "__range": duration(self.end - self.start),
        }


# Grafana's rounding of a raw interval (rangeutil's roundInterval): below each bound in
# seconds, the round value it becomes.
_ROUND_INTERVALS = (
    (0.015, 0.01), (0.035, 0.02), (0.075, 0.05), (0.15, 0.1), (0.35, 0.2), (0.75, 0.5),
    (1.5, 1), (3.5, 2), (7.5, 5), (12.5, 10), (17.5, 15), (25, 20), (45, 30), (90, 60),
    (210, 120), (450, 300), (750, 600), (1050, 900), (1500, 1200), (2700, 1800),
    (5400, 3600), (9000, 7200), (16200, 10800), (32400, 21600), (86400, 43200),
    (604800, 86400), (1814400, 604800), (3628800, 2592000),
)  # fmt: skip


def round_interval(seconds: float) -> float:
    for bound, rounded in _ROUND_INTERVALS:
        if seconds < bound:
            return rounded
    return 31536000.0  # a year


def interpolate(text: str, values: Mapping[str, str]) -> str:
    """`text` with Grafana's variables replaced; an unknown name stays as written (as
    in Grafana, so a regex group `$1` survives)."""

    def replace(match: re.Match[str]) -> str:
        name = next(group for group in match.groups() if group)
        return values.get(name, match.group(0))

    return _VARIABLE.sub(replace, text)


# ---- running the queries ----------------------------------------------------------------


@dataclass
class Series:
    labels: dict[str, str]
    points: list[tuple[float, float]]  # (unix time, value); NaN kept as NaN


@dataclass
class Executed:
    """One query as sent (variables filled in) and what it returned."""

    panel: str
    legend: str
    promql: str
    instant: bool
    series: list[Series] = field(default_factory=list)

    def name(self, series: Series) -> str:
        """The legend Grafana shows: `{{label}}` filled from the series."""
        if not self.legend:
            return json.dumps(series.labels, sort_keys=True)
        return re.sub(
            r"\{\{\s*(\w+)\s*\}\}", lambda m: series.labels.get(m.group(1), ""), self.legend
        )


class Client:
    def __init__(self, url: str, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self._http = httpx.Client(timeout=timeout, trust_env=False)

    def close(self) -> None:
        self._http.close()

    def _get(self, path: str, params: Mapping[str, Any]) -> Any:
        body = self._http.get(f"{self.url}{path}", params=params).json()
        if body.get("status") != "success":
            raise DashboardError(f"{path} {dict(params)}: {body.get('error', body)}")
        return body["data"]

    def query(self, promql: str, window: Window, *, instant: bool) -> list[Series]:
        if instant:
            data = self._get("/api/v1/query", {"query": promql, "time": window.end})
            return [
                Series(item["metric"], [(float(item["value"][0]), float(item["value"][1]))])
                for item in data["result"]
            ]
        step = max(1.0, round(window.step))
        params = {"query": promql, "start": window.start, "end": window.end, "step": step}
        data = self._get("/api/v1/query_range", params)
        return [
            Series(item["metric"], [(float(t), float(v)) for t, v in item["values"]])
            for item in data["result"]
        ]

    def label_values(self, query: str, window: Window) -> list[str]:
        """Grafana's `label_values(selector, label)`: the labels API with a match[]."""
        match = _LABEL_VALUES.match(query)
        if not match:
            raise DashboardError(f"not a label_values() query: {query!r}")
        selector, label = match.groups()
        params: dict[str, Any] = {"start": window.start, "end": window.end}
        if selector:
            params["match[]"] = selector
        return [str(v) for v in self._get(f"/api/v1/label/{label}/values", params)]


@dataclass
class Run:
    """Every query of a dashboard executed once: variables, then panels."""

    variables: dict[str, list[str]]  # each variable's query as sent -> its values
    panels: list[Executed]

    def empty(self) -> list[str]:
        """The queries that returned nothing, for a message."""
        missing = [f"variable query {q}" for q, values in self.variables.items() if not values]
        missing += [f"{e.panel!r}: {e.promql}" for e in self.panels if not e.series]
        return missing


def execute(dashboard: Dashboard, client: Client, window: Window, chosen: Mapping[str, str]) -> Run:
    """Run every query with `chosen` as the variables' values (as a user picks them
    from the variables' own queries, which are run too)."""
    values = {**window.builtins(), **chosen}
    variables = {}
    for variable in dashboard.variables:
        query = interpolate(variable.query, values)
        variables[query] = client.label_values(query, window)
    executed = []
    for panel in dashboard.panels:
        for target in panel.targets:
            promql = interpolate(target.expr, values)
            executed.append(
                Executed(
                    panel=panel.title,
                    legend=target.legend,
                    promql=promql,
                    instant=target.instant,
                    series=client.query(promql, window, instant=target.instant),
                )
            )
    return Run(variables=variables, panels=executed)


# ---- drawing --------------------------------------------------------------------------

_PALETTE = {"stable": "#3274d9", "canary": "#ff780a", "Promoted": "#56a64b", "Pass": "#56a64b"}
_PALETTE.update({"canary weight": "#ff780a", "canary vs stable": "#a352cc"})
_PALETTE.update({"RolledBack": "#e02f44", "Fail": "#e02f44", "Inconclusive": "#f2cc0c"})
_ROW_PX = 30  # Grafana's grid row height


def _color(name: str) -> str | None:
    for key, color in _PALETTE.items():
        if name == key or name.startswith(f"{key},") or name.endswith(f"({key})"):
            return color
    return None


def _formatted(value: float, unit: str, decimals: int | None = None) -> str:
    if math.isnan(value):
        return "NaN"
    if decimals is not None and unit == "":
        return f"{value:.{decimals}f}"
    if unit == "percent":
        return f"{value:.0f}%"
    if unit == "percentunit":
        return f"{100 * value:.1f}%"
    if unit == "s":
        return f"{1000 * value:.0f} ms" if value < 1 else f"{value:.2f} s"
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.3g}"


def render(dashboard: Dashboard, run: Run, window: Window, out: Path, subtitle: str = "") -> Path:
    """Draw the panels in the dashboard's grid to a PNG, 1,600 pixels wide."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    width_px, header_px = 1600, 40
    rows = max(p.grid[1] + p.grid[3] for p in dashboard.panels)
    height_px = header_px + rows * _ROW_PX
    dpi = 100
    fig = plt.figure(figsize=(width_px / dpi, height_px / dpi), dpi=dpi)
    fig.patch.set_facecolor("#111217")
    fig.text(
        8 / width_px,
        1 - 26 / height_px,
        f"{dashboard.title}   {subtitle}".strip(),
        color="#d8d9da",
        fontsize=13,
    )

    def box(
        left: float, top: float, width: float, height: float
    ) -> tuple[float, float, float, float]:
        """Figure coordinates of a rectangle given in pixels from the top left."""
        return (
            left / width_px,
            1 - (top + height) / height_px,
            width / width_px,
            height / height_px,
        )

    by_panel: dict[str, list[Executed]] = {}
    for executed in run.panels:
        by_panel.setdefault(executed.panel, []).append(executed)
    column = width_px / 24
    for panel in dashboard.panels:
        x, y, w, h = panel.grid
        left, top = x * column + 4, header_px + y * _ROW_PX + 4
        width, height = w * column - 8, h * _ROW_PX - 8
        frame = fig.add_axes(box(left, top, width, height))
        frame.set_facecolor("#181b1f")
        frame.set_xticks([])
        frame.set_yticks([])
        for spine in frame.spines.values():
            spine.set_color("#2c3235")
        frame.text(
            8 / width,
            1 - 16 / height,
            panel.title,
            color="#d8d9da",
            fontsize=9,
            transform=frame.transAxes,
            va="center",
        )
        queries = by_panel.get(panel.title, [])
        if panel.kind == "stat":
            inner = fig.add_axes(box(left, top + 24, width, height - 28))
            inner.set_axis_off()
            _draw_stat(inner, panel, queries)
        else:
            inner = fig.add_axes(box(left + 62, top + 28, width - 74, height - 52))
            inner.set_facecolor("#181b1f")
            _draw_series(inner, panel, queries, window)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=dpi, facecolor=fig.get_facecolor())
    plt.close(fig)
    return out


def _draw_stat(axes: Any, panel: Panel, queries: Sequence[Executed]) -> None:
    axes.set_xticks([])
    axes.set_yticks([])
    shown = [(q.name(s), s.points[-1][1]) for q in queries for s in q.series if s.points]
    if not shown:
        axes.text(0.5, 0.4, "No data", ha="center", va="center", color="#9fa7b3", fontsize=12)
        return
    for index, (name, value) in enumerate(shown):
        left = (index + 0.5) / len(shown)
        big = name if panel.text_mode == "name" else _formatted(value, panel.unit, panel.decimals)
        color = _color(name) or "#73bf69"
        axes.text(left, 0.45, big, ha="center", va="center", color=color, fontsize=20)
        if panel.text_mode == "value_and_name":
            axes.text(left, 0.12, name, ha="center", va="center", color="#9fa7b3", fontsize=8)


def _draw_series(axes: Any, panel: Panel, queries: Sequence[Executed], window: Window) -> None:
    from matplotlib.ticker import FuncFormatter

    drawn = 0
    for query in queries:
        judged = query.legend.endswith("judged")
        for series in query.series:
            times = [t - window.end for t, _ in series.points]
            values = [v for _, v in series.points]
            name = query.name(series)
            axes.plot(
                times,
                values,
                label=name,
                color=_color(name),
                linewidth=1.0 if judged else 1.6,
                linestyle=":" if judged else "-",
                drawstyle="steps-post" if {"*", name} & panel.stepped else "default",
            )
            drawn += 1
    if not drawn:
        axes.text(0.5, 0.5, "No data", transform=axes.transAxes, ha="center", color="#9fa7b3")
    elif axes.get_ylim()[0] < 0 and all(
        v >= 0 for q in queries for s in q.series for _, v in s.points if v == v
    ):
        axes.set_ylim(bottom=0)  # nothing below 0 to show (Grafana's soft minimum)
    axes.set_xlim(window.start - window.end, 0)
    minutes = window.end - window.start > 600

    def when(offset: float, _: Any) -> str:
        if not offset:
            return "now"
        return f"{offset / 60:.0f} min" if minutes else f"{offset:.0f} s"

    axes.xaxis.set_major_formatter(FuncFormatter(when))
    for spine in axes.spines.values():
        spine.set_visible(False)
    axes.yaxis.set_major_formatter(FuncFormatter(lambda v, _: _formatted(v, panel.unit)))
    axes.grid(color="#2c3235", linewidth=0.5)
    if drawn:
        legend = axes.legend(fontsize=6, loc="upper left", framealpha=0.3, ncol=3)
        for text in legend.get_texts():
            text.set_color("#d8d9da")


# ---- command line -------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prometheus", required=True, help="its URL (loopback)")
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--model", required=True, help="the MLModel's name")
    parser.add_argument("--minutes", type=float, default=10.0, help="range ending now")
    parser.add_argument("--start", type=float, help="unix time (instead of --minutes)")
    parser.add_argument("--end", type=float, help="unix time (default now)")
    parser.add_argument("--scrape-interval", type=float, default=DEFAULT_SCRAPE_S)
    parser.add_argument("--dashboard", type=Path, default=DASHBOARD)
    parser.add_argument("--out", type=Path, help="draw the panels to this PNG")
    args = parser.parse_args(argv)
    end = args.end or time.time()
    start = args.start or end - 60 * args.minutes
    window = Window(start, end, args.scrape_interval)
    dashboard = load(args.dashboard)
    client = Client(args.prometheus)
    try:
        run = execute(dashboard, client, window, {"namespace": args.namespace, "model": args.model})
    finally:
        client.close()
    for executed in run.panels:
        print(f"{len(executed.series):3d} series  {executed.panel}: {executed.legend}")
    if args.out:
        render(dashboard, run, window, args.out, f"{args.namespace}/{args.model}")
        print(f"wrote {args.out}")
    missing = run.empty()
    for query in missing:
        print(f"no series: {query}", file=sys.stderr)
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
