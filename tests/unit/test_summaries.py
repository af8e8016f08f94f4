"""``TrialSummary``: what the history shows of a trial, kept by backends as an index. A
summary round-trips through JSON, is the same whether made from a record or from the
record's JSON, and the history table made of summaries is the one made of records."""
from __future__ import annotations

import datetime as dt
import json

import pytest

from experigraph import present
from experigraph.records import (DriftEvent, Status, StepRecord, TrialRecord, TrialSummary,
                                 Unrepresentable, history_row, row_of)

UTC = dt.timezone.utc


def record(trial_id, status=Status.SUCCEEDED, **fields):
    base = dict(experiment_id="s", trial_id=trial_id, status=status,
                parameters={"b": "x", "a": trial_id}, seed=7,
                started=dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), host="h", pid=3)
    base.update(fields)
    return TrialRecord(**base)


RECORDS = [
    record(1, result=1.5, result_type="float", process_time=0.25,
           finished=dt.datetime(2026, 1, 2, 3, 4, 6, 123456, tzinfo=UTC),
           metrics={"acc": 0.5}, labels={"model": "rf"},
           drift=(DriftEvent("code", "s", "m", ("-a", "+b")), DriftEvent("seed", "t", "m"))),
    record(2, Status.FAILED, description="boom", process_time=0.000666394000290893,
           error={"type": "ValueError", "message": "boom", "traceback": "..."}),
    record(3, Status.RUNNING),
    record(4, result=(1, {2, 3}), result_type="tuple", parameters={"a": float("nan")},
           process_time=2.0, finished=dt.datetime(2026, 1, 2, 3, 4, 8, tzinfo=UTC),
           steps=(StepRecord(step="f", key="f-1", trial_ids=(4,), code_hash="c",
                             input_hash=None, output_hash=None,
                             started=dt.datetime(2026, 1, 2, tzinfo=UTC), duration=1.0,
                             succeeded=True),),
           labels={"obj": Unrepresentable("<obj>", "Obj")}),
]


@pytest.mark.parametrize("rec", RECORDS, ids=lambda r: str(r.trial_id))
def test_a_summary_round_trips_and_is_the_same_from_a_record_or_its_json(rec):
    summary = TrialSummary.of(rec)
    again = TrialSummary.from_json(json.loads(json.dumps(summary.to_json())))
    assert repr(again) == repr(summary)  # NaN parameters: compare what they show
    from_json = TrialSummary.json_of(rec)
    assert json.dumps(from_json, sort_keys=True) == json.dumps(summary.to_json(), sort_keys=True)
    assert repr(TrialSummary.from_json(json.loads(json.dumps(rec.to_json())))) == repr(summary)
    assert list(summary.parameters) == list(rec.parameters)  # declaration order kept


@pytest.mark.parametrize("verbose", [False, True])
def test_the_history_of_summaries_is_the_history_of_records(verbose):
    pd = pytest.importorskip("pandas")
    from_records = present.history_frame(RECORDS, declared=["a", "b", "c"], verbose=verbose)
    from_summaries = present.history_frame([TrialSummary.of(r) for r in RECORDS],
                                           declared=["a", "b", "c"], verbose=verbose)
    pd.testing.assert_frame_equal(from_records, from_summaries, check_exact=True)
    assert from_records.loc[1, "Process Time"] == pd.Timedelta(seconds=0.25)
    assert from_records.loc[2, "Process Time"] == pd.Timedelta(seconds=0.000666394000290893)
    assert pd.isna(from_records.loc[3, "Finished"])
    assert from_records.loc[1, "Finished"] == pd.Timestamp(
        present.local_time(RECORDS[0].finished))


def test_the_history_columns_are_typed_as_cells_of_timestamps_made_them():
    """The columns are built whole, typed as the per-cell Timestamps/Timedeltas of
    earlier versions made them: whole microseconds, nanoseconds, or nothing at all."""
    pd = pytest.importorskip("pandas")

    def per_cell(records):
        rows = [{"Finished": pd.NaT if r.finished is None
                 else pd.Timestamp(present.local_time(r.finished)),
                 "Process Time": pd.NaT if r.process_time is None
                 else pd.Timedelta(seconds=r.process_time)} for r in records]
        return pd.DataFrame(rows).dtypes

    for records in (RECORDS, [RECORDS[0], RECORDS[3]], [RECORDS[2]], [RECORDS[1]]):
        frame = present.history_frame(records)
        assert frame.dtypes[["Finished", "Process Time"]].tolist() == per_cell(records).tolist()


def test_a_trial_is_read_as_stored_not_as_its_result_was_changed_since(tmp_path):
    """get_trial() reads the record back, even for the trial this process just ran and
    whose returned result the user then changed (the history no longer reads records
    first, which used to hide this)."""
    import experigraph as xg

    ex = xg.Experiment("live", backend=tmp_path)
    a = ex.parameter("a", default=1)

    @ex.result
    def items(a):
        return [a]

    items(a)
    out = ex.compute()
    out.append(99)
    assert ex.get_trial(1).result == [1]
    assert ex.get_trials([1])[0].result == [1]
    assert ex.get_history()["Result"].tolist() == [[1]]


def test_a_history_row_of_a_summary_s_json_is_the_row_of_the_summary():
    """``history_row`` reads a summary's JSON form straight into the history's row, as
    ``row_of`` makes it of the summary ``from_json`` would make; a running trial's row
    holds that summary (its status is read again each time)."""
    for rec in RECORDS:
        obj = json.loads(json.dumps(TrialSummary.json_of(rec)))
        summary = TrialSummary.from_json(json.loads(json.dumps(obj)))
        row = history_row(obj)
        running = summary if rec.status is Status.RUNNING else None
        assert repr(row) == repr(row_of(summary, running))  # NaN parameters: as shown
        assert list(row[1]) == list(rec.parameters)
    whole = json.loads(json.dumps(RECORDS[0].to_json()))  # a whole record's JSON too
    assert history_row(whole) == row_of(TrialSummary.of(RECORDS[0]))
    bare = json.loads(json.dumps(TrialSummary.json_of(RECORDS[0])))  # what may be missing
    for key in ("parameters", "parameter_order", "finished", "process_time", "description",
                "result", "result_type", "metrics", "labels", "host", "pid", "drift_kinds"):
        del bare[key]
    assert history_row(json.loads(json.dumps(bare))) == row_of(TrialSummary.from_json(bare))


@pytest.mark.parametrize("verbose", [False, True])
def test_the_history_of_rows_read_from_json_is_the_history_of_records(verbose):
    pd = pytest.importorskip("pandas")
    rows = [history_row(json.loads(json.dumps(TrialSummary.json_of(r)))) for r in RECORDS]
    pd.testing.assert_frame_equal(
        present.rows_frame(rows, declared=["a", "b", "c"], verbose=verbose),
        present.history_frame(RECORDS, declared=["a", "b", "c"], verbose=verbose),
        check_exact=True)


@pytest.mark.parametrize("damage, error", [
    ({"status": "done"}, KeyError),
    ({"schema": 99}, ValueError),
    ({"seed": None}, TypeError),
    ({"seed": "x"}, ValueError),
    ({"trial_id": None}, TypeError),
    ({"parameters": [1, 2]}, TypeError),
    ({"finished": {"$datetime": "yesterday"}}, ValueError),
    ({"finished": "2026-01-02"}, TypeError),
], ids=lambda v: str(v))
def test_a_history_row_is_not_made_of_what_is_no_summary(damage, error):
    """What ``history_row`` rejects, the backend reads from the trial's record instead."""
    obj = json.loads(json.dumps(TrialSummary.json_of(RECORDS[0])))
    obj.update(damage)
    with pytest.raises(error):
        history_row(obj)
