"""Lineage across trials and experiments: files one trial wrote and another read, and
persisted outputs of another experiment loaded in a step."""
from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

import experigraph as xg

from versioning_setup import setup  # noqa: F401 - the fixture
from xg_testing import python_env

pytestmark = pytest.mark.timeout(240)

PREPROCESS = textwrap.dedent('''
    import experigraph as xg

    ex = xg.Experiment(id="preprocess")
    threshold = ex.parameter("threshold", default=0)


    @ex.result
    def clean(threshold):
        with open(ex.input("raw.csv")) as f:
            rows = [int(line) for line in f if line.strip()]
        kept = [r for r in rows if r > threshold]
        with open("clean.csv", "w") as f:
            f.write("\\n".join(map(str, kept)) + "\\n")
        ex.output("clean.csv")
        return len(kept)


    clean(threshold)
''')

MODELLING = textwrap.dedent('''
    import experigraph as xg

    ex = xg.Experiment(id="modelling")
    scale = ex.parameter("scale", default=1)


    @ex
    def load():
        with open(ex.input("clean.csv")) as f:
            return [int(line) for line in f if line.strip()]


    @ex.result
    def fit(rows, scale):
        model = {"mean": scale * sum(rows) / len(rows)}
        ex.model(model, "mean_model")
        with open("predictions.csv", "w") as f:
            f.write(f"{model['mean']}\\n")
        ex.output("predictions.csv")
        return model["mean"]


    fit(load(), scale)
''')


def run(*args, cwd):
    env = python_env()
    env.pop("EXPERIGRAPH_BACKEND", None)
    return subprocess.run([sys.executable, "-m", "experigraph.cli", *map(str, args)], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=180)


def test_preprocess_then_modelling_lineage_through_the_cli(tmp_path):
    (tmp_path / "preprocess.py").write_text(PREPROCESS)
    (tmp_path / "modelling.py").write_text(MODELLING)
    (tmp_path / "raw.csv").write_text("1\n5\n-3\n8\n")
    for args in (("run", "preprocess.py"), ("run", "preprocess.py", "threshold=4"),
                 ("run", "modelling.py", "scale=2")):
        proc = run(*args, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
    # modelling trial 1 read the clean.csv that preprocess trial 2 (threshold=4) wrote
    tree = run("lineage", "modelling", 1, cwd=tmp_path)
    assert tree.returncode == 0, tree.stderr
    lines = tree.stdout.splitlines()
    assert lines[0] == "modelling trial 1 (succeeded): scale=2"
    clean, raw = str(tmp_path / "clean.csv"), str(tmp_path / "raw.csv")
    assert f"step load reads {clean}" in lines[1]
    assert "written by preprocess trial 2 (succeeded): threshold=4, step clean" in lines[2]
    assert f"step clean reads {raw}" in lines[3]
    assert "(first input: no recorded trial wrote it)" in lines[4]
    assert len(lines) == 5, tree.stdout

    dot = run("lineage", "modelling", 1, "--format", "dot", cwd=tmp_path)
    assert dot.returncode == 0, dot.stderr
    assert dot.stdout.startswith("digraph lineage {")
    assert f'"preprocess:2/file:{clean}" -> "file:{clean}" [style=dashed, label="produced"];' \
        in dot.stdout
    assert '"trial:preprocess:2"' in dot.stdout

    bad = run("lineage", "modelling", 9, cwd=tmp_path)
    assert bad.returncode == 1 and "Trial 9 is not recorded" in bad.stderr

    ex = xg.Experiment("modelling", backend=tmp_path / "experigraph_cache")
    g = ex.get_provenance(1, upstream=True)
    assert g.nodes["trial:preprocess:2"]["parameters"] == {"threshold": 4}
    assert g.nodes[f"preprocess:2/file:{raw}"]["kind"] == "file"
    assert [link.producer for link in g.graph["links"] if link.path == clean] == [
        ("preprocess", 2)]
    # the plain provenance graph is unchanged: no upstream nodes
    assert not any(n.startswith("preprocess:") for n in ex.get_provenance(1))


def test_persisted_output_of_another_experiment_is_linked(setup):
    prep = setup("prep")
    source = prep.parameter("source")

    @prep.persist
    def features(source):
        return [source, source * 2]

    @prep.result
    def done(f):
        return len(f)

    done(features(source))
    prep.set_parameters(source=1).compute()
    prep.set_parameters(source=10).compute()

    model = setup("model")
    which = model.parameter("which")

    @model.result
    def fit(which):
        return sum(prep.get_persisted("features", which))

    fit(which)
    assert model.set_parameters(which=1).compute() == 3
    assert model.set_parameters(which=2).compute() == 30
    record = model.get_trial(2)
    loaded = record.steps[0].inputs[0]
    assert (loaded["kind"], loaded["experiment_id"], loaded["trial_id"], loaded["step"]) == (
        "persisted", prep.id, 2, "features")
    g = model.get_provenance(2, upstream=True)
    producer = next(n for n, d in g.nodes(data=True) if d.get("kind") == "step"
                    and d.get("experiment_id") == prep.id)
    assert g.nodes[producer]["trial_id"] == 2
    assert g.has_edge(producer, f"file:persisted:{prep.id}/2/features")
    from experigraph.lineage import render_tree

    text = render_tree(model.backend, record)
    assert f"loads {prep.id}/2/features" in text
    assert f"persisted by {prep.id} trial 2 (succeeded): source=10, step features" in text


def test_within_one_experiment_the_latest_earlier_writer_is_the_producer(make_experiment,
                                                                        tmp_path):
    ex = make_experiment()
    role, value = ex.parameter("role"), ex.parameter("value", default=0)
    shared = tmp_path / "shared.txt"

    @ex.result
    def step(role, value):
        if role == "write":
            shared.write_text(str(value))
            ex.output(shared)
            return value
        with open(ex.input(shared)) as f:
            return int(f.read())

    step(role, value)
    ex.set_parameters(role="write", value=7).compute()  # 1
    ex.set_parameters(role="write", value=8).compute()  # 2
    ex.set_parameters(role="write", value=7).compute()  # 3: same content as trial 1
    ex.set_parameters(role="read").compute()            # 4
    from experigraph.lineage import trace

    _, links = trace(ex.backend, ex.get_trial(4))
    assert [(link.producer, link.candidates) for link in links] == [((ex.id, 3), 2)]
    # and a reader earlier than any writer has no producer
    _, links = trace(ex.backend, ex.get_trial(1))
    assert links == []


def test_a_file_written_and_read_in_one_trial_is_not_an_upstream_trial(make_experiment,
                                                                      tmp_path):
    ex = make_experiment()
    path = tmp_path / "mid.txt"

    @ex
    def write():
        path.write_text("x")
        return str(ex.output(path))

    @ex.result
    def read(p):
        return open(ex.input(p)).read()

    read(write()).compute()
    from experigraph.lineage import render_tree, trace

    trials, links = trace(ex.backend, ex.get_trial(1))
    assert list(trials) == [(ex.id, 1)]
    assert "written by step write of this trial" in render_tree(ex.backend, ex.get_trial(1))


def test_a_file_another_experiment_wrote_is_linked_on_every_store(setup, tmp_path):
    producer, consumer = setup("producer"), setup("consumer")
    shared = tmp_path / "features.csv"
    n = producer.parameter("n")

    @producer.result
    def write(n):
        shared.write_text("\n".join(str(i) for i in range(n)) + "\n")
        return str(producer.output(shared))

    write(n)
    producer.set_parameters(n=3).compute()
    producer.set_parameters(n=5).compute()

    @consumer.result
    def read():
        with open(consumer.input(shared)) as f:
            return len(f.read().split())

    assert read().compute() == 5
    from experigraph.lineage import trace

    trials, links = trace(consumer.backend, consumer.get_trial(1))
    assert [link.producer for link in links] == [(producer.id, 2)]
    assert trials[(producer.id, 2)].parameters == {"n": 5}
    tree = consumer.lineage_tree(1)
    assert f"written by {producer.id} trial 2 (succeeded): n=5, step write" in tree
    # what the producer wrote is kept: trial 1's version comes back too
    assert producer.get_artifact(1, shared, tmp_path / "v1.csv").read_text() == "0\n1\n2\n"


def test_experiments_in_different_stores_sharing_an_artifact_location_are_linked(tmp_path):
    shared_location = tmp_path / "team-artifacts"
    data = tmp_path / "clean.csv"
    prep = xg.Experiment("prep", backend=tmp_path / "ana", artifacts=shared_location)
    level = prep.parameter("level")

    @prep.result
    def clean(level):
        data.write_text(f"{level}\n")
        return str(prep.output(data))

    clean(level)
    prep.set_parameters(level=1).compute()
    prep.set_parameters(level=2).compute()

    model = xg.Experiment("model", backend=tmp_path / "bo", artifacts=shared_location)

    @model.result
    def fit():
        return int(open(model.input(data)).read())

    assert fit().compute() == 2
    tree = model.lineage_tree(1)
    where = (tmp_path / "ana").absolute().as_uri()
    assert f"written by prep in {where} trial 2 (succeeded): level=2, step clean" in tree, tree
    g = model.get_provenance(1, upstream=True)
    assert g.nodes[f"trial:prep in {where}:2"]["parameters"] == {"level": 2}
    # through the CLI, with the location given
    proc = run("lineage", "model", 1, "--backend", tmp_path / "bo", "--artifacts",
               shared_location, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert f"written by prep in {where} trial 2" in proc.stdout
    # without the shared location, the other store is not searched
    alone = xg.Experiment("model", backend=tmp_path / "bo")
    assert "(first input: no recorded trial wrote it)" in alone.lineage_tree(1)
    # a store that cannot be opened from here is still named
    import shutil

    shutil.rmtree(tmp_path / "ana")
    assert f"written by prep in {where} trial 2 (its store cannot be read from here), " \
        "step clean" in model.lineage_tree(1)


def test_a_persisted_output_from_another_store_is_never_taken_for_a_namesake(tmp_path):
    def prep_in(store, factor):
        prep = xg.Experiment("prep", backend=store)

        @prep.persist
        def features():
            return [factor]

        @prep.result
        def done(f):
            return f[0]

        done(features()).compute()
        return prep

    remote = prep_in(tmp_path / "theirs", 10)
    prep_in(tmp_path / "ours", 99)  # a namesake: experiment "prep", trial 1, in our store
    model = xg.Experiment("model", backend=tmp_path / "ours")

    @model.result
    def fit():
        return remote.get_persisted("features", 1)[0]

    assert fit().compute() == 10
    tree = model.lineage_tree(1)
    theirs = (tmp_path / "theirs").absolute().as_uri()
    assert f"persisted by prep in {theirs} trial 1 (succeeded), step features" in tree, tree
