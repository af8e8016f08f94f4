"""``experigraph.Store``: every experiment of one place, the way the command line and the
dashboard reach other experiments (file backend and a real redis-server)."""
from __future__ import annotations

import pytest

import experigraph as xg
from experigraph.errors import ExperimentNotFoundError


def record_two(backend):
    for name, value in (("prep", 1), ("train", 2)):
        ex = xg.Experiment(name, backend=backend)
        a = ex.parameter("a")

        @ex.result
        def ident(a):
            return a

        ident(a)
        ex.set_parameters(a=value).compute()


@pytest.fixture(params=["file", "redis"])
def location(request, tmp_path):
    if request.param == "file":
        return tmp_path / "store"
    server = request.getfixturevalue("redis_server")
    return server.url()


def test_a_store_lists_and_opens_its_experiments(location):
    record_two(location)
    store = xg.Store(location)
    assert store.experiment_ids() == ["prep", "train"]
    train = store.open("train")
    assert train.get_history()["Result"].tolist() == [2]
    assert train.get_trials()[0].parameters == {"a": 2}
    assert train.store.experiment_ids() == ["prep", "train"]
    assert train.store.open("prep").get_trial(1).result == 1
    assert repr(store) == f"Store({store.uri})"


def test_an_unknown_experiment_is_named_with_the_ones_there(location):
    record_two(location)
    store = xg.Store(location)
    with pytest.raises(ExperimentNotFoundError) as info:
        store.open("trian")
    message = str(info.value)
    assert "No experiment 'trian'" in message and "prep, train" in message
    assert store.experiment_ids() == ["prep", "train"]  # nothing was created
    assert store.open("new", must_exist=False).get_history().empty
    with pytest.raises(xg.errors.InvalidExperimentIdError):
        store.open("../up")


def test_opening_reports_drift_unless_a_viewer_opens_it(tmp_path, caplog):
    import logging

    from experigraph import Collector

    state = {"threads": "4"}

    class Threads(Collector):
        name = "threads"

        def snapshot(self, **kwargs):
            return dict(state)

    ex = xg.Experiment("viewed", backend=tmp_path, collectors=[Threads()])

    @ex.result
    def one():
        return 1

    one()
    ex.compute()
    state["threads"] = "8"
    with caplog.at_level(logging.WARNING, logger="experigraph"):
        xg.Experiment("viewed", backend=tmp_path, collectors=[Threads()],
                      report_drift=False)
        assert "threads" not in caplog.text
        xg.Experiment("viewed", backend=tmp_path, collectors=[Threads()])
        assert "Environment (threads) has changed (since trial 1)" in caplog.text
