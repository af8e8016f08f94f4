"""The Redis backend: a team shares one experiment through one Redis server.

Keys, for an experiment ``<id>`` (``P`` is ``experigraph:<id>:``)::

    experigraph:experiments      set of experiment ids stored on this server/db
    P:next_id                    counter; INCR reserves a trial id (GET is the last one)
    P:trials                     hash trial id -> TrialRecord JSON
    P:steps:<trial_id>           list of StepRecord JSON, appended by workers (RPUSH)
    P:metric:<trial_id>:<key>    list of {"epoch", "value"} JSON points (RPUSH)
    P:metric_keys:<trial_id>     set of the metric names saved for a trial
    P:blob:<kind>:<hash>         content-addressed bytes (SET NX), returned as-is
    P:outputs                    the key index: hash "<namespace prefix>:<key>" -> value
                                 (impurity references, taints, cache entries)
    P:summaries                  hash trial id -> "<record length> <TrialSummary JSON>":
                                 what the history shows of each finished trial

Invariants:

* Trial ids come from ``INCR`` (in a Lua script): two processes can never get
  the same id, and a process that dies after reserving one leaves a gap, never a
  duplicate. The counter is never decremented, so a restarted server with its
  data (AOF/RDB) goes on from where it was.
* A claim never replaces a record: the running record is created with
  ``HSETNX`` on its own field, which fails if the id has a record. A counter that
  is missing (``DEL``, a restart that lost it) or behind (it reaches an id that
  has a record) is repaired inside the same script from the highest recorded id
  (``HKEYS``, only then), so a lost counter costs at worst a skipped id.
* A record is one ``HSET`` of one field: readers see the old record or the new
  one; it is written over only by the trial that claimed it. A field that fails
  to parse raises ``CorruptRecordError`` (one WARNING per record).
* A summary is written together with its record (in the same script or
  ``MULTI``), and is used only while the record still has the length it names;
  otherwise (no summary, a record torn or edited by hand since) the history reads
  the record itself, and puts the missing summary back. Records stay the truth.
  The same script can return, instead of the summaries, a digest of them (SHA-1 of
  every id with its summary's SHA-1, sorted): a reader that kept what it made of
  the summaries with that digest reuses it (the history table,
  ``experigraph.history_cache``); no digest while a summary is missing.
* A trial takes 2 round trips: claiming an id together with the running record
  (one script), then the key index swap together with the final record and its
  summary (one script that checks the claim). More only when needed: the last id
  (for drift) when the claimed id shows that another process wrote in between,
  one to record what changed when a step's output did, and one to read step
  records sent by workers in other processes, when there can be any.
* Every per-trial operation is O(1) in the history size (no ``KEYS``/``SCAN``);
  only ``trial_ids()`` (``HKEYS``) and ``experiment_ids()`` list.
* Nothing read back is unpickled: records are JSON, blobs are bytes.
* A command on a broken connection is retried twice (redis-py's own ``Retry``,
  with a short exponential backoff) before it fails; an ``INCR`` whose reply was
  lost and that is retried leaves a gap in the ids, never a duplicate.

The backend pickles as its configuration (the URI, or the plain connection
settings of a ``redis.ConnectionPool``) and connects on first use, so a copy
sent to a dask worker connects there; the copies in one process share one
connection pool per server, so a worker does not connect again for every task. Every Redis error is
raised as ``BackendError`` naming the (password-masked) URI and what to check.
"""
from __future__ import annotations

import contextlib
import json
import logging
import hashlib
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

import orjson

import redis
import redis.connection
import redis.exceptions
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from ..errors import BackendError, CorruptRecordError, TrialIDNotFoundError
from ..hashing import bytes_hash
from ..records import Status, TrialRecord, TrialSummary, gc_paused, loads_fast, wide_ints
from .base import MAX_CLAIM_ATTEMPTS, METRIC_STREAM, STEPS_STREAM, Backend, mask_uri

logger = logging.getLogger(__name__)

PREFIX = "experigraph"
EXPERIMENTS_KEY = f"{PREFIX}:experiments"

#: connection defaults, overridden by the URI's own query options
_DEFAULTS: dict[str, Any] = {"socket_connect_timeout": 5, "socket_timeout": 30,
                             "health_check_interval": 30}
#: connection settings kept when a backend made from a ConnectionPool is pickled
_PLAIN_SETTINGS = ("host", "port", "db", "username", "password", "path", "socket_timeout",
                   "socket_connect_timeout", "client_name", "protocol", "health_check_interval")
#: connection pools shared by the backends of one process (per location): a backend
#: unpickled for every task on a dask worker reuses the worker's connections instead
#: of opening new ones (once-per-process work, kept off the per-step path)
_POOLS: dict[tuple[int, str], redis.ConnectionPool] = {}
_POOLS_LOCK = threading.Lock()
#: blobs larger than this are checked with EXISTS before being sent again
_CHECK_FIRST = 64 * 1024
#: how many records one HMGET reads
_BATCH = 500
#: how many index pairs a script reads (HMGET) and writes (HSET) in one call
_SWAP_CHUNK = 500
#: what begins a digest of the history's summaries (read_summaries_keyed)
_DIGEST_PREFIX = "redis-sha1:"

#: INCR the counter; if it was missing (1) or reached an id that has a record, repair
#: it from the highest recorded id; list the experiment (again, after a restart)
#: (KEYS: next_id, trials, experiments; ARGV: experiment id)
_CLAIM_ID = """
redis.call('SADD', KEYS[3], ARGV[1])
local n = redis.call('INCR', KEYS[1])
if n == 1 or redis.call('HEXISTS', KEYS[2], tostring(n)) == 1 then
  local top = 0
  for _, field in ipairs(redis.call('HKEYS', KEYS[2])) do
    local v = tonumber(field)
    if v and v > top then top = v end
  end
  if top >= n then
    n = top + 1
    redis.call('SET', KEYS[1], n)
  end
end
"""
_CLAIM = _CLAIM_ID + "return n\n"

#: _CLAIM; if that gives the id ARGV[2] that the client expected, create its record
#: ARGV[3] there, with its summary "<length> ARGV[4]" when ARGV[4] is not empty (KEYS:
#: next_id, trials, experiments, summaries; ARGV[1]: experiment id); returns {id, 1 if
#: the record was created else 0}
_START = _CLAIM_ID + """
if tostring(n) ~= ARGV[2] or redis.call('HSETNX', KEYS[2], ARGV[2], ARGV[3]) == 0 then
  return {n, 0}
end
if ARGV[4] ~= '' then
  redis.call('HSET', KEYS[4], ARGV[2], string.len(ARGV[3]) .. ' ' .. ARGV[4])
else
  redis.call('HDEL', KEYS[4], ARGV[2])
end
return {n, 1}
"""

#: create record ARGV[2] of id ARGV[1] unless it has one, with its summary ARGV[3] (if
#: not empty); returns 1 if created (KEYS: trials, summaries, experiments; ARGV[4]:
#: experiment id)
_CREATE = """
redis.call('SADD', KEYS[3], ARGV[4])
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
if ARGV[3] ~= '' then
  redis.call('HSET', KEYS[2], ARGV[1], string.len(ARGV[2]) .. ' ' .. ARGV[3])
else
  redis.call('HDEL', KEYS[2], ARGV[1])
end
return 1
"""

#: finish_own(trials, summaries, experiments): replace the record of id ARGV[1] with
#: ARGV[2] (and its summary ARGV[3]) only if the stored one is this trial's own: same
#: experiment ARGV[4] and claim token ARGV[5]; 1 if written, 0 if the stored record is
#: missing, unreadable or another's. The stored record is the trial's own without being
#: decoded when its SHA-1 is ARGV[6], that of the running record the client wrote
#: (empty: not known); any other is decoded and compared field by field.
_FINISH_OWN = """
local function is_own(old)
  if ARGV[6] ~= '' and redis.sha1hex(old) == ARGV[6] then return true end
  local ok, obj = pcall(cjson.decode, old)
  return ok and type(obj) == 'table' and obj['claim'] == ARGV[5]
      and obj['experiment_id'] == ARGV[4] and tostring(obj['trial_id']) == ARGV[1]
end

local function finish_own(trials, summaries, experiments)
  local old = redis.call('HGET', trials, ARGV[1])
  if not old or not is_own(old) then return 0 end
  redis.call('HSET', trials, ARGV[1], ARGV[2])
  if ARGV[3] ~= '' then
    redis.call('HSET', summaries, ARGV[1], string.len(ARGV[2]) .. ' ' .. ARGV[3])
  else
    redis.call('HDEL', summaries, ARGV[1])
  end
  redis.call('SADD', experiments, ARGV[4])
  return 1
end
"""

#: finish_own (KEYS: trials, summaries, experiments)
_FINISH = _FINISH_OWN + "return finish_own(KEYS[1], KEYS[2], KEYS[3])\n"

#: {digest, flat}: flat is every trial id with its summary, or false where the summary is
#: missing or names another length than the record's. With ARGV[1] empty, digest is
#: false; otherwise it is a SHA-1 of every id with the SHA-1 of its summary, all that
#: flat lists (false when a summary is missing: the records are read then), and flat is
#: false when digest equals ARGV[1] (the caller's answer for that digest holds). A SHA-1
#: per summary, not one of them all joined: Lua joins 4 MB slowly (KEYS: trials,
#: summaries)
_SUMMARIES = """
local out = {}
local parts = nil
if ARGV[1] ~= '' then parts = {} end
for _, field in ipairs(redis.call('HKEYS', KEYS[1])) do
  out[#out + 1] = field
  local s = redis.call('HGET', KEYS[2], field)
  local n = s and tonumber(string.match(s, '^(%d+) '))
  if not string.match(field, '^[1-9]%d*$') then parts = nil end  -- not an id as written
  if n and n == redis.call('HSTRLEN', KEYS[1], field) then
    out[#out + 1] = s
    if parts then parts[#parts + 1] = field .. ' ' .. redis.sha1hex(s) end
  else
    out[#out + 1] = false
    parts = nil
  end
end
if not parts then return {false, out} end
table.sort(parts)  -- HKEYS' order moves as the hash rehashes, even while nothing is written
local digest = redis.sha1hex(table.concat(parts, '\\n'))
if digest == ARGV[1] then return {digest, false} end
return {digest, out}
"""

#: put back the summary ARGV[3] of record ARGV[1] read with SHA-1 ARGV[2], if the record
#: is still that one (KEYS: trials, summaries)
_REPAIR = """
local record = redis.call('HGET', KEYS[1], ARGV[1])
if record and redis.sha1hex(record) == ARGV[2] then
  redis.call('HSET', KEYS[2], ARGV[1], string.len(record) .. ' ' .. ARGV[3])
end
return 0
"""

#: the highest id reserved or recorded, without writing (KEYS: next_id, trials)
_LAST = """
local n = tonumber(redis.call('GET', KEYS[1]) or '0')
if n == 0 or redis.call('HEXISTS', KEYS[2], tostring(n + 1)) == 1 then
  for _, field in ipairs(redis.call('HKEYS', KEYS[2])) do
    local v = tonumber(field)
    if v and v > n then n = v end
  end
end
return n
"""

#: swap_pairs(key, first, count): set the count pairs (field, value) of ARGV from
#: ARGV[first] in the hash key; returns the values they replaced (false where none) and
#: whether one replaced a value with another first word. Read with HMGET and written with
#: one HSET, in chunks of at most _SWAP_CHUNK pairs (Lua's unpack has a limit)
_SWAP_PAIRS = """
local function swap_pairs(key, first, count)
  local out = {}
  local changed = false
  local done = 0
  while done < count do
    local n = math.min(""" + str(_SWAP_CHUNK) + """, count - done)
    local fields = {}
    for j = 1, n do fields[j] = ARGV[first + 2 * (done + j - 1)] end
    local olds = redis.call('HMGET', key, unpack(fields))
    local sets = {}
    for j = 1, n do
      local new = ARGV[first + 2 * (done + j - 1) + 1]
      local old = olds[j]
      if old ~= new then
        sets[#sets + 1] = fields[j]
        sets[#sets + 1] = new
        if old and string.match(old, '^[^ ]*') ~= string.match(new, '^[^ ]*') then
          changed = true
        end
      end
      out[#out + 1] = old
    end
    if #sets > 0 then redis.call('HSET', key, unpack(sets)) end
    done = done + n
  end
  return out, changed
end
"""

#: swap_pairs of the pairs ARGV[8..] (ARGV[7] of them, in KEYS[1]), then, unless a value
#: replaced one with another first word, _FINISH of record ARGV[1..6] (KEYS[2..4]:
#: trials, summaries, experiments); returns {status, old values}: status 1 written, 0
#: the stored record is missing, unreadable or another's, 2 not written (a change)
_SWAP_FINISH = _FINISH_OWN + _SWAP_PAIRS + """
local out, changed = swap_pairs(KEYS[1], 8, tonumber(ARGV[7]))
if changed then return {2, out} end
return {finish_own(KEYS[2], KEYS[3], KEYS[4]), out}
"""

#: swap_pairs of every pair of ARGV in KEYS[1]; the values replaced
_SWAP = _SWAP_PAIRS + """
local out = swap_pairs(KEYS[1], 1, #ARGV / 2)
return out
"""


def _uri_from_settings(settings: Mapping[str, Any], kind: str) -> str:
    """A URI describing plain connection settings (``kind``: tcp, ssl or unix)."""
    password = settings.get("password")
    username = settings.get("username") or ""
    auth = ""
    if password is not None or username:
        auth = quote(username, safe="")
        if password is not None:
            auth += ":" + quote(str(password), safe="")
        auth += "@"
    db = int(settings.get("db") or 0)
    if kind == "unix":
        return f"unix://{auth}{settings.get('path', '')}?db={db}"
    scheme = "rediss" if kind == "ssl" else "redis"
    return f"{scheme}://{auth}{settings.get('host', 'localhost')}:{settings.get('port', 6379)}/{db}"


def _dumps(obj: Any) -> str:
    """A record (or summary) as stored: compact JSON, keys sorted, UTF-8 kept (orjson;
    json for what orjson refuses: an integer beyond 64 bits, a key that is not text)."""
    try:
        return orjson.dumps(obj, option=orjson.OPT_SORT_KEYS).decode("utf-8")
    except TypeError:
        return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _text(value: bytes | str) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else value


def _hint(exc: BaseException, where: str) -> str:
    text = str(exc)
    if isinstance(exc, redis.exceptions.AuthenticationError) or any(
            s in text for s in ("NOAUTH", "WRONGPASS", "invalid password",
                                "invalid username-password", "must be called with the client "
                                "already authenticated")):
        return ("Check the password (and user) in the URI, as redis://:password@host:port/db "
                "or redis://user:password@host:port/db.")
    if "DB index" in text or "invalid DB index" in text:
        return ("Check the database number at the end of the URI (redis://host:port/<db>): "
                "the server accepts 0 up to its 'databases' setting minus one (0-15 by "
                "default).")
    if isinstance(exc, (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)):
        return (f"Check that redis-server is running and reachable at {where} (for example "
                "with 'redis-cli ... ping'), and that the host, port and TLS setting "
                "(redis:// or rediss://) are right.")
    return "Check the Redis server's log, and that it is Redis 6.2 or later."


class RedisBackend(Backend):
    """Trials of one experiment in Redis, under ``experigraph:<experiment_id>:``.

    Parameters
    ----------
    location : str or Mapping
        A ``redis://[[user]:password@]host:port/db``, ``rediss://`` or
        ``unix:///path?db=N`` URI, or plain connection settings (``host``, ``port``,
        ``db``, ``password``, ``path``, ``ssl``...) as a backend made from a
        ``redis.ConnectionPool`` pickles.
    experiment_id : str
        The experiment whose trials this backend stores.
    pool : redis.ConnectionPool, optional
        A pool to use in this process (``location`` then describes it for copies).

    Notes
    -----
    Nothing connects until the first operation; see the module docstring for the keys.
    """

    scheme = "redis"

    def __init__(self, location: str | Mapping[str, Any], experiment_id: str, *,
                 pool: redis.ConnectionPool | None = None) -> None:
        super().__init__(experiment_id)
        if isinstance(location, str):
            scheme = urlsplit(location).scheme.lower()
            if scheme not in ("redis", "rediss", "unix"):
                raise ValueError(f"A Redis backend URI starts with redis://, rediss:// or "
                                 f"unix://; got {mask_uri(location)!r}.")
            self._location: str | dict[str, Any] = location
            self._uri = mask_uri(location)
        else:
            self._location = dict(location)
            kind = self._location.get("kind", "tcp")
            self._uri = mask_uri(_uri_from_settings(self._location, kind))
        self._own_pool = pool is None
        self._pool = pool
        self._client: redis.Redis | None = None
        self._swap_script: Any = None
        self._claim_script: Any = None
        self._last_script: Any = None
        self._scripts: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._prefix = f"{PREFIX}:{experiment_id}:"
        self._registered = False
        self._seen = 0  # the last trial id this object saw reserved
        #: (trial id, claim token) -> SHA-1 of the running record this object wrote for
        #: that trial, while it runs: the finishing script knows it from that without
        #: decoding it (the claim too: a lost record's id may be claimed again, here)
        self._running: dict[tuple[int, str], str] = {}

    # -- construction -------------------------------------------------------------
    @classmethod
    def from_uri(cls, uri: str, experiment_id: str) -> RedisBackend:
        """A backend for ``redis://``, ``rediss://`` or ``unix://`` ``uri``."""
        return cls(uri, experiment_id)

    @classmethod
    def from_object(cls, pool: redis.ConnectionPool, experiment_id: str) -> RedisBackend:
        """A backend on an existing ``redis.ConnectionPool`` (used as-is in this process)."""
        if not isinstance(pool, redis.ConnectionPool):
            raise ValueError(f"Expected a redis.ConnectionPool, got {type(pool).__name__}.")
        conn_class = pool.connection_class
        if issubclass(conn_class, redis.connection.UnixDomainSocketConnection):
            kind = "unix"
        elif issubclass(conn_class, redis.connection.SSLConnection):
            kind = "ssl"
        else:
            kind = "tcp"
        settings: dict[str, Any] = {"kind": kind}
        for key, value in pool.connection_kwargs.items():
            if (key in _PLAIN_SETTINGS or (kind == "ssl" and key.startswith("ssl_"))) and (
                    value is None or isinstance(value, (str, int, float, bool))):
                settings[key] = value
        return cls(settings, experiment_id, pool=pool)

    @property
    def uri(self) -> str:
        return self._uri

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self._location, self.experiment_id))

    # -- connection ------------------------------------------------------------------
    def client(self) -> redis.Redis:
        """The connection (opened on first use, and again in a forked child)."""
        client = self._client
        if client is not None:
            return client
        with self._lock:
            if self._client is None:
                if self._pool is None:
                    self._pool = self._process_pool()
                self._client = redis.Redis(connection_pool=self._pool)
                self._swap_script = self._client.register_script(_SWAP)
                self._claim_script = self._client.register_script(_CLAIM)
                self._last_script = self._client.register_script(_LAST)
                self._scripts = {name: self._client.register_script(text) for name, text in (
                    ("start", _START), ("create", _CREATE), ("finish", _FINISH),
                    ("summaries", _SUMMARIES), ("repair", _REPAIR),
                    ("swap_finish", _SWAP_FINISH))}
            return self._client

    def _process_pool(self) -> redis.ConnectionPool:
        key = (os.getpid(), repr(sorted(self._location.items()))
               if isinstance(self._location, dict) else self._location)
        with _POOLS_LOCK:
            pool = _POOLS.get(key)
            if pool is None:
                pool = _POOLS[key] = self._make_pool()
            return pool

    def _make_pool(self) -> redis.ConnectionPool:
        retry = Retry(ExponentialBackoff(cap=0.5, base=0.05), 2)
        if isinstance(self._location, str):
            return redis.ConnectionPool.from_url(self._location, retry=retry, **_DEFAULTS)
        settings = dict(self._location)
        kind = settings.pop("kind", "tcp")
        options = {**_DEFAULTS, **settings, "retry": retry}
        if kind == "unix":
            options["connection_class"] = redis.connection.UnixDomainSocketConnection
            for key in ("host", "port", "socket_connect_timeout"):
                options.pop(key, None)
        elif kind == "ssl":
            options["connection_class"] = redis.connection.SSLConnection
        return redis.ConnectionPool(**options)

    def close(self) -> None:
        """Release this backend's connections; it reconnects on next use.

        The process-wide pool it used stays open for the other backends on the
        same server; its idle connections are closed.
        """
        with self._lock:
            if self._pool is not None and self._own_pool:
                self._pool.disconnect(inuse_connections=False)
                self._pool = None
            self._client = None
            self._swap_script = self._claim_script = self._last_script = None
            self._scripts = {}

    @contextlib.contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        """Raise every Redis error as a BackendError naming the masked URI."""
        try:
            yield
        except redis.exceptions.RedisError as exc:
            raise self._translate(exc, action) from exc

    def _translate(self, exc: BaseException, action: str) -> BackendError:
        detail = f"{type(exc).__name__}: {exc}"
        password = self._password()
        if password:
            detail = detail.replace(password, "***")
        where = self._uri
        if isinstance(self._location, Mapping) and self._location.get("kind") == "unix":
            where = str(self._location.get("path"))
        else:
            parts = urlsplit(self._uri)
            where = parts.path if parts.scheme == "unix" else (parts.hostname or "") + (
                f":{parts.port}" if parts.port else "")
        return BackendError(
            f"Redis backend at {self._uri} failed while {action} for experiment "
            f"{self.experiment_id!r} ({detail}). {_hint(exc, where)}")

    def _password(self) -> str | None:
        if isinstance(self._location, Mapping):
            value = self._location.get("password")
            return str(value) if value else None
        parts = urlsplit(self._location)
        if parts.password:
            return parts.password
        for key, value in parse_qsl(parts.query):
            if key.lower() == "password" and value:
                return value
        return None

    def key(self, *parts: Any) -> str:
        """The Redis key of ``parts`` under this experiment's prefix."""
        return self._prefix + ":".join(str(p) for p in parts)

    # -- trials -----------------------------------------------------------------
    def next_trial_id(self) -> int:
        """INCR the counter, repaired first if it is missing or behind (see module doc)."""
        with self._errors("reserving a trial id"):
            self.client()
            trial_id = int(self._claim_script(
                keys=[self.key("next_id"), self.key("trials"), EXPERIMENTS_KEY],
                args=[self.experiment_id]))
        self._registered = True
        self._seen = max(self._seen, trial_id)
        return trial_id

    def last_trial_id(self) -> int:
        with self._errors("reading the last trial id"):
            self.client()
            last = int(self._last_script(keys=[self.key("next_id"), self.key("trials")]))
        self._seen = last  # what start_trial expects to claim next, plus one
        return last

    @staticmethod
    def _summary(record: TrialRecord, obj: dict[str, Any]) -> str:
        """The summary stored with ``record`` (its JSON form ``obj``), without its id (the
        hash field names it); "" for a running record, which has none."""
        if record.status is Status.RUNNING:
            return ""
        summary = TrialSummary.json_of_dict(obj)
        del summary["trial_id"]
        return _dumps(summary)

    def _script(self, name: str, keys: list[str], args: list[Any]) -> Any:
        self.client()
        return self._scripts[name](keys=keys, args=args)

    def start_trial(self, make_record: Callable[[int], TrialRecord]) -> TrialRecord:
        """Claim an id and create its record, in one round trip when the id is the one
        expected (the last id this object saw, plus one): a script reserves the next id
        (repairing the counter as ``next_trial_id`` does) and creates the record only if
        it got that id. Otherwise the id it got is used as ``Backend.start_trial`` would."""
        expected = self._seen + 1
        record = make_record(expected)
        obj = record.to_json()
        data = _dumps(obj)
        with self._errors("claiming a trial id"):
            trial_id, created = self._script(
                "start", [self.key("next_id"), self.key("trials"), EXPERIMENTS_KEY,
                          self.key("summaries")],
                [self.experiment_id, str(expected), data, self._summary(record, obj)])
        trial_id = int(trial_id)
        self._seen = max(self._seen, trial_id)
        self._registered = True
        if int(created):
            self._note_written(record, data)
            return record
        for _ in range(MAX_CLAIM_ATTEMPTS):  # another id than expected: claim it as usual
            record = make_record(trial_id)
            if self.create_trial(record):
                return record
            trial_id = self.next_trial_id()
        raise BackendError(
            f"Could not claim a trial id in {self.uri} for experiment {self.experiment_id!r}: "
            f"{MAX_CLAIM_ATTEMPTS} ids in a row were taken by other records. Check that no "
            "process keeps resetting the store's trial id counter.")

    def create_trial(self, record: TrialRecord) -> bool:
        """``HSETNX`` of the record's field (with its summary): never replaces a record."""
        obj = record.to_json()
        data = _dumps(obj)
        with self._errors(f"writing trial {record.trial_id}"):
            created = bool(self._script(
                "create", [self.key("trials"), self.key("summaries"), EXPERIMENTS_KEY],
                [str(int(record.trial_id)), data, self._summary(record, obj),
                 self.experiment_id]))
        self._registered = True
        if created:
            self._note_written(record, data)
        return created

    def _note_written(self, record: TrialRecord, data: str) -> None:
        """Keep the SHA-1 of a running record this object stored (see ``_running``);
        forget it once the trial's record is another."""
        key = (int(record.trial_id), record.claim)
        if record.status is Status.RUNNING and record.claim:
            self._running[key] = hashlib.sha1(data.encode("utf-8"),
                                              usedforsecurity=False).hexdigest()
        else:
            self._running.pop(key, None)

    def write_trial(self, record: TrialRecord) -> None:
        obj = record.to_json()
        field = str(int(record.trial_id))
        summary = self._summary(record, obj)
        data = _dumps(obj)
        with self._errors(f"writing trial {record.trial_id}"):
            pipe = self.client().pipeline(transaction=True)  # the record and its summary
            pipe.hset(self.key("trials"), field, data)
            if summary:
                pipe.hset(self.key("summaries"), field,
                          f"{len(data.encode('utf-8'))} {summary}")
            else:
                pipe.hdel(self.key("summaries"), field)
            if not self._registered:
                pipe.sadd(EXPERIMENTS_KEY, self.experiment_id)
            pipe.execute()
        self._registered = True
        self._note_written(record, data)

    def finish_trial(self, record: TrialRecord) -> TrialRecord:
        """Replace the trial's own running record in one round trip (a script compares
        the stored record's claim token); anything else (the record lost, unreadable
        or another trial's) goes the general way of ``Backend.finish_trial``."""
        if not record.claim:
            return super().finish_trial(record)
        obj = record.to_json()
        data = _dumps(obj)
        trial_id = int(record.trial_id)
        with self._errors(f"writing trial {record.trial_id}"):
            done = int(self._script(
                "finish", [self.key("trials"), self.key("summaries"), EXPERIMENTS_KEY],
                [str(trial_id), data, self._summary(record, obj), self.experiment_id,
                 record.claim, self._running.get((trial_id, record.claim), "")]))
        if done:
            self._note_written(record, data)
            return record
        self._running.pop((trial_id, record.claim), None)  # not its own: the general way
        return super().finish_trial(record)

    def _parse(self, trial_id: int, raw: bytes | str) -> TrialRecord:
        where = f"{self._uri} (key {self.key('trials')}, field {trial_id})"
        if not raw.strip():
            raise self.unreadable_record(where, "the record is empty")
        try:
            return TrialRecord.from_json(json.loads(raw))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise self.unreadable_record(where, f"{type(exc).__name__}: {exc}") from exc

    def read_trial(self, trial_id: int) -> TrialRecord:
        try:
            field = str(int(trial_id))
        except (TypeError, ValueError):
            raise TrialIDNotFoundError(trial_id) from None
        with self._errors(f"reading trial {trial_id}"):
            raw = self.client().hget(self.key("trials"), field)
            if raw is None:  # unknown, or reserved and never written: which one?
                last = self.client().get(self.key("next_id"))
        if raw is None:
            if last is not None and 0 < int(trial_id) <= int(last):
                raise TrialIDNotFoundError(
                    trial_id, f"Trial {trial_id} is reserved but its record was never written "
                    "(the process that reserved it stopped first).")
            raise TrialIDNotFoundError(trial_id)
        return self._parse(int(trial_id), raw)

    def trial_ids(self) -> list[int]:
        with self._errors("listing trial ids"):
            fields = self.client().hkeys(self.key("trials"))
        return sorted(i for i in self._trial_fields(fields) if i is not None)

    def _trial_fields(self, fields: Sequence[bytes | str]) -> list[int | None]:
        """:meth:`_trial_field` of each field (the usual case checked at once)."""
        try:
            ids = [int(f) for f in fields]
            written = "\n".join(map(str, ids))
            if fields and isinstance(fields[0], bytes):
                same = b"\n".join(fields) == written.encode("ascii")  # type: ignore[arg-type]
            else:
                same = "\n".join(fields) == written  # type: ignore[arg-type]
            if same:
                return ids  # type: ignore[return-value]
        except (ValueError, TypeError):
            pass
        return [self._trial_field(f) for f in fields]

    def _trial_field(self, field: bytes | str) -> int | None:
        """The trial id a field of the records hash names, as this backend writes it
        (``str(id)``); None, with one WARNING, for any other field (written by hand): it
        is no trial's, and reading it as one could show it as another (``"02"``)."""
        text = field.decode("utf-8", "replace") if isinstance(field, bytes) else field
        if text.isascii() and text.isdigit() and text[0] != "0":
            return int(text)
        self.unreadable_record(f"{self._uri} {self.key('trials')} field {text!r}",
                               "the field is not a trial id",
                               "Delete the field (HDEL), or name it by its trial id.")
        return None

    def read_trials(self, trial_ids: Iterable[int] | None = None) -> list[TrialRecord]:
        """Records for ``trial_ids`` (default: all), read in batches; torn ones skipped."""
        ids = self.trial_ids() if trial_ids is None else [int(i) for i in trial_ids]
        out: list[TrialRecord] = []
        for start in range(0, len(ids), _BATCH):
            chunk = ids[start:start + _BATCH]
            with self._errors("reading trials"):
                raws = self.client().hmget(self.key("trials"), [str(i) for i in chunk])
            for trial_id, raw in zip(chunk, raws):
                if raw is None:
                    continue
                try:
                    out.append(self._parse(trial_id, raw))
                except CorruptRecordError:
                    continue  # logged once by unreadable_record
        return out

    def read_summaries(self) -> list[TrialSummary]:
        """Summaries of every readable trial, by id, in one round trip where each record
        still has the length its summary names (a script); the other records are read
        (torn ones skipped, one WARNING each) and their summaries put back."""
        with self._errors("reading the history"):
            _, flat = self._script("summaries", [self.key("trials"), self.key("summaries")],
                                   [""])
        return self._summaries_of(flat)[0]

    def read_summaries_keyed(self, known: str | None = None
                             ) -> tuple[str | None, list[TrialSummary] | None]:
        """The digest is the SHA-1, made by the server in the same script, of every id and
        stored summary that :meth:`read_summaries` decodes (a summary is used only while
        its record has the length it names, which a changed record seldom keeps; the
        history shows the summary then, with or without this digest). No digest when a
        summary is missing or unreadable: the records are read then."""
        if type(self).read_summaries is not RedisBackend.read_summaries:
            return None, self.read_summaries()  # a subclass's own answer: no digest of it
        return self._keyed(known, None)

    def read_summary_rows(self, decode: Callable[[dict[str, Any]], Any],
                          known: str | None = None) -> tuple[str | None, list[Any] | None]:
        """Each stored summary goes to ``decode`` as parsed (see
        :meth:`read_summaries_keyed` for the digest)."""
        if (type(self).read_summaries is not RedisBackend.read_summaries
                or type(self).read_summaries_keyed is not RedisBackend.read_summaries_keyed):
            return super().read_summary_rows(decode, known)  # a subclass's own answer
        return self._keyed(known, decode)

    def _keyed(self, known: str | None, decode: Callable[[dict[str, Any]], Any] | None
               ) -> tuple[str | None, list[Any] | None]:
        with self._errors("reading the history"):
            digest, flat = self._script(
                "summaries", [self.key("trials"), self.key("summaries")],
                [known[len(_DIGEST_PREFIX):] if known and known.startswith(_DIGEST_PREFIX)
                 else "-"])
        key = None if digest is None else _DIGEST_PREFIX + _text(digest)
        if flat is None:
            return key, None
        summaries, complete = self._summaries_of(flat, decode)
        return (key if complete else None), summaries

    def _summaries_of(self, flat: Sequence[Any],
                      decode: Callable[[dict[str, Any]], Any] | None = None
                      ) -> tuple[list[Any], bool]:
        """The summaries (``decode``: what it makes of each summary's JSON form) of the
        ``summaries`` script's flat answer, by id, and whether each came from its stored
        summary (none was missing or unreadable)."""
        found: dict[int, Any] = {}
        from_stored = TrialSummary.from_json if decode is None else decode
        with gc_paused():
            ids = self._trial_fields(flat[0::2])
            # bytes, or str from a connection made with decode_responses=True
            texts = [text.split(b" ", 1)[1] if isinstance(text, bytes) else
                     text.encode("utf-8", "surrogatepass").split(b" ", 1)[1]
                     if isinstance(text, str) else None for text in flat[1::2]]
            missing = []
            # orjson reads an integer beyond 64 bits as a float: json then reads them all
            wide = wide_ints(b"\n".join(t for t in texts if t is not None))
            loads = loads_fast if wide else orjson.loads
            for trial_id, text in zip(ids, texts):
                if trial_id is None:  # not a trial's field (logged once)
                    continue
                obj = None
                if text is not None:  # one by one: no joined copy of them all to parse
                    try:
                        obj = loads(text)
                    except ValueError:  # torn, or an integer beyond 64 bits: json tells
                        try:
                            obj = loads_fast(text)
                        except ValueError:
                            obj = None
                if isinstance(obj, dict):
                    try:
                        obj["trial_id"] = trial_id
                        found[trial_id] = from_stored(obj)
                        continue
                    except (ValueError, KeyError, TypeError, AttributeError):
                        pass
                missing.append(trial_id)
            repairs = []
            for trial_id, raw in self._raw_records(missing):
                try:
                    record = self._parse(trial_id, raw)
                except CorruptRecordError:
                    continue  # logged once by unreadable_record
                obj = record.to_json()
                summary = self._summary(record, obj)
                found[trial_id] = (TrialSummary.of(record) if decode is None
                                   else decode(TrialSummary.json_of_dict(obj)))
                if summary:
                    data = raw if isinstance(raw, bytes) else raw.encode("utf-8")
                    repairs.append((trial_id, hashlib.sha1(data).hexdigest(), summary))
        if repairs:
            try:
                pipe = self.client().pipeline(transaction=False)
                for trial_id, digest, summary in repairs:
                    self._scripts["repair"](keys=[self.key("trials"), self.key("summaries")],
                                            args=[trial_id, digest, summary], client=pipe)
                pipe.execute()
            except redis.exceptions.RedisError as exc:  # only a cache: readers read records
                logger.debug("Could not put summaries back in %s: %s", self._uri, exc)
        return [found[i] for i in sorted(found)], not missing

    def _raw_records(self, trial_ids: Sequence[int]) -> Iterator[tuple[int, bytes | str]]:
        """The stored text of records that exist, in batches of ``_BATCH``."""
        for start in range(0, len(trial_ids), _BATCH):
            chunk = trial_ids[start:start + _BATCH]
            with self._errors("reading trials"):
                raws = self.client().hmget(self.key("trials"), [str(i) for i in chunk])
            for trial_id, raw in zip(chunk, raws):
                if raw is not None:
                    yield trial_id, raw

    # -- streams ------------------------------------------------------------------
    def _stream_key(self, trial_id: int, stream: str) -> str:
        """``P:steps:<id>``, or ``P:metric:<id>:<key>`` for a metric."""
        if stream == STEPS_STREAM:
            return self.key("steps", int(trial_id))
        if stream.startswith(METRIC_STREAM):
            return self.key("metric", int(trial_id), stream[len(METRIC_STREAM):])
        raise ValueError(f"Unknown stream {stream!r}: accepted are {STEPS_STREAM!r} and "
                         f"{METRIC_STREAM!r} followed by a metric name.")

    def append_stream(self, trial_id: int, stream: str, items: Sequence[str]) -> None:
        if not items:
            return
        key = self._stream_key(trial_id, stream)
        with self._errors(f"appending to stream {stream!r} of trial {trial_id}"):
            if stream == STEPS_STREAM:
                self.client().rpush(key, *items)
            else:  # a metric: its name is listed for metric_keys
                pipe = self.client().pipeline(transaction=False)
                pipe.rpush(key, *items)
                pipe.sadd(self.key("metric_keys", int(trial_id)), stream[len(METRIC_STREAM):])
                pipe.execute()

    def read_stream(self, trial_id: int, stream: str) -> list[str]:
        key = self._stream_key(trial_id, stream)
        with self._errors(f"reading stream {stream!r} of trial {trial_id}"):
            return [_text(raw) for raw in self.client().lrange(key, 0, -1)]

    def stream_names(self, trial_id: int) -> list[str]:
        with self._errors(f"listing the streams of trial {trial_id}"):
            pipe = self.client().pipeline(transaction=False)
            pipe.exists(self.key("steps", int(trial_id)))
            pipe.smembers(self.key("metric_keys", int(trial_id)))
            has_steps, metrics = pipe.execute()
        return ([STEPS_STREAM] if has_steps else []) + sorted(
            METRIC_STREAM + _text(n) for n in metrics)

    # -- blobs ------------------------------------------------------------------
    def put_blob(self, kind: str, data: bytes) -> str:
        blob_hash = bytes_hash(data)
        key = self.key("blob", kind, blob_hash)
        with self._errors(f"storing a {kind} blob"):
            client = self.client()
            if len(data) > _CHECK_FIRST and client.exists(key):
                return blob_hash
            client.set(key, data, nx=True)
        return blob_hash

    def get_blob(self, kind: str, blob_hash: str) -> bytes:
        with self._errors(f"reading {kind} blob {blob_hash}"):
            data = self.client().get(self.key("blob", kind, blob_hash))
        if data is None:
            raise KeyError(f"no {kind} blob {blob_hash} in {self._uri}")
        return data if isinstance(data, bytes) else str(data).encode("utf-8")

    def blob_hashes(self, kind: str) -> list[str] | None:
        prefix = self.key("blob", kind, "")
        with self._errors(f"listing {kind} blobs"):
            keys = self.client().scan_iter(match=prefix + "*", count=1000)
            return sorted(_text(k)[len(prefix):] for k in keys)

    def delete_blob(self, kind: str, blob_hash: str) -> int:
        key = self.key("blob", kind, blob_hash)
        with self._errors(f"removing {kind} blob {blob_hash}"):
            pipe = self.client().pipeline(transaction=True)
            pipe.strlen(key)
            pipe.delete(key)
            size, removed = pipe.execute()
        return int(size) if removed else 0

    # -- the key index --------------------------------------------------------------
    def swap_index_values(self, hashes: Mapping[str, str]) -> dict[str, str | None]:
        """Swap many values atomically, in one round trip (a Lua script)."""
        if not hashes:
            return {}
        keys = list(hashes)
        args: list[str] = []
        for k in keys:
            args.extend((k, hashes[k]))
        with self._errors("checking step outputs"):
            self.client()
            olds = self._swap_script(keys=[self.key("outputs")], args=args)
        return {k: (None if old is None else _text(old)) for k, old in zip(keys, olds)}

    def swap_and_finish(self, values: Mapping[str, str], record: TrialRecord
                        ) -> tuple[TrialRecord | None, dict[str, str | None]]:
        """``Backend.swap_and_finish`` in one round trip (a script swaps, then replaces
        the trial's own running record as ``finish_trial`` does, unless a value changed)."""
        if not record.claim or not values:
            return super().swap_and_finish(values, record)
        keys = list(values)
        obj = record.to_json()
        data = _dumps(obj)
        args = [str(int(record.trial_id)), data, self._summary(record, obj),
                self.experiment_id, record.claim,
                self._running.get((int(record.trial_id), record.claim), ""), str(len(keys))]
        for k in keys:
            args.extend((k, values[k]))
        with self._errors(f"writing trial {record.trial_id}"):
            status, olds = self._script(
                "swap_finish", [self.key("outputs"), self.key("trials"),
                                self.key("summaries"), EXPERIMENTS_KEY], args)
        replaced = {k: (None if old is None else _text(old)) for k, old in zip(keys, olds)}
        status = int(status)
        if status == 1:
            self._note_written(record, data)
            return record, replaced
        if status == 2:
            return None, replaced
        self._running.pop((int(record.trial_id), record.claim), None)
        return super().finish_trial(record), replaced  # not its own record: the general way

    def read_index_values(self, keys: Sequence[str]) -> dict[str, str | None]:
        keys = list(keys)
        if not keys:
            return {}
        with self._errors("reading step outputs"):
            values = self.client().hmget(self.key("outputs"), keys)
        return {k: (None if v is None else _text(v)) for k, v in zip(keys, values)}

    # -- experiments ------------------------------------------------------------
    def experiment_ids(self) -> list[str]:
        with self._errors("listing experiments"):
            names = self.client().smembers(EXPERIMENTS_KEY)
        return sorted(_text(n) for n in names)

    def delete_experiment(self) -> int:
        """Remove every key of this experiment (tests and cleanup); returns how many.

        This is the only method that scans (``SCAN MATCH experigraph:<id>:*``).
        """
        removed = 0
        with self._errors("deleting the experiment"):
            client = self.client()
            batch: list[bytes] = []
            for key in client.scan_iter(match=self._prefix + "*",
                                        count=1000):
                batch.append(key)
                if len(batch) >= 1000:
                    removed += client.delete(*batch)
                    batch = []
            if batch:
                removed += client.delete(*batch)
            client.srem(EXPERIMENTS_KEY, self.experiment_id)
        return removed


__all__ = ["RedisBackend", "mask_uri"]
