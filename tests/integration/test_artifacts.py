"""Artifacts: files declared with ex.output (and ex.input(keep=True)) kept with their trial.

Each behaviour runs on the file backend (artifacts in its directory), on Redis with a
directory artifact location, and with fsspec's in-memory file system as the location.
"""
from __future__ import annotations

import filecmp
import json
import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

import experigraph as xg
from experigraph.artifacts import ArtifactStore
from experigraph.cli import main
from experigraph.errors import ArtifactError, NotInTrialError, NotRecordedError

from xg_testing import python_env
from versioning_setup import setup  # noqa: F401 - the fixture

pytestmark = pytest.mark.timeout(240)


def writer(ex, target: Path, **output_kwargs):
    """An experiment whose result step writes ``target`` from parameter a."""
    a = ex.parameter("a")

    @ex.result
    def write(a):
        target.write_text(f"prediction,{a}\n")
        ex.output(str(target), **output_kwargs)
        return a

    return write(a)


def objects(store: ArtifactStore) -> list[str]:
    return sorted(h for kind, h, *_ in store.stored() if kind == "object")


def test_output_is_kept_and_comes_back_after_the_file_is_overwritten(setup, tmp_path):
    ex = setup()
    target = tmp_path / "predictions.csv"
    result = writer(ex, target)
    ex.set_parameters(a=1)
    result.compute()
    ex.set_parameters(a=2)
    result.compute()
    assert target.read_text() == "prediction,2\n"

    frame = ex.get_artifacts(1)
    assert frame[["path", "role", "step", "kind", "size", "kept"]].to_dict("records") == [
        {"path": str(target), "role": "output", "step": "write", "kind": "file",
         "size": len("prediction,1\n"), "kept": True}]
    restored = ex.get_artifact(1, "predictions.csv", tmp_path / "trial1.csv")
    assert restored == tmp_path / "trial1.csv"
    assert restored.read_text() == "prediction,1\n"
    # another process (a new Experiment object) reads the same
    again = setup()
    assert again.get_artifact(2, str(target), tmp_path / "t2.csv").read_text() == \
        "prediction,2\n"


def test_same_content_written_by_many_trials_is_stored_once(setup, tmp_path):
    ex = setup()
    a = ex.parameter("a")

    @ex.result
    def write(a):  # five files, one content
        target = tmp_path / f"same{a}.txt"
        target.write_text("always the same\n")
        ex.output(target)
        return a

    write(a)
    ex.sweep(a=[1, 2, 3, 4, 5], progress=False)
    hashes = {ex.get_artifacts(t)["hash"][0] for t in range(1, 6)}
    assert len(hashes) == 1
    assert objects(ex.artifact_store) == sorted(hashes)


def test_directory_output_is_kept_whole_and_file_by_file(setup, tmp_path):
    ex = setup()
    out = tmp_path / "model_dir"

    @ex.result
    def write():
        (out / "sub").mkdir(parents=True, exist_ok=True)
        (out / "weights.bin").write_bytes(os.urandom(1000))
        (out / "sub" / "config.json").write_text('{"layers": 3}')
        return ex.output(out)

    write().compute()
    weights = (out / "weights.bin").read_bytes()
    row = ex.get_artifacts(1).iloc[0]
    assert (row["kind"], row["size"], row["kept"]) == ("directory", 1000 + 13, True)
    whole = ex.get_artifact(1, out, tmp_path / "copy")
    assert (whole / "weights.bin").read_bytes() == weights
    assert (whole / "sub" / "config.json").read_text() == '{"layers": 3}'
    one = ex.get_artifact(1, "model_dir/sub/config.json", tmp_path / "config.json")
    assert one.read_text() == '{"layers": 3}'


def test_keep_false_records_the_hash_only(setup, tmp_path):
    ex = setup()
    target = tmp_path / "big.csv"
    writer(ex, target, keep=False)
    ex.set_parameters(a=1).compute()
    row = ex.get_artifacts(1).iloc[0]
    assert row["kept"] is False or not row["kept"]
    assert row["hash"]
    assert objects(ex.artifact_store) == []
    dest = tmp_path / "never.csv"
    with pytest.raises(NotRecordedError, match="keep=False"):
        ex.get_artifact(1, "big.csv", dest)
    assert not dest.exists()


def test_restoring_never_replaces_other_content_unless_asked(setup, tmp_path):
    ex = setup()
    target = tmp_path / "out.txt"
    writer(ex, target)
    ex.set_parameters(a=1).compute()
    ex.set_parameters(a=2).compute()
    # default destination: the recorded path, which now holds trial 2's content
    with pytest.raises(ArtifactError, match="exists with other content"):
        ex.get_artifact(1, "out.txt")
    assert target.read_text() == "prediction,2\n"
    assert ex.get_artifact(2, "out.txt") == target  # same content: nothing to do
    ex.get_artifact(1, "out.txt", overwrite=True)
    assert target.read_text() == "prediction,1\n"
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_unknown_or_ambiguous_paths_say_what_the_trial_has(setup, tmp_path):
    ex = setup()
    (tmp_path / "x").mkdir()
    (tmp_path / "y").mkdir()

    @ex.result
    def write():
        for d in ("x", "y"):
            (tmp_path / d / "p.csv").write_text(d)
            ex.output(tmp_path / d / "p.csv")
        return 1

    write().compute()
    with pytest.raises(NotRecordedError, match=r"no file 'q.csv'.*x/p.csv"):
        ex.get_artifact(1, "q.csv", tmp_path / "q")
    with pytest.raises(ArtifactError, match="matches several files"):
        ex.get_artifact(1, "p.csv", tmp_path / "q")
    assert ex.get_artifact(1, "y/p.csv", tmp_path / "q").read_text() == "y"


def test_a_damaged_object_is_reported_and_changes_nothing(tmp_path, make_experiment):
    ex = make_experiment()
    target = tmp_path / "out.txt"
    writer(ex, target)
    ex.set_parameters(a=1).compute()
    content_hash = ex.get_artifacts(1)["hash"][0]
    obj = Path(ex.artifact_store.object_path(content_hash))
    obj.write_text("tampered")
    dest = tmp_path / "dest.txt"
    dest.write_text("mine")
    with pytest.raises(ArtifactError, match="damaged"):
        ex.get_artifact(1, "out.txt", dest, overwrite=True)
    assert dest.read_text() == "mine"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".dest")] == []


def test_bad_declarations_fail_with_what_to_do(make_experiment, tmp_path):
    ex = make_experiment()
    with pytest.raises(NotInTrialError):
        ex.output(tmp_path / "x")
    n = ex.parameter("n")

    @ex.result
    def step(n):
        if n == 1:
            ex.output(123)
        else:
            ex.output(tmp_path / "x", keep="yes")

    step(n)
    with pytest.raises(ArtifactError, match="takes the path"):
        ex.set_parameters(n=1).compute()
    with pytest.raises(ArtifactError, match=r"keep= is True or False, got 'yes'"):
        ex.set_parameters(n=2).compute()


def test_a_missing_output_is_recorded_as_an_error_and_leaves_no_temporary_file(
        make_experiment, tmp_path):
    ex = make_experiment()

    @ex.result
    def step():
        return ex.output(tmp_path / "never_written.txt")

    step().compute()
    row = ex.get_artifacts(1).iloc[0]
    assert not row["kept"]
    entry = ex.get_trial(1).steps[0].outputs[0]
    assert "FileNotFoundError" in entry["error"]
    with pytest.raises(NotRecordedError, match="could not be read"):
        ex.get_artifact(1, "never_written.txt", tmp_path / "d")
    assert list(Path(ex.artifact_store.url, "tmp").glob("*")) == []


def test_redis_without_a_location_hashes_outputs_and_says_so(make_redis_backend, tmp_path,
                                                             caplog):
    backend = make_redis_backend()
    ex = xg.Experiment(backend.experiment_id, backend=backend)
    assert ex.artifact_store is None
    target = tmp_path / "out.txt"
    writer(ex, target)
    with caplog.at_level(logging.WARNING, logger="experigraph"):
        ex.set_parameters(a=1).compute()
    assert "hashed but not kept" in caplog.text
    assert not ex.get_artifacts(1)["kept"][0]
    kept = xg.Experiment(backend.experiment_id, backend=backend)
    k = kept.parameter("k")

    @kept.result
    def write_kept(k):
        target.write_text("x")
        return kept.output(target, keep=True)

    write_kept(k)
    with pytest.raises(ArtifactError, match=r"artifacts="):
        kept.set_parameters(k=1).compute()


def test_outputs_are_kept_from_worker_processes(make_redis_backend, tmp_path):
    backend = make_redis_backend()
    ex = xg.Experiment(backend.experiment_id, backend=backend, artifacts=tmp_path / "art")
    target = tmp_path / "from_worker.txt"
    writer(ex, target)
    ex.set_parameters(a=7).compute(scheduler="processes")
    assert ex.get_artifacts(1)["kept"][0]
    assert ex.get_artifact(1, "from_worker.txt", tmp_path / "d.txt").read_text() == \
        "prediction,7\n"


def test_bad_artifact_location_is_refused(make_experiment):
    with pytest.raises(ArtifactError, match="artifacts= takes"):
        make_experiment(artifacts=42)


# -- inputs kept, and reproduce on them -----------------------------------------------------
def reader(ex, data: Path, keep=True):
    scale = ex.parameter("scale", default=1)

    @ex.result
    def total(scale):
        with open(ex.input(data, keep=keep)) as f:
            return scale * sum(int(line) for line in f)

    return total(scale)


def test_reproduce_restores_inputs_as_the_trial_read_them(setup, tmp_path):
    ex = setup()
    data = tmp_path / "data.txt"
    data.write_text("1\n2\n")
    result = reader(ex, data)
    assert result.compute() == 3
    data.write_text("10\n20\n")  # the data changes afterwards
    plain = ex.reproduce(1)
    assert not plain.matches
    assert any(e.kind == "data" for e in plain.drift)
    again = ex.reproduce(1, restore_inputs=True)
    assert again.matches, str(again)
    assert ex.get_trial(again.rerun).result == 3
    assert data.read_text() == "10\n20\n"  # the current file is put back
    assert not list(tmp_path.glob("*.experigraph-aside-*"))


def test_restore_inputs_refuses_inputs_that_were_not_kept(make_experiment, tmp_path):
    ex = make_experiment()
    data = tmp_path / "data.txt"
    data.write_text("1\n")
    reader(ex, data, keep=False).compute()
    data.write_text("5\n")
    with pytest.raises(NotRecordedError, match=r"keep=True"):
        ex.reproduce(1, restore_inputs=True)
    assert data.read_text() == "5\n"
    assert ex.get_history().index.tolist() == [1]  # nothing ran


def test_rerun_on_restored_inputs_ignores_what_the_file_holds_now(make_experiment, tmp_path):
    ex = make_experiment()
    data = tmp_path / "data.txt"
    data.write_text("1\n")
    reader(ex, data).compute()
    data.write_text("oops, not a number\n")
    ex.reproduce(1, restore_inputs=True)  # runs on "1\n"
    assert data.read_text() == "oops, not a number\n"
    assert ex.get_trial(2).result == 1


def test_a_failing_rerun_still_puts_the_current_inputs_back(make_experiment, tmp_path):
    ex = make_experiment()
    data = tmp_path / "data.txt"
    data.write_text("1\n")
    fail = tmp_path / "fail"

    @ex.result
    def total():
        with open(ex.input(data, keep=True)) as f:
            content = f.read()
        if fail.exists():
            raise RuntimeError("boom")
        return content

    total().compute()
    data.write_text("now\n")
    fail.touch()
    outcome = ex.reproduce(1, restore_inputs=True)
    assert not outcome.matches
    assert ex.get_trial(2).status.value == "failed"
    assert ex.get_trial(2).steps[0].inputs[0]["hash"] == ex.get_trial(1).steps[0].inputs[0]["hash"]
    assert data.read_text() == "now\n"
    assert not list(tmp_path.glob("*.experigraph-aside-*"))


SCRIPT = '''
import sys
import experigraph as xg

ex = xg.Experiment(id="readdata")
scale = ex.parameter("scale", default=1)


@ex.result
def total(scale):
    with open(ex.input("data.txt", keep=True)) as f:
        return scale * sum(int(line) for line in f)


total(scale)
'''


def cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_cli_lists_gets_and_reruns_on_restored_inputs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("EXPERIGRAPH_BACKEND", raising=False)
    (tmp_path / "readdata.py").write_text(SCRIPT)
    (tmp_path / "data.txt").write_text("1\n2\n")
    env = python_env()
    env.pop("EXPERIGRAPH_BACKEND", None)
    proc = subprocess.run([sys.executable, "readdata.py"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    (tmp_path / "data.txt").write_text("100\n")

    listed = cli("artifacts", "readdata", 1)
    assert listed.exit_code == 0, listed.output
    assert "input" in listed.output and "kept" in listed.output and "data.txt" in listed.output

    got = cli("get", "readdata", 1, "data.txt", "-o", tmp_path / "then.txt")
    assert got.exit_code == 0, got.output
    assert (tmp_path / "then.txt").read_text() == "1\n2\n"
    streamed = cli("get", "readdata", 1, "data.txt", "-o", "-")
    assert streamed.stdout_bytes == b"1\n2\n"
    refused = cli("get", "readdata", 1, "data.txt")
    assert refused.exit_code == 1
    assert "exists with other content" in refused.output
    missing = cli("get", "readdata", 1, "nope.txt", "-o", tmp_path / "n")
    assert missing.exit_code == 1 and "no file 'nope.txt'" in missing.output

    rerun = subprocess.run([sys.executable, "-m", "experigraph.cli", "rerun", "readdata", "1",
                            "--restore-inputs"], cwd=tmp_path, env=env, capture_output=True,
                           text=True, timeout=180)
    assert rerun.returncode == 0, rerun.stderr
    assert "Trial 2 of experiment 'readdata' succeeded (rerun of trial 1): result 3" in \
        rerun.stdout
    assert (tmp_path / "data.txt").read_text() == "100\n"
    plain = subprocess.run([sys.executable, "-m", "experigraph.cli", "rerun", "readdata", "1"],
                           cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180)
    assert "result 100" in plain.stdout, plain.stderr


# -- bounded memory --------------------------------------------------------------------------
LARGE = textwrap.dedent('''
    import json, os, sys
    import experigraph as xg

    big, store, report = sys.argv[1], sys.argv[2], sys.argv[3]
    size = 300 * 1024 * 1024
    with open(big, "wb") as f:  # sparse, with 1 MiB of random data every 16 MiB
        for offset in range(0, size, 16 << 20):
            f.seek(offset)
            f.write(os.urandom(1 << 20))
        f.truncate(size)

    ex = xg.Experiment("large", backend=store)
    path = ex.parameter("path")

    @ex.result
    def keep(path):
        return ex.output(path)

    def peak():  # this process's peak resident set (ru_maxrss would include the parent's
        # size at fork: Linux keeps it across exec)
        with open("/proc/self/status") as f:
            line = next(line for line in f if line.startswith("VmHWM:"))
        return int(line.split()[1]) * 1024

    small = big + ".small"
    open(small, "wb").write(b"warm-up")
    ex.set_parameters(path=small)
    keep(path).compute()  # trial 1: everything imported and started
    before = peak()
    ex.set_parameters(path=big).compute()  # trial 2
    after_keep = peak()
    restored = ex.get_artifact(2, big, big + ".restored")
    after_restore = peak()
    json.dump({"before": before, "after_keep": after_keep, "after_restore": after_restore,
               "size": os.path.getsize(restored),
               "kept": bool(ex.get_artifacts(2)["kept"][0])}, open(report, "w"))
''')


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc/self/status")
def test_a_300_mb_file_is_kept_and_restored_with_bounded_memory(tmp_path):
    report = tmp_path / "report.json"
    script = tmp_path / "large.py"
    script.write_text(LARGE)
    proc = subprocess.run([sys.executable, str(script), str(tmp_path / "big.bin"),
                           str(tmp_path / "store"), str(report)], cwd=tmp_path,
                          env=python_env(), capture_output=True, text=True, timeout=200)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r = json.loads(report.read_text())
    mib = 1024 * 1024
    print(f"\npeak RSS before keeping: {r['before'] / mib:.0f} MiB, after keeping the "
          f"300 MiB file: {r['after_keep'] / mib:.0f} MiB, after restoring it: "
          f"{r['after_restore'] / mib:.0f} MiB")
    assert r["size"] == 300 * mib
    assert r["after_keep"] - r["before"] < 48 * mib, r
    assert r["after_restore"] - r["before"] < 48 * mib, r
    assert r["after_restore"] < 300 * mib, r
    assert r["kept"]
    assert filecmp.cmp(tmp_path / "big.bin", tmp_path / "big.bin.restored", shallow=False)


def test_a_kept_input_directory_is_restored_whole_for_a_rerun(make_experiment, tmp_path):
    ex = make_experiment()
    data = tmp_path / "shards"
    data.mkdir()
    (data / "a.txt").write_text("1\n")
    (data / "b.txt").write_text("2\n")

    @ex.result
    def total():
        directory = ex.input(data, keep=True)
        return sum(int((directory / name).read_text()) for name in sorted(os.listdir(directory)))

    assert total().compute() == 3
    (data / "b.txt").write_text("20\n")
    (data / "c.txt").write_text("300\n")  # a file the trial did not see
    outcome = ex.reproduce(1, restore_inputs=True)
    assert outcome.matches, str(outcome)
    assert sorted(os.listdir(data)) == ["a.txt", "b.txt", "c.txt"]  # the current files, back
    assert (data / "b.txt").read_text() == "20\n"


def test_a_step_shared_by_a_sweep_keeps_its_output_for_every_trial(make_experiment, tmp_path):
    ex = make_experiment()
    a, b = ex.parameter("a"), ex.parameter("b")
    target = tmp_path / "shared.txt"

    @ex
    def prepare(a):  # the same call for every trial of the sweep: it runs once
        target.write_text(f"prepared {a}\n")
        ex.output(target)
        return a

    @ex.result
    def score(x, b):
        return x * b

    score(prepare(a), b)
    ex.sweep(a=[7], b=[1, 2, 3], progress=False)
    for trial_id in (1, 2, 3):
        assert ex.get_artifact(trial_id, "shared.txt", tmp_path / f"s{trial_id}.txt") \
            .read_text() == "prepared 7\n"
    assert len([k for k, *_ in ex.artifact_store.stored() if k == "object"]) == 1


def test_a_file_restored_to_a_directory_goes_into_it(make_experiment, tmp_path):
    ex = make_experiment()
    writer(ex, tmp_path / "pred.csv")
    ex.set_parameters(a=3).compute()
    out = tmp_path / "out"
    out.mkdir()
    assert ex.get_artifact(1, "pred.csv", out) == out / "pred.csv"
    assert (out / "pred.csv").read_text() == "prediction,3\n"
    got = CliRunner().invoke(main, ["get", ex.id, "1", "pred.csv", "-o", str(out),
                                    "--backend", str(ex.backend.root)])
    assert got.exit_code == 0 and f"Wrote {out / 'pred.csv'}" in got.output


CONCURRENT = textwrap.dedent('''
    import sys
    import experigraph as xg

    store, who, content_file = sys.argv[1], sys.argv[2], sys.argv[3]
    ex = xg.Experiment("together", backend=__import__("pathlib").Path(store))
    who_p = ex.parameter("who")

    @ex.result
    def write(who):
        target = f"{content_file}.{who}"
        with open(content_file, "rb") as src, open(target, "wb") as dst:
            dst.write(src.read())
        return ex.output(target)

    write(who_p)
    for round in range(3):
        ex.set_parameters(who=f"{who}-{round}").compute()
''')


def test_processes_keeping_the_same_content_at_once_store_it_once(tmp_path):
    content = tmp_path / "same.bin"
    content.write_bytes(os.urandom(8 << 20))
    script = tmp_path / "together.py"
    script.write_text(CONCURRENT)
    procs = [subprocess.Popen([sys.executable, str(script), str(tmp_path / "store"), f"p{i}",
                               str(content)], env=python_env(), stderr=subprocess.PIPE,
                              text=True) for i in range(4)]
    for proc in procs:
        assert proc.wait(timeout=180) == 0, proc.stderr.read()
    ex = xg.Experiment("together", backend=tmp_path / "store")
    assert ex.get_history().index.tolist() == list(range(1, 13))
    store = ex.artifact_store
    assert [kind for kind, *_ in store.stored()] == ["object"]  # one copy, no tmp left
    for trial_id in (1, 7, 12):
        restored = ex.get_artifact(trial_id, ex.get_artifacts(trial_id)["path"][0],
                                   tmp_path / f"r{trial_id}")
        assert filecmp.cmp(restored, content, shallow=False)


def test_an_empty_directory_output_comes_back_as_an_empty_directory(make_experiment, tmp_path):
    ex = make_experiment()
    empty = tmp_path / "empty"

    @ex.result
    def write():
        empty.mkdir()
        return ex.output(empty)

    write().compute()
    row = ex.get_artifacts(1).iloc[0]
    assert (row["kind"], row["size"], row["kept"]) == ("directory", 0, True)
    back = ex.get_artifact(1, empty, tmp_path / "back")
    assert back.is_dir() and list(back.iterdir()) == []
