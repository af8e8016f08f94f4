"""What differs between two trials, and whether a re-run reproduced a trial.

Both read records back from the backend (``TrialRecord``, step records, code
and environment blobs); neither looks at live objects.
"""
from __future__ import annotations

import dataclasses
import html
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .code import unified_diff
from .hashing import comparable
from .present import short
from .records import DriftEvent, StepRecord, TrialRecord, encode_value

if TYPE_CHECKING:
    from .environment.collector import Collector


MISSING = "<absent>"


@dataclasses.dataclass(frozen=True)
class StepDifference:
    """A step call whose output differs between the two trials."""

    step: str
    occurrence: int
    first: str | None
    second: str | None
    #: the step drew from the trial's randomness and the seeds differ: seed-dependence
    seed_dependent: bool = False

    @property
    def label(self) -> str:
        return self.step + (f" (call {self.occurrence + 1})" if self.occurrence else "")


@dataclasses.dataclass(frozen=True)
class TrialDiff:
    """What differs between trial ``first_id`` and trial ``second_id``.

    Only differences are listed: an empty diff (``not diff``) means the two
    trials had the same parameters, seed, code, environment, inputs, step
    outputs and result, among what could be compared. ``not_compared`` names
    the step outputs (and result) that have no deterministic hash, so were not.
    """

    first_id: int
    second_id: int
    parameters: Mapping[str, tuple[Any, Any]]
    seed: tuple[int, int] | None
    code: Mapping[str, list[str]]
    environment: Mapping[str, list[str]]
    inputs: Mapping[str, tuple[str | None, str | None]]
    steps: Sequence[StepDifference]
    result: tuple[Any, Any] | None
    status: tuple[str, str] | None
    #: what could not be compared, and why: step labels (``fit``, ``fit (call 2)``) and
    #: ``"result"`` -> e.g. "output of type Model has no deterministic hash"
    not_compared: Mapping[str, str] = dataclasses.field(default_factory=dict)

    @property
    def first_differing_step(self) -> str | None:
        """The first step (in execution order) whose output differs, if any."""
        return self.steps[0].step if self.steps else None

    def __bool__(self) -> bool:
        return bool(self.parameters or self.seed or self.code or self.environment
                    or self.inputs or self.steps or self.result or self.status)

    def sections(self) -> list[tuple[str, list[str]]]:
        """(title, lines) for every kind of difference, in a fixed order."""
        out: list[tuple[str, list[str]]] = []
        if self.status:
            out.append(("Status", [f"{self.status[0]} -> {self.status[1]}"]))
        if self.parameters:
            out.append(("Parameters", [f"{k}: {short(a, 80)} -> {short(b, 80)}"
                                       for k, (a, b) in self.parameters.items()]))
        if self.seed:
            out.append(("Seed", [f"{self.seed[0]} -> {self.seed[1]}"]))
        for step, lines in self.code.items():
            out.append((f"Code: {step}", list(lines)))
        for category, lines in self.environment.items():
            out.append((f"Environment: {category}", list(lines)))
        if self.inputs:
            out.append(("Input data", [f"{p}: {a or MISSING} -> {b or MISSING}"
                                       for p, (a, b) in self.inputs.items()]))
        if self.steps:
            out.append(("Step outputs", [
                f"{d.label}: {d.first or MISSING} -> {d.second or MISSING}"
                + (" (seed-dependent: it used the trial's randomness)"
                   if d.seed_dependent else "") for d in self.steps]))
        if self.result:
            out.append(("Result", [f"{short(self.result[0], 80)} -> "
                                   f"{short(self.result[1], 80)}"]))
        if self.not_compared:
            out.append(("Not compared", [f"{k}: {why}" for k, why in self.not_compared.items()]))
        return out

    def __str__(self) -> str:
        head = f"Trial {self.first_id} -> trial {self.second_id}"
        if not self:
            if self.not_compared:
                lines = [f"  {k}: {why}" for k, why in self.not_compared.items()]
                return "\n".join([f"{head}: no differences in what could be compared",
                                  "Not compared:", *lines])
            return f"{head}: no differences"
        parts = [head]
        for title, lines in self.sections():
            parts.append(f"{title}:")
            parts.extend(f"  {line}" for line in lines)
        return "\n".join(parts)

    def _repr_html_(self) -> str:
        head = f"<b>Trial {self.first_id} &rarr; trial {self.second_id}</b>"
        if not self and not self.not_compared:
            return f"<div>{head}: no differences</div>"
        body = "".join(f"<h4>{html.escape(t)}</h4><pre>{html.escape(chr(10).join(lines))}</pre>"
                       for t, lines in self.sections())
        return f"<div>{head}{body}</div>"


def _occurrences(steps: Sequence[StepRecord]) -> dict[tuple[str, int], StepRecord]:
    counts: dict[str, int] = {}
    out = {}
    for rec in sorted(steps, key=lambda r: r.started):
        n = counts.get(rec.step, 0)
        counts[rec.step] = n + 1
        out[(rec.step, n)] = rec
    return out


def _inputs(record: TrialRecord) -> dict[str, str | None]:
    return {i["path"]: i.get("hash") for s in record.steps for i in s.inputs}


def same_value(a: Any, b: Any) -> bool:
    """Whether two recorded values are the same, as recorded (NaN equals NaN; objects
    kept by repr compare by repr and type)."""
    return a is b or encode_value(a) == encode_value(b)


def compare_records(first: TrialRecord, second: TrialRecord, *,
                    read_source: Callable[[str], str | None],
                    read_environment: Callable[[str], Mapping[str, Any] | None],
                    collectors: Sequence[Collector] = ()) -> TrialDiff:
    """Build the :class:`TrialDiff` of two records."""
    from . import environment

    names = list(dict.fromkeys([*first.parameters, *second.parameters]))
    parameters = {n: (first.parameters.get(n, MISSING), second.parameters.get(n, MISSING))
                  for n in names if not same_value(first.parameters.get(n, MISSING),
                                                   second.parameters.get(n, MISSING))}
    code: dict[str, list[str]] = {}
    for step in dict.fromkeys([*first.code, *second.code]):
        a, b = first.code.get(step, {}), second.code.get(step, {})
        if a.get("source_hash") != b.get("source_hash"):
            code[step] = unified_diff(read_source(a.get("source_hash", "")) or "",
                                      read_source(b.get("source_hash", "")) or "", step)
    env: dict[str, list[str]] = {}
    if first.environment_hash != second.environment_hash and first.environment_hash \
            and second.environment_hash:
        old = read_environment(first.environment_hash)
        new = read_environment(second.environment_hash)
        if old is not None and new is not None:
            env = environment.diff_snapshots(old, new, collectors=collectors)
    in1, in2 = _inputs(first), _inputs(second)
    inputs = {p: (in1.get(p), in2.get(p)) for p in dict.fromkeys([*in1, *in2])
              if in1.get(p) != in2.get(p)}
    occ1, occ2 = _occurrences(first.steps), _occurrences(second.steps)
    order = sorted(set(occ1) | set(occ2),
                   key=lambda k: (occ1.get(k) or occ2[k]).started.timestamp()
                   if k in occ1 else float("inf"))
    seeds_differ = first.seed != second.seed
    steps: list[StepDifference] = []
    not_compared: dict[str, str] = {}
    for k in order:
        rec1, rec2 = occ1.get(k), occ2.get(k)
        label = StepDifference(k[0], k[1], None, None).label
        why = _why_not_compared(rec1, rec2, "output")
        if why is not None:
            not_compared[label] = why
            continue
        h1 = rec1.output_hash if rec1 is not None else None
        h2 = rec2.output_hash if rec2 is not None else None
        if h1 != h2:
            steps.append(StepDifference(k[0], k[1], h1, h2, seeds_differ and any(
                r is not None and r.used_seed for r in (rec1, rec2))))
    result_differs = False
    if first.succeeded and second.succeeded:
        if first.result_hash is not None and second.result_hash is not None:
            result_differs = first.result_hash != second.result_hash
        elif first.result_type != second.result_type:
            result_differs = True
        else:
            not_compared["result"] = (f"result of type {first.result_type} has no "
                                      "deterministic hash")
    elif first.result_hash is not None and second.result_hash is not None:
        result_differs = first.result_hash != second.result_hash
    else:
        result_differs = not same_value(first.result, second.result)
    result = (first.result, second.result) if result_differs else None
    return TrialDiff(
        first_id=first.trial_id, second_id=second.trial_id, parameters=parameters,
        seed=(first.seed, second.seed) if first.seed != second.seed else None,
        code=code, environment=env, inputs=inputs, steps=steps, result=result,
        status=(first.status.value, second.status.value)
        if first.status != second.status else None, not_compared=not_compared)


def _why_not_compared(a: StepRecord | None, b: StepRecord | None, what: str) -> str | None:
    """Why two step calls' outputs cannot be compared (both ran and succeeded, and one
    output has no deterministic hash, with the same type), or None."""
    if a is None or b is None or not (a.succeeded and b.succeeded):
        return None
    if a.output_hash is not None and b.output_hash is not None:
        if not comparable(a.output_hash, b.output_hash):
            return f"{what} hashes were made by different versions of experigraph"
        return None
    if a.output_type != b.output_type:
        return None  # another type is a difference, hash or not
    return f"{what} of type {a.output_type or 'unknown'} has no deterministic hash"


@dataclasses.dataclass(frozen=True)
class Reproduction:
    """The outcome of :meth:`Experiment.reproduce`: did the re-run give the same result?"""

    original: int
    rerun: int
    matches: bool
    diff: TrialDiff
    drift: tuple[DriftEvent, ...]
    #: steps of the re-run that used the trial's randomness: they matched (or not) under
    #: the original seed, and would give other outputs under another one
    seed_dependent: tuple[str, ...] = ()

    @property
    def first_differing_step(self) -> str | None:
        return self.diff.first_differing_step

    def __bool__(self) -> bool:
        return self.matches

    @property
    def not_compared(self) -> Mapping[str, str]:
        """Steps (and ``"result"``) that could not be compared, and why."""
        return self.diff.not_compared

    def __str__(self) -> str:
        unchecked = [f"  {k}: {why}" for k, why in self.not_compared.items()]
        seeded = ([f"Seed-dependent steps (they used the trial's randomness, under the "
                   f"original seed): {', '.join(self.seed_dependent)}"]
                  if self.seed_dependent else [])
        if self.matches:
            if not unchecked:
                return "\n".join([f"Trial {self.rerun} reproduced trial {self.original}: "
                                  "same result and same output of every step.", *seeded])
            return "\n".join([
                f"Trial {self.rerun} reproduced trial {self.original} in what could be "
                "compared: same result and same output of every other step. Not compared:",
                *unchecked, *seeded])
        if "result" in self.not_compared and not self.diff:
            return "\n".join([
                f"Trial {self.rerun} could not be checked against trial {self.original}: no "
                "difference was found, but not everything could be compared. Not compared:",
                *unchecked])
        lines = [f"Trial {self.rerun} did NOT reproduce trial {self.original}."]
        if self.first_differing_step:
            lines.append(f"First step whose output differs: {self.first_differing_step}")
        if self.drift:
            lines.append("What changed since then:")
            lines.extend(f"  {d.message}" for d in self.drift)
        lines.append(str(self.diff))
        return "\n".join(lines)
