"""``ex.save_metric`` keeps points in memory and writes them in batches: within about
half a second while the step runs, all of them when it ends, each exactly once, in
order, even when the store is down for a while (a real redis-server, killed and
restarted inside the step)."""
from __future__ import annotations

import threading
import time

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
