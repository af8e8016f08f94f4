"""Signed pickles: nothing with a bad or missing signature is ever unpickled."""
from __future__ import annotations

import os
import pickle
import stat

import pytest

import experigraph as xg
from xg_testing import Marker
from experigraph import signing
from experigraph.errors import SignatureError




def test_round_trip_with_the_users_key_file(tmp_path):
    data = signing.dumps({"x": [1, 2]})
    assert signing.loads(data, what="test") == {"x": [1, 2]}
    key = signing.key_file()
    assert key.exists()
    assert stat.S_IMODE(key.stat().st_mode) == 0o600


def test_environment_key_takes_precedence(monkeypatch):
    monkeypatch.setenv("EXPERIGRAPH_SECRET_KEY", "team-key")
    data = signing.dumps(1)
    assert not signing.key_file().exists()
    monkeypatch.setenv("EXPERIGRAPH_SECRET_KEY", "other-key")
    with pytest.raises(SignatureError, match="EXPERIGRAPH_SECRET_KEY"):
        signing.loads(data, what="test")
    assert signing.loads(data, what="test", trust=True) == 1


@pytest.mark.parametrize("forge", ["unsigned", "wrong-signature"])
def test_crafted_pickle_is_never_unpickled(make_experiment, tmp_path, forge):
    ex = make_experiment()
    a = ex.parameter("a")

    @ex.persist
    def keep(a):
        return a

    @ex.result
    def out(k):
        return k

    out(keep(a))
    ex.set_parameters(a=1).compute()
    blob_hash = ex.get_trial(1).steps[0].persisted
    marker = tmp_path / "pwned"
    payload = pickle.dumps(Marker(str(marker)))
    if forge == "wrong-signature":
        payload = signing.MAGIC + b"\0" * 32 + payload
    path = next((ex.backend.path / "blobs" / "pickle").rglob(f"{blob_hash}*"))
    path.write_bytes(payload)
    with pytest.raises(SignatureError, match="trust=True"):
        ex.get_persisted("keep", 1)
    assert not marker.exists()


def test_key_file_is_created_once_under_races(tmp_path, monkeypatch):
    from concurrent.futures import ThreadPoolExecutor

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    with ThreadPoolExecutor(8) as pool:
        keys = set(pool.map(lambda _: signing.secret_key(), range(16)))
    assert len(keys) == 1
    assert [p.name for p in (tmp_path / "cfg" / "experigraph").iterdir()] == ["secret_key"]
