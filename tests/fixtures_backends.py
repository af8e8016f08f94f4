"""Backend fixtures (a pytest plugin loaded by tests/conftest.py).

* ``redis_server`` (session): a real ``redis-server`` on a free port of 127.0.0.1,
  without persistence. ``redis_server_factory`` starts more, with options
  (``--requirepass``, ``--appendonly yes`` in a directory of ``tmp_path``), and
  each can be killed and restarted on the same port and directory.
  If ``redis-server`` cannot be found or started the test is skipped, or
  *fails* when the ``CI`` environment variable is set: CI must not silently skip
  the Redis half of the suite.
* ``make_file_backend``, ``make_redis_backend``, ``make_mongomock_backend`` and
  ``make_mongodb_backend`` each return ``make(experiment_id=...)``. Each test
  gets its own namespace: the requested experiment id gets a unique suffix
  (the same requested id gives the same namespace within one test, so two
  backends on one experiment can be made), and teardown deletes only the keys
  or documents of the experiments it made: never ``FLUSHALL``, never a drop of
  a shared database. ``make_mongodb_backend`` skips unless
  ``EXPERIGRAPH_TEST_MONGO_URI`` names a MongoDB server.
"""
from __future__ import annotations

import base64
import os
import pickle
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

REDIS_START_TIMEOUT = 15.0
MONGOMOCK_SERVER = ("mongomock.test", 27017)


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def find_redis_server() -> str | None:
    """The ``redis-server`` executable, or None."""
    found = shutil.which("redis-server")
    if found:
        return found
    for candidate in ("/usr/bin/redis-server", "/usr/sbin/redis-server",
                      "/usr/local/bin/redis-server"):
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def unavailable(reason: str) -> None:
    """Skip, or fail under CI (where every backend must be tested)."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set, so this fails instead of skipping: install "
                    "redis-server, e.g. apt-get install redis-server)", pytrace=False)
    pytest.skip(reason)


class RedisServer:
    """A ``redis-server`` process for tests: start, kill (SIGKILL), restart in place."""

    def __init__(self, directory: Path, *, port: int | None = None, password: str | None = None,
                 appendonly: bool = False, extra: tuple[str, ...] = ()) -> None:
        self.executable = find_redis_server()
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.password = password
        self.appendonly = appendonly
        self.extra = extra
        self.process: subprocess.Popen | None = None
        self.log = self.directory / "redis.log"

    def url(self, db: int = 0, *, password: str | None = None) -> str:
        password = self.password if password is None else password
        auth = f":{password}@" if password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/{db}"

    def start(self) -> RedisServer:
        if self.executable is None:
            unavailable("redis-server is not installed")
            return self
        args = [self.executable, "--port", str(self.port), "--bind", "127.0.0.1",
                "--dir", str(self.directory), "--daemonize", "no", "--save", "",
                "--logfile", str(self.log), "--protected-mode", "no"]
        if self.appendonly:
            args += ["--appendonly", "yes", "--appendfsync", "always"]
        if self.password:
            args += ["--requirepass", self.password]
        args += list(self.extra)
        try:
            self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL,
                                            stderr=subprocess.DEVNULL)
        except OSError as exc:
            unavailable(f"redis-server could not be started: {exc}")
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        import redis

        client = redis.Redis(host="127.0.0.1", port=self.port, password=self.password,
                             socket_connect_timeout=0.5, socket_timeout=2)
        deadline = time.monotonic() + REDIS_START_TIMEOUT
        last: Exception | None = None
        try:
            while time.monotonic() < deadline:
                if self.process is not None and self.process.poll() is not None:
                    break
                try:
                    if client.ping():
                        return
                except (redis.exceptions.ConnectionError, redis.exceptions.BusyLoadingError,
                        redis.exceptions.TimeoutError) as exc:
                    last = exc
                time.sleep(0.05)
        finally:
            client.close()
        log = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
        self.stop()
        unavailable(f"redis-server on port {self.port} did not answer PING within "
                    f"{REDIS_START_TIMEOUT:.0f} s ({last}); its log ends with:\n{log}")

    @property
    def pid(self) -> int:
        return self.process.pid if self.process is not None else 0

    def kill(self) -> None:
        """SIGKILL the server (as a crash would) and wait until it is gone."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)

    def restart(self) -> RedisServer:
        """Start again on the same port and directory (so with its AOF data, if any)."""
        self.kill()
        return self.start()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    """A real redis-server on a free port, shared by the session (no persistence)."""
    if find_redis_server() is None:
        unavailable("redis-server is not installed")
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis_server_factory(tmp_path):
    """``start(**options) -> RedisServer``: servers of this test only, stopped after it."""
    servers: list[RedisServer] = []

    def start(**options: Any) -> RedisServer:
        if find_redis_server() is None:
            unavailable("redis-server is not installed")
        server = RedisServer(tmp_path / f"redis-{len(servers)}", **options)
        servers.append(server)
        return server.start()

    yield start
    for server in servers:
        server.stop()


def _namer(request):
    """Maps a requested experiment id to a unique one, stable within one test."""
    names: dict[str, str] = {}
    stem = "".join(c if c.isalnum() else "_" for c in request.node.name)[:40]

    def name(experiment_id: str | None) -> str:
        requested = experiment_id or stem or "test"
        if requested not in names:
            names[requested] = f"{requested}-{uuid.uuid4().hex[:12]}"
        return names[requested]

    return name, names


@pytest.fixture
def make_file_backend(tmp_path):
    """``make(experiment_id=...)`` -> a FileBackend in this test's tmp_path."""
    from experigraph.backends.file import FileBackend

    root = tmp_path / "file-backend"
    made: list[Any] = []

    def make(experiment_id: str = "test") -> FileBackend:
        backend = FileBackend(root, experiment_id)
        made.append(backend)
        return backend

    yield make
    for backend in made:
        backend.close()


@pytest.fixture
def make_redis_backend(request, redis_server):
    """``make(experiment_id=...)`` -> a RedisBackend on the session's server, own namespace."""
    from experigraph.backends.redis import RedisBackend

    name, names = _namer(request)
    made: list[RedisBackend] = []

    def make(experiment_id: str | None = None, db: int = 0) -> RedisBackend:
        backend = RedisBackend(redis_server.url(db), name(experiment_id))
        made.append(backend)
        return backend

    yield make
    cleaned: set[tuple[str, str]] = set()
    for backend in made:
        if (backend.uri, backend.experiment_id) not in cleaned:
            cleaned.add((backend.uri, backend.experiment_id))
            backend.delete_experiment()
        backend.close()


@pytest.fixture
def mongomock_patch():
    """pymongo.MongoClient replaced by mongomock, sharing one in-memory server per host
    (so a pickled backend reconnects to the same data within this process)."""
    mongomock = pytest.importorskip("mongomock")
    with mongomock.patch(servers=(MONGOMOCK_SERVER,)):
        yield "mongodb://{}:{}".format(*MONGOMOCK_SERVER)


@pytest.fixture
def make_mongomock_backend(request, mongomock_patch):
    """``make(experiment_id=...)`` -> a MongoBackend on mongomock (in this process only)."""
    from experigraph.backends.mongo import MongoBackend

    name, _ = _namer(request)
    made: list[MongoBackend] = []

    def make(experiment_id: str | None = None) -> MongoBackend:
        backend = MongoBackend(f"{mongomock_patch}/experigraph_test", name(experiment_id))
        made.append(backend)
        return backend

    yield make
    for backend in made:
        backend.delete_experiment()
        backend.close()


def mongodb_test_uri() -> str | None:
    """``EXPERIGRAPH_TEST_MONGO_URI`` with a database name (experigraph_test if none)."""
    uri = os.environ.get("EXPERIGRAPH_TEST_MONGO_URI")
    if not uri:
        return None
    parts = urlsplit(uri)
    if parts.path in ("", "/"):
        parts = parts._replace(path="/experigraph_test")
    return urlunsplit(parts)


@pytest.fixture
def make_mongodb_backend(request):
    """``make(experiment_id=...)`` -> a MongoBackend on the real server of
    ``EXPERIGRAPH_TEST_MONGO_URI`` (skips when it is not set)."""
    uri = mongodb_test_uri()
    if uri is None:
        pytest.skip("EXPERIGRAPH_TEST_MONGO_URI is not set (e.g. mongodb://localhost:27017)")
    from experigraph.backends.mongo import MongoBackend

    name, _ = _namer(request)
    made: list[MongoBackend] = []

    def make(experiment_id: str | None = None) -> MongoBackend:
        backend = MongoBackend(uri, name(experiment_id))
        made.append(backend)
        return backend

    yield make
    for backend in made:
        backend.delete_experiment()
        backend.close()


@pytest.fixture
def make_examplefs_backend(tmp_path, monkeypatch):
    """``make(experiment_id=...)`` -> the example third-party backend of ``tests/plugins/``,
    installed as a distribution on a temporary ``sys.path`` entry (also for subprocesses)
    and resolved from an ``examplefs://`` URI through its entry point."""
    from experigraph.backends import resolve_backend
    from xg_testing import install_example_plugin as install

    site = install(tmp_path / "plugin-site")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        p for p in (str(site), os.environ.get("PYTHONPATH", "")) if p))
    root = tmp_path / "examplefs-backend"
    made: list[Any] = []

    def make(experiment_id: str = "test") -> Any:
        backend = resolve_backend(f"examplefs://{root}", experiment_id)
        made.append(backend)
        return backend

    yield make
    for backend in made:
        backend.close()
    sys.modules.pop("xg_example_backend", None)


# one copy of these, in the contract suite's module (other tests pass backends to
# subprocesses the same way)
from experigraph.testing.backend_contract import SUBPROCESS_PRELUDE, backend_to_arg  # noqa: E402,F401
