"""Tags, notes and archiving after the fact (append-only, several processes at once), and
gc, which removes only kept content no recorded trial refers to."""
from __future__ import annotations

import getpass
import os
import subprocess
import sys
import textwrap

import pandas as pd
import pytest
from click.testing import CliRunner

import experigraph as xg
from experigraph.board.table import TrialTable
from experigraph.cli import main
from experigraph.errors import InvalidArgumentError, TrialIDNotFoundError

from versioning_setup import setup  # noqa: F401 - the fixture
from xg_testing import python_env

pytestmark = pytest.mark.timeout(240)


def three_trials(ex):
    a = ex.parameter("a")

    @ex.result
    def double(a):
        return 2 * a

    double(a)
    for value in (1, 2, 3):
        ex.set_parameters(a=value).compute()


def test_tags_notes_and_archive_are_kept_with_time_and_user(setup):
    ex = setup()
    three_trials(ex)
    ex.tag(1, "best", True)
    ex.tag(1, "reviewer", "ana")
    ex.tag(1, "reviewer", "bo")  # the later value shows; both are in the log
    ex.note(2, "diverged after epoch 3")
    ex.note(2, "rerun with a lower lr")
    ex.archive([2, 3])

    other = setup()  # another process's view of the same store
    history = other.get_history()
    assert history.index.tolist() == [1]
    assert history.loc[1, "best"] == True  # noqa: E712 - a numpy bool
    assert history.loc[1, "reviewer"] == "bo"
    full = other.get_history(archived=True)
    assert full.index.tolist() == [1, 2, 3]
    assert full["Archived"].tolist() == [False, True, True]
    assert other.get_notes(2) == ["diverged after epoch 3", "rerun with a lower lr"]
    log = other.get_annotations()
    assert log["Action"].tolist() == ["tag", "tag", "tag", "note", "note", "archive", "archive"]
    assert log["Value"].tolist()[:3] == [True, "ana", "bo"]
    assert set(log["User"]) == {getpass.getuser()}
    assert log["Time"].is_monotonic_increasing
    assert isinstance(log["Time"][0], (pd.Timestamp, type(log["Time"][0])))

    ex.unarchive(3)
    ex.untag(1, "reviewer")
    assert other.get_history().index.tolist() == [1, 3]
    assert "reviewer" not in other.get_history().columns
    assert len(other.get_annotations()) == 9  # nothing was rewritten


def test_archived_trials_keep_their_ids_and_everything_recorded(make_experiment):
    ex = make_experiment()
    three_trials(ex)
    before = ex.get_trial(2)
    ex.archive([1, 2, 3])
    assert ex.get_history().empty
    ex.set_parameters(a=4).compute()
    assert ex.get_history().index.tolist() == [4]
    assert ex.get_trial(2) == before
    assert ex.get_history(archived=True).index.tolist() == [1, 2, 3, 4]


def test_bad_annotations_change_nothing(make_experiment):
    ex = make_experiment()
    three_trials(ex)
    with pytest.raises(TrialIDNotFoundError, match=r"\b99\b"):
        ex.archive([1, 99])  # checked before anything is written
    with pytest.raises(TrialIDNotFoundError):
        ex.note(42, "x")
    with pytest.raises(InvalidArgumentError, match="tag name"):
        ex.tag(1, "", 1)
    with pytest.raises(InvalidArgumentError, match="kept as JSON"):
        ex.tag(1, "obj", object())
    with pytest.raises(InvalidArgumentError, match="non-empty text"):
        ex.note(1, "  ")
    with pytest.raises(InvalidArgumentError, match="trial id or a list"):
        ex.archive("1")
    assert ex.get_annotations().empty
    assert ex.get_history().index.tolist() == [1, 2, 3]


WRITER = textwrap.dedent('''
    import sys
    import experigraph as xg

    backend, experiment_id, who = sys.argv[1], sys.argv[2], sys.argv[3]
    ex = xg.Experiment(experiment_id, backend=backend if "://" in backend else
                       __import__("pathlib").Path(backend))
    for n in range(25):
        ex.tag(1 + n % 3, f"{who}-{n}", n)
        ex.note(1 + n % 3, f"{who} says {n}")
''')


@pytest.mark.parametrize("kind", ["file", "redis"])
def test_annotations_from_several_processes_at_once_are_all_kept(kind, tmp_path, experiment_id,
                                                                  make_redis_backend):
    if kind == "file":
        location, eid = str(tmp_path / "store"), experiment_id
        ex = xg.Experiment(eid, backend=tmp_path / "store")
    else:
        backend = make_redis_backend()
        location, eid = backend.uri, backend.experiment_id
        ex = xg.Experiment(eid, backend=backend)
    three_trials(ex)
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    procs = [subprocess.Popen([sys.executable, str(script), location, eid, f"p{i}"],
                              env=python_env(), stderr=subprocess.PIPE, text=True)
             for i in range(4)]
    for proc in procs:
        assert proc.wait(timeout=180) == 0, proc.stderr.read()
    log = ex.get_annotations()
    assert len(log) == 4 * 25 * 2
    assert sorted(log[log["Action"] == "note"]["Text"]) == sorted(
        f"p{i} says {n}" for i in range(4) for n in range(25))
    history = ex.get_history()
    assert history.loc[1 + 24 % 3, "p3-24"] == 24


def test_the_dashboard_hides_archived_trials(make_experiment):
    ex = make_experiment()
    three_trials(ex)
    ex.archive(2)
    table = TrialTable(ex)
    table.refresh()
    assert table.trial_ids == [1, 3]
    everything = TrialTable(ex, archived=True)  # start_dashboard(archived=True), --archived
    everything.refresh()
    assert everything.trial_ids == [1, 2, 3]


def test_cli_tags_notes_archives_and_shows_history(tmp_path, make_experiment, backend_root):
    ex = make_experiment()
    three_trials(ex)

    def cli(*args):
        return CliRunner().invoke(main, [*map(str, args), "--backend", backend_root])

    assert cli("tag", ex.id, 1, "best").exit_code == 0
    assert cli("tag", ex.id, 1, "score", "0.9").output.strip() == "Tagged trial 1: score=0.9"
    assert cli("note", ex.id, 2, "looks off").exit_code == 0
    assert cli("archive", ex.id, 2, 3).output.strip() == "Archived trial(s) 2, 3"
    history = cli("history", ex.id, "--format", "csv")
    assert history.exit_code == 0
    assert [line.split(",")[0] for line in history.output.splitlines()[1:]] == ["1"]
    assert "best" in history.output.splitlines()[0]
    archived = cli("history", ex.id, "--archived", "--format", "csv")
    assert archived.output.splitlines()[0].endswith("Archived")
    assert cli("archive", ex.id, 3, "--undo").exit_code == 0
    assert ex.get_history().index.tolist() == [1, 3]
    bad = cli("archive", ex.id, 7)
    assert bad.exit_code == 1 and "Trial 7 is not recorded" in bad.output
    assert ex.get_notes(2) == ["looks off"]


# -- gc -------------------------------------------------------------------------------------
def kept_trials(ex, tmp_path):
    a = ex.parameter("a")

    @ex.result
    def write(a):
        path = tmp_path / f"out{a}.txt"
        path.write_text(f"content {a}\n" * 100)
        ex.output(path)
        ex.model({"a": a}, "m")
        return a

    write(a)
    for value in (1, 2):
        ex.set_parameters(a=value).compute()


def stored(ex):
    return sorted((kind, h) for kind, h, *_ in ex.artifact_store.stored())


def test_gc_removes_only_what_no_trial_refers_to(setup, tmp_path):
    ex = setup()
    kept_trials(ex, tmp_path)
    ex.archive(1)  # archived trials still refer to their content
    before = stored(ex)
    lost = b"written by a trial that was never recorded" * 10
    orphan = ex.artifact_store.put_bytes(lost)
    tmp = ex.artifact_store.temp_path()
    with ex.artifact_store.fs.open(tmp, "wb") as f:
        f.write(b"a copy cut short")

    dry = ex.gc(dry_run=True, grace=0)
    assert dry["freed"] == len(lost) + len(b"a copy cut short")
    assert len(dry["removed"]) == 2
    assert len(stored(ex)) == len(before) + 2  # a dry run removes nothing
    done = ex.gc(grace=0)
    assert done["removed"] == dry["removed"] and done["freed"] == dry["freed"]
    assert stored(ex) == before
    assert orphan not in [h for _, h in stored(ex)]
    for trial_id in (1, 2):  # everything recorded still comes back
        assert ex.get_artifact(trial_id, f"out{trial_id}.txt", tmp_path / f"r{trial_id}") \
            .read_text() == f"content {trial_id}\n" * 100
        assert ex.get_model("m", trial_id) == {"a": trial_id}
    assert ex.gc(grace=0)["removed"] == []


def test_gc_keeps_recent_content(make_experiment, tmp_path):
    ex = make_experiment()
    kept_trials(ex, tmp_path)
    ex.artifact_store.put_bytes(b"just written")
    assert ex.gc(dry_run=True)["removed"] == []  # younger than the grace period
    assert len(ex.gc(dry_run=True, grace=0)["removed"]) == 1


def test_gc_keeps_what_a_running_trial_has_kept_so_far(make_experiment):
    import threading

    ex = make_experiment()
    kept, release = threading.Event(), threading.Event()

    @ex.result
    def train():
        ex.model({"weights": list(range(100))}, "m")  # stored now, recorded at the end
        kept.set()
        release.wait(60)
        return 1

    result = train()
    worker = threading.Thread(target=result.compute)
    worker.start()
    try:
        assert kept.wait(60)
        assert len(stored(ex)) == 1
        assert ex.gc(grace=0)["removed"] == []
    finally:
        release.set()
        worker.join(60)
    assert ex.get_model("m") == {"weights": list(range(100))}


def test_cli_gc_says_what_it_freed(make_experiment, tmp_path, backend_root):
    ex = make_experiment()
    kept_trials(ex, tmp_path)
    ex.artifact_store.put_bytes(b"x" * 2048)
    args = ["gc", ex.id, "--backend", backend_root, "--grace", "0"]
    dry = CliRunner().invoke(main, [*map(str, args), "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "Would remove 1 item(s), would free 2.0 KiB (2048 bytes)" in dry.output
    done = CliRunner().invoke(main, list(map(str, args)))
    assert "Removed 1 item(s), freed 2.0 KiB (2048 bytes)" in done.output
    again = CliRunner().invoke(main, list(map(str, args)))
    assert "Removed 0 item(s)" in again.output
    assert os.path.isdir(ex.artifact_store.url)


def test_gc_removes_pickles_of_unrecorded_trials_and_keeps_persisted_and_cached(setup):
    from experigraph import signing

    ex = setup()
    a = ex.parameter("a")

    @ex.step(cache=True)
    def slow(a):
        return [a] * 3

    @ex.persist
    def features(x):
        return x + [0]

    @ex.result
    def total(f):
        return sum(f)

    total(features(slow(a)))
    ex.set_parameters(a=1).compute()
    crashed = ex.backend.put_blob("pickle", signing.dumps({"from": "a crashed trial"}))
    dry = ex.gc(dry_run=True, grace=0)
    assert dry["removed"] == [f"{ex.backend.uri} pickle blob {crashed}"], dry
    assert dry["skipped"] == []
    assert crashed in ex.backend.blob_hashes("pickle")
    done = ex.gc(grace=0)
    assert done["removed"] == dry["removed"] and done["freed"] == dry["freed"] > 0
    assert crashed not in ex.backend.blob_hashes("pickle")
    assert ex.get_persisted("features", 1) == [1, 1, 1, 0]
    ex.set_parameters(a=1).compute()  # the cached output is still there
    assert [s.cached for s in ex.get_trial(2).steps if s.step == "slow"] == [True]
    assert ex.gc(grace=0)["removed"] == []


def test_gc_collects_no_pickles_while_a_trial_runs(make_experiment):
    import threading

    from experigraph import signing

    ex = make_experiment()
    started, release = threading.Event(), threading.Event()

    @ex.result
    def train():
        started.set()
        release.wait(60)
        return 1

    orphan = ex.backend.put_blob("pickle", signing.dumps("orphan"))
    worker = threading.Thread(target=train().compute)
    worker.start()
    try:
        assert started.wait(60)
        outcome = ex.gc(grace=0)
        assert outcome["removed"] == []
        assert any("a trial is running" in why for why in outcome["skipped"])
        assert orphan in ex.backend.blob_hashes("pickle")
    finally:
        release.set()
        worker.join(60)
    assert ex.gc(grace=0)["removed"] == [f"{ex.backend.uri} pickle blob {orphan}"]


def test_a_served_dashboard_hides_archived_trials_unless_asked(make_experiment):
    pytest.importorskip("bokeh")
    ex = make_experiment()
    three_trials(ex)
    ex.archive([1, 2])
    for archived, expected in ((False, [3]), (True, [1, 2, 3])):
        dashboard = ex.start_dashboard(port=0, blocking=False, archived=archived)
        try:
            assert dashboard.state(ex.id).table.trial_ids == expected
        finally:
            dashboard.stop()
