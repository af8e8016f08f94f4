"""Records round-trip through JSON with explicit type tags."""
from __future__ import annotations

import datetime as dt
import decimal
import json
import math

import numpy as np
import pandas as pd
import pytest

from experigraph.records import (DriftEvent, Status, StepRecord, TrialRecord, Unrepresentable,
                                 decode_value, encode_value, is_json_exact)


@pytest.mark.parametrize("value", [1, 2.5, "s", None, True, [1, [2]], (1, 2), {"a": (1,)},
                                   {1: "int key"}, {"$x": 1},
                                   dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc)])
def test_values_round_trip(value):
    assert decode_value(json.loads(json.dumps(encode_value(value)))) == value


def test_special_floats_and_numpy_scalars():
    out = decode_value(json.loads(json.dumps(encode_value([float("nan"), float("inf"),
                                                           np.float64(1.5), np.int32(3)]))))
    assert math.isnan(out[0]) and out[1] == float("inf") and out[2:] == [1.5, 3]
    assert type(out[2]) is np.float64 and type(out[3]) is np.int32  # types kept (issue 11)


_TYPED = [
    pd.Timestamp("2024-01-02 03:04:05.123456789"), pd.Timestamp("2024-01-02", tz="Europe/Paris"),
    pd.Timestamp("2024-01-02").as_unit("s"), pd.Timedelta("1 days 00:00:01.5"),
    pd.Timedelta(seconds=3).as_unit("s"), pd.NaT,
    dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc), dt.datetime(2020, 1, 1, 3),
    dt.date(2020, 1, 2), dt.time(3, 4, 5), dt.timedelta(days=-1, seconds=5),
    np.float32(0.1), np.float64(2.5), np.int64(3), np.int8(-2), np.uint64(2**64 - 1),
    np.bool_(True), np.datetime64("2020-01-01T00:00:00.123", "ms"), np.timedelta64(5, "s"),
    np.complex128(1 + 2j), np.longdouble("0.1"), decimal.Decimal("0.10"), (1, (2, 3)),
    {1, 2}, frozenset({"a"}), 1 + 2j, b"\x00x", [np.int32(1), (np.float32(2),)],
]


@pytest.mark.parametrize("value", _TYPED, ids=lambda v: type(v).__name__)
def test_typed_values_come_back_as_the_same_type_and_value(value):
    out = decode_value(json.loads(json.dumps(encode_value(value))))
    assert type(out) is type(value) and repr(out) == repr(value)
    assert is_json_exact(value)


def test_other_objects_are_kept_by_repr():
    out = decode_value(encode_value(object()))
    assert isinstance(out, Unrepresentable) and "object" in repr(out)


def test_trial_record_round_trip():
    step = StepRecord(step="s", key="s-1", trial_ids=(1,), code_hash="c", input_hash="i",
                      output_hash="o", started=dt.datetime.now(dt.timezone.utc), duration=0.1,
                      succeeded=True, metrics={"m": 1.0})
    record = TrialRecord(experiment_id="e", trial_id=1, status=Status.SUCCEEDED,
                         parameters={"a": (1, 2)}, seed=3,
                         started=dt.datetime.now(dt.timezone.utc), result=[1.5],
                         steps=(step,), drift=(DriftEvent("code", "s", "changed", ("-a", "+b")),))
    back = TrialRecord.from_json(json.loads(json.dumps(record.to_json())))
    assert back == record


def test_replace_makes_the_copy_dataclasses_replace_makes():
    import dataclasses

    record = TrialRecord(experiment_id="e", trial_id=1, status=Status.RUNNING,
                         parameters={"a": 1}, seed=3, started=dt.datetime.now(dt.timezone.utc),
                         claim="c1")
    changes = {"status": Status.SUCCEEDED, "result": [2], "trial_id": 4, "description": "d"}
    copy = record.replace(**changes)
    assert copy == dataclasses.replace(record, **changes)
    assert type(copy) is TrialRecord and copy is not record
    assert (record.status, record.trial_id, record.result) == (Status.RUNNING, 1, None)
    assert [getattr(copy, f.name) for f in dataclasses.fields(TrialRecord)] == [
        changes.get(f.name, getattr(record, f.name)) for f in dataclasses.fields(TrialRecord)]
    with pytest.raises(dataclasses.FrozenInstanceError):
        copy.status = Status.FAILED  # type: ignore[misc]
    with pytest.raises(TypeError, match="colour, size"):
        record.replace(size=1, colour="red", status=Status.FAILED)
    assert record.replace() == record

    @dataclasses.dataclass(frozen=True)
    class Noted(TrialRecord):
        note: str = ""

        def __post_init__(self):
            if self.note == "bad":
                raise ValueError("bad note")

    noted = Noted(**{f.name: getattr(record, f.name) for f in dataclasses.fields(record)})
    assert type(noted.replace(note="n")) is Noted and noted.replace(note="n").note == "n"
    with pytest.raises(ValueError, match="bad note"):
        noted.replace(note="bad")


def test_a_step_records_json_has_every_field_in_order():
    import dataclasses

    step = StepRecord(step="s", key="s-1", trial_ids=(1,), code_hash="c", input_hash="i",
                      output_hash="o", started=dt.datetime.now(dt.timezone.utc), duration=0.1,
                      succeeded=True, inputs=({"name": "x", "hash": (1, 2)},))
    obj = step.to_json()
    assert list(obj) == [f.name for f in dataclasses.fields(StepRecord)]
    assert obj["trial_ids"] == [1] and obj["inputs"] == [{"name": "x", "hash": {"$tuple": [1, 2]}}]
    assert StepRecord.from_json(json.loads(json.dumps(obj))) == step
    old = object.__new__(StepRecord)  # as an object pickled before a field was added
    old.__dict__.update({k: v for k, v in step.__dict__.items() if k != "cache_miss"})
    assert list(old.to_json()) == list(obj) and old.to_json()["cache_miss"] is None


def test_newer_schema_is_refused_with_advice():
    with pytest.raises(ValueError, match="upgrade experigraph"):
        TrialRecord.from_json({"schema": 99})


def test_timestamps_keep_their_zone_whatever_library_made_it():
    import datetime as dt
    import zoneinfo

    import dateutil.tz
    import pandas as pd

    from experigraph.records import decode_value, encode_value

    for tz in (dateutil.tz.gettz("Europe/London"), "Europe/Paris",
               zoneinfo.ZoneInfo("Asia/Tokyo"), dt.timezone(dt.timedelta(hours=3)), "UTC",
               None):
        value = pd.Timestamp("2020-06-01 10:00", tz=tz)
        back = decode_value(json.loads(json.dumps(encode_value(value))))
        assert back == value and back.utcoffset() == value.utcoffset(), tz


def test_a_value_this_interpreter_cannot_rebuild_keeps_the_rest_of_the_record():
    from experigraph.records import Unrepresentable, decode_value

    back = decode_value({"a": 1, "when": {"$timestamp": "2020-01-01T00:00:00",
                                          "tz": "No/Such_Zone", "unit": "s"}})
    assert back["a"] == 1
    assert isinstance(back["when"], Unrepresentable) and "undecodable" in back["when"].type_name
