"""Records of what happened: ``TrialRecord``, ``StepRecord``, ``DriftEvent``.

Records are frozen dataclasses that round-trip through JSON (``to_json`` /
``from_json``) with a ``"schema"`` number; readers upgrade older schemas. Values
that JSON cannot hold exactly carry an explicit type tag (``{"$datetime": ...}``,
``{"$tuple": [...]}``, ``{"$float": "nan"}``, ``{"$repr": ..., "$type": ...}``);
nothing is ever guessed from a string, and nothing read back is unpickled.

The tagged types come back as the same type and value, in any process:
``tuple``, ``set``, ``frozenset``, ``dict`` with non-string keys, non-finite
``float``, ``complex``, ``bytes``, ``decimal.Decimal``, ``datetime.datetime``/
``date``/``time``/``timedelta``, ``pandas.Timestamp``/``Timedelta`` (and ``NaT``),
and NumPy scalars (``numpy.float32``, ``numpy.int64``, ``numpy.bool_``,
``numpy.datetime64``...; ``{"$numpy": dtype, "value": ...}``). Anything else is
kept by its ``repr`` (:class:`Unrepresentable`).
"""
from __future__ import annotations

import base64
import contextlib
import dataclasses
import datetime as _dt
import decimal
import enum
import gc
import json
import math
import reprlib
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

SCHEMA = 1
_REPR = reprlib.Repr()
_REPR.maxstring = 200
_REPR.maxother = 200
_UTC = _dt.timezone.utc


#: a trial's seed is an int from 0 to MAX_SEED (what NumPy's legacy seeding takes)
MAX_SEED = 2**32 - 1


def is_seed(value: Any) -> bool:
    """Whether ``value`` can be a trial's seed."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_SEED


def check_seed(value: Any) -> int:
    """``value`` if it can be a trial's seed, else InvalidArgumentError saying what can."""
    if not is_seed(value):
        from .errors import InvalidArgumentError

        raise InvalidArgumentError(f"seed must be an int from 0 to {MAX_SEED}, got {value!r}")
    return int(value)


class Status(str, enum.Enum):
    """Where a trial is in its life."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    INTERRUPTED = "interrupted"

    def __str__(self) -> str:
        return self.value


_STATUSES = {s.value: s for s in Status}


class Unrepresentable:
    """Stands for a value that was recorded by its ``repr`` only."""

    __slots__ = ("text", "type_name")

    def __init__(self, text: str, type_name: str) -> None:
        self.text, self.type_name = text, type_name

    def __repr__(self) -> str:
        return self.text

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, Unrepresentable) and other.text == self.text
                and other.type_name == self.type_name)

    def __hash__(self) -> int:
        return hash((self.text, self.type_name))


def type_name(value: Any) -> str:
    t = type(value)
    return t.__qualname__ if t.__module__ == "builtins" else f"{t.__module__}.{t.__qualname__}"


def is_json_exact(value: Any) -> bool:
    """Whether ``encode_value`` keeps ``value`` exactly (no ``$repr`` fallback)."""
    return not _contains_repr(encode_value(value))


def _contains_repr(obj: Any) -> bool:
    if isinstance(obj, dict):
        return "$repr" in obj or any(_contains_repr(v) for v in obj.values())
    if isinstance(obj, list):
        return any(_contains_repr(v) for v in obj)
    return False


def encode_value(value: Any) -> Any:
    """A JSON-able form of ``value``, type-tagged where JSON alone would lose it."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int) and type(value) is int:
        # beyond 64 bits, a JSON number is read back as a float by some parsers (orjson)
        return value if JSON_INT_MIN <= value < JSON_INT_END else {"$int": format(value, "x")}
    if isinstance(value, float) and type(value) is float:
        return value if math.isfinite(value) else {"$float": repr(value)}
    if isinstance(value, list):
        return [encode_value(v) for v in value]
    if isinstance(value, tuple) and type(value) is tuple:
        return {"$tuple": [encode_value(v) for v in value]}
    if isinstance(value, dict) and type(value) is dict:
        if all(isinstance(k, str) and not k.startswith("$") for k in value):
            return {k: encode_value(v) for k, v in value.items()}
        return {"$dict": [[encode_value(k), encode_value(v)] for k, v in value.items()]}
    module = type(value).__module__
    if module.startswith("pandas"):
        tagged = _encode_pandas(value)
        if tagged is not None:
            return tagged
    if module == "numpy" and getattr(value, "shape", None) == () and hasattr(value, "dtype"):
        return _encode_numpy(value)
    if type(value) is _dt.datetime:
        return {"$datetime": value.isoformat()}
    if type(value) is _dt.date:
        return {"$date": value.isoformat()}
    if type(value) is _dt.time:
        return {"$time": value.isoformat()}
    if type(value) is _dt.timedelta:
        return {"$timedelta": [value.days, value.seconds, value.microseconds]}
    if type(value) is decimal.Decimal:
        return {"$decimal": str(value)}
    if type(value) is complex:
        return {"$complex": [repr(value.real), repr(value.imag)]}
    if type(value) is bytes:
        return {"$bytes": base64.b64encode(value).decode("ascii")}
    if type(value) in (set, frozenset):
        items = [encode_value(v) for v in value]
        items.sort(key=lambda v: json.dumps(v, sort_keys=True, default=str))
        return {f"${type(value).__name__}": items}
    if isinstance(value, _dt.datetime):  # other subclasses: a datetime still
        return {"$datetime": value.isoformat()}
    if isinstance(value, enum.Enum):
        return encode_value(value.value)
    if isinstance(value, Unrepresentable):
        return {"$repr": value.text, "$type": value.type_name}
    if isinstance(value, (int, float)):  # bool/int/float subclasses
        return encode_value(float(value) if isinstance(value, float) else int(value))
    return {"$repr": _REPR.repr(value), "$type": type_name(value)}


def _encode_pandas(value: Any) -> Any:
    import pandas as pd

    if value is pd.NaT:
        return {"$pandas": "NaT"}
    if type(value) is pd.Timestamp:
        return {"$timestamp": value.isoformat(), "tz": _zone_name(value), "unit": value.unit}
    if type(value) is pd.Timedelta:
        return {"$pd_timedelta": int(value.value), "unit": value.unit}
    return None


def _zone_name(value: Any) -> str | None:
    """A name of a Timestamp's time zone that reads back as the same zone, else None.

    With None the ISO text still carries the UTC offset, so the instant is kept
    (as a fixed-offset time). zoneinfo and pytz zones have a key; a dateutil zone
    reads back as ``dateutil/<name>``.
    """
    tz = value.tz
    if tz is None:
        return None
    names = [getattr(tz, "key", None), getattr(tz, "zone", None), str(tz)]
    filename = getattr(tz, "_filename", None)
    if isinstance(filename, str):
        names.append("dateutil/" + filename.split("zoneinfo/")[-1].lstrip("/"))
    for name in names:
        if not isinstance(name, str) or not name:
            continue
        try:
            again = value.tz_convert(name)
        except Exception:  # not a name pandas can read back
            continue
        if again == value and again.utcoffset() == value.utcoffset():
            return name
    return None


def _encode_numpy(value: Any) -> Any:
    dtype = value.dtype
    if dtype.kind in "mM":  # datetime64 / timedelta64: the integer count of their unit
        return {"$numpy": dtype.str, "value": int(value.view("i8"))}
    if dtype.kind in "biuf":
        item = value.item()
        if dtype.kind == "f" and dtype.itemsize > 8:  # longdouble: keep every digit
            item = str(value)
        return {"$numpy": dtype.str, "value": encode_value(item)}
    if dtype.kind == "c":
        return {"$numpy": dtype.str, "value": encode_value(complex(value))}
    return {"$repr": _REPR.repr(value), "$type": type_name(value)}


def _decode_tagged(obj: dict[str, Any]) -> Any:
    """A value of a multi-key tag, or ``_UNTAGGED``."""
    if "$numpy" in obj and set(obj) == {"$numpy", "value"}:
        import numpy as np

        dtype = np.dtype(obj["$numpy"])
        if dtype.kind in "mM":
            return np.array(obj["value"], dtype="i8").view(dtype)[()]
        value = decode_value(obj["value"])
        if dtype.kind == "f" and isinstance(value, str):
            return np.array(value, dtype=dtype)[()]
        return dtype.type(value)
    if "$timestamp" in obj and set(obj) == {"$timestamp", "tz", "unit"}:
        import pandas as pd

        ts = pd.Timestamp(obj["$timestamp"])
        if obj["tz"] is not None:
            ts = ts.tz_convert(obj["tz"])
        return ts.as_unit(obj["unit"]) if obj["unit"] else ts
    if "$pd_timedelta" in obj and set(obj) == {"$pd_timedelta", "unit"}:
        import pandas as pd

        td = pd.Timedelta(obj["$pd_timedelta"], unit="ns")
        return td.as_unit(obj["unit"]) if obj["unit"] else td
    return _UNTAGGED


_UNTAGGED = object()


def decode_value(obj: Any) -> Any:
    """Inverse of :func:`encode_value`."""
    if isinstance(obj, list):
        return [decode_value(v) for v in obj]
    if isinstance(obj, dict):
        if len(obj) == 1:
            (tag, inner), = obj.items()
            if tag == "$tuple":
                return tuple(decode_value(v) for v in inner)
            if tag == "$dict":
                return {decode_value(k): decode_value(v) for k, v in inner}
            if tag == "$float":
                return float(inner)
            if tag == "$datetime":
                return _dt.datetime.fromisoformat(inner)
            if tag in _SCALAR_TAGS:
                return _SCALAR_TAGS[tag](inner)
            if tag == "$pandas" and inner == "NaT":
                import pandas as pd

                return pd.NaT
        try:
            tagged = _decode_tagged(obj)
        except Exception as exc:  # one value this interpreter cannot rebuild: keep the rest
            return Unrepresentable(json.dumps(obj, sort_keys=True)[:200],
                                   f"undecodable ({type(exc).__name__}: {exc})")
        if tagged is not _UNTAGGED:
            return tagged
        if "$repr" in obj and set(obj) == {"$repr", "$type"}:
            return Unrepresentable(obj["$repr"], obj["$type"])
        return {k: decode_value(v) for k, v in obj.items()}
    return obj


_SCALAR_TAGS: dict[str, Any] = {
    "$int": lambda v: int(v, 16),  # hexadecimal: no limit on the number of digits
    "$date": _dt.date.fromisoformat,
    "$time": _dt.time.fromisoformat,
    "$timedelta": lambda v: _dt.timedelta(days=v[0], seconds=v[1], microseconds=v[2]),
    "$decimal": decimal.Decimal,
    "$complex": lambda v: complex(float(v[0]), float(v[1])),
    "$bytes": lambda v: base64.b64decode(v.encode("ascii")),
    "$set": lambda v: {decode_value(i) for i in v},
    "$frozenset": lambda v: frozenset(decode_value(i) for i in v),
}


def now() -> _dt.datetime:
    return _dt.datetime.now(_UTC)


def _time_to_json(t: _dt.datetime | None) -> Any:
    return None if t is None else {"$datetime": t.isoformat()}


def _time_from_json(obj: Any) -> _dt.datetime | None:
    if obj is None:
        return None
    return _dt.datetime.fromisoformat(obj["$datetime"])


def _check_schema(obj: Mapping[str, Any]) -> None:
    """A stored record's schema must be one this version reads."""
    schema = obj.get("schema")
    if not isinstance(schema, int) or schema > SCHEMA:
        raise ValueError(f"unknown record schema {schema!r} (this experigraph reads "
                         f"up to {SCHEMA}; upgrade experigraph)")


@dataclasses.dataclass(frozen=True)
class DriftEvent:
    """Something other than the parameters changed since an earlier trial.

    ``kind`` is ``"code"``, ``"code-cosmetic"``, ``"declaration"``,
    ``"environment"``, ``"data"``, ``"impurity"`` or ``"seed"`` (see
    :mod:`experigraph.drift`); ``subject`` names the step, category or file;
    ``diff`` holds the diff lines.
    """

    kind: str
    subject: str
    message: str
    diff: tuple[str, ...] = ()
    detail: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "subject": self.subject, "message": self.message,
                "diff": list(self.diff), "detail": encode_value(dict(self.detail))}

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> DriftEvent:
        return cls(kind=obj["kind"], subject=obj["subject"], message=obj["message"],
                   diff=tuple(obj.get("diff", ())), detail=decode_value(obj.get("detail", {})))


@dataclasses.dataclass(frozen=True)
class StepRecord:
    """One execution of one step call, as the post hook saw it."""

    step: str
    key: str
    trial_ids: tuple[int, ...]
    code_hash: str
    input_hash: str | None
    output_hash: str | None
    started: _dt.datetime
    duration: float
    succeeded: bool
    error: str | None = None
    dependencies: tuple[str, ...] = ()
    parameters: tuple[str, ...] = ()
    persisted: str | None = None
    cached: bool = False
    host: str = ""
    pid: int = 0
    output_type: str = ""
    metrics: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    labels: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    inputs: tuple[Mapping[str, Any], ...] = ()
    outputs: tuple[Mapping[str, Any], ...] = ()
    description: str | None = None
    #: the step drew from the trial's randomness (``ex.rng()`` or the seeded globals)
    used_seed: bool = False
    #: why a ``cache=True`` step did not reuse a saved output (None: a hit, or no cache)
    cache_miss: str | None = None

    def to_json(self) -> dict[str, Any]:
        d = dict(self.__dict__)  # the fields, in order (a frozen dataclass keeps them there)
        if len(d) != _STEP_FIELD_COUNT:  # not as __init__ made it (an old pickle, say)
            d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["started"] = _time_to_json(self.started)
        d["trial_ids"] = list(self.trial_ids)
        d["dependencies"] = list(self.dependencies)
        d["parameters"] = list(self.parameters)
        d["metrics"] = encode_value(dict(self.metrics)) if self.metrics else {}
        d["labels"] = encode_value(dict(self.labels)) if self.labels else {}
        d["inputs"] = [encode_value(dict(i)) for i in self.inputs]
        d["outputs"] = [encode_value(dict(o)) for o in self.outputs]
        return d

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> StepRecord:
        d = dict(obj)
        known = {f.name for f in dataclasses.fields(cls)}
        d = {k: v for k, v in d.items() if k in known}
        d["started"] = _time_from_json(d["started"])
        d["trial_ids"] = tuple(d.get("trial_ids", ()))
        d["dependencies"] = tuple(d.get("dependencies", ()))
        d["parameters"] = tuple(d.get("parameters", ()))
        d["metrics"] = decode_value(d.get("metrics", {}))
        d["labels"] = decode_value(d.get("labels", {}))
        d["inputs"] = tuple(decode_value(i) for i in d.get("inputs", ()))
        d["outputs"] = tuple(decode_value(o) for o in d.get("outputs", ()))
        return cls(**d)



#: how many fields a StepRecord has (its ``__dict__`` holds them all, in order)
_STEP_FIELD_COUNT = len(dataclasses.fields(StepRecord))


@dataclasses.dataclass(frozen=True)
class TrialRecord:
    """Everything recorded about one trial. Read back from the backend, never live."""

    experiment_id: str
    trial_id: int
    status: Status
    parameters: Mapping[str, Any]
    seed: int
    started: _dt.datetime
    finished: _dt.datetime | None = None
    process_time: float | None = None
    description: str = ""
    error: Mapping[str, Any] | None = None
    result: Any = None
    result_type: str | None = None
    result_hash: str | None = None
    result_blob: str | None = None
    host: str = ""
    pid: int = 0
    code: Mapping[str, Mapping[str, str]] = dataclasses.field(default_factory=dict)
    environment_hash: str | None = None
    steps: tuple[StepRecord, ...] = ()
    drift: tuple[DriftEvent, ...] = ()
    metrics: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    labels: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    rerun_of: int | None = None
    sweep_id: str | None = None
    script: Mapping[str, Any] | None = None
    #: a random token fixed when the trial claimed its id: tells its own record apart
    claim: str = ""
    schema: int = SCHEMA

    @property
    def succeeded(self) -> bool:
        return self.status is Status.SUCCEEDED

    def replace(self, **changes: Any) -> TrialRecord:
        """A copy with ``changes`` (field -> value), as ``dataclasses.replace`` makes it,
        without the frozen ``__init__``'s ``object.__setattr__`` per field (27 of them)."""
        if type(self) is not TrialRecord:  # a subclass: its own fields and checks
            return dataclasses.replace(self, **changes)
        unknown = changes.keys() - _RECORD_FIELD_SET
        if unknown:
            raise TypeError(f"TrialRecord has no field(s) {', '.join(sorted(unknown))}")
        copy = object.__new__(TrialRecord)
        copy.__dict__.update(self.__dict__)
        copy.__dict__.update(changes)
        return copy

    def to_json(self) -> dict[str, Any]:
        out = _shared_json(self)
        out.update({
            "error": encode_value(dict(self.error)) if self.error is not None else None,
            "result_hash": self.result_hash,
            "result_blob": self.result_blob,
            "code": {k: dict(v) for k, v in self.code.items()},
            "environment_hash": self.environment_hash,
            "steps": [s.to_json() for s in self.steps],
            "drift": [d.to_json() for d in self.drift],
            "rerun_of": self.rerun_of,
            "sweep_id": self.sweep_id,
            "script": encode_value(dict(self.script)) if self.script is not None else None,
            "claim": self.claim,
        })
        return out

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> TrialRecord:
        _check_schema(obj)
        return cls(
            experiment_id=obj["experiment_id"],
            trial_id=int(obj["trial_id"]),
            status=Status(obj["status"]),
            parameters=_in_order(decode_value(obj.get("parameters", {})),
                                 obj.get("parameter_order")),
            seed=int(obj["seed"]),
            started=_time_from_json(obj["started"]),  # type: ignore[arg-type]
            finished=_time_from_json(obj.get("finished")),
            process_time=obj.get("process_time"),
            description=obj.get("description", ""),
            error=decode_value(obj["error"]) if obj.get("error") is not None else None,
            result=decode_value(obj.get("result")),
            result_type=obj.get("result_type"),
            result_hash=obj.get("result_hash"),
            result_blob=obj.get("result_blob"),
            host=obj.get("host", ""),
            pid=int(obj.get("pid", 0)),
            code=obj.get("code", {}),
            environment_hash=obj.get("environment_hash"),
            steps=tuple(StepRecord.from_json(s) for s in obj.get("steps", ())),
            drift=tuple(DriftEvent.from_json(d) for d in obj.get("drift", ())),
            metrics=decode_value(obj.get("metrics", {})),
            labels=decode_value(obj.get("labels", {})),
            rerun_of=obj.get("rerun_of"),
            sweep_id=obj.get("sweep_id"),
            script=decode_value(obj["script"]) if obj.get("script") is not None else None,
            claim=obj.get("claim", ""),
            schema=SCHEMA,
        )


def _in_order(values: Any, order: Any) -> Any:
    """``values`` (a dict) in the recorded ``order``; names not in it follow, as stored."""
    if not isinstance(values, dict) or not isinstance(order, list):
        return values
    if list(values) == order:
        return values  # stored in order already (what this version writes)
    ordered = {name: values[name] for name in order if name in values}
    ordered.update((k, v) for k, v in values.items() if k not in ordered)
    return ordered


def merge_steps(local: Sequence[StepRecord], remote: Sequence[StepRecord]) -> tuple[StepRecord, ...]:
    """All step records of a trial, once each, in start order."""
    seen: dict[tuple[str, str], StepRecord] = {}
    for rec in (*local, *remote):
        seen.setdefault((rec.key, rec.started.isoformat()), rec)
    return tuple(sorted(seen.values(), key=lambda r: r.started))


#: TrialRecord's field names (``replace`` checks the changes against them)
_RECORD_FIELD_SET = frozenset(f.name for f in dataclasses.fields(TrialRecord))


@dataclasses.dataclass(frozen=True)
class TrialSummary:
    """What the history shows of a trial: its record without steps, code, environment,
    drift details, error traceback and script (:meth:`of` a record).

    Backends keep summaries as an index next to the records, so a whole history is read
    without decoding every record; the records stay the source of truth (see
    ``Backend.read_summaries``).
    """

    experiment_id: str
    trial_id: int
    status: Status
    parameters: Mapping[str, Any]
    seed: int
    started: _dt.datetime
    finished: _dt.datetime | None = None
    process_time: float | None = None
    description: str = ""
    result: Any = None
    result_type: str | None = None
    host: str = ""
    pid: int = 0
    #: the kinds of the trial's drift events, in record order (repeats kept)
    drift_kinds: tuple[str, ...] = ()
    metrics: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    labels: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def succeeded(self) -> bool:
        return self.status is Status.SUCCEEDED

    def replace(self, **changes: Any) -> TrialSummary:
        return dataclasses.replace(self, **changes)

    @classmethod
    def of(cls, record: TrialRecord) -> TrialSummary:
        """The summary of ``record``."""
        return cls(experiment_id=record.experiment_id, trial_id=record.trial_id,
                   status=record.status, parameters=record.parameters, seed=record.seed,
                   started=record.started, finished=record.finished,
                   process_time=record.process_time, description=record.description,
                   result=record.result, result_type=record.result_type, host=record.host,
                   pid=record.pid, drift_kinds=tuple(e.kind for e in record.drift),
                   metrics=record.metrics, labels=record.labels)

    @staticmethod
    def json_of(record: TrialRecord) -> dict[str, Any]:
        """``TrialSummary.of(record).to_json()``, taken from the record's own JSON form
        (``record.to_json()``) without decoding anything."""
        return _summary_json(record.to_json())

    @staticmethod
    def json_of_dict(record_json: Mapping[str, Any]) -> dict[str, Any]:
        """The summary's JSON form from a record's JSON form (``TrialRecord.to_json()``)."""
        return _summary_json(record_json)

    def to_json(self) -> dict[str, Any]:
        out = _shared_json(self)
        out["drift_kinds"] = list(self.drift_kinds)
        return out

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> TrialSummary:
        """A summary from :meth:`to_json`'s form (or from a whole record's JSON), freshly
        parsed: its untagged dicts become the summary's own (not copied)."""
        _check_schema(obj)
        kinds = obj.get("drift_kinds")
        if kinds is None:  # a whole record's JSON
            kinds = [d["kind"] for d in obj.get("drift", ())]
        status = obj["status"]
        get = obj.get
        finished = get("finished")
        metrics, labels = get("metrics") or {}, get("labels") or {}
        parameters = _in_order(_decode(get("parameters") or {}, copy=False),
                               get("parameter_order"))
        if not isinstance(parameters, dict):
            raise TypeError(f"parameters are a {type(parameters).__name__}, not a dict")
        values = {
            "experiment_id": obj["experiment_id"],
            "trial_id": int(obj["trial_id"]),
            "status": _STATUSES.get(status) or Status(status),
            "parameters": parameters,
            "seed": int(obj["seed"]),
            "started": _time_from_json(obj["started"]),
            "finished": None if finished is None else _time_from_json(finished),
            "process_time": get("process_time"),
            "description": get("description", ""),
            "result": _decode(get("result"), copy=False),
            "result_type": get("result_type"),
            "host": get("host", ""),
            "pid": int(get("pid", 0)),
            "drift_kinds": tuple(kinds),
            "metrics": _decode(metrics, copy=False) if metrics else {},
            "labels": _decode(labels, copy=False) if labels else {},
        }
        # every field is given: set them as the frozen __init__ would, without its 16
        # object.__setattr__ calls (a third of the time of a 10,000-trial history)
        summary = object.__new__(cls)
        summary.__dict__.update(values)
        return summary


#: a history row's fields (:func:`history_row`, :func:`row_of`), in order
ROW_FIELDS = ("trial_id", "parameters", "status", "result", "finished", "process_time",
              "description", "seed", "result_type", "metrics", "labels", "running")
#: the last field: the summary of a trial stored as running (its status is read again
#: each time: see ``trial.derive_status``), else None
ROW_RUNNING = len(ROW_FIELDS) - 1


def row_of(r: TrialRecord | TrialSummary, running: TrialSummary | None = None
           ) -> tuple[Any, ...]:
    """The history row of a record or summary (:data:`ROW_FIELDS`)."""
    return (r.trial_id, r.parameters, r.status, r.result, r.finished, r.process_time,
            r.description, r.seed, r.result_type, r.metrics, r.labels, running)


def history_row(obj: dict[str, Any]) -> tuple[Any, ...]:
    """The history row of a summary in its JSON form (``TrialSummary.to_json()``'s,
    freshly parsed: its dicts become the row's): for a summary ``from_json`` reads, the
    row :func:`row_of` makes of ``TrialSummary.from_json(obj)``, without making the
    summary or reading the fields the history does not show (``experiment_id``,
    ``started``, ``host``, ``pid``, ``drift_kinds``): a whole history is read this way
    (``Backend.read_summary_rows``). Raises ValueError, KeyError, TypeError or
    AttributeError where ``obj`` is no summary (the backend then reads the trial's
    record).

    A running trial's row holds its summary, last (:data:`ROW_RUNNING`)."""
    _check_schema(obj)
    status = _STATUSES[obj["status"]]
    if status is Status.RUNNING:
        summary = TrialSummary.from_json(obj)
        return row_of(summary, summary)
    get = obj.get
    finished, metrics, labels = get("finished"), get("metrics"), get("labels")
    parameters = _in_order(_decode(get("parameters") or {}, copy=False), get("parameter_order"))
    if not isinstance(parameters, dict):
        raise TypeError(f"parameters are a {type(parameters).__name__}, not a dict")
    return (int(obj["trial_id"]), parameters, status, _decode(get("result"), copy=False),
            None if finished is None else _dt.datetime.fromisoformat(finished["$datetime"]),
            get("process_time"), get("description", ""), int(obj["seed"]),
            get("result_type"), _decode(metrics, copy=False) if metrics else {},
            _decode(labels, copy=False) if labels else {}, None)


def _shared_json(trial: TrialRecord | TrialSummary) -> dict[str, Any]:
    """The JSON form of the fields a record and its summary share (``_SUMMARY_FIELDS``)."""
    return {
        "schema": SCHEMA,
        "experiment_id": trial.experiment_id,
        "trial_id": trial.trial_id,
        "status": trial.status.value,
        "parameters": encode_value(dict(trial.parameters)),
        # JSON objects are written with sorted keys: keep the declaration order
        "parameter_order": list(trial.parameters),
        "seed": trial.seed,
        "started": _time_to_json(trial.started),
        "finished": _time_to_json(trial.finished),
        "process_time": trial.process_time,
        "description": trial.description,
        "result": encode_value(trial.result),
        "result_type": trial.result_type,
        "host": trial.host,
        "pid": trial.pid,
        "metrics": encode_value(dict(trial.metrics)),
        "labels": encode_value(dict(trial.labels)),
    }


#: the fields a summary copies as they are from a record's JSON form
_SUMMARY_FIELDS = ("schema", "experiment_id", "trial_id", "status", "parameters",
                   "parameter_order", "seed", "started", "finished", "process_time",
                   "description", "result", "result_type", "host", "pid", "metrics", "labels")


def _summary_json(record_json: Mapping[str, Any]) -> dict[str, Any]:
    out = {k: record_json.get(k) for k in _SUMMARY_FIELDS}
    out["drift_kinds"] = [d["kind"] for d in record_json.get("drift", ())]
    return out


def _decode(obj: Any, copy: bool = True) -> Any:
    """``decode_value``, skipping plain values and flat dicts that hold no tag (most
    parameters, results and metrics: the history decodes thousands of them); such a
    dict is returned as it is unless ``copy``."""
    if type(obj) is dict:
        for k, v in obj.items():
            if k[:1] == "$" or type(v) in (dict, list):
                return decode_value(obj)
        return dict(obj) if copy else obj
    if type(obj) is list:
        return decode_value(obj)
    return obj


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while a history is decoded or tabulated.

    Decoding thousands of records makes millions of containers, none of them cyclic;
    each collection would walk the whole heap (pandas' included) again and again. The
    collector runs as before once the block ends.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


_ORJSON: list[Any] = []  # [orjson.loads or None], filled on first use


#: the integers every JSON parser here reads exactly: int64 and uint64
JSON_INT_MIN, JSON_INT_END = -(1 << 63), 1 << 64
#: digits as "0", "-" as itself, every other byte as a space (see :func:`wide_ints`)
_DIGIT_RUNS = bytes(48 if 48 <= i <= 57 else 45 if i == 45 else 32 for i in range(256))


def wide_ints(data: bytes | str) -> bool:
    """Whether JSON text may hold an integer beyond 64 bits (20 digits in a row, or a
    minus sign and 19), which orjson would read as a float without a word: such text is
    parsed by json (exact). Also true of some long digit runs that are not such integers
    (inside a string, say), which only costs the slower parser. About a millisecond a
    megabyte."""
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    runs = raw.translate(_DIGIT_RUNS)
    return b"0" * 20 in runs or b"-" + b"0" * 19 in runs


def loads_fast(data: bytes | str) -> Any:
    """``json.loads``, through orjson when it is installed (an optional fast path for
    reading a whole history) and the text holds no integer beyond 64 bits
    (:func:`wide_ints`: orjson would read it as a float)."""
    if not _ORJSON:
        loads: Any = None
        try:
            from orjson import loads
        except ImportError:
            pass
        _ORJSON.append(loads)
    if _ORJSON[0] is not None and not wide_ints(data):
        try:
            return _ORJSON[0](data)
        except ValueError:
            pass
    return json.loads(data)
