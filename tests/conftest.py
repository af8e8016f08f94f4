"""Fixtures shared by every test: isolated backends, keys, and real servers."""
from __future__ import annotations

import itertools
import os
import sys

import pytest
from xg_testing import python_env

pytest_plugins = ["fixtures_backends"]

_counter = itertools.count()


@pytest.fixture(scope="session")
def _user_cache(tmp_path_factory):
    """One user cache for the session (the CPU summary is gathered once, not per process)."""
    return tmp_path_factory.mktemp("user-cache")


@pytest.fixture(autouse=True)
def _isolated_environment(tmp_path_factory, monkeypatch, _user_cache):
    """Each test gets its own key file location and no inherited backend choice."""
    config = tmp_path_factory.mktemp("config")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(config))
    monkeypatch.setenv("XDG_CACHE_HOME", str(_user_cache))
    monkeypatch.delenv("EXPERIGRAPH_SECRET_KEY", raising=False)
    monkeypatch.delenv("EXPERIGRAPH_BACKEND", raising=False)
    yield


@pytest.fixture
def experiment_id(request):
    """A unique, valid experiment id named after the test."""
    name = "".join(c if c.isalnum() else "_" for c in request.node.name)[:80]
    return f"{name}_{next(_counter)}"


@pytest.fixture
def backend_root(tmp_path):
    root = tmp_path / "store"
    root.mkdir()
    return root


@pytest.fixture
def make_experiment(backend_root, experiment_id):
    """Build Experiments on an isolated file backend: make_experiment(**kwargs)."""
    import experigraph as xg

    def make(id=None, **kwargs):
        kwargs.setdefault("backend", backend_root)
        return xg.Experiment(id=id or experiment_id, **kwargs)

    return make


@pytest.fixture
def quickstart(make_experiment):
    """The quickstart experiment: (ex, a, b, s)."""
    ex = make_experiment()
    a = ex.parameter("a")
    b = ex.parameter("b")

    @ex
    def prepare_data(a, b):
        return a + b

    @ex.result
    def calculate_score(s):
        return 10 / s

    return ex, a, b, calculate_score(prepare_data(a, b))


@pytest.fixture(scope="session")
def local_cluster(tmp_path_factory):
    """A real dask.distributed LocalCluster with two worker processes.

    Its workers sign persisted outputs with the key file under the yielded
    config directory, as a team shares one key.
    """
    import distributed

    config = tmp_path_factory.mktemp("cluster-config")
    saved = os.environ.get("XDG_CONFIG_HOME")
    os.environ["XDG_CONFIG_HOME"] = str(config)  # inherited by the worker processes
    try:
        cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                           dashboard_address=None, memory_limit="2GiB")
    finally:
        if saved is None:
            del os.environ["XDG_CONFIG_HOME"]
        else:
            os.environ["XDG_CONFIG_HOME"] = saved
    yield cluster, config
    cluster.close()


@pytest.fixture
def client(local_cluster, monkeypatch):
    """A client of the session's LocalCluster; this test shares the workers' key."""
    from distributed import Client

    cluster, config = local_cluster
    monkeypatch.setenv("XDG_CONFIG_HOME", str(config))
    with Client(cluster, set_as_default=False) as c:
        yield c


@pytest.fixture
def run_python(tmp_path):
    """Run a Python snippet in a fresh interpreter, in tmp_path."""
    import subprocess

    def run(code, *, check=True, timeout=120, cwd=None):
        proc = subprocess.run([sys.executable, "-c", code], cwd=cwd or tmp_path,
                              env=python_env(), capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"subprocess failed ({proc.returncode}):\n{proc.stdout}\n"
                                 f"{proc.stderr}")
        return proc

    return run
