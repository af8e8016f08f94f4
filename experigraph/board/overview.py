"""The store overview: every experiment of a store, each opening its own board.

``experigraph board`` without an id serves it at ``/``; a board started for one
experiment serves it at ``/?view=experiments`` and links there from its header.
Each experiment is read through an :class:`~experigraph.Experiment` (its
``latest_trial_id`` and ``get_trial``, via the board's shared
:class:`~experigraph.board.table.TrialTable`); only the list of experiment ids
comes from the store itself (``Backend.experiment_ids``), as for ``experigraph list``.
"""
from __future__ import annotations

import html
import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from ..present import is_number

if TYPE_CHECKING:
    from bokeh.document import Document

    from .app import BoardState

#: the overview's columns: (field, title)
COLUMNS = [("experiment", "Experiment"), ("trials", "Trials"), ("last_activity", "Last activity"),
           ("best_result", "Best result (max)"), ("succeeded", "Succeeded"),
           ("failed", "Failed"), ("running", "Running"), ("interrupted", "Interrupted")]


def board_url(experiment_id: str) -> str:
    """The link to one experiment's board on the same server."""
    return f"/?experiment={quote(experiment_id, safe='')}"


def summary(experiment_id: str, rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """One overview row from an experiment's table rows (``TrialTable.raw``)."""
    counts = {"succeeded": 0, "failed": 0, "running": 0, "interrupted": 0}
    for r in rows:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    results = [float(r["result"]) for r in rows if r["status"] == "succeeded"
               and is_number(r["result"]) and math.isfinite(r["result"])]
    finished = [r["finished"] for r in rows if r["finished"]]
    last = max(finished, default="")
    if counts["running"]:
        last = f"running now ({counts['running']})"
    return {"experiment": experiment_id, "trials": len(rows), "last_activity": last,
            "best_result": max(results) if results else math.nan, **counts}


class StoreOverview:
    """The overview page of a store's experiments.

    Parameters
    ----------
    experiment_ids : callable
        Lists the store's experiment ids (read at every page load and refresh).
    state_of : callable
        The shared :class:`~experigraph.board.app.BoardState` of an experiment id.
    store_uri : str
        Shown in the header (passwords masked by the backend).
    refresh_ms : int
        How often an open overview looks for new experiments and trials.
    """

    def __init__(self, experiment_ids: Callable[[], list[str]],
                 state_of: Callable[[str], BoardState], store_uri: str,
                 refresh_ms: int = 1000) -> None:
        self.experiment_ids = experiment_ids
        self.state_of = state_of
        self.store_uri = store_uri
        self.refresh_ms = max(refresh_ms, 1000)

    def data(self) -> dict[str, list[Any]]:
        rows = []
        for experiment_id in self.experiment_ids():
            state = self.state_of(experiment_id)
            state.refresh(force=state.table.is_behind)
            rows.append(summary(experiment_id, state.table.raw))
        out: dict[str, list[Any]] = {field: [r[field] for r in rows] for field, _ in COLUMNS}
        out["url"] = [board_url(r["experiment"]) for r in rows]
        return out

    def make_document(self, doc: Document, note: str = "") -> None:
        """Build the overview page of one browser tab."""
        from bokeh.layouts import column
        from bokeh.models import ColumnDataSource
        from bokeh.models.widgets import (
            DataTable, Div, HTMLTemplateFormatter, NumberFormatter, TableColumn)

        from .app import watched

        source = ColumnDataSource(self.data(), name="experiments")
        link = HTMLTemplateFormatter(
            template='<a class="eg-experiment-link" href="<%= url %>"><%= value %></a>')
        number = NumberFormatter(format="0.[000000]", nan_format="", text_align="right")
        count = NumberFormatter(format="0", text_align="right")
        columns = [TableColumn(field="experiment", title="Experiment", formatter=link,
                               width=220),
                   TableColumn(field="trials", title="Trials", formatter=count, width=70),
                   TableColumn(field="last_activity", title="Last activity", width=170),
                   TableColumn(field="best_result", title="Best result (max)",
                               formatter=number, width=130)]
        columns += [TableColumn(field=f, title=t, formatter=count, width=90)
                    for f, t in COLUMNS[4:]]
        table = DataTable(name="experiments_table", source=source, columns=columns,
                          sortable=True, reorderable=False, index_position=None,
                          height=32 + 25 * max(4, min(len(source.data["experiment"]), 20)),
                          sizing_mode="stretch_width", autosize_mode="none",
                          css_classes=["eg-experiments"])
        header = Div(name="overview_header", css_classes=["eg-overview-header"],
                     sizing_mode="stretch_width")

        def show_header() -> None:
            n = len(source.data["experiment"])
            header.text = (
                "<h2 style='margin:4px 0'>experigraph \u00b7 experiments</h2>"
                f"<span>{n} experiment{'s' * (n != 1)} in "
                f"<small>{html.escape(self.store_uri)}</small> \u00b7 updated "
                f"{time.strftime('%H:%M:%S')} \u00b7 click one to open its board</span>"
                + (f"<div style='color:#c62828'>{html.escape(note)}</div>" if note else ""))

        def refresh() -> None:
            if not watched(doc):
                return
            data = self.data()
            if data != dict(source.data):
                source.data = data
            show_header()

        show_header()
        doc.title = "experigraph \u00b7 experiments"
        doc.add_root(column(header, table, sizing_mode="stretch_width", name="overview"))
        doc.add_periodic_callback(refresh, self.refresh_ms)


__all__ = ["StoreOverview", "summary", "board_url"]
