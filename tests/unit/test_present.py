"""How trials are shown (``experigraph.present``): one place for the history's rows, times
and short reprs, shared by ``get_history``, the command line and the dashboard."""
from __future__ import annotations

import datetime as dt
import math

import pytest

from experigraph import present
from experigraph.records import DriftEvent, Status, TrialRecord, Unrepresentable

UTC = dt.timezone.utc


def record(trial_id, status=Status.SUCCEEDED, **fields):
    base = dict(experiment_id="p", trial_id=trial_id, status=status, parameters={"a": 1},
                seed=7, started=dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC))
    base.update(fields)
    return TrialRecord(**base)


def test_short_reprs_are_cut_to_their_width():
    assert present.short("x" * 100, 10) == "'xx...xxx'"
    assert present.short([1, 2], 60) == "[1, 2]"
    assert present.parameters_text({"a": 1, "b": "x" * 100}, 10) == "a=1, b='xx...xxx'"


def test_times_are_local_text_and_missing_ones_are_said(monkeypatch):
    t = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    local = t.astimezone(present.local_zone())
    assert present.time_text(t) == local.strftime("%Y-%m-%d %H:%M:%S")
    assert present.time_text(None) == "" and present.time_text(None, "-") == "-"
    assert present.local_time(t) == local.replace(tzinfo=None)
    assert present.local_time(None) is None


def test_result_types_read_as_daskperiment_wrote_them():
    assert present.result_type(record(1, result=1.5, result_type="float")) == "<class 'float'>"
    assert present.result_type(record(2, Status.FAILED, result_type="float")) == "None"
    assert present.result_type(record(3, result=None, result_type="NoneType")) == "None"


def test_a_trials_fields_hold_metrics_before_labels_and_a_metric_wins():
    r = record(4, metrics={"acc": 0.9, "loss": 0.1}, labels={"model": "rf", "acc": "high"},
               drift=(DriftEvent("code", "s", "m"), DriftEvent("environment", "git", "m"),
                      DriftEvent("code", "t", "m")))
    fields = present.trial_fields(r)
    assert list(fields["extras"]) == ["acc", "loss", "model"]
    assert fields["extras"]["acc"] == 0.9
    assert fields["drift"] == "code, environment"
    assert fields["succeeded"] and fields["status"] == "succeeded"
    running = present.trial_fields(record(5, Status.RUNNING, result=3))
    assert running["result"] is None and not running["succeeded"]


def test_the_history_frame_keeps_daskperiments_columns_and_types():
    pd = pytest.importorskip("pandas")
    ok = record(1, result=2.0, result_type="float", finished=dt.datetime(2026, 1, 2, 3, 4, 6, tzinfo=UTC),
                process_time=1.5, metrics={"acc": 0.5})
    failed = record(2, Status.FAILED, parameters={"a": 2, "b": "x"}, description="boom")
    frame = present.history_frame([ok, failed], declared=["b", "a", "unused"], verbose=True)
    assert list(frame.columns) == ["b", "a", *present.HISTORY_COLUMNS,
                                   *present.VERBOSE_COLUMNS, "acc"]
    assert frame.index.name == "Trial ID" and list(frame.index) == [1, 2]
    assert frame.loc[1, "Success"] and not frame.loc[2, "Success"]
    assert math.isnan(frame.loc[1, "Description"]) and frame.loc[2, "Description"] == "boom"
    assert frame["Description"].dtype == object
    assert frame.loc[1, "Process Time"] == pd.Timedelta(seconds=1.5)
    assert pd.isna(frame.loc[2, "Finished"]) and pd.isna(frame.loc[2, "Process Time"])
    assert frame.loc[1, "Result Type"] == "<class 'float'>"
    assert frame.loc[2, "b"] == "x" and pd.isna(frame.loc[1, "b"])
    empty = present.history_frame([], declared=["a"])
    assert list(empty.columns) == ["a", *present.HISTORY_COLUMNS] and len(empty) == 0


def test_cells_that_are_not_numbers_are_shown_as_text():
    assert present.is_number(1.5) and not present.is_number(True)
    assert present.as_text(None) == "" and present.as_text(float("nan")) == ""
    assert present.as_text(Unrepresentable("<obj>", "Obj")) == "<obj>"


def test_the_history_rows_hold_the_values_of_trial_fields():
    pd = pytest.importorskip("pandas")
    t = dt.datetime(2026, 1, 2, 3, 4, 6, tzinfo=UTC)
    records = [
        record(1, result=2.0, result_type="float", finished=t, process_time=1.5,
               metrics={"acc": 0.5}, labels={"acc": "high", "model": "rf"}),
        record(2, Status.FAILED, parameters={"a": 2, "b": "x"}, description="boom"),
        record(3, Status.RUNNING, result=9, labels={"model": "svm"}),
        record(4, Status.INTERRUPTED, parameters={"b": None}, metrics={"loss": 0.25}),
    ]
    frame = present.history_frame(records, declared=["a", "b"], verbose=True)
    for r in records:
        f = present.trial_fields(r)
        row = frame.loc[r.trial_id]
        for name in ("a", "b"):
            expected = f["parameters"].get(name)
            assert (pd.isna(row[name]) and expected is None) or row[name] == expected
        assert (pd.isna(row["Result"]) and f["result"] is None) or row["Result"] == f["result"]
        assert row["Success"] == f["succeeded"] and row["Status"] == f["status"]
        assert row["Seed"] == f["seed"] and row["Result Type"] == f["result_type"]
        assert (pd.isna(row["Description"]) and not f["description"]) or \
            row["Description"] == f["description"]
        for name in ("acc", "model", "loss"):
            expected = f["extras"].get(name)
            assert (pd.isna(row[name]) and expected is None) or row[name] == expected
        expected_time = present.local_time(f["finished"])
        assert (pd.isna(row["Finished"]) and expected_time is None) or \
            row["Finished"] == pd.Timestamp(expected_time)


def test_a_finished_time_without_zone_is_read_as_local_time(monkeypatch):
    pd = pytest.importorskip("pandas")
    import time

    monkeypatch.setenv("TZ", "JST-9")  # UTC+9 (a POSIX rule: no time zone database needed)
    time.tzset()
    present.local_zone.cache_clear()
    try:
        naive = dt.datetime(2026, 1, 2, 12, 0, 0)  # a hand-made record: no zone
        aware = dt.datetime(2026, 1, 2, 12, 0, 0, tzinfo=UTC)
        frame = present.history_frame([record(1, finished=naive), record(2, finished=aware)])
        assert frame.loc[1, "Finished"] == pd.Timestamp(2026, 1, 2, 12)  # as it was
        assert frame.loc[2, "Finished"] == pd.Timestamp(2026, 1, 2, 21)  # UTC+9
    finally:
        monkeypatch.undo()
        time.tzset()
        present.local_zone.cache_clear()
