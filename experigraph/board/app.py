"""The Bokeh document of the dashboard: one :class:`BoardSession` per browser tab.

Every session reads the experiment through the server's shared
:class:`BoardState` (one :class:`~experigraph.board.table.TrialTable`), so many
open tabs cost one refresh. A session keeps its own ColumnDataSources and, on
each periodic callback, streams the rows it has not seen and patches the rows
that changed. Everything here goes through ``Experiment``'s public query
methods: ``latest_trial_id``, ``get_trial``, ``load_metric``, ``compare``,
``get_provenance`` and ``get_metric_keys``. The figures themselves are built by
:mod:`experigraph.board.plots`, which the HTML report shares.
"""
from __future__ import annotations

import html
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from bokeh.events import DocumentReady
from bokeh.layouts import column, row
from bokeh.models import (
    CDSView, ColumnDataSource, CustomJS, CustomJSFilter, InlineStyleSheet, TabPanel, Tabs)
from bokeh.models.widgets import (
    DataTable, Div, NumberFormatter, RadioButtonGroup, Select, TableColumn, TextInput)

from ..errors import ExperigraphError
from . import plots
from .plots import drift_html
from ..present import as_text
from .table import TrialTable

if TYPE_CHECKING:
    from bokeh.document import Document

    from ..experiment import Experiment

logger = logging.getLogger(__name__)

#: how many selected trials the metric view overlays; without a selection, the latest ones
MAX_CURVES = 10
DEFAULT_CURVES = 5
HELP = ("Click a row to see its metrics and step graph; Ctrl/Shift-click a second row to "
        "compare two trials.")
SELECTED_ROWS_CSS = ".slick-cell.selected { background-color: #bbdefb !important; }"
NOT_AVAILABLE = "<i>{what} is not available in this version of experigraph.</i>"
#: rows a new page gets in its first message; the rest follow at once in a stream, so the
#: table is on screen before a long history has crossed the websocket
FIRST_ROWS = 200
#: the plots follow a new filter this long after the table (the table is drawn first)
PLOTS_AFTER_FILTER_MS = 150
#: The filter, in the browser: typing needs no round trip to the server. The rule of
#: ``TrialTable.matching``, over the same texts (``TrialTable.search_texts``, in the
#: source ``search``): a row is kept when its text contains every word typed, any case; a
#: word with ``=`` matches a whole `` name=value ``. Rows streamed later are filtered too
#: (a view recomputes its filter when its source streams or is patched).
FILTER_JS = """
const query = box.value_input.trim().toLowerCase();
if (query === "") return null;
const words = query.split(/\\s+/).map((w) => w.includes("=") ? ` ${w} ` : w);
const texts = search.get_column("text") ?? [];
const n = source.get_length() ?? 0;
const keep = new Array(n);
for (let i = 0; i < n; i++) {
  const text = texts[i];
  keep[i] = text !== undefined && words.every((w) => text.includes(w));
}
return keep;
"""
#: On typing: the table's filter at once; the plots' a moment later, once the table is
#: drawn, and only while their tab is shown (else when it is opened: TAB_OPENED_JS)
TYPED_JS = """
table_filter.change.emit();
clearTimeout(plot_filter.eg_timer);
plot_filter.eg_timer = setTimeout(() => {
  if (tabs.active === plots_tab) {
    plot_filter.change.emit();
  } else {
    plot_filter.eg_stale = true;
  }
}, delay);
"""
TAB_OPENED_JS = """
if (plot_filter.eg_stale && tabs.active === plots_tab) {
  plot_filter.eg_stale = false;
  plot_filter.change.emit();
}
"""
#: records the server reads before it serves (another experiment's: for its first page),
#: then per chunk while it serves
FIRST_READ = 400
READ_CHUNK = 100
OVERVIEW_QUERY = "?view=experiments"


class BoardState:
    """What every session of one dashboard server shares: the experiment and its table.

    Parameters
    ----------
    experiment : Experiment
        The experiment shown (read only).
    refresh_ms : int
        Period of each session's refresh callback.
    overview_url : str, optional
        Where the header's link to the store's experiments goes ('' for none).
    """

    def __init__(self, experiment: Experiment, refresh_ms: int = 1000,
                 overview_url: str = OVERVIEW_QUERY, archived: bool = False) -> None:
        self.experiment = experiment
        self.refresh_ms = refresh_ms
        self.overview_url = overview_url
        self.table = TrialTable(experiment, archived)
        self.error: str | None = None
        self.loading = False  # a long history is being read in chunks
        #: called when a page has shown its table (the dashboard then reads on)
        self.on_page_ready: Callable[[], None] | None = None
        self._last_refresh = -math.inf

    def refresh(self, force: bool = False, limit: int | None = None) -> bool:
        """Refresh the shared table, at most about once per period however many sessions ask.

        ``limit`` caps how many new trials are read (the rest: by later refreshes).
        """
        now = time.monotonic()
        if not force and (self.loading or now - self._last_refresh < self.refresh_ms / 2000):
            return False
        self._last_refresh = now
        try:
            changed = self.table.refresh(limit=limit)
        except (ExperigraphError, OSError) as exc:
            if self.error is None:
                logger.warning("Dashboard cannot refresh experiment %s: %s",
                               self.experiment.id, exc)
            self.error = str(exc)
            return False
        self.error = None
        return changed

    def load_in_chunks(self) -> bool:
        """Read the next chunk of a long history; return whether more is left to read.

        Meanwhile (``loading``) the sessions' own refreshes do not read: one of them
        would read the whole rest at once and hold every page up.
        """
        self.loading = True
        self.refresh(force=True, limit=READ_CHUNK)
        self.table.search_texts(len(self.table))  # the new rows' filter texts, ahead
        self.loading = self.table.is_behind
        return self.loading

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
        if not self.table.is_behind:
            state.refresh(force=True)
        self.revision = self.table.revision
        self.schema_revision = self.table.schema_revision
        self.n_rows = min(len(self.table), FIRST_ROWS)
        self.drift_revision = -1
        self.selected: list[int] = []
        self.provenance_trial: int | None = None
        self._shown_error: str | None = None
        self.pc_axes: list[tuple[str, str, str, float, float]] = []
        self.kinds: dict[str, str] = {}
        self._metric_shown: Any = None

        self.source = ColumnDataSource(self.table.data(0, self.n_rows), name="trials")
        self.search_source = ColumnDataSource({"text": self.table.search_texts(0, self.n_rows)},
                                              name="trial_search")
        self.filter_input = TextInput(name="filter", placeholder="Filter: words or name=value, "
                                      "e.g. failed, a=1", width=380, css_classes=["eg-filter"])
        self.header = Div(name="header", sizing_mode="stretch_width", css_classes=["eg-header"])
        filter_args = {"box": self.filter_input, "search": self.search_source}
        self.table_filter = CustomJSFilter(args=filter_args, code=FILTER_JS)
        self.plot_filter = CustomJSFilter(args=filter_args, code=FILTER_JS)
        self.data_table = DataTable(
            name="trial_table", source=self.source, view=CDSView(filter=self.table_filter),
            columns=self._table_columns(), sortable=True, selectable=True,
            reorderable=False,  # reordering needs jquery-ui, which Bokeh does not ship
            index_position=None, height=table_height(len(self.table)),
            sizing_mode="stretch_width", autosize_mode="none",
            css_classes=["eg-trials"], stylesheets=[InlineStyleSheet(css=SELECTED_ROWS_CSS)])

        # A tab is built when first opened, the first one once the page shows the table
        # (DocumentReady): the table comes first. (Every figure has explicit ranges: one added while
        # others are hidden in their tabs then leaves no "could not set initial ranges".)
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
        self.built: set[str] = set()  # the tabs opened: their views are kept up to date
        self.tab_bodies = [column(Div(text="<i>Loading\u2026</i>"), sizing_mode="stretch_width")
                           for _ in self.panels]  # Bokeh re-renders a column's new children
        self.tabs = Tabs(name="tabs", sizing_mode="stretch_width", tabs=[
            TabPanel(title=title, child=body)
            for (_, title, _, _), body in zip(self.panels, self.tab_bodies)])
        doc.title = f"experigraph \u00b7 {self.ex.id}"
        doc.add_root(column(
            self.header, row(self.filter_input, Div(text=f"<small>{HELP}</small>")),
            self.data_table, self.tabs, sizing_mode="stretch_width", name="board"))

        plots_tab = [name for name, _, _, _ in self.panels].index("results")
        follow = {"table_filter": self.table_filter, "plot_filter": self.plot_filter,
                  "tabs": self.tabs, "plots_tab": plots_tab}
        self.filter_input.js_on_change("value_input", CustomJS(
            args={**follow, "delay": PLOTS_AFTER_FILTER_MS}, code=TYPED_JS))
        self.tabs.js_on_change("active", CustomJS(args=follow, code=TAB_OPENED_JS))
        # a patch leaves the view's rows as they were, and the table redraws when its view
        # changes: say that it did
        self.source.js_on_change("patching", CustomJS(args={"view": self.data_table.view},
                                                      code="view.change.emit();"))
        self.source.selected.on_change("indices", lambda attr, old, new: self._on_select())
        self.tabs.on_change("active", lambda attr, old, new: self._open_tab(new))
        self._update_header()
        doc.on_event(DocumentReady, lambda event: self._on_ready())
        self._ready = False
        doc.add_periodic_callback(self.tick, state.refresh_ms)

    def _on_ready(self) -> None:
        """The page shows the table: now the first tab, and the rows not sent yet."""
        if self._ready:
            return
        self._ready = True
        self._open_tab(self.tabs.active)
        if self.n_rows < len(self.table) or self.table.is_behind:
            self.sync()
        if self.state.on_page_ready is not None:
            self.state.on_page_ready()

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
        if not watched(self.doc):  # the tab is closed: Bokeh drops the session later
            return
        if not self._ready:  # no DocumentReady (an old BokehJS?): do not wait for it
            self._on_ready()
        self.state.refresh()
        changed = self.sync()
        running = [t for t in self.metric_trials if t in self.table.unfinished]
        if running and "metrics" in self.built:
            self._safely("metrics", self._show_metrics)  # curves grow while trials run
        if changed and (running or self.provenance_trial in self.table.unfinished
                        or not self.selected):
            self._show_selection()

    def sync(self) -> bool:
        """Bring this session's sources up to the shared table; return whether they changed."""
        t = self.table
        if t.revision == self.revision and self.n_rows == len(t):
            if self.state.error or self._shown_error:
                self._update_header()  # say that refreshing fails, or that it works again
            return False
        if t.schema_revision > self.schema_revision:
            self.search_source.data = {"text": t.search_texts()}  # texts first: the filter
            self.source.data = t.data()  # reads them when the rows arrive
            self.source.selected.indices = []
            self.data_table.columns = self._table_columns()
            self.n_rows = len(t)
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
                texts = t.search_texts()
                self.search_source.patch({"text": [(p, texts[p]) for p in changed]})
                self.source.patch(patches)
            old_rows = self.n_rows
            new = t.rows_since(self.n_rows)
            if old_rows < 50 <= len(t) or old_rows <= FIRST_ROWS < len(t):
                # widths from more values, sent before the rows: the browser rebuilds the
                # table while it has few rows, and redraws it once with all of them
                shown = self.source.data
                self.data_table.columns = plots.table_columns(self.table.columns, {
                    field: [*shown[field], *new[field]] for field in new} if new else shown)
            if new is not None:
                self.search_source.stream({"text": t.search_texts(self.n_rows)})
                self.source.stream(new)  # type: ignore[arg-type]
            self.n_rows = len(t)
            if "results" in self.built:
                self._update_x_options()  # a parameter may start varying, or get new values
            if "parallel" in self.built:
                self._update_parallel(changed, old_rows)
        if "drift" in self.built and t.drift_revision != self.drift_revision:
            self._update_drift()
        if "results" in self.built:
            self._fit_results()
        self.revision, self.schema_revision = t.revision, t.schema_revision
        self.data_table.height = table_height(self.n_rows)
        self._update_header()
        return True

    def _update_header(self) -> None:
        rows = self.table.raw
        failed = sum(r["status"] == "failed" for r in rows)
        running = len(self.table.unfinished)
        error = (f" \u00b7 <span style='color:#c62828'>cannot refresh: "
                 f"{html.escape(self.state.error)}</span>") if self.state.error else ""
        self._shown_error = self.state.error
        loading = (f" \u00b7 reading trials\u2026 ({self.table.last_seen} of "
                   f"{self.table.latest})") if self.table.is_behind else ""
        link = (f" \u00b7 <a class='eg-overview-link' href='{self.state.overview_url}'>"
                "all experiments in this store</a>") if self.state.overview_url else ""
        self.header.text = (
            f"<h2 style='margin:4px 0'>experigraph \u00b7 {html.escape(self.ex.id)}</h2>"
            f"<span name='summary'>{len(rows)} trials \u00b7 {failed} failed \u00b7 "
            f"{running} running{loading}</span> \u00b7 <small>"
            f"{html.escape(self.ex.backend.uri)} \u00b7 updated {time.strftime('%H:%M:%S')}"
            f"{link}</small>{error}")

    def _safely(self, name: str, show: Callable[[], None]) -> None:
        try:
            show()
        except Exception:  # a view that fails must not take the dashboard down
            logger.warning("Dashboard view %s failed", name, exc_info=True)

    # -- the trial table ----------------------------------------------------------
    def _table_columns(self) -> list[TableColumn]:
        return plots.table_columns(self.table.columns, self.source.data)

    # -- results across trials and against a parameter ---------------------------
    def _results_view(self) -> Any:
        result_plot, time_plot = plots.results_figures(self.source, self._view)
        self.result_plots = [(result_plot, "trial_id", "result_value", False),
                             (time_plot, "trial_id", "process_time", False)]
        self.x_select = Select(name="x_select", title="Result against", width=220,
                               css_classes=["eg-x-select"])
        self.x_scale = RadioButtonGroup(name="x_scale", labels=["linear", "log"], active=0,
                                        css_classes=["eg-x-scale"])
        self.fixed_div = Div(name="fixed_params", css_classes=["eg-fixed"], width=520)
        self.scatter, self.scatter_renderer = plots.scatter_figure(
            self.source, self._view(), x_field="trial_id", title="Trial ID", kind="linear")
        self.scatter_key: tuple[Any, ...] | None = None
        self.scatter_fit = (self.scatter, "trial_id", "result_value", False)
        self.x_select.on_change("value", lambda attr, old, new: self._set_x(auto=True))
        self.x_scale.on_change("active", lambda attr, old, new: self._set_x())
        self._update_x_options()
        return row(column(result_plot, time_plot, sizing_mode="stretch_width"),
                   column(row(self.x_select, column(Div(text="x axis"), self.x_scale)),
                          self.fixed_div, self.scatter), sizing_mode="stretch_width")

    def _view(self) -> CDSView:
        """A view of the trials that follows the table's filter (a moment later)."""
        return CDSView(filter=self.plot_filter)

    def _axis_kinds(self) -> dict[str, str]:
        self.kinds = plots.axis_kinds(self.table.parameter_columns, self.source.data)
        return self.kinds

    def _update_x_options(self) -> None:
        kinds = self._axis_kinds()
        varying = [c for c in self.table.parameter_columns if kinds[c.field] != "constant"]
        options = [(c.field, c.title) for c in varying]
        self.fixed_div.text = html.escape(plots.fixed_text(
            self.table.parameter_columns, kinds, self.table.raw[0] if self.table.raw else None))
        if list(self.x_select.options) != options:
            self.x_select.options = options or [("", "(no varying parameter)")]  # type: ignore
        if self.x_select.value not in {f for f, _ in options}:
            self.x_select.value = options[0][0] if options else ""  # calls _set_x
        self._set_x(auto=self.scatter_key is None or self.scatter_key[0] != self.x_select.value)

    def _set_x(self, auto: bool = False) -> None:
        """Draw the result against the chosen parameter; ``auto`` picks the axis scale."""
        field = self.x_select.value
        col = next((c for c in self.table.parameter_columns if c.field == field), None)
        kind = self.kinds.get(field, "linear") if col is not None else "linear"
        if kind in ("linear", "log") and col is not None:
            if auto:
                if self.x_scale.active != (kind == "log"):
                    self.x_scale.active = int(kind == "log")  # calls back: drawn there
                    return
            kind = "log" if self.x_scale.active == 1 else "linear"
        self.x_scale.disabled = kind not in ("linear", "log") or col is None
        cats = dict(self.table.categories.get(field, {})) if kind == "categorical" else None
        key = (field, kind, tuple(sorted(cats.items())) if cats else None)
        if key == self.scatter_key:
            return
        self.scatter_key = key
        if col is None:
            x_field, title = "trial_id", "Trial ID"
        else:
            x_field, title = (f"x:{field}" if kind == "categorical" else field), col.title
        plots.set_x(self.scatter, self.scatter_renderer, x_field=x_field, title=title,
                    kind=kind, categories=cats)
        self.scatter_fit = (self.scatter, x_field, "result_value", kind == "log")
        self._fit_results()

    def _fit_results(self) -> None:
        """Fit the Results tab's axes to every trial (they do not follow the filter)."""
        plots.fit_results(self.result_plots + [self.scatter_fit], self.source.data)

    # -- parallel coordinates -----------------------------------------------------
    def _parallel_view(self) -> Any:
        self.pc_source, self.pc_labels, self.pc_mapper = plots.new_parallel_sources()
        self.pc_plot = plots.parallel_figure(self.pc_source, self.pc_labels, self.pc_mapper)
        self.pc_fixed = Div(name="parallel_fixed", css_classes=["eg-parallel-fixed"])
        self.pc_source.selected.on_change(
            "indices", lambda attr, old, new: self._select_from_parallel(new))
        return column(self.pc_fixed, self.pc_plot, sizing_mode="stretch_width")

    def _rebuild_parallel(self) -> None:
        data = self.source.data
        kinds = self._axis_kinds()
        self.pc_axes = plots.parallel_axes(self.table.parameter_columns, data, kinds)
        self.pc_fixed.text = html.escape(plots.fixed_text(
            self.table.parameter_columns, kinds, self.table.raw[0] if self.table.raw else None))
        self.pc_source.data = plots.parallel_lines(data, self.pc_axes,
                                                   range(len(data["trial_id"])))
        plots.set_parallel_axes(self.pc_plot, self.pc_axes)
        self.pc_labels.data = plots.parallel_labels(self.pc_axes, self.table.categories)
        plots.color_range(self.pc_mapper, data["result_value"])

    def _update_parallel(self, changed: Sequence[int], old_rows: int) -> None:
        data = self.source.data
        n = len(data["trial_id"])
        touched = list(changed) + list(range(old_rows, n))
        if not touched:
            return
        kinds = plots.axis_kinds(self.table.parameter_columns, data)
        axes = plots.parallel_axes(self.table.parameter_columns, data, kinds)
        if [a[:3] for a in axes] != [a[:3] for a in self.pc_axes] or any(
                not math.isclose(a[3], b[3]) or not math.isclose(a[4], b[4])
                for a, b in zip(axes, self.pc_axes)):
            self._rebuild_parallel()  # an axis came, went or grew: rescale every line
            return
        if changed:
            lines = plots.parallel_lines(data, self.pc_axes, changed)
            self.pc_source.patch({key: list(zip(changed, values))
                                  for key, values in lines.items()})
        if n > old_rows:
            self.pc_source.stream(plots.parallel_lines(  # type: ignore[arg-type]
                data, self.pc_axes, range(old_rows, n)))

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
        self.metric_plot = plots.metric_figure(self.metric_source)
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
            self._set_metric_data(empty)
            self.metric_note.text = ("<i>No metric curves saved (ex.save_metric) in trial(s) "
                                     f"{_ids_text(ids)}.</i>" if ids and keys == [] else "")
            return
        try:
            frame = self.ex.load_metric(key, ids)
        except KeyError:
            self._set_metric_data(empty)
            self.metric_note.text = (f"<i>No metric {html.escape(key)!s} in trial(s) "
                                     f"{_ids_text(ids)}.</i>")
            return
        data = plots.metric_data(frame)
        self._set_metric_data(data)
        self.metric_plot.yaxis.axis_label = key
        running = [t for t in data["trial_id"] if t in self.table.unfinished]
        _title(self.metric_plot).text = (
            f"{key} of trial(s) {_ids_text(data['trial_id'])}"
            + (f" (running: {_ids_text(running)})" if running else ""))
        self.metric_note.text = "" if self.selected else \
            "<i>Latest trials shown; select trials in the table to choose.</i>"

    def _set_metric_data(self, data: dict[str, list[Any]]) -> None:
        """Send the curves only when they changed (they are re-read while trials run)."""
        if data != self._metric_shown:
            self._metric_shown = data
            self.metric_source.data = data
            plots.fit_metric_ranges(self.metric_plot, data)

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
        first, second = ids
        try:
            diff = self.ex.compare(first, second)
        except (ExperigraphError, KeyError, ValueError, OSError) as exc:
            self.compare_div.text = (f"<i>Cannot compare trials {first} and {second}: "
                                     f"{html.escape(str(exc))}</i>")
            return
        self.compare_div.text = plots.compare_html(diff)

    # -- provenance ---------------------------------------------------------------
    def _provenance_view(self) -> Any:
        self.nodes = ColumnDataSource(name="provenance_nodes")
        self.edge_lines = ColumnDataSource({"xs": [], "ys": []}, name="provenance_edges")
        self.edge_heads = ColumnDataSource({"x0": [], "y0": [], "x1": [], "y1": []},
                                           name="provenance_heads")
        self.nodes.data, _, _ = plots.graph_data({}, [])
        self.step_detail = Div(name="step_detail", css_classes=["eg-step-detail"],
                               text=plots.STEP_HINT, width=420)
        self.graph_plot = plots.graph_figure(self.nodes, self.edge_lines, self.edge_heads,
                                             self.step_detail)
        self.steps_source = ColumnDataSource({k: [] for k in (
            "step", "duration", "code_hash", "input_hash", "output_hash", "succeeded",
            "cached", "error")}, name="steps_source")
        self.steps_table = DataTable(name="steps_table", source=self.steps_source, height=200,
                                     css_classes=["eg-steps"], reorderable=False,
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
        self.trial_div = Div(name="trial_div", sizing_mode="stretch_width",
                             css_classes=["eg-trial-summary"])
        return column(self.trial_div, row(self.graph_plot, self.step_detail),
                      self.steps_table, sizing_mode="stretch_width")

    def _show_provenance(self, trial_id: int | None) -> None:
        self.provenance_trial = trial_id
        if trial_id is None:
            self.trial_div.text = "<i>No trial yet.</i>"
            self.nodes.data, self.edge_lines.data, self.edge_heads.data = \
                plots.graph_data({}, [])
            self.steps_source.data = {k: [] for k in self.steps_source.data}
            return
        try:
            record = self.ex.get_trial(trial_id)
        except ExperigraphError as exc:
            self.trial_div.text = f"<i>{html.escape(str(exc))}</i>"
            return
        note = ""
        try:
            nodes, edges = graph_parts(self.ex.get_provenance(trial_id))
        except (ExperigraphError, KeyError, ValueError, OSError) as exc:
            note = f" (provenance graph unavailable: {html.escape(str(exc))}; from steps)"
            nodes, edges = graph_from_record(record)
        add_cached(nodes, record)
        data, lines, heads = plots.graph_data(nodes, edges)
        if data != dict(self.nodes.data):
            self.nodes.selected.indices = []
            self.nodes.data, self.edge_lines.data, self.edge_heads.data = data, lines, heads
            plots.fit_graph(self.graph_plot, data)
        _title(self.graph_plot).text = (f"Trial {trial_id}: parameters \u2192 steps \u2192 "
                                        "data, left to right (steps coloured by status, "
                                        "sized by time)")
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
            sizing_mode="stretch_width", index_position=None, sortable=True,
            reorderable=False, columns=[
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
def watched(doc: Document) -> bool:
    """Whether a browser tab is connected to ``doc``'s session.

    Bokeh keeps a session for a while after its tab is closed (and before the tab
    connects): refreshing it then would only cost time, and each message sent to a
    tab just closed is a warning in the log. A document outside a server session
    counts as watched.
    """
    session = getattr(doc.session_context, "session", None)
    return session is None or session.connection_count > 0


def graph_parts(graph: Any) -> tuple[dict[str, dict[str, Any]], list[tuple[str, str]]]:
    """Nodes (id -> attributes) and edges of a networkx-like graph."""
    nodes = {str(n): dict(attrs) for n, attrs in graph.nodes(data=True)}
    edges = [(str(a), str(b)) for a, b in graph.edges()]
    return nodes, edges


def graph_from_record(record: Any) -> tuple[dict[str, dict[str, Any]], list[tuple[str, str]]]:
    """The step graph of a trial from its own record alone (when ``get_provenance``, which
    also looks for the trials that made its input files, fails)."""
    from ..provenance import build_provenance

    return graph_parts(build_provenance(record))


def add_cached(nodes: dict[str, dict[str, Any]], record: Any) -> None:
    """Mark the steps whose output came from the cache (the graph does not say)."""
    for step in record.steps:
        if step.cached and step.key in nodes:
            nodes[step.key]["cached"] = True


def layered_layout(nodes: Sequence[str], edges: Sequence[tuple[str, str]]
                   ) -> dict[str, tuple[float, float]]:
    """Left-to-right node positions (see :func:`experigraph.board.plots.graph_layout`)."""
    return plots.graph_layout(nodes, edges)[0]


def table_height(n_rows: int) -> int:
    """Pixels for the trial table: its rows, up to a dozen (then it scrolls)."""
    return 32 + 25 * min(max(n_rows, 4), 12)


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


def _ids_text(ids: Sequence[int]) -> str:
    return ", ".join(map(str, ids))


def _title(plot: Any) -> Any:
    """A figure's Title model (typed loosely: Bokeh types it as ``Title | str | None``)."""
    return plot.title


__all__ = ["BoardState", "BoardSession", "graph_from_record", "layered_layout"]
