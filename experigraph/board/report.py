"""A report to send: one self-contained HTML file of an experiment's trials.

``ex.report(path)`` and ``experigraph report ID -o report.html`` write a Bokeh
standalone document with its JavaScript inline (no server, no CDN: it opens
offline and can be mailed): the history table, results by trial, the result
against every varying parameter, the parallel coordinates, the metric curves of
the chosen trials, the comparison of two of them and the trial graph of the last.

The rows come from the same :class:`~experigraph.board.table.TrialTable` and the
figures from the same :mod:`experigraph.board.plots` as the live board, so the
report shows what the board shows. The experiment is read through its public
query methods only.
"""
from __future__ import annotations

import html
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ExperigraphError, TrialIDNotFoundError
from . import plots
from .table import TrialTable

if TYPE_CHECKING:
    from ..experiment import Experiment

#: trials whose curves (and comparison) a report shows when none are chosen
DEFAULT_TRIALS = 3


def chosen_trials(table: TrialTable, trials: Sequence[int] | None) -> list[int]:
    """The trials to detail: those given (checked), else the latest few."""
    if trials is None:
        return table.trial_ids[-DEFAULT_TRIALS:]
    ids = [int(t) for t in trials]
    for trial_id in ids:
        if trial_id not in table.positions:
            raise TrialIDNotFoundError(
                trial_id, f"Trial {trial_id} is not recorded in experiment "
                          f"{table.experiment.id!r} (trials: {_ranges(table.trial_ids)}).")
    return list(dict.fromkeys(ids))


def build_report(ex: Experiment, trials: Sequence[int] | None = None) -> Any:
    """The report's Bokeh layout (see :func:`write_report`)."""
    from bokeh.layouts import column, row
    from bokeh.models import CDSView, ColumnDataSource
    from bokeh.models.widgets import DataTable, Div

    table = TrialTable(ex)
    table.refresh()
    chosen = chosen_trials(table, trials)
    data = table.data()
    source = ColumnDataSource(data, name="trials")
    params = table.parameter_columns
    kinds = plots.axis_kinds(params, data)
    failed = sum(r["status"] == "failed" for r in table.raw)
    running = len(table.unfinished)
    fixed = plots.fixed_text(params, kinds, table.raw[0] if table.raw else None)
    parts: list[Any] = [Div(name="header", css_classes=["eg-header"], sizing_mode="stretch_width",
                            text=(
        f"<h2 style='margin:4px 0'>experigraph \u00b7 {html.escape(ex.id)}</h2>"
        f"<span name='summary'>{len(table)} trials \u00b7 {failed} failed \u00b7 {running} "
        f"running</span> \u00b7 <small>report written {time.strftime('%Y-%m-%d %H:%M:%S')} "
        f"from {html.escape(ex.backend.uri)}</small>"
        + (f"<div class='eg-fixed'>{html.escape(fixed)}</div>" if fixed else "")))]
    parts.append(DataTable(
        name="trial_table", source=source, columns=plots.table_columns(table.columns, data),
        sortable=True, reorderable=False, index_position=None,
        height=32 + 25 * min(max(len(table), 4), 16), sizing_mode="stretch_width",
        autosize_mode="none", css_classes=["eg-trials"]))

    parts.append(_section("Results"))
    result_plot, time_plot = plots.results_figures(source, CDSView)
    fits = [(result_plot, "trial_id", "result_value", False),
            (time_plot, "trial_id", "process_time", False)]
    parts.append(row(result_plot, time_plot, sizing_mode="stretch_width"))
    varying = [c for c in params if kinds[c.field] != "constant"]
    scatters = []
    for col in varying:
        kind = kinds[col.field]
        x_field = f"x:{col.field}" if kind == "categorical" else col.field
        fig, _ = plots.scatter_figure(
            source, None, x_field=x_field, title=col.title, kind=kind,
            categories=table.categories.get(col.field), name=f"scatter_plot:{col.title}",
            width=420, height=340)
        fits.append((fig, x_field, "result_value", kind == "log"))
        scatters.append(fig)
    plots.fit_results(fits, data)
    if scatters:
        parts.append(_section("Result against each parameter"))
        parts += [row(*scatters[i:i + 3]) for i in range(0, len(scatters), 3)]
        pc_source, pc_labels, mapper = plots.new_parallel_sources()
        axes = plots.parallel_axes(params, data, kinds)
        pc_source.data = plots.parallel_lines(data, axes, range(len(table)))
        pc_labels.data = plots.parallel_labels(axes, table.categories)
        plots.color_range(mapper, data["result_value"])
        pc_plot = plots.parallel_figure(pc_source, pc_labels, mapper)
        plots.set_parallel_axes(pc_plot, axes)
        parts += [_section("Parameters \u2192 result"), pc_plot]

    parts.append(_section(f"Metric curves of trial(s) {', '.join(map(str, chosen))}"))
    keys = sorted({k for t in chosen for k in ex.get_metric_keys(t)})
    if not keys:
        parts.append(Div(text="<i>No metric curves saved (ex.save_metric) in these "
                              "trials.</i>"))
    for key in keys:
        try:
            curves = plots.metric_data(ex.load_metric(key, chosen))
        except (ExperigraphError, KeyError):
            continue
        plot = plots.metric_figure(ColumnDataSource(curves), name=f"metric_plot:{key}",
                                   curves=f"metric_curves:{key}",
                                   title=f"{key} of trial(s) "
                                         f"{', '.join(map(str, curves['trial_id']))}")
        plot.yaxis.axis_label = key
        parts.append(plot)

    if len(chosen) >= 2:
        first, second = chosen[0], chosen[1]
        parts.append(_section(f"Trial {first} compared with trial {second}"))
        parts.append(Div(name="compare_div", css_classes=["eg-compare"],
                         sizing_mode="stretch_width",
                         text=plots.compare_html(ex.compare(first, second))))
    if chosen:
        parts += _graph(ex, chosen[-1])
    return column(*parts, sizing_mode="stretch_width", name="report")


def _graph(ex: Experiment, trial_id: int) -> list[Any]:
    from bokeh.layouts import row
    from bokeh.models import ColumnDataSource
    from bokeh.models.widgets import Div

    from .app import add_cached, graph_from_record, graph_parts

    record = ex.get_trial(trial_id)
    try:
        nodes, edges = graph_parts(ex.get_provenance(trial_id))
    except (ExperigraphError, KeyError, ValueError, OSError):
        nodes, edges = graph_from_record(record)
    add_cached(nodes, record)
    data, lines, heads = plots.graph_data(nodes, edges)
    node_source = ColumnDataSource(data, name="provenance_nodes")
    detail = Div(name="step_detail", css_classes=["eg-step-detail"], text=plots.STEP_HINT,
                 width=420)
    plot = plots.graph_figure(node_source, ColumnDataSource(lines, name="provenance_edges"),
                              ColumnDataSource(heads), detail)
    plots.fit_graph(plot, data)
    plot.title.text = f"Trial {trial_id}: parameters \u2192 steps \u2192 data"  # type: ignore
    return [_section(f"Trial graph of trial {trial_id}"), row(plot, detail)]


def _section(title: str) -> Any:
    from bokeh.models.widgets import Div

    return Div(text=f"<h3 style='margin:14px 0 2px'>{html.escape(title)}</h3>",
               sizing_mode="stretch_width")


def write_report(ex: Experiment, path: str | os.PathLike[str] = "report.html",
                 trials: Sequence[int] | None = None) -> Path:
    """Write the report of ``ex`` to ``path``: one HTML file that works offline.

    Parameters
    ----------
    ex : Experiment
        Read through its public query methods.
    path : str or path-like
        The HTML file to write (replaced if it exists).
    trials : sequence of int, optional
        The trials whose metric curves are drawn; the first two are compared and
        the last one's graph is drawn. Default: the latest three.

    Returns
    -------
    Path
        The file written.

    Raises
    ------
    TrialIDNotFoundError
        A trial in ``trials`` is not recorded.
    """
    from bokeh.embed import file_html
    from bokeh.resources import INLINE

    layout = build_report(ex, trials)
    text = file_html(layout, INLINE, title=f"experigraph report \u00b7 {ex.id}")
    out = Path(path)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, out)
    return out


def _ranges(ids: Sequence[int]) -> str:
    if not ids:
        return "none"
    return f"{ids[0]}-{ids[-1]}" if len(ids) == ids[-1] - ids[0] + 1 else \
        ", ".join(map(str, ids[:20])) + (", ..." if len(ids) > 20 else "")


__all__ = ["build_report", "write_report"]
