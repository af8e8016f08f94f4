"""Integers beyond 64 bits come back exact, as Python ints, from every read path (orjson,
the fast parser, reads them as floats: such values are written tagged, and text holding
them, as earlier versions wrote it, is read by json)."""
from __future__ import annotations

import json

import pytest

import experigraph as xg

WIDE = [2 ** 64 + 1, -(2 ** 63) - 1, 10 ** 30, 10 ** 5000]


@pytest.fixture(params=["file", "redis"])
def location(request, backend_root):
    if request.param == "file":
        return backend_root
    return request.getfixturevalue("redis_server").url(3)


@pytest.mark.parametrize("value", WIDE, ids=["2**64+1", "-2**63-1", "10**30", "10**5000"])
def test_a_wide_int_parameter_and_result_come_back_exact(location, experiment_id, value):
    ex = xg.Experiment(experiment_id, backend=location)
    try:
        a = ex.parameter("a")
        ex.result(lambda a: a)(a)
        ex.set_parameters(a=value)
        ex.compute()
        reader = xg.Experiment(experiment_id, backend=location)
        history = reader.get_history()
        assert history["a"].tolist() == [value] and type(history["a"].tolist()[0]) is int
        assert history["Result"].tolist() == [value]
        trial = reader.get_trial(1)
        assert trial.parameters == {"a": value} and trial.result == value
    finally:
        ex.backend.delete_experiment()


def test_wide_ints_written_as_plain_json_numbers_are_read_exact(make_experiment):
    """Stores written before values were tagged hold them as plain JSON numbers."""
    ex = make_experiment()
    a = ex.parameter("a")
    ex.result(lambda a: a)(a)
    ex.set_parameters(a=1)
    ex.compute()
    path = ex.backend.path / "trials" / "1.json"
    record = json.loads(path.read_text())
    record["parameters"] = {"a": 2 ** 64 + 1}
    record["result"] = -(2 ** 63) - 1
    path.write_text(json.dumps(record, indent=2))
    summaries = ex.backend.path / "summaries.jsonl"
    line = json.loads(summaries.read_text().splitlines()[-1])
    line["summary"]["parameters"] = {"a": 2 ** 64 + 1}
    line["summary"]["result"] = -(2 ** 63) - 1
    line["sig"] = list(ex.backend.read_signed(1)[1])  # the line names the edited file
    summaries.write_text(json.dumps(line) + "\n")
    reader = xg.Experiment(ex.id, backend=ex.backend.root)
    history = reader.get_history()
    assert history["a"].tolist() == [2 ** 64 + 1]
    assert history["Result"].tolist() == [-(2 ** 63) - 1]
    assert reader.get_trial(1).parameters == {"a": 2 ** 64 + 1}
