"""Lineage across trials and experiments: who wrote what a trial read.

A trial is linked to an earlier one when one of its steps

* read with ``ex.input(path)`` a file that the other trial wrote with
  ``ex.output(path)`` (same path and content hash), or
* loaded the other's persisted output with ``other_ex.get_persisted(step,
  trial_id)`` (recorded by :func:`note_persisted_read` as an input of kind
  ``persisted``, so a changed upstream trial is also reported as data drift).

The producer is searched among the trials of every experiment in the same store
(``backend.experiment_ids()``) that started before the consumer (in the same
experiment: a lower trial id); when several wrote the same content, the latest
is taken, and the number of candidates is kept on the link (``candidates``).

:func:`upstream_provenance` merges the provenance graphs of the trial and of its
upstream trials (nodes of upstream trials are prefixed ``"<experiment>:<trial>/"``;
every node has ``experiment_id`` and ``trial_id``), joined by ``produced`` edges
from a producer's output (or persisted step) to the consumer's input.
:func:`render_tree` and :func:`render_dot` print the chain.
"""
from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from .errors import BackendError, CorruptRecordError, TrialIDNotFoundError

if TYPE_CHECKING:
    import networkx as nx

    from .backends.base import Backend
    from .records import TrialRecord

logger = logging.getLogger(__name__)

TrialKey = tuple[str, int]  # (experiment id, trial id)


def note_persisted_read(experiment_id: str, trial_id: int, step: str, blob: str | None,
                        backend: str | None = None) -> None:
    """Inside a step: record that it loaded a persisted output (a no-op outside a trial);
    ``backend`` is the URI of the store that experiment is recorded in."""
    from .hooks import current_scope

    scope = current_scope()
    if scope is None:
        return
    scope.inputs.append({"path": f"persisted:{experiment_id}/{trial_id}/{step}",
                         "kind": "persisted", "hash": blob, "experiment_id": experiment_id,
                         "trial_id": trial_id, "step": step, "backend": backend})


@dataclasses.dataclass(frozen=True)
class Link:
    """``consumer``'s step ``step`` read ``path`` (``hash``), written by ``producer``'s
    step ``producer_step`` (None: no recorded trial wrote it: a first input)."""

    consumer: TrialKey
    step: str
    kind: str  # "file" or "persisted"
    path: str
    hash: str | None
    producer: TrialKey | None
    producer_step: str | None
    candidates: int = 0
    #: the store the producer is recorded in, when it is not the consumer's own
    where: str | None = None


class _Store:
    """The records of every experiment in one store, read on demand (once each)."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.backends: dict[str, Backend] = {backend.experiment_id: backend}
        self.records: dict[str, list[TrialRecord]] = {}
        self._index: dict[tuple[str, str], list[tuple[TrialRecord, str]]] | None = None

    def backend_of(self, experiment_id: str) -> Backend:
        if experiment_id not in self.backends:
            self.backends[experiment_id] = self.backend.for_experiment(experiment_id)
        return self.backends[experiment_id]

    def trials(self, experiment_id: str) -> list[TrialRecord]:
        if experiment_id not in self.records:
            try:
                self.records[experiment_id] = self.backend_of(experiment_id).read_trials()
            except BackendError as exc:
                logger.warning("Lineage skips experiment %s: %s", experiment_id, exc)
                self.records[experiment_id] = []
        return self.records[experiment_id]

    def trial(self, experiment_id: str, trial_id: int) -> TrialRecord | None:
        for record in self.trials(experiment_id):
            if record.trial_id == trial_id:
                return record
        try:
            return self.backend_of(experiment_id).read_trial(trial_id)
        except (TrialIDNotFoundError, CorruptRecordError, BackendError):
            return None

    def writers(self, path: str, content_hash: str) -> list[tuple[TrialRecord, str]]:
        if self._index is None:
            self._index = {}
            try:
                ids = self.backend.experiment_ids()
            except BackendError as exc:
                logger.warning("Lineage sees only experiment %s: %s",
                               self.backend.experiment_id, exc)
                ids = []
            for experiment_id in dict.fromkeys([self.backend.experiment_id, *ids]):
                for record in self.trials(experiment_id):
                    for step in record.steps:
                        for item in step.outputs:
                            if item.get("hash") and item.get("kind") != "model":
                                self._index.setdefault((item["path"], item["hash"]), []).append(
                                    (record, step.step))
        return self._index.get((path, content_hash), [])


def _before(producer: TrialRecord, consumer: TrialRecord) -> bool:
    if producer.experiment_id == consumer.experiment_id:
        return producer.trial_id < consumer.trial_id
    return producer.started <= consumer.started


def trace(backend: Backend, record: TrialRecord, location: str | None = None
          ) -> tuple[dict[TrialKey, TrialRecord], list[Link]]:
    """The trial and every trial upstream of it, and the links between them.

    ``location``: the artifact location the trial's experiment shares with others
    (``artifacts=``); its ``.producers/`` index finds writers recorded in other stores.
    Their keys are ``("<experiment> in <store uri>", trial id)``; one whose store cannot
    be opened from here is a link without a record (``Link.where`` names the store).
    """
    root_store = _Store(backend)
    stores: dict[str, _Store | None] = {backend.uri: root_store}
    root = (record.experiment_id, record.trial_id)
    trials: dict[TrialKey, TrialRecord] = {root: record}
    links: list[Link] = []
    todo: list[tuple[TrialRecord, _Store]] = [(record, root_store)]
    while todo:
        consumer, store = todo.pop()
        key = _key(consumer, store, root_store)
        seen: set[tuple[str, str, Any]] = set()
        for step in consumer.steps:
            for item in step.inputs:
                ident = (step.step, item["path"], item.get("hash"))
                if ident in seen:
                    continue
                seen.add(ident)
                producer: TrialRecord | None = None
                producer_store = store
                producer_step = None
                candidates = 0
                where = None
                own = [s.step for s in consumer.steps for o in s.outputs
                       if o["path"] == item["path"] and o.get("hash") == item.get("hash")
                       and s.step != step.step]
                if own and item.get("kind") != "persisted":  # written earlier in this trial
                    links.append(Link(key, step.step, "file", item["path"], item.get("hash"),
                                      key, own[0], 1))
                    continue
                if item.get("kind") == "persisted":
                    kind = "persisted"
                    producer_step = str(item["step"])
                    where = item.get("backend")
                    if where and where != store.backend.uri:
                        if where not in stores:
                            stores[where] = _open_store(where, str(item["experiment_id"]))
                        producer_store = stores[where]  # type: ignore[assignment]
                    producer = None if producer_store is None else producer_store.trial(
                        str(item["experiment_id"]), int(item["trial_id"]))
                    if producer is not None and not any(
                            s.step == producer_step and s.persisted == item.get("hash")
                            for s in producer.steps):
                        logger.warning(
                            "Lineage: trial %s of %s in %s has no persisted output %s of step "
                            "%s (the store was changed?); not linked.", item["trial_id"],
                            item["experiment_id"], producer_store.backend.uri,  # type: ignore[union-attr]
                            item.get("hash"), producer_step)
                        producer = None
                    if producer is None:
                        producer_store = store
                    candidates = 1 if producer is not None else 0
                else:
                    kind = "file"
                    if item.get("hash") and item.get("size") != 0:
                        found = [(r, s) for r, s in store.writers(item["path"], item["hash"])
                                 if _before(r, consumer)]
                        candidates = len({(r.experiment_id, r.trial_id) for r, _ in found})
                        if found:
                            producer, producer_step = max(found, key=lambda f: f[0].started)
                        elif location:
                            note = _noted_writer(location, item, consumer, store)
                            if note is not None:
                                candidates, where = note[1], str(note[0]["backend"])
                                producer_step = str(note[0]["step"])
                                if where not in stores:
                                    stores[where] = _open_store(
                                        where, str(note[0]["experiment_id"]))
                                other = stores[where]
                                trial_id = int(note[0]["trial_ids"][0])
                                producer = None if other is None else other.trial(
                                    str(note[0]["experiment_id"]), trial_id)
                                if producer is None:  # named, but not readable from here
                                    label = f"{note[0]['experiment_id']} in {where}"
                                    links.append(Link(key, step.step, kind, item["path"],
                                                      item.get("hash"), (label, trial_id),
                                                      producer_step, candidates, where))
                                    continue
                                producer_store = other  # type: ignore[assignment]
                pkey = _key(producer, producer_store, root_store) if producer else None
                links.append(Link(key, step.step, kind, item["path"], item.get("hash"), pkey,
                                  producer_step, candidates,
                                  where if producer_store is not root_store else None))
                if producer is not None and pkey not in trials:
                    trials[pkey] = producer  # type: ignore[index]
                    todo.append((producer, producer_store))
    return trials, links


def _key(record: TrialRecord, store: _Store, root: _Store) -> TrialKey:
    if store is root:
        return (record.experiment_id, record.trial_id)
    return (f"{record.experiment_id} in {store.backend.uri}", record.trial_id)


def _noted_writer(location: str, item: Any, consumer: TrialRecord, store: _Store
                  ) -> tuple[dict[str, Any], int] | None:
    """The latest trial of another store that kept this content before ``consumer``
    started (same path first), from the artifact location's index, and how many did."""
    from .artifacts import producers

    started = consumer.started.timestamp()
    notes = [n for n in producers(location, str(item["hash"]))
             if n.get("backend") != store.backend.uri and n.get("time", 0) <= started
             and n.get("trial_ids")]
    if not notes:
        return None
    same_path = [n for n in notes if n.get("path") == item["path"]]
    chosen = (same_path or notes)[-1]
    return chosen, len({(n.get("backend"), n.get("experiment_id"), tuple(n["trial_ids"]))
                        for n in notes})


def _open_store(uri: str, experiment_id: str) -> _Store | None:
    """The store at ``uri`` (as another store recorded it), or None if it cannot be opened."""
    from .backends import resolve_backend

    try:
        return _Store(resolve_backend(uri, experiment_id))
    except Exception as exc:  # a masked password, a store not reachable from here
        logger.info("Lineage cannot open the store %s: %s", uri, exc)
        return None


def _prefix(key: TrialKey, root: TrialKey) -> str:
    return "" if key == root else f"{key[0]}:{key[1]}/"


def upstream_provenance(backend: Backend, record: TrialRecord, location: str | None = None
                        ) -> nx.DiGraph:
    """The provenance graph of a trial and of every trial upstream of it (see the module)."""
    import networkx as nx

    from .provenance import build_provenance

    trials, links = trace(backend, record, location)
    root = (record.experiment_id, record.trial_id)
    g = nx.DiGraph(trial_id=record.trial_id, experiment_id=record.experiment_id,
                   upstream=True, links=links)
    for key, rec in trials.items():
        sub = build_provenance(rec)
        prefix = _prefix(key, root)
        for node, data in sub.nodes(data=True):
            g.add_node(prefix + node, **data, experiment_id=key[0], trial_id=key[1])
        for a, b, data in sub.edges(data=True):
            g.add_edge(prefix + a, prefix + b, **data)
        g.add_node(f"trial:{key[0]}:{key[1]}", kind="trial", experiment_id=key[0],
                   trial_id=key[1], label=f"{key[0]} trial {key[1]}",
                   status=rec.status.value, parameters=dict(rec.parameters))
    for link in links:
        if link.producer is None or link.producer == link.consumer:
            continue  # a first input, or a file written earlier in the same trial
        consumer_node = _prefix(link.consumer, root) + f"file:{link.path}"
        producer_prefix = _prefix(link.producer, root)
        producer = trials.get(link.producer)
        if producer is None:  # recorded in a store that cannot be read from here
            trial_node = f"trial:{link.producer[0]}:{link.producer[1]}"
            g.add_node(trial_node, kind="trial", experiment_id=link.producer[0],
                       trial_id=link.producer[1], label=f"{link.producer[0]} trial "
                       f"{link.producer[1]}", status=None, parameters=None, where=link.where)
            g.add_edge(trial_node, consumer_node, kind="produced")
            continue
        if link.kind == "file":
            source = producer_prefix + f"file:{link.path}"
        else:
            steps = [s for s in producer.steps if s.step == link.producer_step]
            if not steps:
                continue
            source = producer_prefix + steps[-1].key
        g.add_edge(source, consumer_node, kind="produced")
        g.add_edge(f"trial:{link.producer[0]}:{link.producer[1]}", source, kind="trial")
    return g


def render_tree(backend: Backend, record: TrialRecord, location: str | None = None) -> str:
    """The upstream chain of a trial as an indented tree (``experigraph lineage``)."""
    trials, links = trace(backend, record, location)
    by_consumer: dict[TrialKey, list[Link]] = {}
    for link in links:
        by_consumer.setdefault(link.consumer, []).append(link)

    def title(key: TrialKey) -> str:
        rec = trials.get(key)
        if rec is None:
            return f"{key[0]} trial {key[1]} (its store cannot be read from here)"
        params = ", ".join(f"{k}={v!r}" for k, v in rec.parameters.items())
        return f"{key[0]} trial {key[1]} ({rec.status.value}){': ' + params if params else ''}"

    lines = [title((record.experiment_id, record.trial_id))]

    def walk(key: TrialKey, indent: str, path: tuple[TrialKey, ...]) -> Iterator[str]:
        items = by_consumer.get(key, [])
        for n, link in enumerate(items):
            last = n == len(items) - 1
            branch, further = ("└── ", "    ") if last else ("├── ", "│   ")
            short = (link.hash or "?")[:12]
            what = (f"loads {link.path[len('persisted:'):]}" if link.kind == "persisted"
                    else f"reads {link.path} [{short}]")
            yield f"{indent}{branch}step {link.step} {what}"
            inner = indent + further
            if link.producer is None:
                yield f"{inner}└── (first input: no recorded trial wrote it)"
                continue
            if link.producer == key:
                yield f"{inner}└── written by step {link.producer_step} of this trial"
                continue
            more = f", 1 of {link.candidates} trials that wrote it" if link.candidates > 1 else ""
            verb = "persisted by" if link.kind == "persisted" else "written by"
            yield f"{inner}└── {verb} {title(link.producer)}, step {link.producer_step}{more}"
            if link.producer in path or link.producer not in trials:
                yield f"{inner}    └── (already shown above)"
                continue
            yield from walk(link.producer, inner + "    ", (*path, link.producer))

    lines += list(walk((record.experiment_id, record.trial_id), "", ((record.experiment_id,
                                                                       record.trial_id),)))
    return "\n".join(lines) + "\n"


def render_dot(graph: nx.DiGraph) -> str:
    """A provenance graph as graphviz ``dot`` text."""
    def quote(text: Any) -> str:
        return '"' + str(text).replace("\\", "\\\\").replace('"', '\\"').replace(
            "\n", "\\n") + '"'

    shapes = {"parameter": "ellipse", "step": "box", "file": "note", "trial": "folder"}
    lines = ["digraph lineage {", "  rankdir=LR;"]
    for node, data in graph.nodes(data=True):
        label = data.get("label", node)
        if data.get("kind") == "file" and data.get("hash"):
            label = f"{label}\n{str(data['hash'])[:12]}"
        lines.append(f"  {quote(node)} [label={quote(label)}, "
                     f"shape={shapes.get(data.get('kind', ''), 'box')}];")
    for a, b, data in graph.edges(data=True):
        style = ' [style=dashed, label="produced"]' if data.get("kind") == "produced" else ""
        lines.append(f"  {quote(a)} -> {quote(b)}{style};")
    lines.append("}")
    return "\n".join(lines) + "\n"
