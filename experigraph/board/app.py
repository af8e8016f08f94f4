"""The Bokeh document of the dashboard: one :class:`BoardSession` per browser tab.

Every session reads the experiment through the server's shared
:class:`BoardState` (one :class:`~experigraph.board.table.TrialTable`), so many
open tabs cost one refresh. A session keeps its own ColumnDataSources and, on
each periodic callback, streams the rows it has not seen and patches the rows
that changed. Everything here goes through ``Experiment``'s public query
methods: ``trial_id``, ``get_trial``, ``load_metric``, ``compare``,
``get_provenance`` and ``get_metric_keys``.
"""
from __future__ import annotations

import html
import logging
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from bokeh.layouts import column, row
from bokeh.models import (
    AllIndices, BasicTicker, CDSView, ColumnDataSource, FixedTicker, HoverTool, IndexFilter,
    InlineStyleSheet, LinearColorMapper, Range1d, TabPanel, Tabs)
from bokeh.models.annotations.arrows import Arrow, VeeHead
from bokeh.models.widgets import (
    DataTable, Div, NumberFormatter, Select, StringFormatter, TableColumn, TextInput)
from bokeh.palettes import Category10_10, Viridis256
from bokeh.plotting import figure

from ..errors import ExperigraphError
from .table import NAN, TrialTable, as_text

if TYPE_CHECKING:
    from bokeh.document import Document

    from ..experiment import Experiment

logger = logging.getLogger(__name__)

NUMBER = "0.[000000]"
#: how many selected trials the metric view overlays; without a selection, the latest ones
MAX_CURVES = 10
DEFAULT_CURVES = 5
KIND_COLORS = {"parameter": "#fdd835", "step": "#64b5f6", "file": "#a5d6a7", "trial": "#ce93d8"}
PLOT_TOOLS = "pan,wheel_zoom,box_select,tap,reset"
HELP = ("Click a row to see its metrics and step graph; Ctrl/Shift-click a second row to "
        "compare two trials.")
POINT_COLOR = "#2e7d32"
SELECTED_ROWS_CSS = ".slick-cell.selected { background-color: #bbdefb !important; }"
NOT_AVAILABLE = "<i>{what} is not available in this version of experigraph.</i>"


class BoardState:
    """What every session of one dashboard server shares: the experiment and its table.

    Parameters
    ----------
    experiment : Experiment
        The experiment shown (read only).
    refresh_ms : int
        Period of each session's refresh callback.
    """

    def __init__(self, experiment: Experiment, refresh_ms: int = 1000) -> None:
        self.experiment = experiment
        self.refresh_ms = refresh_ms
        self.table = TrialTable(experiment)
        self.error: str | None = None
        self._last_refresh = -math.inf

    def refresh(self, force: bool = False) -> bool:
        """Refresh the shared table, at most about once per period however many sessions ask."""
        now = time.monotonic()
        if not force and now - self._last_refresh < self.refresh_ms / 2000:
            return False
        self._last_refresh = now
        try:
            changed = self.table.refresh()
        except (ExperigraphError, OSError) as exc:
            if self.error is None:
                logger.warning("Dashboard cannot refresh experiment %s: %s",
                               self.experiment.id, exc)
            self.error = str(exc)
            return False
        self.error = None
        return changed

    def make_document(self, doc: Document) -> None:
        """The Bokeh application function: build one session's document."""
        BoardSession(self, doc)


class BoardSession:
    """The models of one browser tab, and their updates."""

    def __init__(self, state: BoardState, doc: Document) -> None:
        self.state = state
        self.table: TrialTable = state.table
        self.ex = state.experiment
        self.doc = doc
        state.refresh(force=True)
        self.revision = self.table.revision
        self.schema_revision = self.table.schema_revision
        self.n_rows = len(self.table)
        self.drift_revision = -1
        self.selected: list[int] = []
        self.provenance_trial: int | None = None
        self._shown_error: str | None = None
        self.pc_axes: list[tuple[str, float, float]] = []

        self.source = ColumnDataSource(self.table.data(), name="trials")
        self.filter_input = TextInput(name="filter", placeholder="Filter: words or name=value, "
                                      "e.g. failed, a=1", width=380, css_classes=["eg-filter"])
        self.header = Div(name="header", sizing_mode="stretch_width", css_classes=["eg-header"])
        self.data_table = DataTable(
            name="trial_table", source=self.source, view=CDSView(filter=AllIndices()),
            columns=self._table_columns(), sortable=True, selectable=True,
            index_position=None, height=table_height(len(self.table)),
            sizing_mode="stretch_width", autosize_mode="none",
            css_classes=["eg-trials"], stylesheets=[InlineStyleSheet(css=SELECTED_ROWS_CSS)])
        self.views: list[CDSView] = [self.data_table.view]

        # Tabs are built when first opened: a page with many trials comes up sooner.
        self.panels: list[tuple[str, str, Callable[[], Any], Callable[[], None]]] = [
            ("results", "Results", self._results_view, lambda: None),
            ("parallel", "Parameters \u2192 result", self._parallel_view,
             self._rebuild_parallel),
            ("metrics", "Metrics", self._metrics_view, self._show_metrics),
            ("compare", "Compare", self._compare_view, self._show_compare),
            ("provenance", "Trial graph", self._provenance_view,
             lambda: self._show_provenance(self._provenance_target())),
            ("drift", "Drift", self._drift_view, self._update_drift),
        ]
        self.built: set[str] = set()
        self.tab_bodies = [column(Div(text="<i>Loading\u2026</i>"), sizing_mode="stretch_width")
                           for _ in self.panels]  # Bokeh re-renders a column's new children
        self.tabs = Tabs(name="tabs", sizing_mode="stretch_width", tabs=[
            TabPanel(title=title, child=body)
            for (_, title, _, _), body in zip(self.panels, self.tab_bodies)])
        doc.title = f"experigraph \u00b7 {self.ex.id}"
        doc.add_root(column(
            self.header, row(self.filter_input, Div(text=f"<small>{HELP}</small>")),
            self.data_table, self.tabs, sizing_mode="stretch_width", name="board"))

        self.filter_input.on_change("value_input", lambda attr, old, new: self._apply_filter())
        self.source.selected.on_change("indices", lambda attr, old, new: self._on_select())
        self.tabs.on_change("active", lambda attr, old, new: self._open_tab(new))
        self._update_header()
        self._open_tab(0)
        doc.add_periodic_callback(self.tick, state.refresh_ms)

    def _open_tab(self, index: int) -> None:
        """Build a tab's models the first time it is shown."""
        name, _, build, fill = self.panels[index]
        if name in self.built:
            return
        self.tab_bodies[index].children = [build()]
        self.built.add(name)
        try:
            fill()
        except Exception:  # a view that fails must not take the dashboard down
            logger.warning("Dashboard view %s failed", name, exc_info=True)

    # -- refresh ------------------------------------------------------------------
    def tick(self) -> None:
        """The periodic callback: read what changed, then update this session's models."""
        self.state.refresh()
        changed = self.sync()
        running = [t for t in self.metric_trials if t in self.table.unfinished]
        if changed and (running or self.provenance_trial in self.table.unfinished
                        or not self.selected):
            self._show_selection()

    def sync(self) -> bool:
        """Bring this session's sources up to the shared table; return whether they changed."""
        t = self.table
        if t.revision == self.revision:
            if self.state.error or self._shown_error:
                self._update_header()  # say that refreshing fails, or that it works again
            return False
        if t.schema_revision > self.schema_revision:
            self.source.data = t.data()
            self.source.selected.indices = []
            self.data_table.columns = self._table_columns()
            if "results" in self.built:
                self._update_x_options()
            if "parallel" in self.built:
                self._rebuild_parallel()
        else:
            changed = t.changed_since(self.revision, self.n_rows)
            if changed:
                fresh = {p: t.data(p, p + 1) for p in changed}
                patches = {field: [(p, fresh[p][field][0]) for p in changed]
                           for field in self.source.data}
                self.source.patch(patches)
            new = t.rows_since(self.n_rows)
            if new is not None:
                self.source.stream(new)  # type: ignore[arg-type]
            if "parallel" in self.built:
                self._update_parallel(changed, self.n_rows)
            if "results" in self.built:
                self._set_x()  # a text parameter may have new values to label
        if "drift" in self.built and t.drift_revision != self.drift_revision:
            self._update_drift()
        self.revision, self.schema_revision = t.revision, t.schema_revision
        self.n_rows = len(t)
        self.data_table.height = table_height(self.n_rows)
        if self.filter_input.value_input:
            self._apply_filter()
        self._update_header()
        return True

    def _update_header(self) -> None:
        rows = self.table.raw
        failed = sum(r["status"] == "failed" for r in rows)
        running = len(self.table.unfinished)
        error = (f" \u00b7 <span style='color:#c62828'>cannot refresh: "
                 f"{html.escape(self.state.error)}</span>") if self.state.error else ""
        self._shown_error = self.state.error
        self.header.text = (
            f"<h2 style='margin:4px 0'>experigraph \u00b7 {html.escape(self.ex.id)}</h2>"
            f"<span name='summary'>{len(rows)} trials \u00b7 {failed} failed \u00b7 "
            f"{running} running</span> \u00b7 <small>{html.escape(self.ex.backend.uri)}"
            f" \u00b7 updated {time.strftime('%H:%M:%S')}</small>{error}")

    # -- the trial table ----------------------------------------------------------
    def _table_columns(self) -> list[TableColumn]:
        out = []
        status = StringFormatter(text_color="_color", font_style="bold")  # failed in red
        number = NumberFormatter(format=NUMBER, nan_format="", text_align="right")
        text = StringFormatter()
        for col in self.table.columns:
            if col.field in ("trial_id", "status"):
                formatter: Any = status
            elif col.numeric and col.field != "seed":
                formatter = number
            else:
                formatter = text
            width = {"trial_id": 60, "description": 260, "finished": 150, "seed": 100,
                     "status": 85, "success": 65}.get(col.field, 90)
            out.append(TableColumn(field=col.field, title=col.title, formatter=formatter,
                                   width=width))
        return out

    def _apply_filter(self) -> None:
        query = self.filter_input.value_input.strip()
        new_filter: Any = IndexFilter(indices=self.table.matching(query)) if query \
            else AllIndices()
        for view in self.views:
            view.filter = new_filter

    # -- results across trials and against a parameter ---------------------------
    def _results_view(self) -> Any:
        hover = HoverTool(tooltips=[("trial", "@trial_id"), ("result", "@result"),
                                    ("status", "@status"), ("process time", "@process_time s")])
        result_plot = figure(name="result_plot", title="Result by trial", height=250,
                             sizing_mode="stretch_width", tools=PLOT_TOOLS,
                             x_axis_label="Trial ID", y_axis_label="Result")
        result_plot.add_tools(hover)
        # one colour, no outline: cheaper to repaint with 10,000 trials (failed and running
        # trials have no result to draw anyway)
        result_plot.scatter("trial_id", "result_value", source=self.source, size=6,
                            fill_color=POINT_COLOR, line_color=None, view=self._view(),
                            name="result_points")
        time_plot = figure(name="time_plot", title="Process time by trial", height=200,
                           sizing_mode="stretch_width", tools=PLOT_TOOLS,
                           x_range=result_plot.x_range, x_axis_label="Trial ID",
                           y_axis_label="seconds")
        time_plot.add_tools(HoverTool(tooltips=[("trial", "@trial_id"),
                                                ("process time", "@process_time s")]))
        time_plot.scatter("trial_id", "process_time", source=self.source, size=5,
                          fill_color="#607d8b", line_color=None, view=self._view(),
                          name="time_points")  # bars would cost ~0.2 s per repaint at 10,000

        self.x_select = Select(name="x_select", title="Result against", width=220,
                               css_classes=["eg-x-select"])
        self.scatter = figure(name="scatter_plot", title="Result against a parameter",
                              height=450, width=520, tools=PLOT_TOOLS, y_axis_label="Result")
        self.scatter_hover = HoverTool(tooltips=[("trial", "@trial_id"), ("result", "@result")])
        self.scatter.add_tools(self.scatter_hover)
        self.scatter_renderer = self.scatter.scatter(
            "trial_id", "result_value", source=self.source, size=8, fill_color=POINT_COLOR,
            line_color=None, alpha=0.8,
            view=self._view(), name="scatter_points")
        self.x_select.on_change("value", lambda attr, old, new: self._set_x())
        self._update_x_options()
        return row(column(result_plot, time_plot, sizing_mode="stretch_width"),
                   column(self.x_select, self.scatter), sizing_mode="stretch_width")

    def _view(self) -> CDSView:
        """A view of the trials that follows the table's filter."""
        view = CDSView(filter=self.views[0].filter)
        self.views.append(view)
        return view

    def _update_x_options(self) -> None:
        options = [(c.field, c.title) for c in self.table.parameter_columns]
        self.x_select.options = options or [("", "(no parameters)")]  # type: ignore[assignment]
        if self.x_select.value not in {f for f, _ in options}:
            self.x_select.value = options[0][0] if options else ""
        self._set_x()

    def _set_x(self) -> None:
        field = self.x_select.value
        col = next((c for c in self.table.parameter_columns if c.field == field), None)
        axis = self.scatter.xaxis[0]
        if col is None:
            self.scatter_renderer.glyph.x = "trial_id"
            axis.axis_label = "Trial ID"
            return
        self.scatter_renderer.glyph.x = f"x:{field}"
        axis.axis_label = col.title
        _title(self.scatter).text = f"Result against {col.title}"
        self.scatter_hover.tooltips = [("trial", "@trial_id"), ("result", "@result"),
                                       (col.title, f"@{{{field}}}")]
        cats = self.table.categories.get(field) if not col.numeric else None
        if cats:  # a text parameter: its values are coded 0, 1, ... in order of appearance
            ticks = sorted(cats.values())
            if not isinstance(axis.ticker, FixedTicker) or axis.ticker.ticks != ticks:
                axis.ticker = FixedTicker(ticks=ticks)
            axis.major_label_overrides = {code: text or "(none)" for text, code in cats.items()}
        else:
            if not isinstance(axis.ticker, BasicTicker):
                axis.ticker = BasicTicker()
            axis.major_label_overrides = {}

    # -- parallel coordinates -----------------------------------------------------
    def _parallel_view(self) -> Any:
        self.pc_source = ColumnDataSource({"xs": [], "ys": [], "trial_id": [],
                                           "result_value": []}, name="parallel_source")
        self.pc_labels = ColumnDataSource({"x": [], "y": [], "text": []})
        self.pc_mapper = LinearColorMapper(palette=Viridis256, nan_color="#e57373")
        self.pc_plot = figure(name="parallel_plot", height=420, sizing_mode="stretch_width",
                              tools="pan,wheel_zoom,tap,reset,save",
                              y_range=Range1d(start=-0.1, end=1.1),
                              title="Each line is a trial: its parameters (scaled to their "
                                    "range) and its result (colour; failed in red)")
        self.pc_plot.multi_line("xs", "ys", source=self.pc_source, line_width=1.5, alpha=0.5,
                                color={"field": "result_value", "transform": self.pc_mapper},
                                nonselection_alpha=0.08, selection_alpha=1,
                                name="parallel_lines")
        self.pc_plot.text("x", "y", text="text", source=self.pc_labels, text_font_size="9pt",
                          text_align="center", text_baseline="middle")
        self.pc_plot.add_tools(HoverTool(tooltips=[("trial", "@trial_id"),
                                                   ("result", "@result_value")]))
        self.pc_plot.yaxis.visible = False
        self.pc_plot.ygrid.visible = False
        self.pc_source.selected.on_change(
            "indices", lambda attr, old, new: self._select_from_parallel(new))
        return self.pc_plot

    def _pc_fields(self) -> list[tuple[str, str]]:
        return [(f"x:{c.field}", c.title) for c in self.table.parameter_columns] + \
            [("result_value", "Result")]

    def _rebuild_parallel(self) -> None:
        data = self.source.data
        axes = []
        for field, title in self._pc_fields():
            values = [v for v in data.get(field, []) if not _is_nan(v)]
            axes.append((field, min(values, default=0.0), max(values, default=1.0)))
        self.pc_axes = axes
        self.pc_source.data = self._pc_lines(0, len(data["trial_id"]))
        n = len(axes)
        self.pc_plot.xaxis.ticker = list(range(n))
        self.pc_plot.xaxis.major_label_overrides = {i: t for i, (_, t) in
                                                    enumerate(self._pc_fields())}
        self.pc_plot.x_range = Range1d(start=-0.3, end=max(n - 1, 1) + 0.3)
        labels: dict[str, list[Any]] = {"x": [], "y": [], "text": []}
        for i, (field, lo, hi) in enumerate(axes):
            cats = self.table.categories.get(field[2:])
            top = _short(max(cats, key=cats.__getitem__)) if cats else _fmt(hi)
            bottom = _short(min(cats, key=cats.__getitem__)) if cats else _fmt(lo)
            labels["x"] += [i, i]
            labels["y"] += [1.06, -0.06]
            labels["text"] += [top, bottom]
        self.pc_labels.data = labels
        results = [v for v in data.get("result_value", []) if not _is_nan(v)]
        self.pc_mapper.low = min(results, default=0.0)
        self.pc_mapper.high = max(results, default=1.0)

    def _pc_lines(self, start: int, stop: int, positions: Sequence[int] | None = None
                  ) -> dict[str, list[Any]]:
        data = self.source.data
        rows = positions if positions is not None else range(start, stop)
        xs, ys = [], []
        for p in rows:
            ys.append([_scale(data[field][p], lo, hi) for field, lo, hi in self.pc_axes])
            xs.append(list(range(len(self.pc_axes))))
        return {"xs": xs, "ys": ys, "trial_id": [data["trial_id"][p] for p in rows],
                "result_value": [data["result_value"][p] for p in rows]}

    def _update_parallel(self, changed: Sequence[int], old_rows: int) -> None:
        data = self.source.data
        n = len(data["trial_id"])
        touched = list(changed) + list(range(old_rows, n))
        if not touched:
            return
        fields = [f for f, _ in self._pc_fields()]
        if fields != [f for f, _, _ in self.pc_axes] or any(
                not _is_nan(data[f][p]) and not lo <= data[f][p] <= hi
                for f, lo, hi in self.pc_axes for p in touched):
            self._rebuild_parallel()  # the range of an axis grew: rescale every line
            return
        if changed:
            lines = self._pc_lines(0, 0, changed)
            self.pc_source.patch({key: list(zip(changed, values))
                                  for key, values in lines.items()})
        if n > old_rows:
            self.pc_source.stream(self._pc_lines(old_rows, n))  # type: ignore[arg-type]

    def _select_from_parallel(self, indices: Sequence[int]) -> None:
        if sorted(indices) != sorted(self.source.selected.indices):
            self.source.selected.indices = list(indices)

    # -- metrics ------------------------------------------------------------------
    def _metrics_view(self) -> Any:
        self.metric_select = Select(name="metric_select", title="Metric", width=240,
                                    options=[], value="", css_classes=["eg-metric-select"])
        self.metric_note = Div(name="metric_note", sizing_mode="stretch_width")
        self.metric_source = ColumnDataSource({"xs": [], "ys": [], "trial_id": [],
                                               "color": [], "label": []}, name="metric_source")
        self.metric_plot = figure(name="metric_plot", height=420, sizing_mode="stretch_width",
                                  css_classes=["eg-metric-plot"],
                                  tools="pan,wheel_zoom,box_zoom,reset,save",
                                  x_axis_label="Epoch", title="Metric curves")
        self.metric_plot.multi_line("xs", "ys", source=self.metric_source, color="color",
                                    line_width=2, legend_field="label", name="metric_curves")
        self.metric_plot.add_tools(HoverTool(tooltips=[("trial", "@trial_id"),
                                                       ("epoch", "$x"), ("value", "$y")]))
        self.metric_plot.legend.location = "top_right"
        self.metric_select.on_change("value", lambda attr, old, new: self._show_metrics())
        return column(row(self.metric_select, self.metric_note),
                      self.metric_plot, sizing_mode="stretch_width")

    def _metric_keys(self, trial_ids: Sequence[int]) -> list[str]:
        """Names of the metric curves of these trials."""
        keys: dict[str, None] = {}
        for trial_id in trial_ids:
            keys.update(dict.fromkeys(self.ex.get_metric_keys(trial_id)))
        return sorted(keys)

    def _show_metrics(self) -> None:
        ids = self.metric_trials
        keys = self._metric_keys(ids)
        if self.metric_select.options != keys:
            self.metric_select.options = keys  # type: ignore[assignment]
        if keys and self.metric_select.value not in keys:
            self.metric_select.value = keys[0]  # calls back into _show_metrics
            return
        key = self.metric_select.value if keys else ""
        empty: dict[str, list[Any]] = {k: [] for k in ("xs", "ys", "trial_id", "color",
                                                        "label")}
        if not ids or not key:
            self.metric_source.data = empty
            self.metric_note.text = ("<i>No metric curves saved (ex.save_metric) in trial(s) "
                                     f"{_ids_text(ids)}.</i>" if ids and keys == [] else "")
            return
        try:
            frame = self.ex.load_metric(key, ids)
        except KeyError:
            self.metric_source.data = empty
            self.metric_note.text = (f"<i>No metric {html.escape(key)!s} in trial(s) "
                                     f"{_ids_text(ids)}.</i>")
            return
        data: dict[str, list[Any]] = {k: [] for k in empty}
        epochs = list(frame.index)
        numeric_epochs = all(isinstance(e, (int, float)) for e in epochs)
        for i, trial_id in enumerate(frame.columns):
            series = frame[trial_id]
            points = [(e if numeric_epochs else n, float(v)) for n, (e, v) in
                      enumerate(zip(epochs, series)) if _is_real(v)]
            if not points:
                continue
            data["xs"].append([p[0] for p in points])
            data["ys"].append([p[1] for p in points])
            data["trial_id"].append(int(trial_id))
            data["color"].append(Category10_10[i % 10])
            data["label"].append(f"trial {trial_id}")
        self.metric_source.data = data
        self.metric_plot.yaxis.axis_label = key
        _title(self.metric_plot).text = f"{key} of trial(s) {_ids_text(data['trial_id'])}"
        self.metric_note.text = "" if self.selected else \
            f"<i>Latest trials shown; select trials in the table to choose.</i>"

    # -- comparison ---------------------------------------------------------------
    def _compare_view(self) -> Any:
        self.compare_div = Div(name="compare_div", sizing_mode="stretch_width",
                               css_classes=["eg-compare"],
                               styles={"overflow": "auto", "max-height": "600px"})
        return self.compare_div

    def _show_compare(self) -> None:
        ids = self.selected
        if len(ids) != 2:
            self.compare_div.text = ("<i>Select two trials in the table (Ctrl/Shift-click) to "
                                     "compare them.</i>")
            return
        compare = getattr(self.ex, "compare", None)
        if compare is None:
            self.compare_div.text = NOT_AVAILABLE.format(what="Comparing trials")
            return
        first, second = ids
        try:
            diff = compare(first, second)
        except (ExperigraphError, KeyError, ValueError, OSError) as exc:
            self.compare_div.text = (f"<i>Cannot compare trials {first} and {second}: "
                                     f"{html.escape(str(exc))}</i>")
            return
        if hasattr(diff, "_repr_html_"):
            self.compare_div.text = diff._repr_html_()
        else:
            self.compare_div.text = (f"<b>Trial {first} vs trial {second}</b>"
                                     f"<pre>{html.escape(str(diff))}</pre>")

    # -- provenance ---------------------------------------------------------------
    def _provenance_view(self) -> Any:
        self.nodes = ColumnDataSource({k: [] for k in ("x", "y", "label", "kind", "color",
                                                        "hash", "time", "detail")},
                                      name="provenance_nodes")
        self.edges = ColumnDataSource({"x0": [], "y0": [], "x1": [], "y1": []},
                                      name="provenance_edges")
        self.graph_plot = figure(name="provenance_plot", height=380, width=760,
                                 tools="pan,wheel_zoom,reset,save", title="Trial graph",
                                 x_range=Range1d(start=-0.6, end=3.6),
                                 y_range=Range1d(start=-1, end=1))
        self.graph_plot.add_layout(Arrow(end=VeeHead(size=9, fill_color="#607d8b",
                                                     line_color="#607d8b"),
                                         x_start="x0", y_start="y0", x_end="x1", y_end="y1",
                                         source=self.edges,
                                         line_color="#90a4ae"))  # type: ignore[call-arg]
        nodes = self.graph_plot.scatter("x", "y", source=self.nodes, size=26, color="color",
                                        line_color="#37474f", name="provenance_points")
        self.graph_plot.text("x", "y", text="label", source=self.nodes, y_offset=-18,
                             text_align="center", text_font_size="9pt")
        self.graph_plot.add_tools(HoverTool(renderers=[nodes], tooltips=[
            ("", "@kind @label"), ("hash", "@hash"), ("time", "@time"), ("", "@detail")]))
        self.graph_plot.axis.visible = False
        self.graph_plot.grid.visible = False
        self.steps_source = ColumnDataSource({k: [] for k in (
            "step", "duration", "code_hash", "input_hash", "output_hash", "succeeded",
            "cached", "error")}, name="steps_source")
        self.steps_table = DataTable(name="steps_table", source=self.steps_source, height=200,
                                     css_classes=["eg-steps"],
                                     sizing_mode="stretch_width", index_position=None,
                                     columns=[
            TableColumn(field="step", title="Step"),
            TableColumn(field="duration", title="Time (s)",
                        formatter=NumberFormatter(format="0.[000000]", text_align="right")),
            TableColumn(field="code_hash", title="Code hash"),
            TableColumn(field="input_hash", title="Input hash"),
            TableColumn(field="output_hash", title="Output hash"),
            TableColumn(field="succeeded", title="Succeeded"),
            TableColumn(field="cached", title="Cached"),
            TableColumn(field="error", title="Error", width=250)])
        self.trial_div = Div(name="trial_div", sizing_mode="stretch_width")
        return column(self.trial_div, row(self.graph_plot, sizing_mode="stretch_width"),
                      self.steps_table, sizing_mode="stretch_width")

    def _show_provenance(self, trial_id: int | None) -> None:
        self.provenance_trial = trial_id
        if trial_id is None:
            self.trial_div.text = "<i>No trial yet.</i>"
            self.nodes.data = {k: [] for k in self.nodes.data}
            self.edges.data = {k: [] for k in self.edges.data}
            self.steps_source.data = {k: [] for k in self.steps_source.data}
            return
        try:
            record = self.ex.get_trial(trial_id)
        except ExperigraphError as exc:
            self.trial_div.text = f"<i>{html.escape(str(exc))}</i>"
            return
        note = ""
        nodes, edges = graph_from_record(record)
        get_provenance = getattr(self.ex, "get_provenance", None)
        if get_provenance is not None:
            try:
                nodes, edges = graph_parts(get_provenance(trial_id))
            except (ExperigraphError, KeyError, ValueError, OSError) as exc:
                note = f" (provenance graph unavailable: {html.escape(str(exc))}; from steps)"
        layout = layered_layout(list(nodes), edges)
        data: dict[str, list[Any]] = {k: [] for k in self.nodes.data}
        for node, attrs in nodes.items():
            x, y = layout[node]
            kind = attrs.get("kind", "step")
            data["x"].append(x)
            data["y"].append(y)
            label = str(attrs.get("label", node))
            duration = attrs.get("duration")
            shown = _short(os.path.basename(label) if kind == "file" else label, 28)
            if kind == "step" and _is_real(duration):
                shown += f" \u00b7 {_seconds(float(duration))}"  # type: ignore[arg-type]
            data["label"].append(shown)
            data["kind"].append(kind)
            data["color"].append(KIND_COLORS.get(kind, "#eeeeee"))
            data["hash"].append(_short(str(attrs.get("output_hash") or attrs.get("hash") or ""),
                                       16))
            data["time"].append(f"{duration:.6f} s" if _is_real(duration) else "")
            detail = []
            if kind == "file":
                detail.append(label)
            if "value" in attrs:
                detail.append(f"value={as_text(attrs['value'])}")
            if attrs.get("error"):
                detail.append(f"error: {attrs['error']}")
            data["detail"].append(_short("; ".join(detail), 120))
        self.nodes.data = data
        self.edges.data = edge_segments(layout, edges)
        xs = [p[0] for p in layout.values()] or [0]
        ys = [p[1] for p in layout.values()] or [0]
        self.graph_plot.x_range.update(start=min(xs) - 0.6, end=max(xs) + 0.6)
        self.graph_plot.y_range.update(start=min(ys) - 0.8, end=max(ys) + 0.8)
        _title(self.graph_plot).text = f"Trial {trial_id}: parameters, steps and data files"
        steps = record.steps
        self.steps_source.data = {
            "step": [s.step for s in steps], "duration": [s.duration for s in steps],
            "code_hash": [s.code_hash for s in steps],
            "input_hash": [s.input_hash or "" for s in steps],
            "output_hash": [s.output_hash or "" for s in steps],
            "succeeded": [str(s.succeeded) for s in steps],
            "cached": [str(s.cached) for s in steps],
            "error": [s.error or "" for s in steps]}
        self.trial_div.text = trial_summary_html(record) + (f"<small>{note}</small>"
                                                            if note else "")

    # -- drift --------------------------------------------------------------------
    def _drift_view(self) -> Any:
        self.drift_source = ColumnDataSource({k: [] for k in (
            "trial_id", "kind", "subject", "message")}, name="drift_source")
        self.drift_table = DataTable(
            name="drift_table", source=self.drift_source, height=260, css_classes=["eg-drift"],
            sizing_mode="stretch_width", index_position=None, sortable=True, columns=[
                TableColumn(field="trial_id", title="Trial ID", width=60),
                TableColumn(field="kind", title="Kind", width=90),
                TableColumn(field="subject", title="Subject", width=180),
                TableColumn(field="message", title="Message", width=500)])
        self.drift_detail = Div(name="drift_detail", sizing_mode="stretch_width",
                                css_classes=["eg-drift-detail"],
                                styles={"overflow": "auto", "max-height": "400px"})
        self.drift_source.selected.on_change("indices",
                                             lambda attr, old, new: self._show_drift_detail())
        return column(Div(text="<b>Drift and impurity events of every trial</b> (code, "
                               "declaration, environment and data changes since the "
                               "previous trial; impurity: a step's output changed with the "
                               "same input; seed: a step that used the trial's randomness "
                               "gave another output under another seed). "
                               "Click one for its diff."),
                      self.drift_table, self.drift_detail, sizing_mode="stretch_width")

    def _update_drift(self) -> None:
        self.drift_revision = self.table.drift_revision
        events = self.table.drift_events
        self.drift_source.data = {
            "trial_id": [t for t, _ in events], "kind": [e.kind for _, e in events],
            "subject": [e.subject for _, e in events], "message": [e.message for _, e in events]}
        self.drift_detail.text = "" if events else "<i>No drift or impurity recorded.</i>"

    def _show_drift_detail(self) -> None:
        events = self.table.drift_events
        parts = []
        for i in self.drift_source.selected.indices:
            if i < len(events):
                trial_id, event = events[i]
                parts.append(drift_html(trial_id, event))
        self.drift_detail.text = "".join(parts)

    # -- selection ----------------------------------------------------------------
    def _on_select(self) -> None:
        ids = self.source.data["trial_id"]
        indices = self.source.selected.indices
        self.selected = sorted(int(ids[i]) for i in indices if i < len(ids))
        positions = sorted(indices)
        if "parallel" in self.built and sorted(self.pc_source.selected.indices) != positions:
            self.pc_source.selected.indices = positions
        self._show_selection()

    def _show_selection(self) -> None:
        views = {"metrics": self._show_metrics, "compare": self._show_compare,
                 "provenance": lambda: self._show_provenance(self._provenance_target())}
        for name, show in views.items():
            if name not in self.built:
                continue
            try:
                show()
            except Exception:  # a view that fails must not take the dashboard down
                logger.warning("Dashboard view %s failed", name, exc_info=True)

    @property
    def metric_trials(self) -> list[int]:
        """The trials whose curves are shown: the selected ones, else the latest."""
        return self.selected[:MAX_CURVES] if self.selected else \
            self.table.trial_ids[-DEFAULT_CURVES:]

    def _provenance_target(self) -> int | None:
        """The trial whose graph is shown: the latest selected, else the latest trial."""
        if self.selected:
            return self.selected[-1]
        return self.table.trial_ids[-1] if self.table.trial_ids else None


# -- helpers (no Bokeh models) ------------------------------------------------------
def graph_parts(graph: Any) -> tuple[dict[str, dict[str, Any]], list[tuple[str, str]]]:
    """Nodes (id -> attributes) and edges of a networkx-like graph."""
    nodes = {str(n): dict(attrs) for n, attrs in graph.nodes(data=True)}
    edges = [(str(a), str(b)) for a, b in graph.edges()]
    return nodes, edges


def graph_from_record(record: Any) -> tuple[dict[str, dict[str, Any]], list[tuple[str, str]]]:
    """The step graph of a trial from its StepRecords (when ``get_provenance`` is missing)."""
    nodes: dict[str, dict[str, Any]] = {}
    edges: list[tuple[str, str]] = []
    keys = {s.key for s in record.steps}
    for step in record.steps:
        nodes[step.key] = {"kind": "step", "label": step.step, "duration": step.duration,
                           "output_hash": step.output_hash, "error": step.error}
        for name in step.parameters:
            node = f"parameter:{name}"
            nodes.setdefault(node, {"kind": "parameter", "label": name,
                                    "value": record.parameters.get(name)})
            edges.append((node, step.key))
        edges += [(dep, step.key) for dep in step.dependencies if dep in keys]
        for item in step.inputs:
            node = f"file:{item.get('path')}"
            nodes.setdefault(node, {"kind": "file", "label": item.get("path"),
                                    "hash": item.get("hash")})
            edges.append((node, step.key))
        for item in step.outputs:
            node = f"file:{item.get('path')}"
            nodes.setdefault(node, {"kind": "file", "label": item.get("path"),
                                    "hash": item.get("hash")})
            edges.append((step.key, node))
    return nodes, edges


def layered_layout(nodes: Sequence[str], edges: Sequence[tuple[str, str]]
                   ) -> dict[str, tuple[float, float]]:
    """Left-to-right positions: x is the longest path from a source, y spreads a layer."""
    preds: dict[str, list[str]] = {n: [] for n in nodes}
    for a, b in edges:
        if a in preds and b in preds:
            preds[b].append(a)
    depth: dict[str, int] = {}

    def layer(n: str, seen: frozenset[str] = frozenset()) -> int:
        if n not in depth:
            depth[n] = 1 + max((layer(p, seen | {n}) for p in preds[n] if p not in seen),
                               default=-1)
        return depth[n]

    for n in nodes:
        layer(n)
    layers: dict[int, list[str]] = {}
    for n in nodes:
        layers.setdefault(depth[n], []).append(n)
    out = {}
    for x, members in layers.items():
        for i, n in enumerate(members):
            out[n] = (float(x), (len(members) - 1) / 2 - i)
    return out


def table_height(n_rows: int) -> int:
    """Pixels for the trial table: its rows, up to a dozen (then it scrolls)."""
    return 32 + 25 * min(max(n_rows, 4), 12)


def edge_segments(layout: Mapping[str, tuple[float, float]], edges: Sequence[tuple[str, str]],
                  gap: float = 0.12) -> dict[str, list[float]]:
    """Edge start and end points, stopped ``gap`` short of the nodes so arrow heads show."""
    out: dict[str, list[float]] = {"x0": [], "y0": [], "x1": [], "y1": []}
    for a, b in edges:
        (x0, y0), (x1, y1) = layout[a], layout[b]
        length = math.hypot(x1 - x0, y1 - y0) or 1.0
        dx, dy = (x1 - x0) / length * gap, (y1 - y0) / length * gap
        out["x0"].append(x0 + dx)
        out["y0"].append(y0 + dy)
        out["x1"].append(x1 - dx)
        out["y1"].append(y1 - dy)
    return out


def trial_summary_html(record: Any) -> str:
    """A one-paragraph HTML summary of a trial, with its drift events."""
    params = ", ".join(f"{html.escape(k)}={html.escape(as_text(v))}"
                       for k, v in record.parameters.items())
    status = record.status.value if hasattr(record.status, "value") else str(record.status)
    text = (f"<b>Trial {record.trial_id}</b> \u00b7 {html.escape(status)} \u00b7 {params} "
            f"\u00b7 seed {record.seed} \u00b7 result {html.escape(as_text(record.result))}")
    if record.description:
        text += f" \u00b7 <i>{html.escape(record.description)}</i>"
    if record.drift:
        text += "".join(drift_html(record.trial_id, e) for e in record.drift)
    return text


def drift_html(trial_id: int, event: Any) -> str:
    """One drift event with its diff lines."""
    diff = "\n".join(event.diff)
    return (f"<div><b>Trial {trial_id}: {html.escape(event.kind)}</b> \u2014 "
            f"{html.escape(event.message)}"
            + (f"<pre style='background:#f5f5f5;padding:4px'>{html.escape(diff)}</pre>"
               if diff else "") + "</div>")


def _ids_text(ids: Sequence[int]) -> str:
    return ", ".join(map(str, ids))


def _is_nan(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)


def _is_real(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and \
        math.isfinite(value)


def _scale(value: Any, lo: float, hi: float) -> float:
    if _is_nan(value):
        return NAN
    return 0.5 if hi == lo else (value - lo) / (hi - lo)


def _title(plot: Any) -> Any:
    """A figure's Title model (typed loosely: Bokeh types it as ``Title | str | None``)."""
    return plot.title


def _seconds(value: float) -> str:
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


__all__ = ["BoardState", "BoardSession", "graph_from_record", "layered_layout"]
