"""Records round-trip through JSON with explicit type tags."""
from __future__ import annotations

import datetime as dt
import json
import math

import numpy as np
import pytest

from experigraph.records import (DriftEvent, Status, StepRecord, TrialRecord, Unrepresentable,
                                 decode_value, encode_value)


@pytest.mark.parametrize("value", [1, 2.5, "s", None, True, [1, [2]], (1, 2), {"a": (1,)},
                                   {1: "int key"}, {"$x": 1},
                                   dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc)])
def test_values_round_trip(value):
    assert decode_value(json.loads(json.dumps(encode_value(value)))) == value


def test_special_floats_and_numpy_scalars():
    out = decode_value(json.loads(json.dumps(encode_value([float("nan"), float("inf"),
                                                           np.float64(1.5), np.int32(3)]))))
    assert math.isnan(out[0]) and out[1] == float("inf") and out[2:] == [1.5, 3]
    assert type(out[3]) is int


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


def test_newer_schema_is_refused_with_advice():
    with pytest.raises(ValueError, match="upgrade experigraph"):
        TrialRecord.from_json({"schema": 99})
