"""Plot and HTML building blocks shared by the live dashboard and the HTML report.

Everything here takes plain data (column dicts, records, diffs) and returns Bokeh
models or HTML text; nothing reads the experiment or talks to a server, so
:mod:`experigraph.board.app` (live, server-side callbacks) and
:mod:`experigraph.board.report` (standalone file, no server) draw the same plots.
"""
from __future__ import annotations

import html
import math
import os
from collections.abc import Mapping, Sequence
from typing import Any, TypeGuard

from bokeh.models import (
    BasicTicker, BasicTickFormatter, ColumnDataSource, CustomJS, CustomJSTickFormatter,
    FixedTicker, HoverTool, LinearColorMapper, LinearScale, LogScale, LogTicker,
    LogTickFormatter, Range1d)
from bokeh.models.widgets import NumberFormatter, StringFormatter, TableColumn
from bokeh.models.annotations.arrows import Arrow, VeeHead
from bokeh.palettes import Category10_10, Viridis256

from ..present import as_text
from .table import NAN, Column

#: column data as a ColumnDataSource holds it (lists, or arrays sent by the browser)
Data = Mapping[str, Any]
NUMBER = "0.[000000]"
PLOT_TOOLS = "pan,wheel_zoom,box_select,tap,reset"
POINT_COLOR = "#2e7d32"
#: node colours of the trial graph: steps by status, other nodes by kind
STEP_COLORS = {"succeeded": "#66bb6a", "failed": "#ef5350", "cached": "#b0bec5",
               "running": "#42a5f5"}
KIND_COLORS = {"parameter": "#fdd835", "file": "#bcaaa4", "trial": "#ce93d8"}
#: a positive parameter whose largest value is at least this times its smallest gets a log axis
LOG_SPAN = 100.0
#: the unified-diff line styles: added, removed, hunk header, file header, context
DIFF_STYLES = {"+": "background:#e6ffed;color:#116329", "-": "background:#ffebe9;color:#a40e26",
               "@": "color:#6f42c1;background:#f5f0ff", "h": "color:#57606a;font-weight:bold",
               " ": "color:#24292f"}
CHAR_PX = 7.5  # about the width of a character of the table's font


# -- axes that fit the data -----------------------------------------------------------
def _missing(value: Any) -> bool:
    return value is None or value == "" or (isinstance(value, float) and math.isnan(value))


def axis_kind(values: Sequence[Any], numeric: bool) -> str:
    """How to draw a parameter's axis: ``constant``, ``categorical``, ``log`` or ``linear``.

    ``constant``: every trial has the same value (missing included), so the
    parameter gets no axis. ``log``: positive numbers whose largest is at least
    :data:`LOG_SPAN` (two decades) times the smallest.
    """
    distinct = set(values)
    if len(distinct) <= 1 or (numeric and len({"nan" if _missing(v) else v
                                                for v in distinct}) <= 1):
        return "constant"
    if not numeric:
        return "categorical"
    present = [v for v in distinct if not _missing(v)]
    if present and min(present) > 0 and max(present) / min(present) >= LOG_SPAN:
        return "log"
    return "linear"


def axis_kinds(columns: Sequence[Column], data: Data) -> dict[str, str]:
    """``axis_kind`` of every parameter column, by field."""
    return {c.field: axis_kind(data.get(c.field, []), c.numeric) for c in columns}


def fixed_text(columns: Sequence[Column], kinds: Mapping[str, str],
               first_row: Mapping[str, Any] | None) -> str:
    """``fixed: max_iter=100, b=2``: the parameters every trial shares ('' if none).

    ``first_row`` is any trial's raw row (``TrialTable.raw``): the values as recorded.
    """
    if not first_row:
        return ""
    parts = [f"{col.title}={as_text(first_row.get(col.field)) or '(none)'}"
             for col in columns if kinds.get(col.field) == "constant"]
    return "fixed: " + ", ".join(parts) if parts else ""


def figure(**kwargs: Any) -> Any:
    """``bokeh.plotting.figure``, imported when the first plot is made (not for the
    trial table, which a page shows first)."""
    from bokeh.plotting import figure as make

    return make(**kwargs)


def scatter_figure(source: ColumnDataSource, view: Any, *, x_field: str, title: str,
                   kind: str, categories: Mapping[str, int] | None = None,
                   name: str = "scatter_plot", width: int = 520, height: int = 450
                   ) -> tuple[Any, Any]:
    """Result against one parameter, on the axis its values call for (see :func:`set_x`).

    Returns ``(figure, renderer)``.
    """
    fig = figure(name=name, title="Result against a parameter", height=height, width=width,
                 tools=PLOT_TOOLS, y_axis_label="Result", x_range=Range1d(start=0, end=1),
                 y_range=Range1d(start=0, end=1))
    renderer = fig.scatter(x_field, "result_value", source=source, size=8,
                           fill_color=POINT_COLOR, line_color=None, alpha=0.8,
                           name=name.replace("_plot", "_points"),
                           **({"view": view} if view is not None else {}))
    fig.add_tools(HoverTool(name=f"{name}_hover"))
    set_x(fig, renderer, x_field=x_field, title=title, kind=kind, categories=categories)
    return fig, renderer


def set_x(fig: Any, renderer: Any, *, x_field: str, title: str, kind: str,
          categories: Mapping[str, int] | None = None) -> None:
    """Point the scatter's x at ``x_field`` on a ``kind`` axis (:func:`axis_kind`).

    ``log``: a log scale; ``categorical``: the values' codes (``x:`` fields),
    one tick per category labelled with it; else linear. The same figure is
    reused (BokehJS redraws a figure whose scale changes).
    """
    renderer.glyph.x = x_field
    axis = fig.xaxis[0]
    axis.axis_label = title + (" (log scale)" if kind == "log" else "")
    fig.title.text = f"Result against {title}"
    hover = next(t for t in fig.tools if isinstance(t, HoverTool))
    hover.tooltips = [("trial", "@trial_id"), ("result", "@result"),
                      (title, f"@{{{x_field.removeprefix('x:')}}}")]
    # (labels come from formatters, not major_label_overrides: BokehJS keeps showing
    # overrides after they are emptied)
    if kind == "log":
        if not isinstance(fig.x_scale, LogScale):
            fig.x_scale = LogScale()
            axis.ticker, axis.formatter = LogTicker(), LogTickFormatter()
        return
    if not isinstance(fig.x_scale, LinearScale):
        fig.x_scale = LinearScale()
    if kind == "categorical" and categories:
        ticks = sorted(categories.values())
        labels = [""] * (max(ticks) + 1)
        for text, code in categories.items():
            labels[code] = text or "(none)"
        if not isinstance(axis.ticker, FixedTicker) or list(axis.ticker.ticks) != ticks:
            axis.ticker = FixedTicker(ticks=ticks)
        axis.formatter = CustomJSTickFormatter(args={"labels": labels},
                                               code=CATEGORY_LABEL_JS)
    else:
        if type(axis.ticker) is not BasicTicker:
            axis.ticker = BasicTicker()
        if type(axis.formatter) is not BasicTickFormatter:
            axis.formatter = BasicTickFormatter()


CATEGORY_LABEL_JS = "return Number.isInteger(tick) && tick >= 0 && tick < labels.length " \
    "? labels[tick] : ''"


def results_figures(source: ColumnDataSource, views: Any) -> tuple[Any, Any]:
    """Result by trial and process time by trial; ``views()`` gives each renderer's view."""
    hover = HoverTool(tooltips=[("trial", "@trial_id"), ("result", "@result"),
                                ("status", "@status"), ("process time", "@process_time s")])
    result_plot = figure(name="result_plot", title="Result by trial", height=250,
                         sizing_mode="stretch_width", tools=PLOT_TOOLS,
                         x_axis_label="Trial ID", y_axis_label="Result",
                         x_range=Range1d(start=0, end=1), y_range=Range1d(start=0, end=1))
    result_plot.add_tools(hover)
    # one colour, no outline: cheaper to repaint with 10,000 trials (failed and running
    # trials have no result to draw anyway)
    result_plot.scatter("trial_id", "result_value", source=source, size=6,
                        fill_color=POINT_COLOR, line_color=None, view=views(),
                        name="result_points")
    time_plot = figure(name="time_plot", title="Process time by trial", height=200,
                       sizing_mode="stretch_width", tools=PLOT_TOOLS,
                       x_range=result_plot.x_range, x_axis_label="Trial ID",
                       y_axis_label="seconds", y_range=Range1d(start=0, end=1))
    time_plot.add_tools(HoverTool(tooltips=[("trial", "@trial_id"),
                                            ("process time", "@process_time s")]))
    time_plot.scatter("trial_id", "process_time", source=source, size=5,
                      fill_color="#607d8b", line_color=None, view=views(),
                      name="time_points")  # bars would cost ~0.2 s per repaint at 10,000
    return result_plot, time_plot


# -- parallel coordinates ---------------------------------------------------------------
def parallel_axes(columns: Sequence[Column], data: Data,
                  kinds: Mapping[str, str]) -> list[tuple[str, str, str, float, float]]:
    """``(field, title, kind, low, high)`` of each axis: varying parameters, then the result.

    ``low`` and ``high`` are in drawing units (log10 of the values on a log axis).
    """
    axes = []
    fields = [(f"x:{c.field}", c.title, kinds.get(c.field, "linear")) for c in columns
              if kinds.get(c.field) != "constant"] + [("result_value", "Result", "linear")]
    for field, title, kind in fields:
        values = [_unit(v, kind) for v in data.get(field, [])]
        values = [v for v in values if not math.isnan(v)]
        axes.append((field, title, kind, min(values, default=0.0), max(values, default=1.0)))
    return axes


def _unit(value: Any, kind: str) -> float:
    if not isinstance(value, (int, float)) or math.isnan(value):
        return NAN
    if kind == "log":
        return math.log10(value) if value > 0 else NAN
    return float(value)


def parallel_lines(data: Data,
                   axes: Sequence[tuple[str, str, str, float, float]],
                   positions: Sequence[int]) -> dict[str, list[Any]]:
    """The lines of the trials at ``positions``: each axis scaled to 0..1."""
    xs, ys = [], []
    ticks = list(range(len(axes)))
    for p in positions:
        ys.append([_scale(_unit(data[field][p], kind), lo, hi)
                   for field, _, kind, lo, hi in axes])
        xs.append(ticks)
    return {"xs": xs, "ys": ys, "trial_id": [data["trial_id"][p] for p in positions],
            "result_value": [data["result_value"][p] for p in positions]}


def parallel_labels(axes: Sequence[tuple[str, str, str, float, float]],
                    categories: Mapping[str, Mapping[str, int]]) -> dict[str, list[Any]]:
    """Value labels along each axis: every category, or the two ends (log: as values)."""
    out: dict[str, list[Any]] = {"x": [], "y": [], "text": []}
    for i, (field, _, kind, lo, hi) in enumerate(axes):
        cats = categories.get(field[2:]) if kind == "categorical" else None
        if cats:
            shown = sorted(cats.items(), key=lambda item: item[1])
            for text, code in shown[:12]:
                out["x"].append(i + 0.05)
                out["y"].append(_scale(code, lo, hi))
                out["text"].append(_short(text or "(none)", 16))
            continue
        low, high = (10 ** lo, 10 ** hi) if kind == "log" else (lo, hi)
        out["x"] += [i, i]
        out["y"] += [1.06, -0.06]
        out["text"] += [_fmt(high), _fmt(low)]
    return out


def parallel_figure(source: ColumnDataSource, labels: ColumnDataSource,
                    mapper: LinearColorMapper) -> Any:
    """The parallel-coordinates figure of ``source`` (lines) and ``labels``."""
    plot = figure(name="parallel_plot", height=420, sizing_mode="stretch_width",
                  tools="pan,wheel_zoom,tap,reset,save", y_range=Range1d(start=-0.1, end=1.1),
                  x_range=Range1d(start=-0.3, end=1.6),
                  title="Each line is a trial: its parameters (scaled to their range; "
                        "log scale where marked) and its result (colour; failed in red)")
    plot.multi_line("xs", "ys", source=source, line_width=1.5, alpha=0.5,
                    color={"field": "result_value", "transform": mapper},
                    nonselection_alpha=0.08, selection_alpha=1, name="parallel_lines")
    plot.text("x", "y", text="text", source=labels, text_font_size="9pt",
              text_align="left", text_baseline="middle", name="parallel_labels")
    plot.add_tools(HoverTool(tooltips=[("trial", "@trial_id"), ("result", "@result_value")]))
    plot.yaxis.visible = False
    plot.ygrid.visible = False
    return plot


def set_parallel_axes(plot: Any, axes: Sequence[tuple[str, str, str, float, float]]) -> None:
    n = len(axes)
    plot.xaxis.ticker = list(range(n))
    plot.xaxis.major_label_overrides = {
        i: title + (" (log)" if kind == "log" else "")
        for i, (_, title, kind, _, _) in enumerate(axes)}
    end = max(n - 1, 1) + 0.6
    plot.x_range.update(start=-0.3, end=end, reset_start=-0.3, reset_end=end)


def new_parallel_sources() -> tuple[ColumnDataSource, ColumnDataSource, LinearColorMapper]:
    source = ColumnDataSource({"xs": [], "ys": [], "trial_id": [], "result_value": []},
                              name="parallel_source")
    labels = ColumnDataSource({"x": [], "y": [], "text": []}, name="parallel_label_source")
    return source, labels, LinearColorMapper(palette=Viridis256, nan_color="#e57373")


def color_range(mapper: LinearColorMapper, results: Any) -> None:
    values = [v for v in results if not math.isnan(v)]
    mapper.low = min(values, default=0.0)
    mapper.high = max(values, default=1.0)


# -- metric curves --------------------------------------------------------------------
def metric_figure(source: ColumnDataSource, *, name: str = "metric_plot",
                  curves: str = "metric_curves", title: str = "Metric curves") -> Any:
    # explicit ranges (see fit_metric_ranges): a figure in a hidden tab cannot measure its
    # data, and a DataRange1d there makes the browser warn "could not set initial ranges"
    plot = figure(name=name, height=380, sizing_mode="stretch_width",
                  css_classes=["eg-metric-plot"], tools="pan,wheel_zoom,box_zoom,reset,save",
                  x_axis_label="Epoch", title=title, x_range=Range1d(start=0, end=1),
                  y_range=Range1d(start=0, end=1))
    fit_metric_ranges(plot, source.data)
    plot.multi_line("xs", "ys", source=source, color="color", line_width=2,
                    legend_field="label", name=curves)
    # each point too: a curve of one point (a trial in its first epoch) shows
    plot.scatter("x", "y", source=points_source(source), color="color", size=5,
                 name=f"{curves}:points")
    plot.add_tools(HoverTool(tooltips=[("trial", "@trial_id"), ("epoch", "$x"),
                                       ("value", "$y")]))
    plot.legend.location = "top_right"
    return plot


def points_source(curves: ColumnDataSource) -> ColumnDataSource:
    """A source of the curves' points, kept equal to them in the browser (no server)."""
    points = ColumnDataSource(curve_points(curves.data))
    curves.js_on_change("data", CustomJS(args={"points": points}, code="""
        const d = cb_obj.data, get = k => d instanceof Map ? d.get(k) : d[k];
        const out = {x: [], y: [], color: [], trial_id: []};
        const xs = get("xs"), ys = get("ys");
        for (let i = 0; i < xs.length; i++) {
            for (let j = 0; j < xs[i].length; j++) {
                out.x.push(xs[i][j]); out.y.push(ys[i][j]);
                out.color.push(get("color")[i]); out.trial_id.push(get("trial_id")[i]);
            }
        }
        points.data = out;"""))
    return points


def curve_points(data: Data) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {"x": [], "y": [], "color": [], "trial_id": []}
    for xs, ys, color, trial_id in zip(data.get("xs", []), data.get("ys", []),
                                       data.get("color", []), data.get("trial_id", [])):
        out["x"] += list(xs)
        out["y"] += list(ys)
        out["color"] += [color] * len(xs)
        out["trial_id"] += [trial_id] * len(xs)
    return out


def fit_range(rng: Range1d, values: Sequence[Any], log: bool = False) -> None:
    """Set ``rng`` (and what Reset returns to) around the finite ``values``, padded 5%.

    The figures use explicit ranges rather than ``DataRange1d``: a figure in a
    hidden tab, or with nothing to draw yet, cannot measure its data, and the
    browser then warns "could not set initial ranges".
    """
    finite = [float(v) for v in values if _is_real(v) and (not log or v > 0)]
    if log:
        lo, hi = (min(finite), max(finite)) if finite else (0.1, 10.0)
        if lo == hi:
            lo, hi = lo / 2, hi * 2
        factor = (hi / lo) ** 0.05
        start, end = lo / factor, hi * factor
    else:
        lo, hi = (min(finite), max(finite)) if finite else (0.0, 1.0)
        pad = (hi - lo) * 0.05 or max(abs(hi) * 0.05, 0.5)
        start, end = lo - pad, hi + pad
    if (rng.start, rng.end, rng.reset_start, rng.reset_end) != (start, end, start, end):
        rng.update(start=start, end=end, reset_start=start, reset_end=end)


def fit_metric_ranges(plot: Any, data: Data) -> None:
    """Set the metric figure's ranges around its curves."""
    fit_range(plot.x_range, [v for line in data.get("xs", []) for v in line])
    fit_range(plot.y_range, [v for line in data.get("ys", []) for v in line])


def fit_results(figures: Sequence[tuple[Any, str, str, bool]],
                data: Data) -> None:
    """Fit each ``(figure, x field, y field, x is log)`` to every trial's values."""
    for fig, x_field, y_field, log in figures:
        fit_range(fig.x_range, data.get(x_field, []), log=log)
        fit_range(fig.y_range, data.get(y_field, []))


def metric_data(frame: Any) -> dict[str, list[Any]]:
    """Curves of a ``load_metric`` frame: one line per trial with a finite point."""
    data: dict[str, list[Any]] = {k: [] for k in ("xs", "ys", "trial_id", "color", "label")}
    epochs = list(frame.index)
    numeric_epochs = all(isinstance(e, (int, float)) for e in epochs)
    for i, trial_id in enumerate(frame.columns):
        points = [(e if numeric_epochs else n, float(v)) for n, (e, v) in
                  enumerate(zip(epochs, frame[trial_id])) if _is_real(v)]
        if not points:
            continue
        data["xs"].append([p[0] for p in points])
        data["ys"].append([p[1] for p in points])
        data["trial_id"].append(int(trial_id))
        data["color"].append(Category10_10[i % 10])
        data["label"].append(f"trial {trial_id}")
    return data


# -- the trial table ------------------------------------------------------------------
def table_columns(columns: Sequence[Column], data: Data,
                  sample: int = 300) -> list[TableColumn]:
    """The trial table's columns, each as wide as its title and (a sample of) its values.

    The header shows the full name on hover (``title`` attribute), however narrow.
    """
    out = []
    status = StringFormatter(text_color="_color", font_style="bold")  # failed in red
    number = NumberFormatter(format=NUMBER, nan_format="", text_align="right")
    text = StringFormatter()
    n = len(data.get("trial_id", []))
    rows = range(n) if n <= sample else [*range(sample // 2), *range(n - sample // 2, n)]
    for col in columns:
        if col.field in ("trial_id", "status"):
            formatter: Any = status
        elif col.numeric and col.field != "seed":
            formatter = number
        else:
            formatter = text
        values = data.get(col.field, [])
        longest = max((len(_cell_text(values[i], col.numeric and col.field != "seed"))
                       for i in rows if i < len(values)), default=0)
        chars = max(len(col.title) + 2, longest)  # +2: the sort arrow
        limit = 420 if col.field == "description" else 260
        width = int(min(max(chars * CHAR_PX + 12, 44), limit))
        title = html.escape(col.title)
        out.append(TableColumn(field=col.field, formatter=formatter, width=width,
                               title=f"<span title=\"{title}\">{title}</span>"))
    return out


def _cell_text(value: Any, number: bool) -> str:
    if number and isinstance(value, (int, float)):
        if math.isnan(value):
            return ""
        return f"{value:.6f}".rstrip("0").rstrip(".")
    return as_text(value)


# -- coloured diffs -------------------------------------------------------------------
def diff_html(lines: Sequence[str]) -> str:
    """Unified diff lines as a ``<pre>`` with added, removed and context lines coloured."""
    out = []
    for line in lines:
        if line.startswith(("+++", "---")):
            style, cls = DIFF_STYLES["h"], "eg-diff-file"
        elif line.startswith("@@"):
            style, cls = DIFF_STYLES["@"], "eg-diff-hunk"
        elif line.startswith("+"):
            style, cls = DIFF_STYLES["+"], "eg-diff-add"
        elif line.startswith("-"):
            style, cls = DIFF_STYLES["-"], "eg-diff-del"
        else:
            style, cls = DIFF_STYLES[" "], "eg-diff-ctx"
        out.append(f"<span class='{cls}' style='display:block;{style}'>"
                   f"{html.escape(line) or ' '}</span>")
    return ("<pre class='eg-diff' style='margin:4px 0;padding:4px;border:1px solid #d0d7de;"
            "border-radius:4px;font-size:12px;line-height:1.35;overflow:auto'>"
            + "".join(out) + "</pre>")


def compare_html(diff: Any) -> str:
    """The comparison of two trials: each section, code and environment as coloured diffs."""
    head = f"<b>Trial {diff.first_id} &rarr; trial {diff.second_id}</b>"
    if not diff:
        return f"<div>{head}: no differences</div>"
    body = []
    for title, lines in diff.sections():
        body.append(f"<h4 style='margin:10px 0 2px'>{html.escape(title)}</h4>")
        if title.startswith(("Code:", "Environment:")):
            body.append(diff_html(lines))
        else:
            body.append("<pre style='margin:2px 0'>" + html.escape("\n".join(lines))
                        + "</pre>")
    return f"<div class='eg-compare-body'>{head}{''.join(body)}</div>"


def drift_html(trial_id: int, event: Any) -> str:
    """One drift event with its coloured diff."""
    return (f"<div><b>Trial {trial_id}: {html.escape(event.kind)}</b> \u2014 "
            f"{html.escape(event.message)}"
            + (diff_html(list(event.diff)) if event.diff else "") + "</div>")


# -- the trial graph ------------------------------------------------------------------
def graph_layout(nodes: Sequence[str], edges: Sequence[tuple[str, str]]
                 ) -> tuple[dict[str, tuple[float, float]], list[list[tuple[float, float]]]]:
    """A layered left-to-right layout: node positions and one polyline per edge.

    Layers: a step or file is one right of its furthest predecessor; a node with
    no predecessor (a parameter, an input file) sits just left of its first user.
    An edge that spans layers passes through a waypoint in each layer between,
    and every layer is ordered by the mean position of its neighbours, starting
    from dask's order of the graph (``dask.order.order``), so edges neither
    cross nodes nor, for chains and trees, each other.
    """
    known = set(nodes)
    edges = [(a, b) for a, b in edges if a in known and b in known and a != b]
    preds: dict[str, list[str]] = {n: [] for n in nodes}
    succs: dict[str, list[str]] = {n: [] for n in nodes}
    for a, b in edges:
        preds[b].append(a)
        succs[a].append(b)
    index: dict[str, float] = dict(dask_order(nodes, preds))
    depth: dict[str, int] = {}

    def layer(n: str, seen: frozenset[str] = frozenset()) -> int:
        if n not in depth:
            depth[n] = 1 + max((layer(p, seen | {n}) for p in preds[n] if p not in seen),
                               default=-1)
        return depth[n]

    for n in nodes:
        layer(n)
    for n in nodes:  # sources next to their first user
        if not preds[n] and succs[n]:
            depth[n] = max(0, min(depth[s] for s in succs[n]) - 1)
    # waypoints of long edges
    chains: list[list[str]] = []
    layer_of = dict(depth)
    for k, (a, b) in enumerate(edges):
        chain = [a]
        for d in range(layer_of[a] + 1, layer_of[b]):
            dummy = f"\0{k}:{d}"
            layer_of[dummy] = d
            index[dummy] = index[a] + 0.5
            chain.append(dummy)
        chains.append(chain + [b])
    up: dict[str, list[str]] = {n: [] for n in layer_of}
    down: dict[str, list[str]] = {n: [] for n in layer_of}
    for chain in chains:
        for a, b in zip(chain, chain[1:]):
            if layer_of[b] > layer_of[a]:
                up[b].append(a)
                down[a].append(b)
    layers: dict[int, list[str]] = {}
    for n in sorted(layer_of, key=lambda n: index[n]):
        layers.setdefault(layer_of[n], []).append(n)
    order = sorted(layers)
    pos = {n: i for members in layers.values() for i, n in enumerate(members)}

    def sweep(seq: Sequence[int], neighbours: Mapping[str, list[str]]) -> None:
        for d in seq:
            members = layers[d]
            def key(n: str) -> float:
                near = neighbours[n]
                return sum(pos[m] for m in near) / len(near) if near else pos[n]
            members.sort(key=key)
            for i, n in enumerate(members):
                pos[n] = i

    for _ in range(4):
        sweep(order[1:], up)
        sweep(order[-2::-1], down)
    coords: dict[str, tuple[float, float]] = {}
    for d, members in layers.items():
        for i, n in enumerate(members):
            coords[n] = (float(d), (len(members) - 1) / 2 - i)
    paths = [[coords[n] for n in chain] for chain in chains]
    return {n: coords[n] for n in nodes}, paths


def dask_order(nodes: Sequence[str], preds: Mapping[str, Sequence[str]]) -> dict[str, int]:
    """The position of each node in dask's execution order of the graph.

    Falls back to the order of ``nodes`` if dask cannot order it (e.g. a cycle).
    """
    def run(*args: Any) -> None:  # pragma: no cover - never called, only ordered
        return None

    try:
        from dask.order import order

        ranks = order({n: (run, *preds[n]) if preds[n] else 0 for n in nodes})
        return {n: int(ranks[n]) for n in nodes}
    except Exception:  # dask's graph checks: any failure means "keep the given order"
        return {n: i for i, n in enumerate(nodes)}


def graph_data(nodes: Mapping[str, Mapping[str, Any]], edges: Sequence[tuple[str, str]]
               ) -> tuple[dict[str, list[Any]], dict[str, list[Any]], dict[str, list[Any]]]:
    """Column data of the trial graph: nodes, edge polylines, and the arrow heads."""
    layout, paths = graph_layout(list(nodes), edges)
    durations = [float(a["duration"]) for a in nodes.values()
                 if a.get("kind", "step") == "step" and _is_real(a.get("duration"))]
    longest = max(durations, default=0.0) or 1.0
    data: dict[str, list[Any]] = {k: [] for k in (
        "x", "y", "label", "kind", "status", "color", "size", "hash", "time", "detail",
        "input_hash", "output_hash", "code_hash", "name")}
    for node, attrs in nodes.items():
        x, y = layout[node]
        kind = attrs.get("kind", "step")
        label = str(attrs.get("label", node))
        duration = attrs.get("duration")
        shown = _short(os.path.basename(label) if kind == "file" else label, 28)
        if kind == "step":
            status = "failed" if attrs.get("succeeded") is False or attrs.get("error") else \
                "cached" if attrs.get("cached") else "succeeded"
            color = STEP_COLORS[status]
            size = 16 + 22 * math.sqrt(float(duration) / longest) if _is_real(duration) \
                else 16
            if _is_real(duration):
                shown += f" \u00b7 {seconds(float(duration))}"
        else:
            status, color, size = "", KIND_COLORS.get(kind, "#eeeeee"), 14
        detail = []
        if kind == "file":
            detail.append(label)
        if "value" in attrs:
            detail.append(f"value={as_text(attrs['value'])}")
        if attrs.get("error"):
            detail.append(f"error: {attrs['error']}")
        for key, value in (("x", x), ("y", y), ("label", shown), ("kind", kind),
                           ("status", status), ("color", color), ("size", size),
                           ("name", label),
                           ("hash", str(attrs.get("output_hash") or attrs.get("hash") or "")),
                           ("time", f"{float(duration):.6f} s" if _is_real(duration) else ""),
                           ("detail", _short("; ".join(detail), 120)),
                           ("input_hash", str(attrs.get("input_hash") or "")),
                           ("output_hash", str(attrs.get("output_hash") or "")),
                           ("code_hash", str(attrs.get("code_hash") or ""))):
            data[key].append(value)
    lines: dict[str, list[Any]] = {"xs": [], "ys": []}
    heads: dict[str, list[float]] = {"x0": [], "y0": [], "x1": [], "y1": []}
    for path in paths:
        (xa, ya), (xb, yb) = path[0], path[-1]
        pts = [(xa + 0.12, ya)] + path[1:-1] + [(xb - 0.14, yb)] if len(path) > 2 else \
            _shorten(path[0], path[1])
        lines["xs"].append([p[0] for p in pts])
        lines["ys"].append([p[1] for p in pts])
        heads["x0"].append(pts[-2][0])
        heads["y0"].append(pts[-2][1])
        heads["x1"].append(pts[-1][0])
        heads["y1"].append(pts[-1][1])
    return data, lines, heads


def _shorten(a: tuple[float, float], b: tuple[float, float], gap: float = 0.13
             ) -> list[tuple[float, float]]:
    length = math.hypot(b[0] - a[0], b[1] - a[1]) or 1.0
    dx, dy = (b[0] - a[0]) / length * gap, (b[1] - a[1]) / length * gap
    return [(a[0] + dx, a[1] + dy), (b[0] - dx, b[1] - dy)]


STEP_DETAIL_JS = """
const i = nodes.selected.indices;
if (i.length === 0) { div.text = hint; return; }
const d = nodes.data;
const get = (k) => (d instanceof Map ? d.get(k) : d[k])[i[0]];
const esc = (s) => String(s).replace(/&/g, "&amp;").replace(/</g, "&lt;");
let t = "<b>" + esc(get("kind")) + " " + esc(get("name")) + "</b>";
if (get("status")) t += " \u00b7 " + esc(get("status"));
const rows = [["time", get("time")], ["input hash", get("input_hash")],
              ["output hash", get("output_hash") || get("hash")],
              ["code hash", get("code_hash")], ["", get("detail")]];
for (const [k, v] of rows) if (v) t += "<br>" + (k ? k + ": " : "") + "<code>" + esc(v) + "</code>";
div.text = t;
"""
STEP_HINT = "<i>Click a step in the graph for its input and output hashes and timing.</i>"


def graph_figure(nodes: ColumnDataSource, lines: ColumnDataSource, heads: ColumnDataSource,
                 detail: Any, *, width: int = 900, height: int = 380) -> Any:
    """The trial graph: left to right, steps coloured by status and sized by time.

    Clicking a node shows its hashes and timing in ``detail`` (a Div), in the
    browser (no server round trip), live and in the report alike.
    """
    plot = figure(name="provenance_plot", height=height, width=width,
                  tools="pan,wheel_zoom,tap,reset,save", title="Trial graph",
                  x_range=Range1d(start=-0.6, end=3.6), y_range=Range1d(start=-1, end=1))
    plot.multi_line("xs", "ys", source=lines, line_color="#90a4ae", line_width=1.5,
                    name="provenance_lines")
    plot.add_layout(Arrow(end=VeeHead(size=9, fill_color="#607d8b", line_color="#607d8b"),
                          x_start="x0", y_start="y0", x_end="x1", y_end="y1", source=heads,
                          line_alpha=0))  # type: ignore[call-arg]
    points = plot.scatter("x", "y", source=nodes, size="size", color="color",
                          line_color="#37474f", name="provenance_points",
                          nonselection_alpha=0.6)
    plot.text("x", "y", text="label", source=nodes, y_offset=-20, text_align="center",
              text_font_size="9pt")
    plot.add_tools(HoverTool(renderers=[points], tooltips=[
        ("", "@kind @name"), ("status", "@status"), ("time", "@time"),
        ("input hash", "@input_hash"), ("output hash", "@hash"), ("", "@detail")]))
    plot.axis.visible = False
    plot.grid.visible = False
    nodes.selected.js_on_change("indices", CustomJS(
        args={"nodes": nodes, "div": detail, "hint": STEP_HINT}, code=STEP_DETAIL_JS))
    return plot


def fit_graph(plot: Any, data: Mapping[str, Sequence[float]]) -> None:
    xs, ys = list(data["x"]) or [0.0], list(data["y"]) or [0.0]
    plot.x_range.update(start=min(xs) - 0.6, end=max(xs) + 0.6)
    plot.y_range.update(start=min(ys) - 0.8, end=max(ys) + 0.8)


# -- small helpers ----------------------------------------------------------------------
def _is_real(value: Any) -> TypeGuard[float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and \
        math.isfinite(value)


def _scale(value: float, lo: float, hi: float) -> float:
    if math.isnan(value):
        return NAN
    return 0.5 if hi == lo else (value - lo) / (hi - lo)


def seconds(value: float) -> str:
    """``8.6 ms``, ``1.25 s``: a duration for a label."""
    if value < 1e-3:
        return f"{value * 1e6:.0f} \u00b5s"
    if value < 1:
        return f"{value * 1e3:.1f} ms"
    return f"{value:.2f} s"


def _fmt(value: float) -> str:
    return f"{value:.4g}"


def _short(text: str, limit: int = 20) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "\u2026"


__all__ = ["axis_kind", "compare_html", "diff_html", "graph_layout", "table_columns"]
