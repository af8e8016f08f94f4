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

from .records import DriftEvent, Status, TrialRecord, Unrepresentable

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
    return _repr(width).repr(value)


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


def result_type(record: TrialRecord) -> str:
    """The result's type as daskperiment wrote it: ``"<class 'float'>"``; ``"None"`` when
    the trial has no result (failed, or still running) or its result is None."""
    name = record.result_type
    if record.status is not Status.SUCCEEDED or not name or name == "NoneType":
        return "None"
    return f"<class '{name}'>"


def drift_summary(events: Sequence[DriftEvent]) -> str:
    """``"code, environment"``: the kinds of drift a trial recorded, in first-seen order."""
    return ", ".join(dict.fromkeys(e.kind for e in events))


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


def trial_fields(record: TrialRecord) -> dict[str, Any]:
    """The values one trial shows, by field: what the history's row and the dashboard's
    row are both made of. ``extras`` holds scalar metrics, then labels (a metric wins
    over a label of the same name)."""
    extras = dict(record.metrics)
    for name, value in record.labels.items():
        extras.setdefault(name, value)
    return {
        "trial_id": record.trial_id,
        "parameters": record.parameters,
        "result": record.result if record.status is not Status.RUNNING else None,
        "succeeded": record.status is Status.SUCCEEDED,
        "status": record.status.value if isinstance(record.status, Status)
        else str(record.status),
        "finished": record.finished,
        "process_time": record.process_time,
        "description": record.description or "",
        "seed": record.seed,
        "result_type": result_type(record),
        "drift": drift_summary(record.drift),
        "extras": extras,
    }


def history_frame(records: Iterable[TrialRecord], declared: Iterable[str] = (),
                  verbose: bool = False) -> Any:
    """The history table of ``records``: one row per trial, indexed by ``Trial ID``.

    Columns: each parameter (declared ones first, in their order; only those some
    trial has), then :data:`HISTORY_COLUMNS` (and :data:`VERBOSE_COLUMNS`), then
    scalar metrics and labels. ``Description`` is NaN for a trial without one, as
    daskperiment had it.
    """
    import numpy as np
    import pandas as pd

    rows_of = [trial_fields(r) for r in records]
    params: dict[str, None] = dict.fromkeys(declared)
    extra: dict[str, None] = {}
    for f in rows_of:
        params.update(dict.fromkeys(f["parameters"]))
        extra.update(dict.fromkeys(f["extras"]))
    used = [p for p in params if any(p in f["parameters"] for f in rows_of)] if rows_of \
        else list(params)
    extra_columns = [e for e in extra if e not in used]
    columns = used + HISTORY_COLUMNS + (VERBOSE_COLUMNS if verbose else []) + extra_columns
    rows = []
    for f in rows_of:
        row: dict[str, Any] = {p: f["parameters"].get(p) for p in used}
        finished = local_time(f["finished"])
        row.update({
            "Result": f["result"],
            "Success": f["succeeded"],
            "Finished": pd.NaT if finished is None else pd.Timestamp(finished),
            "Process Time": pd.Timedelta(seconds=f["process_time"])
            if f["process_time"] is not None else pd.NaT,
            "Description": f["description"] or np.nan,
        })
        if verbose:
            row.update({"Seed": f["seed"], "Result Type": f["result_type"],
                        "Status": f["status"]})
        for name in extra_columns:
            row[name] = f["extras"].get(name)
        rows.append(row)
    frame = pd.DataFrame(rows, columns=columns,
                         index=pd.Index([f["trial_id"] for f in rows_of], name="Trial ID",
                                        dtype="int64"))
    # text or NaN: one dtype whether or not a trial has failed yet
    frame["Description"] = frame["Description"].astype(object)
    return frame
