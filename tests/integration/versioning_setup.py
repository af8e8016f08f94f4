"""The stores the versioning tests run on: the file backend (artifacts in its directory),
Redis with a directory artifact location, and fsspec's in-memory file system."""
from __future__ import annotations

import uuid

import pytest

import experigraph as xg


@pytest.fixture(params=["file", "redis", "memory"])
def setup(request, tmp_path, experiment_id):
    """``make(id=None, **kwargs)`` -> an Experiment on this test's store (``make.kind``)."""
    kind = request.param
    memory_root = f"memory://xg-{uuid.uuid4().hex}"

    def make(id=None, **kwargs):
        eid = id or experiment_id
        if kind == "file":
            return xg.Experiment(eid, backend=tmp_path / "store", **kwargs)
        if kind == "redis":
            backend = request.getfixturevalue("make_redis_backend")(eid)
            return xg.Experiment(backend.experiment_id, backend=backend,
                                 artifacts=tmp_path / "artifacts", **kwargs)
        return xg.Experiment(eid, backend=tmp_path / "store", artifacts=memory_root, **kwargs)

    make.kind = kind
    yield make
    if kind == "memory":
        import fsspec

        fs = fsspec.filesystem("memory")
        if fs.exists(memory_root):
            fs.rm(memory_root, recursive=True)
