"""What changed between trials besides the parameters: checks and messages.

Step outputs (checked when a trial finishes, in the trial's own process):

* **impurity**: a step's output hash differs from the last one recorded for the
  same *reference key*: step, code hash, input hash and the hashes of the files
  it read with ``ex.input``. The trial seed is not part of that key for a step
  that did not use the trial's randomness (``ex.rng()`` or the seeded global
  generators, see :func:`experigraph.hooks.drew_since`); a step that did is
  also checked under (reference key, seed), so it is impure when its output
  changes under the same seed. WARNING and ``DriftEvent("impurity")``.
* **seed-dependence**: a step that used the trial's randomness gives another
  output under another seed, nothing else changed. INFO and
  ``DriftEvent("seed")``; not impurity.
* **data**: a file read with ``ex.input`` has another content under the same
  step inputs. WARNING and ``DriftEvent("data")``.

A value without a deterministic hash (``output_hash``/``input_hash`` None) is
"not hashed": never checked, so never impure. Each change is reported once: the
new output becomes the reference. A step seen impure is remembered per (step,
code hash), so ``cache=True`` never serves its saved output again.

Code (checked when a trial starts): a step's normalised code hash changed
(``"code"``, WARNING, with the diff), only its text changed (``"code-cosmetic"``,
INFO), or its declaration changed, ``@ex`` to ``@ex.persist`` or ``cache=True``
on or off (``"declaration"``, WARNING, with the diff; the code hash, and so the
impurity and cache keys, are unchanged).
"""
from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .code import unified_diff
from .hashing import comparable
from .present import short
from .records import DriftEvent, StepRecord, TrialRecord

if TYPE_CHECKING:
    from .backends.base import Backend

logger = logging.getLogger(__name__)


#: the DriftEvent kinds, and what each means
KINDS = {
    "code": "a step's code changed",
    "code-cosmetic": "only comments, docstrings or layout of a step changed",
    "declaration": "a step's decorator changed (@ex, @ex.persist, cache=True)",
    "environment": "platform, Python, packages, NumPy build or git state changed",
    "data": "a file read with ex.input changed under the same step inputs",
    "impurity": "a step's output changed with the same code, inputs and files",
    "seed": "a step that used the trial's randomness gave another output under another seed",
}

IMPURITY_MESSAGE = "Step result changed with the same input: {step}"
SEED_MESSAGE = "Step result depends on the seed: {step}"
DATA_MESSAGE = "Input data has been changed: {path}"


#: the rules output hashes are made by (``hashing.output_hash``), in every reference key:
#: a version that hashes outputs another way neither reads nor writes this one's
#: references, so neither compares hashes it cannot tell apart (a false impurity)
REFERENCE_RULES = "h2"


def reference_key(rec: StepRecord) -> str:
    """The key a step's output is compared under (index namespace ``"outputs"``): the
    hashing rules, step, code, inputs, files read."""
    return (f"{REFERENCE_RULES}:{rec.step}:{rec.code_hash}:{rec.input_hash}"
            + "".join(f":{i.get('hash')}" for i in rec.inputs))


def taint_key(step: str, code_hash: str) -> str:
    """Where a step seen impure is remembered (index namespace ``"taint"``; ``cache=True``
    never serves it)."""
    return f"{step}:{code_hash}"


def _reference(output_hash: str, seed: int, used_seed: bool) -> str:
    return f"{output_hash} {seed} {int(used_seed)}"


def _parse_reference(value: str) -> tuple[str, int | None, bool]:
    parts = value.split(" ")
    if len(parts) != 3:
        return value, None, True  # unknown form: as if it used a seed (never invents)
    try:
        return parts[0], int(parts[1]), parts[2] == "1"
    except ValueError:
        return parts[0], None, True


def _describe_inputs(rec: StepRecord, parameters: Mapping[str, Any]) -> str:
    parts = [f"{n}={short(parameters[n], 40)}" for n in rec.parameters if n in parameters]
    parts += [f"output of {d.rsplit('-', 1)[0]}" for d in rec.dependencies]
    parts += [f"file {os.path.basename(str(i.get('path')))}" for i in rec.inputs]
    what = ", ".join(parts) or "no arguments"
    return f"inputs: {what}; input hash {rec.input_hash}"


@dataclasses.dataclass(frozen=True)
class OutputCheck:
    """What a finished trial's steps put in the key index (``index``: namespace ->
    {key: value}) and what the replaced values are compared for (:func:`output_events`)."""

    checked: tuple[StepRecord, ...]
    data: Mapping[str, tuple[StepRecord, Mapping[str, Any]]]
    index: Mapping[str, Mapping[str, str]]


def output_check(steps: Sequence[StepRecord], *, seed: int) -> OutputCheck | None:
    """The index entries of a finished trial's steps (None: nothing to check): each
    output's reference, and each file read with unchanged inputs."""
    ran = [r for r in steps if not r.cached and r.input_hash is not None]
    checked = tuple(r for r in ran if r.succeeded and r.output_hash is not None)
    hashes: dict[str, str] = {}
    for rec in checked:
        key = reference_key(rec)
        hashes[key] = _reference(rec.output_hash, seed, rec.used_seed)  # type: ignore[arg-type]
        if rec.used_seed:
            hashes[f"{key}:seed={seed}"] = rec.output_hash  # type: ignore[assignment]
    data = {f"{rec.step}:{rec.input_hash}:{item['path']}": (rec, item) for rec in ran
            for item in rec.inputs if item.get("hash")}
    if not hashes and not data:
        return None
    return OutputCheck(checked, data, {"outputs": hashes, "data": {
        k: item["hash"] for k, (rec, item) in data.items()}})


def check_outputs(backend: Backend, steps: Sequence[StepRecord], *, seed: int,
                  trial_id: int, parameters: Mapping[str, Any] | None = None
                  ) -> list[DriftEvent]:
    """Impurity, seed-dependence and data drift of a finished trial's steps, in one
    batch of swaps (see the module docstring). Logs each event once."""
    check = output_check(steps, seed=seed)
    if check is None:
        return []
    return output_events(backend, check, backend.index_swap_many(check.index), seed=seed,
                         trial_id=trial_id, parameters=parameters)


def output_events(backend: Backend, check: OutputCheck,
                  swapped: Mapping[str, Mapping[str, str | None]], *, seed: int,
                  trial_id: int, parameters: Mapping[str, Any] | None = None
                  ) -> list[DriftEvent]:
    """The drift events of ``check`` given the values its index entries replaced
    (``swapped``): data drift, impurity (its step tainted in the index), seed-dependence.
    Logs each event once."""
    parameters = parameters or {}
    olds = swapped["outputs"]
    events = []
    for key, (rec, item) in check.data.items():
        old = swapped["data"][key]
        if old is not None and old != item["hash"]:
            message = DATA_MESSAGE.format(path=item["path"])
            logger.warning("%s (read by step %s with unchanged inputs): hash %s, previously %s",
                           message, rec.step, item["hash"], old)
            events.append(DriftEvent("data", item["path"], message, (), {
                "step": rec.step, "old_hash": old, "new_hash": item["hash"]}))
    tainted: dict[str, str] = {}
    for rec in check.checked:
        key = reference_key(rec)
        verdict = _verdict(rec, seed, olds.get(key),
                           olds.get(f"{key}:seed={seed}") if rec.used_seed else None)
        if verdict is None:
            continue
        kind, previous, previous_seed = verdict
        detail = {"input_hash": rec.input_hash, "output_hash": rec.output_hash,
                  "previous_output_hash": previous, "code_hash": rec.code_hash,
                  "seed": seed, "previous_seed": previous_seed, "used_seed": rec.used_seed}
        if kind == "impurity":
            message = IMPURITY_MESSAGE.format(step=rec.step)
            logger.warning("%s (%s%s): output hash %s, previously %s", message,
                           _describe_inputs(rec, parameters),
                           f"; seed {seed}" if rec.used_seed else "", rec.output_hash, previous)
            tainted[taint_key(rec.step, rec.code_hash)] = f"impurity in trial {trial_id}"
        else:
            message = SEED_MESSAGE.format(step=rec.step)
            logger.info("%s (%s): output hash %s under seed %d, previously %s under seed %s",
                        message, _describe_inputs(rec, parameters), rec.output_hash, seed,
                        previous, previous_seed)
        events.append(DriftEvent(kind, rec.step, message, (), detail))
    if tainted:
        backend.index_swap("taint", tainted)
    return events


def _verdict(rec: StepRecord, seed: int, reference: str | None, same_seed: str | None
             ) -> tuple[str, str, int | None] | None:
    """("impurity" | "seed", previous output hash, previous seed), or None: no change
    (or no comparable reference: hashes made another way, see ``hashing.comparable``)."""
    output = rec.output_hash or ""
    if same_seed is not None and same_seed != output and comparable(same_seed, output):
        return "impurity", same_seed, seed
    if reference is None:
        return None
    previous, previous_seed, previous_used = _parse_reference(reference)
    if previous == output or not comparable(previous, output):
        return None
    if not rec.used_seed and not previous_used:
        return "impurity", previous, previous_seed  # no randomness: the seed is no excuse
    if previous_seed is None or previous_seed != seed:
        return "seed", previous, previous_seed
    return "impurity", previous, previous_seed  # the same seed is no excuse either


# -- code ------------------------------------------------------------------------------
def declaration(kind: str, cache: bool) -> str:
    """How a step is declared: ``@ex``, ``@ex.persist``, ``@ex.step(cache=True)``..."""
    if cache:
        return "@ex.step(cache=True)"
    return {"step": "@ex", "persist": "@ex.persist", "result": "@ex.result"}.get(kind, kind)


def code_drift(previous: TrialRecord | None, code: Mapping[str, Mapping[str, str]],
               read_source: Callable[[str], str | None]) -> list[DriftEvent]:
    """Drift events (and their log lines) for steps whose code or declaration changed
    since ``previous``."""
    if previous is None:
        return []
    events = []
    for step, entry in code.items():
        old = previous.code.get(step)
        if old is None or old.get("source_hash") == entry["source_hash"]:
            continue
        diff = unified_diff(read_source(old.get("source_hash", "")) or "",
                            read_source(entry["source_hash"]) or "", step)
        detail = {"previous_trial": previous.trial_id, "old_code_hash": old.get("code_hash"),
                  "new_code_hash": entry["code_hash"]}
        before, after = old.get("declaration"), entry.get("declaration")
        if old.get("code_hash") != entry["code_hash"]:
            kind, message = "code", f"Code context has been changed: {step}"
        elif before is not None and after is not None and before != after:
            kind = "declaration"
            message = f"Code context has been changed: {step} (declaration {before} -> {after})"
            detail.update(old_declaration=before, new_declaration=after)
        else:
            message = f"Code context has been changed cosmetically: {step}"
            logger.info("%s (comments, docstrings or layout only)", message)
            events.append(DriftEvent("code-cosmetic", step, message, tuple(diff), detail))
            continue
        logger.warning("%s", message)
        for line in diff:
            logger.warning("%s", line)
        events.append(DriftEvent(kind, step, message, tuple(diff), detail))
    return events


# -- environment -----------------------------------------------------------------------
def git_summary(old: Any, new: Any) -> str:
    """``commit 1a2b3c4 -> 5d6e7f8`` (and branch changes) per repository, for the WARNING
    line of git drift; empty when neither changed (only the diff or dirty flag did)."""
    def by_root(value: Any) -> dict[str, Mapping[str, Any]]:
        repos = (value or {}).get("repositories") or [] if isinstance(value, Mapping) else []
        return {r["root"]: r for r in repos if isinstance(r, Mapping) and "root" in r}

    before, after = by_root(old), by_root(new)
    parts = []
    for root in sorted(set(before) & set(after)):
        a, b = before[root], after[root]
        changes = []
        if a.get("commit") != b.get("commit"):
            changes.append(f"commit {str(a.get('commit'))[:12]} -> {str(b.get('commit'))[:12]}")
        if a.get("branch") != b.get("branch"):
            changes.append(f"branch {a.get('branch')} -> {b.get('branch')}")
        if changes:
            parts.append(", ".join(changes) + (f" in {root}" if len(before) > 1 else ""))
    return "; ".join(parts)


class EnvironmentDrift:
    """The environment of an experiment's trials, and how it changed since the last one.

    Snapshots are cheap after the first (see :mod:`experigraph.environment`); each
    distinct snapshot is stored once as an ``environment`` blob. A change is a
    WARNING and a ``DriftEvent("environment")`` per changed category (built-in or a
    collector's), logged once per process.
    """

    def __init__(self, backend: Backend, collectors: Sequence[Any] = ()) -> None:
        self.backend = backend
        self.collectors = collectors
        self.blobs: dict[str, str] = {}  # fingerprint -> stored blob hash
        self.warned: set[tuple[str, str, int]] = set()  # changes already logged

    def check(self, previous: TrialRecord | None, source_files: Sequence[str], *,
              store: bool = True, skip: Sequence[str] = ()
              ) -> tuple[str | None, list[DriftEvent]]:
        """Snapshot the environment, store it once (``store=False``, when an experiment
        is opened, writes nothing) and compare it with ``previous``'s; ``skip`` leaves
        categories out of the comparison (git, before the steps' files are known).
        Returns the snapshot's blob hash and the drift events."""
        import json

        from . import environment
        from .environment.collector import drift_message

        snap = environment.snapshot(source_files, collectors=self.collectors)
        blob = None
        if store:
            fingerprint = environment.fingerprint(snap)
            blob = self.blobs.get(fingerprint)
            if blob is None:
                data = json.dumps(snap, sort_keys=True, separators=(",", ":")).encode("utf-8")
                blob = self.blobs[fingerprint] = self.backend.put_blob("environment", data)
        if previous is None or not previous.environment_hash \
                or previous.environment_hash == blob:
            return blob, []
        old = self.read(previous.environment_hash)
        if old is None:
            return blob, []
        events = []
        for category, lines in environment.diff_snapshots(
                old, snap, collectors=self.collectors).items():
            if category in skip:
                continue
            message = drift_message(category, self.collectors)
            seen = (previous.environment_hash, category, hash(tuple(lines)))
            if seen not in self.warned:
                self.warned.add(seen)
                summary = git_summary(old.get(category), snap.get(category)) \
                    if category == "git" else ""
                logger.warning("%s (since trial %d)%s", message, previous.trial_id,
                               f": {summary}" if summary else "")
                for line in lines:
                    logger.warning("%s", line)
            events.append(DriftEvent("environment", category, message, tuple(lines),
                                     {"previous_trial": previous.trial_id}))
        return blob, events

    def on_open(self, previous: TrialRecord) -> None:
        """Report drift since ``previous`` when an experiment is opened, before its steps
        are declared: git is compared on the files ``previous``'s steps were in, when
        they are all still there."""
        old = self.read(previous.environment_hash) if previous.environment_hash else None
        repositories = ((old or {}).get("git") or {}).get("repositories") or []
        files = [os.path.join(r["root"], f) for r in repositories if isinstance(r, Mapping)
                 and "root" in r for f in r.get("source_files") or ()]
        if not files or not all(os.path.isfile(f) for f in files):
            self.check(previous, [], store=False, skip=("git",))
        else:
            self.check(previous, files, store=False)

    def read(self, blob_hash: str) -> dict[str, Any] | None:
        """A stored snapshot (None, with a WARNING, when it is missing or unreadable)."""
        import json

        try:
            return json.loads(self.backend.get_blob("environment", blob_hash))
        except (KeyError, ValueError):
            logger.warning("Environment snapshot %s is missing or unreadable", blob_hash)
            return None
