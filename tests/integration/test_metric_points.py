"""``ex.save_metric`` keeps points in memory and writes them in batches: within about
half a second while the step runs, all of them when it ends, each exactly once, in
order, even when the store is down for a while (a real redis-server, killed and
restarted inside the step)."""
from __future__ import annotations

import math
import threading
import time

import numpy as np
import pytest

import experigraph as xg

pytestmark = pytest.mark.timeout(120)


def test_points_reach_the_store_while_the_step_runs(make_experiment):
    ex = make_experiment()
    release = threading.Event()

    @ex.result
    def train():
        for epoch in range(3):
            ex.save_metric("loss", epoch, 1.0 / (epoch + 1))
        release.wait(30)  # a long epoch: the points must not wait for the step's end
        ex.save_metric("loss", 3, 0.25)
        return 1

    train()
    runner = threading.Thread(target=ex.compute)
    runner.start()
    try:
        reader = xg.Experiment(ex.id, backend=ex.backend)
        deadline = time.monotonic() + 10
        seen = []
        while time.monotonic() < deadline:
            try:
                seen = reader.load_metric("loss", trial_id=1)[1].tolist()
            except (xg.errors.NotRecordedError, xg.TrialIDNotFoundError):
                seen = []
            if len(seen) == 3:
                break
            time.sleep(0.05)
        assert seen == [1.0, 0.5, 1 / 3]
    finally:
        release.set()
        runner.join()
    assert ex.load_metric("loss", trial_id=1)[1].tolist() == [1.0, 0.5, 1 / 3, 0.25]


def test_many_points_are_all_written_once_in_order(make_experiment):
    ex = make_experiment()

    @ex.result
    def train():
        for epoch in range(2500):  # more than a batch
            ex.save_metric("loss", epoch, float(epoch))
            ex.save_metric("acc", epoch, -float(epoch))
        return 1

    train()
    ex.compute()
    frame = ex.load_metric("loss", trial_id=1)
    assert frame.index.tolist() == list(range(2500))
    assert frame[1].tolist() == [float(e) for e in range(2500)]
    assert ex.load_metric("acc", trial_id=1)[1].tolist()[-1] == -2499.0


@pytest.mark.redis
def test_points_kept_while_the_store_is_down_are_written_once_it_is_back(
        redis_server_factory, experiment_id, caplog):
    server = redis_server_factory(appendonly=True)
    ex = xg.Experiment(id=experiment_id, backend=server.url())

    @ex.result
    def train():
        for epoch in range(5):
            ex.save_metric("loss", epoch, float(epoch))
        time.sleep(0.8)  # written by the flusher
        server.kill()
        for epoch in range(5, 10):
            ex.save_metric("loss", epoch, float(epoch))
        time.sleep(1.2)  # the flusher fails: the points are kept
        server.start()
        for epoch in range(10, 12):
            ex.save_metric("loss", epoch, float(epoch))
        return 1

    train()
    ex.compute()
    assert ex.load_metric("loss", trial_id=1)[1].tolist() == [float(e) for e in range(12)]
    assert "kept and written later" in caplog.text


def _trial_saving(make_experiment, points):
    """An experiment whose trial 1 saved ``points`` as its metric ``m``."""
    ex = make_experiment()

    @ex.result
    def train():
        for epoch, value in points:
            ex.save_metric("m", epoch, value)
        return 1

    train()
    ex.compute()
    return ex


@pytest.mark.parametrize("points", [
    [(0, 0.5), (1, 2), (2, -3.25), (3, 10 ** 18)],  # plain ints and floats: one pass
    [(0, float("nan")), (1, float("inf")), (2, -float("inf")), (3, 1.0)],
    [(10 ** 400, 1.0), (1, 10 ** 400), (2, -(10 ** 30))],  # beyond a float's range
    [(0, 2 ** 64 + 1), (1, 2 ** 64), (2, -(2 ** 63) - 1), (3, 2 ** 64 - 1)],  # beyond 64 bits
    [(0, 10 ** 5000), (1, 1.5)],  # more digits than int() converts to text
    [(0, True), (1, np.float64(0.25)), (np.int64(2), np.int32(3)), (3, "text"), (4, None)],
], ids=["plain", "not-finite", "huge-ints", "wide-ints", "5000-digits", "other-kinds"])
def test_points_of_every_kind_come_back_as_saved(make_experiment, points):
    ex = _trial_saving(make_experiment, points)
    back = ex.backend.read_metric(1, "m")
    assert len(back) == len(points)
    for (epoch, value), (got_epoch, got_value) in zip(points, back):
        assert got_epoch == epoch
        if isinstance(value, float) and math.isnan(value):
            assert math.isnan(got_value)
        else:
            assert got_value == value and type(got_value) is type(value) or (
                isinstance(value, np.generic) and got_value == value.item())


@pytest.mark.parametrize("points", [
    [(e, 0.5 + e) for e in range(50)],  # rising int epochs, float values
    [(e, e * e) for e in range(49, -1, -1)],  # falling epochs, int values
    [(0, 1.0), (1, 2.0), (1, 3.0), (2, 4.0)],  # an epoch twice: the last point wins
    [(0.5, 1), (0.25, 2), (1.5, 3)],  # float epochs, not in order
    [(0, 1), (1, 2.5)],  # int and float values: pandas' inference
    [(3, 7.0)],
], ids=["rising", "falling", "repeated", "float-epochs", "mixed-values", "one"])
def test_a_curve_loads_as_pandas_makes_a_series_of_its_points(make_experiment, points):
    import pandas as pd

    ex = _trial_saving(make_experiment, points)
    expected = pd.DataFrame({1: pd.Series(dict(points))})
    expected.index.name, expected.columns.name = "Epoch", "Trial ID"
    pd.testing.assert_frame_equal(ex.load_metric("m", trial_id=[1]), expected)
    assert ex.backend.read_metric(1, "m") == points
    assert type(ex.backend.read_metric(1, "m")) is list


def test_a_backend_that_reads_metrics_its_own_way_is_asked_through_read_metric(
        make_experiment, monkeypatch):
    """``load_metric`` takes the columns of ``metric_curve`` only from a backend whose
    ``read_metric`` is the base class's: one that overrides it is asked through it."""
    ex = _trial_saving(make_experiment, [(epoch, float(epoch)) for epoch in range(4)])
    backend, base = ex.backend, type(ex.backend)
    own = type("OwnReading", (base,), {
        "read_metric": lambda self, trial_id, key: [
            (e, v * 10) for e, v in base.read_metric(self, trial_id, key)][::-1]})
    monkeypatch.setattr(backend, "__class__", own)
    assert ex.load_metric("m", trial_id=1)[1].to_dict() == {3: 30.0, 2: 20.0, 1: 10.0, 0: 0.0}
    monkeypatch.undo()
    assert ex.load_metric("m", trial_id=1)[1].tolist() == [0.0, 1.0, 2.0, 3.0]


def test_a_curve_that_cannot_be_written_holds_back_no_other(make_experiment, monkeypatch, caplog):
    """Points are written curve by curve, in the order they were saved; a curve the store
    refuses is kept (and named) while the others are written."""
    ex = make_experiment()
    backend = ex.backend
    real = backend.append_metric_points

    def refusing(trial_id, key, points):
        if key == "b":
            raise OSError("the store refuses curve b")
        return real(trial_id, key, points)

    monkeypatch.setattr(backend, "append_metric_points", refusing)

    @ex.result
    def train():
        for epoch in range(3):
            for key in ("a", "b", "c"):
                ex.save_metric(key, epoch, float(epoch))
        return 1

    train()
    ex.compute()
    assert ex.load_metric("a", trial_id=1)[1].tolist() == [0.0, 1.0, 2.0]
    assert ex.load_metric("c", trial_id=1)[1].tolist() == [0.0, 1.0, 2.0]
    assert ex.backend.read_metric(1, "b") == []
    assert "the store refuses curve b" in caplog.text
