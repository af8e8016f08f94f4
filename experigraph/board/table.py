"""The trial rows the dashboard shows, kept up to date incrementally.

:class:`TrialTable` reads an :class:`~experigraph.Experiment` only through its
public query methods (``latest_trial_id`` and ``get_trials``) and holds one display row
per trial, column by column, so that a browser session can *stream* the rows it
has not seen and *patch* the rows that changed instead of re-sending the table.

A refresh costs one ``ex.latest_trial_id`` when nothing happened: records are read
only for new trial ids, for trials still running, and for reserved ids whose
record was not readable yet. This module does not import Bokeh.
"""
from __future__ import annotations

import bisect
import dataclasses
import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..errors import ExperigraphError
from ..present import as_text, is_number, time_text, trial_fields
from ..records import DriftEvent, Status, TrialRecord

if TYPE_CHECKING:
    from ..experiment import Experiment

logger = logging.getLogger(__name__)

#: fixed columns, in table order, after the parameters: (field, title)
FIXED = [("result", "Result"), ("success", "Success"), ("status", "Status"),
         ("finished", "Finished"), ("process_time", "Process Time (s)"),
         ("description", "Description"), ("seed", "Seed"), ("drift", "Drift")]
NUMERIC_FIXED = {"process_time"}
INTEGER_FIELDS = {"trial_id", "seed"}
#: text colour of a row's id and status, by status
STATUS_COLORS = {"succeeded": "#1b5e20", "failed": "#c62828", "running": "#1565c0",
                 "interrupted": "#ef6c00"}
NAN = float("nan")
#: ids reserved without a readable record are read at every refresh for this long, then
#: once per this period
UNREADABLE_RETRY_S = 5.0


@dataclasses.dataclass(frozen=True)
class Column:
    """One column of the trial table.

    ``field`` is the key in the row data (``p:<name>`` for a parameter,
    ``m:<name>`` for a scalar metric or label); ``numeric`` says whether every
    value is a number (else the values are shown as text).
    """

    field: str
    title: str
    group: str
    numeric: bool


def model_names(record: TrialRecord) -> str:
    """``"classifier, scaler"``: the models a trial recorded with ``ex.model``."""
    return ", ".join(dict.fromkeys(str(item.get("model")) for step in record.steps
                                   for item in step.outputs if item.get("kind") == "model"))


def record_row(record: TrialRecord) -> dict[str, Any]:
    """The raw values of one trial's row, keyed by field (as ``get_history(verbose=True)``)."""
    f = trial_fields(record)
    row: dict[str, Any] = {f"p:{k}": v for k, v in f["parameters"].items()}
    row.update({f"m:{k}": v for k, v in f["extras"].items()})
    models = model_names(record)
    if models:  # a "Models" column appears once a trial recorded one (ex.model)
        row["m:Models"] = models
    row.update({
        "trial_id": f["trial_id"],
        "result": f["result"],
        "success": "True" if f["succeeded"] else "False",
        "status": f["status"],
        "finished": time_text(f["finished"]),
        "process_time": f["process_time"],
        "description": f["description"],
        "seed": f["seed"],
        "drift": f["drift"],
        "_color": STATUS_COLORS.get(f["status"], "#000000"),
    })
    return row


class TrialTable:
    """Display rows of every trial of an experiment, refreshed incrementally.

    Parameters
    ----------
    experiment : Experiment
        Read through ``latest_trial_id`` and ``get_trials`` only.

    Notes
    -----
    ``revision`` grows with every change of the rows, ``drift_revision`` with every
    change of ``drift_events``. ``schema_revision`` is the revision
    of the last change of the columns (a new parameter, metric or label, or a
    column whose values stopped being numbers): a session that saw an older one
    rebuilds, else it streams ``rows_since`` and patches ``changed_since``.
    """

    def __init__(self, experiment: Experiment, archived: bool = False) -> None:
        self.experiment = experiment
        self.archived = archived  # show archived trials (ex.archive) too
        self.trial_ids: list[int] = []
        self.positions: dict[int, int] = {}
        self.raw: list[dict[str, Any]] = []
        self._params: dict[str, None] = {}
        self._extras: dict[str, None] = {}
        self._numbers: set[str] = set()
        self._texts: set[str] = set()
        self.columns: list[Column] = self._columns_for([])
        self.categories: dict[str, dict[str, int]] = {}  # field -> category -> code
        self.drift_events: list[tuple[int, DriftEvent]] = []
        self.last_seen = 0
        self.latest = 0  # the store's newest trial id at the last refresh
        self.unfinished: set[int] = set()
        self.unreadable: dict[int, float] = {}  # trial id -> when first found unreadable
        self._retry_at = 0.0
        self.revision = 0
        self.schema_revision = 0
        self._changes: list[tuple[int, int]] = []  # (revision, position), revision ascending
        self._search: list[str] = []  # search_text of each row, filled when filtering
        self.drift_revision = 0  # grows when drift_events change

    # -- reading ------------------------------------------------------------------
    def refresh(self, limit: int | None = None) -> bool:
        """Read what changed since the last refresh; return whether anything did.

        ``limit`` caps how many new trial ids are read (oldest first); the rest are
        read by the next refreshes, and :attr:`is_behind` says so meanwhile.
        """
        last = self.latest = self.experiment.latest_trial_id
        if limit is not None and last - self.last_seen > limit:
            last = self.last_seen + limit
        now = time.monotonic()
        # reserved ids without a readable record: at every refresh while they are new
        # (the record is on its way), then now and then (its process may have died)
        retry = {t for t, since in self.unreadable.items()
                 if now - since < UNREADABLE_RETRY_S or now >= self._retry_at}
        if last == self.last_seen and not self.unfinished and not retry:
            return False
        wanted = self.unfinished | retry | set(range(self.last_seen + 1, last + 1))
        if now >= self._retry_at:
            self._retry_at = now + UNREADABLE_RETRY_S
        self.last_seen = max(last, self.last_seen)
        try:  # one batch; a torn record is named once by the backend (WARNING)
            records = self.experiment.get_trials(sorted(wanted))
        except (ExperigraphError, OSError) as exc:  # the store failed: say so, try again
            logger.warning("Dashboard cannot read trials %d-%d: %s", min(wanted), max(wanted),
                           exc)
            records = []
        read = {r.trial_id for r in records}
        for trial_id in wanted:
            if trial_id in read:
                self.unreadable.pop(trial_id, None)
            else:  # reserved with no record yet, or unreadable: read again later
                self.unreadable.setdefault(trial_id, now)
        if records and not self.archived:  # archived trials (ex.archive) are not shown
            hidden = self.experiment.archived_trial_ids()
            records = [r for r in records if r.trial_id not in hidden]
        return self.apply(records)

    def apply(self, records: Iterable[TrialRecord]) -> bool:
        """Add or update rows from records; return whether anything changed."""
        changed = False
        new_rows: list[dict[str, Any]] = []
        touched: list[dict[str, Any]] = []
        for record in records:
            row = record_row(record)
            if record.status is Status.RUNNING:
                self.unfinished.add(record.trial_id)
            else:
                self.unfinished.discard(record.trial_id)
            position = self.positions.get(record.trial_id)
            if position is None:
                new_rows.append(row)
                self._add_drift(record)
                changed = True
            elif row != self.raw[position]:
                self.revision += 1
                self.raw[position] = row
                self._changes.append((self.revision, position))
                touched.append(row)
                if position < len(self._search):
                    self._search[position] = self.search_text(row)
                self._add_drift(record, replace=True)
                changed = True
        if new_rows:
            self.revision += 1
            new_rows.sort(key=lambda r: r["trial_id"])
            if self.trial_ids and new_rows[0]["trial_id"] < self.trial_ids[-1]:
                # an id older than the last row became readable: keep rows in id order
                rows = sorted(self.raw + new_rows, key=lambda r: r["trial_id"])
                self.raw = rows
                self.trial_ids = [r["trial_id"] for r in rows]
                self.positions = {t: i for i, t in enumerate(self.trial_ids)}
                self.schema_revision = self.revision
                self._search = []
            else:
                for row in new_rows:
                    self.positions[row["trial_id"]] = len(self.trial_ids)
                    self.trial_ids.append(row["trial_id"])
                    self.raw.append(row)
        if changed:
            self._update_columns(touched + new_rows)
        return changed

    def _add_drift(self, record: TrialRecord, replace: bool = False) -> None:
        """Keep ``drift_events`` (in trial id order) up to date with ``record``."""
        before = len(self.drift_events)
        if replace:
            self.drift_events = [(t, e) for t, e in self.drift_events if t != record.trial_id]
        if record.drift:
            self.drift_events.extend((record.trial_id, e) for e in record.drift)
            self.drift_events.sort(key=lambda item: item[0])  # stable: events keep their order
        if record.drift or len(self.drift_events) != before:
            self.drift_revision += 1

    # -- columns ------------------------------------------------------------------
    def _columns_for(self, rows: Sequence[Mapping[str, Any]]) -> list[Column]:
        """Columns after seeing ``rows`` too (only the new or changed rows are looked at)."""
        for row in rows:
            for key, value in row.items():
                if key.startswith("p:"):
                    self._params.setdefault(key)
                elif key.startswith("m:"):
                    self._extras.setdefault(key)
                else:
                    continue
                if value is not None:
                    (self._numbers if is_number(value) else self._texts).add(key)
            value = row.get("result")
            if value is not None and not is_number(value):
                self._texts.add("result")

        def numeric(field: str) -> bool:
            return field not in self._texts and (field in self._numbers or field == "result")

        cols = [Column("trial_id", "Trial ID", "id", True)]
        cols += [Column(k, k[2:], "parameter", numeric(k)) for k in self._params]
        for field, title in FIXED:
            is_num = numeric(field) if field == "result" else field in NUMERIC_FIXED | {"seed"}
            cols.append(Column(field, title, "result" if field == "result" else "info", is_num))
        taken = {c.title for c in cols}
        cols += [Column(k, k[2:] if k[2:] not in taken else f"{k[2:]} (metric)", "metric",
                        numeric(k)) for k in self._extras]
        return cols

    def _update_columns(self, rows: Sequence[Mapping[str, Any]]) -> None:
        columns = self._columns_for(rows)
        if columns != self.columns:
            self.columns = columns
            self.schema_revision = self.revision
        for col in self.parameter_columns:
            if col.numeric:
                continue
            cats = self.categories.get(col.field)
            if cats is None:  # a new text column: code every row once
                cats = self.categories[col.field] = {}
                rows = self.raw
            for row in rows:
                cats.setdefault(as_text(row.get(col.field)), len(cats))

    # -- what a session needs -----------------------------------------------------
    def __len__(self) -> int:
        return len(self.trial_ids)

    @property
    def is_behind(self) -> bool:
        """Whether trials known at the last refresh are still to be read (a ``limit``)."""
        return self.last_seen < self.latest

    @property
    def parameter_columns(self) -> list[Column]:
        return [c for c in self.columns if c.group == "parameter"]

    def cell(self, col: Column, row: Mapping[str, Any]) -> Any:
        """The value sent to the browser for ``col`` of ``row``."""
        value = row.get(col.field)
        if col.field in INTEGER_FIELDS:
            return value
        if col.numeric:
            return float(value) if is_number(value) else NAN  # type: ignore[arg-type]
        return as_text(value)

    def axis_value(self, col: Column, row: Mapping[str, Any]) -> float:
        """A number for plotting ``col``: the value itself, or a category's code."""
        value = row.get(col.field)
        if col.numeric:
            return float(value) if is_number(value) else NAN  # type: ignore[arg-type]
        return float(self.categories.get(col.field, {}).get(as_text(value), NAN))

    def data(self, start: int = 0, stop: int | None = None) -> dict[str, list[Any]]:
        """Column data of rows ``start:stop`` (the table's fields, plus ``x:`` plot fields)."""
        rows = self.raw[start:stop]
        out: dict[str, list[Any]] = {col.field: [self.cell(col, r) for r in rows]
                                     for col in self.columns}
        result = next(c for c in self.columns if c.field == "result")
        out["result_value"] = [self.axis_value(result, r) if r["status"] != "failed" else NAN
                               for r in rows]
        for col in self.parameter_columns:
            out[f"x:{col.field}"] = [self.axis_value(col, r) for r in rows]
        out["_color"] = [r["_color"] for r in rows]
        return out

    def matching(self, query: str) -> list[int]:
        """Positions of the rows whose text contains every word of ``query`` (any case).

        The board filters in the browser with the same rule (``FILTER_JS`` in
        :mod:`experigraph.board.app`) over the same :meth:`search_texts`.
        """
        words = [f" {w} " if "=" in w else w for w in query.lower().split()]
        return [i for i, text in enumerate(self.search_texts()) if all(w in text for w in words)]

    def search_texts(self, start: int = 0, stop: int | None = None) -> list[str]:
        """:meth:`search_text` of rows ``start:stop``, kept from one call to the next."""
        if len(self._search) > len(self.raw):
            self._search = []
        if len(self._search) < len(self.raw):  # rows are appended: index only the new ones
            self._search.extend(self.search_text(r) for r in self.raw[len(self._search):])
        return self._search[start:stop]

    def search_text(self, row: Mapping[str, Any]) -> str:
        """Lowercase text of a row that the filter matches: `` name=value `` for each cell.

        A filter word with ``=`` matches a whole ``name=value``; any other word, a part of it.
        """
        parts = [f"{k[2:] if k[1:2] == ':' else k}={as_text(v)}" for k, v in row.items()
                 if not k.startswith("_")]
        return f" {' '.join(parts).lower()} "

    def rows_since(self, n_rows: int) -> dict[str, list[Any]] | None:
        """Data of the rows a session with ``n_rows`` rows has not seen, or None."""
        return self.data(n_rows) if n_rows < len(self.raw) else None

    def changed_since(self, revision: int, n_rows: int) -> list[int]:
        """Positions (below ``n_rows``) of rows changed after ``revision``."""
        start = bisect.bisect_right(self._changes, (revision, len(self.raw)))
        return sorted({p for _, p in self._changes[start:] if p < n_rows})

    def trial_row(self, trial_id: int) -> Mapping[str, Any] | None:
        position = self.positions.get(trial_id)
        return None if position is None else self.raw[position]
