"""Tests of experigraph.environment.collector: the Collector interface, the built-in
collectors on it, and collectors given to ``Experiment(collectors=...)``."""
from __future__ import annotations

import json
import logging

import pytest

import experigraph as xg
from experigraph import environment
from experigraph.environment import CATEGORIES, MESSAGES, diff_snapshots, snapshot
from experigraph.environment.collector import BUILTIN_COLLECTORS, Collector, collect
from experigraph.errors import InvalidArgumentError


class Counting(Collector):
    """Records ``self.value``; counts how often it really collected."""

    name = "counting"
    message = "The counted value has been changed"

    def __init__(self, value="a"):
        self.value = value
        self.calls = 0

    def fingerprint(self, **kwargs):
        return self.value

    def snapshot(self, **kwargs):
        self.calls += 1
        return {"value": self.value}


class Failing(Collector):
    name = "failing"

    def snapshot(self, **kwargs):
        raise RuntimeError("no device")


def _experiment(tmp_path, **kwargs):
    ex = xg.Experiment("collect", backend=tmp_path / "store", **kwargs)
    a = ex.parameter("a")

    @ex.result
    def double(a):
        return 2 * a

    double(a)
    return ex


def test_the_built_in_categories_are_collectors():
    assert all(isinstance(c, Collector) for c in BUILTIN_COLLECTORS)
    assert tuple(c.name for c in BUILTIN_COLLECTORS) == CATEGORIES
    assert {c.name: c.message for c in BUILTIN_COLLECTORS} == MESSAGES
    assert xg.Collector is Collector


def test_a_snapshot_reuses_the_built_in_objects():
    first, second = snapshot(), snapshot()
    assert all(first[c] is second[c] for c in first if c != "cpu")


def test_an_unchanged_fingerprint_skips_collecting():
    counting = Counting()
    first = collect(counting)
    assert collect(counting) is first and counting.calls == 1
    counting.value = "b"
    assert collect(counting) == {"value": "b"} and counting.calls == 2


def test_no_fingerprint_collects_every_time_and_data_becomes_json():
    class Odd(Collector):
        name = "odd"

        def snapshot(self, **kwargs):
            return {"pair": (1, 2), "thing": object.__new__(Odd), 3: {"x"}}

    value = collect(Odd())
    assert value["pair"] == [1, 2] and value["3"] == ["x"]
    assert value["thing"].startswith("<experigraph collector 'odd'")
    json.dumps(value)


def test_a_collector_that_fails_records_the_error_and_the_trial_goes_on(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="experigraph"):
        ex = _experiment(tmp_path, collectors=[Failing()])
        assert ex.set_parameters(a=2).compute() == 4
        assert ex.compute() == 4
    assert ex.get_environment_snapshot(1, "failing") == {
        "error": "RuntimeError: no device"}
    assert ex.get_environment(1, "failing") == \
        "Unable to collect failing information: RuntimeError: no device"
    assert any("Could not collect failing environment information" in r.getMessage()
               for r in caplog.records)
    assert ex.get_trial(2).drift == ()


def test_a_given_collector_is_recorded_cached_and_reported_on_drift(tmp_path, caplog):
    counting = Counting()
    ex = _experiment(tmp_path, collectors=[counting])
    ex.set_parameters(a=1).compute()
    ex.compute()
    assert counting.calls == 1  # the fingerprint did not change
    assert ex.get_environment_snapshot(2, "counting") == {"value": "a"}
    assert ex.get_environment(2, "counting") == "value: a"  # the default text
    assert "counting" in ex.get_environment_snapshot()
    counting.value = "b"
    with caplog.at_level(logging.WARNING, logger="experigraph"):
        ex.compute()
    assert "The counted value has been changed (since trial 2)" in caplog.messages
    (event,) = [e for e in ex.get_trial(3).drift if e.kind == "environment"]
    assert event.subject == "counting" and event.diff[-2:] == ("-value: a", "+value: b")
    assert ex.compare(2, 3).environment["counting"][-2:] == ["-value: a", "+value: b"]


def test_a_category_no_collector_knows_any_more_still_reads_and_is_not_drift(tmp_path, caplog):
    ex = _experiment(tmp_path, collectors=[Counting("old")])
    ex.set_parameters(a=1).compute()
    again = _experiment(tmp_path)  # the collector is gone (an uninstalled plugin)
    assert again.get_environment(1, "counting") == "value: old"
    assert again.get_environment_snapshot(1, "counting") == {"value": "old"}
    with caplog.at_level(logging.WARNING, logger="experigraph"):
        again.set_parameters(a=1).compute()
    assert "counting" not in again.get_environment_snapshot(2)
    assert not [e for e in again.get_trial(2).drift if e.subject == "counting"]
    with pytest.raises(InvalidArgumentError, match="Unknown environment category 'counting'"):
        again.get_environment(2, "counting")
    assert diff_snapshots({"gone": {"v": 1}}, {"gone": {"v": 2}})["gone"][-2:] == [
        "-v: 1", "+v: 2"]


def test_a_collector_text_that_fails_falls_back_to_key_value_lines(caplog):
    class BadText(Counting):
        def text(self, data):
            raise ValueError("cannot")

    drift = diff_snapshots({"counting": {"value": 1}}, {"counting": {"value": 2}},
                           collectors=[BadText()])
    assert drift["counting"][-2:] == ["-value: 1", "+value: 2"]
    assert any("could not render" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("collectors, match", [
    ([Counting], r"pass Counting\(\), not the class"),
    ([object()], "not an instance of"),
    ([Counting(), Counting()], "taken by another collector"),
    ([type("P", (Counting,), {"name": "packages"})()], "taken by experigraph's own"),
    ([type("R", (Counting,), {"name": "requirements"})()], "taken by experigraph's own"),
    ([type("S", (Counting,), {"name": "has space"})()], "is not a category name"),
    (Counting(), "must be a list of Collector instances"),
])
def test_bad_collectors_are_refused_with_what_to_do(tmp_path, collectors, match):
    with pytest.raises(InvalidArgumentError, match=match):
        xg.Experiment("collect", backend=tmp_path / "store", collectors=collectors)
    with pytest.raises(ValueError):  # daskperiment users catch ValueError
        xg.Experiment("collect", backend=tmp_path / "store", collectors=collectors)


def test_a_built_in_text_category_still_wins_and_unknown_ones_are_refused(tmp_path):
    ex = _experiment(tmp_path, collectors=[Counting()])
    ex.set_parameters(a=1).compute()
    assert ex.get_environment(1, "requirements") == ex.get_python_packages(1)
    with pytest.raises(InvalidArgumentError, match="requirements, counting"):
        ex.get_environment(1, "gpu")
    with pytest.raises(InvalidArgumentError, match="Unknown environment category 'packages'"):
        ex.get_environment(1, "packages")  # daskperiment's text has no such category
    assert environment.python_packages(ex.get_environment_snapshot(1))


def test_a_collector_without_snapshot_cannot_be_made():
    class Incomplete(Collector):
        name = "incomplete"

    with pytest.raises(TypeError, match="snapshot"):
        Incomplete()
