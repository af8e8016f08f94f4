"""The Backend interface and how backend= is resolved."""
from __future__ import annotations

import pathlib
import pickle

import pytest

from experigraph.backends import resolve_backend
from experigraph.backends.base import Backend
from experigraph.backends.file import FileBackend


def test_incomplete_backend_cannot_be_instantiated():
    class Half(Backend):
        def next_trial_id(self):
            return 1

    with pytest.raises(TypeError, match="abstract"):
        Half("x")


def test_the_primitives_are_the_abstract_members():
    """A backend implements these and nothing else (the rest is derived in the base)."""
    assert Backend.__abstractmethods__ == {
        "from_uri", "uri", "__reduce__", "delete_experiment", "experiment_ids",
        "next_trial_id", "last_trial_id", "create_trial", "write_trial", "read_trial",
        "trial_ids", "append_stream", "read_stream", "stream_names", "put_blob", "get_blob",
        "swap_index_values", "read_index_values"}


def test_a_backend_of_only_the_primitives_is_complete():
    namespace = {name: (lambda *a, **k: None) for name in Backend.__abstractmethods__}
    namespace["uri"] = property(lambda self: "memory://")
    namespace["from_uri"] = classmethod(lambda cls, uri, experiment_id: cls(experiment_id))
    Minimal = type("Minimal", (Backend,), namespace)
    backend = Minimal("x")
    assert backend.experiment_id == "x" and repr(backend) == "Minimal('memory://', experiment_id='x')"


def test_pytest_is_not_imported_by_experigraph(run_python):
    proc = run_python("import sys, experigraph, experigraph.backends.base\n"
                      "print('pytest' in sys.modules, 'experigraph.testing' in sys.modules)")
    assert proc.stdout.split() == ["False", "False"]


@pytest.mark.parametrize("bad", [42, "ftp://host/x", "redis:host", object()])
def test_unsupported_backend_lists_what_is_accepted(bad):
    with pytest.raises(ValueError, match=r"accepted are .*pathlib.Path.*redis://.*mongodb://"):
        resolve_backend(bad, "exp")


def test_a_plain_string_path_is_the_file_backend_there(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # as daskperiment took backend="some/dir" (issue 11)
    b = resolve_backend("somewhere", "exp")
    assert isinstance(b, FileBackend)
    assert b.path.resolve() == (tmp_path / "somewhere" / "exp").resolve()


def test_default_is_the_local_cache_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    b = resolve_backend(None, "exp")
    assert isinstance(b, FileBackend)
    assert b.path.resolve() == (tmp_path / "experigraph_cache" / "exp").resolve()
    assert resolve_backend("local", "exp").path == b.path


def test_environment_variable_chooses_the_backend(tmp_path, monkeypatch):
    monkeypatch.setenv("EXPERIGRAPH_BACKEND", (tmp_path / "env").as_uri())
    b = resolve_backend(None, "exp")
    assert b.path == tmp_path / "env" / "exp"


def test_file_uri_and_path(tmp_path):
    assert resolve_backend(tmp_path, "e").path == tmp_path / "e"
    assert resolve_backend(tmp_path.as_uri(), "e").path == tmp_path / "e"
    with pytest.raises(ValueError, match="local directory"):
        resolve_backend("file://otherhost/x", "e")


def test_backend_pickles_as_its_configuration(tmp_path):
    b = FileBackend(tmp_path, "e")
    b.next_trial_id()
    clone = pickle.loads(pickle.dumps(b))
    assert type(clone) is FileBackend and clone.path == b.path
    assert clone.last_trial_id() == 1
    assert len(pickle.dumps(b)) < 300
