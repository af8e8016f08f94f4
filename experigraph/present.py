"""How trials are shown: one place for rows, times and short reprs.

The history table (``ex.get_history()``), the command line and the dashboard all
present records through these functions, so a trial reads the same everywhere.
pandas is imported only by :func:`history_frame`, when a DataFrame is asked for.
"""
from __future__ import annotations

import datetime as _dt
import functools
import math
import numbers
import reprlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .records import (DriftEvent, Status, TrialRecord, TrialSummary, Unrepresentable,
                      gc_paused, row_of)

#: the history's columns after the parameters, as daskperiment had them
HISTORY_COLUMNS = ["Result", "Success", "Finished", "Process Time", "Description"]
#: what ``get_history(verbose=True)`` adds
VERBOSE_COLUMNS = ["Seed", "Result Type", "Status"]


@functools.lru_cache(maxsize=8)
def _repr(width: int) -> reprlib.Repr:
    r = reprlib.Repr()
    r.maxstring = r.maxother = width
    return r


def short(value: Any, width: int = 60) -> str:
    """``repr(value)``, shortened to about ``width`` characters (``'abc...xyz'``).

    >>> short("x" * 100, 10)
    "'xx...xxx'"
    """
    try:
        return _repr(width).repr(value)
    except Exception as exc:  # an int of more than 4,300 digits, a broken __repr__
        if type(value) is int:
            return f"<int of {len(format(value, 'x'))} hex digits>"
        return f"<{type(value).__name__}: repr failed ({type(exc).__name__})>"


def parameters_text(parameters: Mapping[str, Any], width: int = 60) -> str:
    """``a=1, b='x'``: parameters as a log line shows them."""
    return ", ".join(f"{k}={short(v, width)}" for k, v in parameters.items())


@functools.lru_cache(maxsize=1)
def local_zone() -> _dt.tzinfo | None:
    """This machine's time zone (read once per process)."""
    return _dt.datetime.now().astimezone().tzinfo


def time_text(t: _dt.datetime | None, missing: str = "") -> str:
    """A record time (UTC) as local ``YYYY-MM-DD HH:MM:SS`` text, sortable as text."""
    if t is None:
        return missing
    return t.astimezone(local_zone()).strftime("%Y-%m-%d %H:%M:%S")


def local_time(t: _dt.datetime | None) -> _dt.datetime | None:
    """A record time (UTC) as a naive local time (the history's ``Finished``)."""
    if t is None:
        return None
    return t.astimezone(local_zone()).replace(tzinfo=None)


def result_type(record: TrialRecord | TrialSummary) -> str:
    """The result's type as daskperiment wrote it: ``"<class 'float'>"``; ``"None"`` when
    the trial has no result (failed, or still running) or its result is None."""
    return _result_type_text(record.status, record.result_type)


def _result_type_text(status: Status, name: str | None) -> str:
    if status is not Status.SUCCEEDED or not name or name == "NoneType":
        return "None"
    return f"<class '{name}'>"


def drift_summary(events: Sequence[DriftEvent]) -> str:
    """``"code, environment"``: the kinds of drift a trial recorded, in first-seen order."""
    return ", ".join(dict.fromkeys(e.kind for e in events))


def _drift_text(record: TrialRecord | TrialSummary) -> str:
    if isinstance(record, TrialSummary):
        kinds = record.drift_kinds
        return ", ".join(dict.fromkeys(kinds)) if kinds else ""
    return drift_summary(record.drift)


def is_number(value: Any) -> bool:
    """Whether ``value`` is shown as a number (bools are not)."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def as_text(value: Any) -> str:
    """The text shown for a value that is not shown as a number."""
    if value is None:
        return ""
    if isinstance(value, Unrepresentable):
        return value.text
    if isinstance(value, float) and math.isnan(value):
        return ""
    return str(value)


def trial_fields(record: TrialRecord | TrialSummary) -> dict[str, Any]:
    """The values one trial shows, by field: what the history's row and the dashboard's
    row are both made of (a record or its summary give the same). ``extras`` holds scalar metrics, then labels (a metric wins
    over a label of the same name)."""
    extras = record.metrics
    if record.labels:
        extras = dict(extras)
        for name, value in record.labels.items():
            extras.setdefault(name, value)
    status = record.status
    return {
        "trial_id": record.trial_id,
        "parameters": record.parameters,
        "result": record.result if status is not Status.RUNNING else None,
        "succeeded": status is Status.SUCCEEDED,
        "status": status.value if isinstance(status, Status) else str(status),
        "finished": record.finished,
        "process_time": record.process_time,
        "description": record.description or "",
        "seed": record.seed,
        "result_type": result_type(record),
        "drift": _drift_text(record),
        "extras": extras,
    }


def history_frame(records: Iterable[TrialRecord | TrialSummary], declared: Iterable[str] = (),
                  verbose: bool = False) -> Any:
    """The history table of ``records``: one row per trial, indexed by ``Trial ID``.

    Columns: each parameter (declared ones first, in their order; only those some
    trial has), then :data:`HISTORY_COLUMNS` (and :data:`VERBOSE_COLUMNS`), then
    scalar metrics and labels. ``Description`` is NaN for a trial without one, as
    daskperiment had it.
    """
    return rows_frame([row_of(r) for r in records], declared, verbose)


def rows_frame(rows: Sequence[tuple[Any, ...]], declared: Iterable[str] = (),
               verbose: bool = False) -> Any:
    """:func:`history_frame` of history rows (``records.row_of``, ``records.history_row``)."""
    import numpy as np
    import pandas as pd

    with gc_paused():
        return _history_frame(pd, np, rows, declared, verbose)


def _history_frame(pd: Any, np: Any, rows: Sequence[tuple[Any, ...]],
                   declared: Iterable[str], verbose: bool) -> Any:
    # rows are tuples (records.ROW_FIELDS): 1 parameters, 9 metrics, 10 labels
    params: dict[str, None] = dict.fromkeys(declared)
    extra: dict[str, None] = {}
    for row in rows:
        params.update(dict.fromkeys(row[1]))
        if row[9]:
            extra.update(dict.fromkeys(row[9]))
        if row[10]:
            extra.update(dict.fromkeys(row[10]))
    used = [p for p in params if any(p in row[1] for row in rows)] if rows \
        else list(params)
    extra_columns = [e for e in extra if e not in used]
    columns = used + HISTORY_COLUMNS + (VERBOSE_COLUMNS if verbose else []) + extra_columns
    # one list per column, then typed columns: a Timestamp per cell is slow on 10,000 rows
    cols: dict[str, list[Any]] = {c: [] for c in columns}
    param_cols = [(p, cols[p].append) for p in used]
    extra_cols = [(e, cols[e].append) for e in extra_columns]
    result, success = cols["Result"].append, cols["Success"].append
    finished, process_time = cols["Finished"], cols["Process Time"]
    add_finished, add_time = finished.append, process_time.append
    description, nan = cols["Description"].append, np.nan
    running, succeeded = Status.RUNNING, Status.SUCCEEDED
    ids: list[int] = []
    add_id = ids.append
    for (trial_id, values, status, value, done, seconds, text, seed, type_name, metrics,
         labels, _) in rows:
        add_id(trial_id)
        for p, append in param_cols:
            append(values.get(p))
        result(value if status is not running else None)
        success(status is succeeded)
        add_finished(done)
        add_time(seconds)
        description(text or nan)
        if verbose:
            cols["Seed"].append(seed)
            cols["Result Type"].append(_result_type_text(status, type_name))
            cols["Status"].append(status.value if isinstance(status, Status) else str(status))
        if extra_cols:
            for name, append in extra_cols:  # a metric wins over a label of its name
                append(metrics[name] if name in metrics else labels.get(name))
    index = pd.Index(ids, name="Trial ID", dtype="int64")
    data: dict[str, Any] = dict(cols)
    if rows:
        data["Finished"] = _times(pd, finished)
        data["Process Time"] = _durations(pd, np, process_time)
        frame = pd.DataFrame(data, columns=columns, index=index)
    else:
        frame = pd.DataFrame([], columns=columns, index=index)
    # text or NaN: one dtype whether or not a trial has failed yet
    frame["Description"] = frame["Description"].astype(object)
    return frame


def _times(pd: Any, values: list[_dt.datetime | None]) -> Any:
    """``Finished``: record times (UTC) as naive local times (:func:`local_time` of each,
    converted at once), typed as a column of ``pd.Timestamp`` cells was (microseconds;
    all missing: what pandas makes of ``NaT`` cells)."""
    if all(v is None for v in values):
        return [pd.NaT] * len(values)
    if any(v is not None and v.tzinfo is None for v in values):  # read as local already
        return pd.array([pd.NaT if v is None else local_time(v) for v in values],
                        dtype="datetime64[us]")
    times = pd.to_datetime(values, utc=True, cache=False)  # distinct times: no cache to gain
    local = times.tz_convert(local_zone()).tz_localize(None)
    return pd.array(local.as_unit("us"), dtype="datetime64[us]")


def _durations(pd: Any, np: Any, seconds: list[float | None]) -> Any:
    """``Process Time``: each value as ``pd.Timedelta(seconds=...)`` makes it (whole
    nanoseconds, truncated), typed as a column of such cells was: microseconds when every
    value is whole microseconds, else nanoseconds; all missing as ``NaT`` cells were."""
    missing = np.array([s is None for s in seconds], dtype=bool)
    if missing.all():
        return [pd.NaT] * len(seconds)
    floats = np.array([0.0 if s is None else s for s in seconds], dtype="float64")
    ns = (floats * 1e9).astype("int64")
    unit = "us" if not (ns[~missing] % 1000).any() else "ns"
    values = ns.view("timedelta64[ns]").copy()
    values[missing] = np.timedelta64("NaT")
    return pd.array(values.astype(f"timedelta64[{unit}]"))
