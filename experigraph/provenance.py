"""The provenance graph of a trial, built from its records.

Nodes are identified by strings and carry a ``kind`` attribute:

* ``parameter:<name>``: a parameter (``value``, ``hash``);
* ``<step key>``: one step call (``label`` = step name, ``duration``,
  ``input_hash``, ``output_hash``, ``code_hash``, ``succeeded``, ``persisted``);
* ``file:<path>``: a data file read with ``ex.input`` or written with
  ``ex.output`` (``hash``, ``kept``; ``file_kind``: file, directory, ``model``
  for ``file:model:<name>`` recorded with ``ex.model``, ``persisted`` for
  ``file:persisted:<experiment>/<trial>/<step>`` loaded with ``get_persisted``);
* ``trial:<id>``: an earlier trial that wrote a file this trial read (same path and
  content hash).

Edges point from what was used to what used it: parameter -> step, step ->
step, input file -> step, step -> output file, and producing trial -> file.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import networkx as nx

from .errors import NotRecordedError
from .hashing import value_hash
from .records import TrialRecord


def build_provenance(record: TrialRecord, others: Iterable[TrialRecord] = ()) -> nx.DiGraph:
    """The provenance graph of ``record``; ``others`` are searched for producers of its inputs."""
    g = nx.DiGraph(trial_id=record.trial_id, experiment_id=record.experiment_id)
    for name, value in record.parameters.items():
        g.add_node(f"parameter:{name}", kind="parameter", label=name, value=value,
                   hash=value_hash(value))
    keys = {s.key for s in record.steps}
    for step in record.steps:
        g.add_node(step.key, kind="step", label=step.step, duration=step.duration,
                   input_hash=step.input_hash, output_hash=step.output_hash,
                   code_hash=step.code_hash, succeeded=step.succeeded, error=step.error,
                   persisted=step.persisted, trial_ids=step.trial_ids)
        for name in step.parameters:
            g.add_edge(f"parameter:{name}", step.key)
        for dep in step.dependencies:
            if dep in keys:
                g.add_edge(dep, step.key)
        for item in step.inputs:  # kind "persisted": another trial's persisted output
            node = f"file:{item['path']}"
            g.add_node(node, kind="file", label=item["path"], hash=item.get("hash"),
                       file_kind=item.get("kind"), kept=bool(item.get("kept")))
            g.add_edge(node, step.key)
        for item in step.outputs:  # kind "model": a model recorded with ex.model
            node = f"file:{item['path']}"
            g.add_node(node, kind="file", label=item["path"], hash=item.get("hash"),
                       file_kind=item.get("kind"), kept=bool(item.get("kept")))
            g.add_edge(step.key, node)
    wanted = {i["path"]: i.get("hash") for s in record.steps for i in s.inputs}
    if wanted:
        for other in others:
            if other.trial_id >= record.trial_id:  # only earlier trials can have produced it
                continue
            for step in other.steps:
                for item in step.outputs:
                    if item.get("hash") and wanted.get(item["path"]) == item["hash"]:
                        node = f"trial:{other.trial_id}"
                        g.add_node(node, kind="trial", label=f"trial {other.trial_id}",
                                   step=step.step)
                        g.add_edge(node, f"file:{item['path']}")
    return g


def lineage(g: nx.DiGraph, step: str) -> dict[str, list[Any]]:
    """What contributed to the (last) call of ``step``: steps, parameters, files, trials."""
    calls = [n for n, d in g.nodes(data=True) if d.get("kind") == "step" and d["label"] == step]
    if not calls:
        steps = sorted({d["label"] for _, d in g.nodes(data=True) if d.get("kind") == "step"})
        raise NotRecordedError(f"Step {step!r} did not run in trial {g.graph.get('trial_id')} "
                       f"(steps: {', '.join(steps) or 'none'}).")
    ancestors = nx.ancestors(g, calls[-1])
    out: dict[str, list[Any]] = {"steps": [], "parameters": [], "files": [], "trials": []}
    for node in nx.topological_sort(g.subgraph(ancestors)):
        data = g.nodes[node]
        kind = data["kind"]
        if kind == "step":
            out["steps"].append(data["label"])
        elif kind == "parameter":
            out["parameters"].append(data["label"])
        elif kind == "file":
            out["files"].append(data["label"])
        elif kind == "trial":
            out["trials"].append(int(node.split(":", 1)[1]))
    return out
