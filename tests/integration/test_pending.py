"""A backend that fails after the result was computed loses nothing."""
from __future__ import annotations

import pytest

import experigraph as xg
from experigraph.backends.file import FileBackend
from experigraph.errors import BackendError


class FlakyFileBackend(FileBackend):
    """A file backend whose final writes fail while ``down`` is set (an outage)."""

    down = False

    def write_trial(self, record):
        if self.down and record.status.value != "running":
            raise BackendError(f"Cannot reach {self.uri}: connection refused")
        super().write_trial(record)


def test_result_survives_an_outage_and_is_saved_later(backend_root, experiment_id):
    backend = FlakyFileBackend(backend_root, experiment_id)
    ex = xg.Experiment(id=experiment_id, backend=backend)
    a = ex.parameter("a")

    @ex.result
    def expensive(a):
        return {"value": a * 2}

    r = expensive(a)
    ex.set_parameters(a=1).compute()
    backend.down = True
    ex.set_parameters(a=21)
    with pytest.raises(BackendError, match=r"Trial\(s\) 2 computed.*ex.save_pending\(\)") as info:
        r.compute()
    assert info.value.result == {"value": 42}
    assert info.value.has_result
    assert ex.pending_trial_ids == [2]
    assert ex.trial_id == 2  # the trial this compute ran, recorded or not yet
    with pytest.raises(BackendError):
        ex.save_pending()  # still down: kept
    assert ex.pending_trial_ids == [2]
    backend.down = False
    assert ex.save_pending() == [2]
    assert ex.pending_trial_ids == []
    assert ex.trial_id == 2 and ex.get_trial(ex.trial_id).result == {"value": 42}
    fresh = xg.Experiment(id=experiment_id, backend=backend_root)
    history = fresh.get_history(verbose=True)
    assert history["Status"].tolist() == ["succeeded", "succeeded"]
    assert history.loc[2, "Result"] == {"value": 42}
    ex.set_parameters(a=3).compute()
    assert list(fresh.get_history().index) == [1, 2, 3]


def test_sweep_outage_keeps_every_result(backend_root, experiment_id):
    backend = FlakyFileBackend(backend_root, experiment_id)
    ex = xg.Experiment(id=experiment_id, backend=backend)
    a = ex.parameter("a")

    @ex.result
    def square(a):
        return a * a

    square(a)
    backend.down = True
    with pytest.raises(BackendError) as info:
        ex.sweep(a=[2, 3], progress=False)
    assert info.value.results == {1: 4, 2: 9}
    backend.down = False
    assert ex.save_pending() == [1, 2]
    assert ex.get_history()["Result"].tolist() == [4, 9]
