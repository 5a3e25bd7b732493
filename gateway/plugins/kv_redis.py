"""The kv capability on Redis (``--plugin-kv redis://host:port/db``): `RedisKv`, a `wasm_abi.kv.KvStore`
that answers every call as `wasm_abi.kv.MemoryKv` does, but shared by every process and gateway using the
same Redis (ABI.md section 7.1, "kv"; docs/operations.md, "Plugin kv backends").

Layout, per namespace (a plugin's name) ``NS`` -- written ``{NS}`` percent-encoded so it holds no ``{``,
``}``, ``:`` or ``%`` of its own, which makes every key name below parse one way only (two namespaces can
never name the same Redis key, whatever their names or keys hold), and the braces are a Redis Cluster hash
tag (a namespace lives on one slot, so its scripts are atomic there too):

- ``eg:kv:{NS}:<key bytes>``: the value (a Redis string, any bytes), with the key's expiry as its own
  Redis expiry (``PXAT``: Redis frees expired values by itself);
- ``eg:kv:{NS}#index``: a sorted set, key -> expiry in Unix milliseconds (``+inf``: never);
- ``eg:kv:{NS}#sizes``: a hash, key -> the bytes it counts for (key + value, a counter as 20);
- ``eg:kv:{NS}#bytes``: the sum of the sizes, for the ``max_kv_bytes`` quota.

Every write is one Lua script (``EVALSHA``), so the quota check and the write are atomic against every
other client. A key is live while its index score is after Redis' ``TIME`` (the same clock Redis expires
values by). The number of live keys is counted in the index (``ZCOUNT``), so expired keys never count
against ``max_kv_keys``; their bytes leave ``#bytes`` when they are purged: a few at every write, and up to
`PURGE_BATCH` more at a time, script call after script call, when a write would otherwise go over
``max_kv_bytes`` -- no script ever walks an unbounded number of keys (a namespace may hold millions).

Timeouts: every call waits at most its ``timeout`` (what is left of the reaction's deadline): it is the
connect timeout and, re-armed before each send and read, the socket timeout. A Redis that does not answer
in time is ``EG_TIMEOUT``; a refused, reset or unreachable one ``EG_UNAVAILABLE``, and for
`DOWN_BACKOFF` seconds after a failed connect the calls answer ``EG_UNAVAILABLE`` at once, without
touching the network (a black-holed Redis must not cost every reaction its whole budget). One warning is
logged when Redis goes away and one line when it is back.

Connections: one pool per `RedisKv` (one per gateway process, shared by all its plugins); a call takes an
idle connection or opens one and gives it back after a clean answer (a connection that failed or timed out
is closed: a late answer must never be read by the next call). At most as many connections are open as
threads calling at once (bounded by ``--plugins-max-threads``), and `MAX_IDLE` are kept idle.
"""

from __future__ import annotations

import hashlib
import logging
import select
import threading
import time
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from wasm_abi.capabilities import (
    EG_NOT_A_NUMBER,
    EG_QUOTA,
    EG_TIMEOUT,
    EG_UNAVAILABLE,
    CapabilityError,
)
from wasm_abi.kv import COUNTER_BYTES, INT64_MAX, INT64_MIN
from wasm_abi.limits import Limits

from .kv_backend import redacted_url

__all__ = ["DOWN_BACKOFF", "MAX_IDLE", "PURGE_BATCH", "RedisKv", "data_key", "namespace_tag"]

log = logging.getLogger("gateway.plugins.kv")

#: Expired keys one script call drops when a write needs their bytes back (then it is called again).
PURGE_BATCH = 1000
#: Expired keys every write drops on the way (as MemoryKv does), keeping the index near the live keys.
PURGE_ON_WRITE = 4
#: Seconds after a failed connect during which calls answer EG_UNAVAILABLE without trying again.
DOWN_BACKOFF = 0.5
#: Idle connections kept for the next calls.
MAX_IDLE = 64
#: The timeout of calls that name none (`clear`).
DEFAULT_TIMEOUT = 5.0

_DEFAULT_LIMITS = Limits()
_SAFE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-")


def namespace_tag(namespace: str) -> bytes:
    """``{NS}``: the namespace's UTF-8 bytes, every byte but ``[A-Za-z0-9._-]`` written ``%XX`` (so the
    tag holds exactly one ``{`` and one ``}``, and no ``:``; plugin names pass unchanged)."""
    encoded = b"".join(bytes([b]) if b in _SAFE else b"%%%02X" % b for b in namespace.encode("utf-8"))
    return b"{" + encoded + b"}"


def data_key(namespace: str, key: bytes) -> bytes:
    """The Redis key of a kv key: ``eg:kv:{NS}:<key bytes>``."""
    return b"eg:kv:" + namespace_tag(namespace) + b":" + key


# -- the scripts -----------------------------------------------------------------------------------
# KEYS: [1] the index, [2] the sizes, [3] the bytes counter.  ARGV[1]: the data key prefix
# ("eg:kv:{NS}:"), ARGV[2]: the kv key; the rest per script.  Answers: {0, ...} done; {1, n} max_kv_keys
# (n live keys); {2, n} max_kv_bytes (n bytes it would hold); {3, why} not a number; {4} expired keys
# were purged but more remain: call again; {5} max_kv_bytes, when incr makes a counter of a value.

_COMMON = r"""
local idx, sizes, total = KEYS[1], KEYS[2], KEYS[3]
local prefix, m = ARGV[1], ARGV[2]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local now_s = string.format('%d', now)

local function drop(member)
  redis.call('DEL', prefix .. member)
  redis.call('ZREM', idx, member)
  local size = redis.call('HGET', sizes, member)
  if size then
    redis.call('HDEL', sizes, member)
    redis.call('DECRBY', total, size)
  end
end

local function purge(most)
  local expired = redis.call('ZRANGEBYSCORE', idx, '-inf', now_s, 'LIMIT', 0, most)
  for _, member in ipairs(expired) do drop(member) end
  return #expired
end

-- the live value of `member`, or nil (an expired or vanished entry is dropped on the way)
local function live(member)
  local score = redis.call('ZSCORE', idx, member)
  if not score then return nil end
  if score ~= 'inf' and tonumber(score) <= now then
    drop(member)
    return nil
  end
  local value = redis.call('GET', prefix .. member)
  if not value then
    drop(member)  -- the value is gone (evicted by a maxmemory policy, deleted by hand)
    return nil
  end
  return value
end

local function held_bytes()
  return tonumber(redis.call('GET', total) or '0')
end

-- whether `member` may now hold an entry of `esize` bytes: 0, or the refusal {code, n}
local function fits(member, esize, max_keys, max_bytes)
  local score = redis.call('ZSCORE', idx, member)
  if not (score and (score == 'inf' or tonumber(score) > now)) then
    -- a new key: live keys only (the index's expired ones are not counted)
    local count = redis.call('ZCOUNT', idx, '(' .. now_s, '+inf')
    if count >= max_keys then return {1, count} end
  end
  local old = redis.call('HGET', sizes, member)
  local would = held_bytes() + esize - (old and tonumber(old) or 0)
  if would <= max_bytes then return 0 end
  -- expired keys do not count: give their bytes back, a batch per call
  local dropped = purge(__BATCH__)
  old = redis.call('HGET', sizes, member)
  would = held_bytes() + esize - (old and tonumber(old) or 0)
  if would <= max_bytes then return 0 end
  if dropped < __BATCH__ then return {2, would} end  -- no expired key is left
  return {4}
end

-- store `value` at `member` (counting `esize` bytes) with `ttl` ms (0: never)
local function write(member, value, esize, ttl)
  local old = redis.call('HGET', sizes, member)
  redis.call('HSET', sizes, member, esize)
  redis.call('INCRBY', total, esize - (old and tonumber(old) or 0))
  if ttl > 0 then
    local expiry = string.format('%d', now + ttl)
    redis.call('SET', prefix .. member, value, 'PXAT', expiry)
    redis.call('ZADD', idx, expiry, member)
  else
    redis.call('SET', prefix .. member, value)
    redis.call('ZADD', idx, '+inf', member)
  end
end
"""

# ARGV[3] value, [4] ttl, [5] max_keys, [6] max_bytes
_SET = _COMMON + r"""
purge(__ON_WRITE__)
local value, ttl = ARGV[3], tonumber(ARGV[4])
local refused = fits(m, #m + #value, tonumber(ARGV[5]), tonumber(ARGV[6]))
if refused ~= 0 then return refused end
write(m, value, #m + #value, ttl)
return {0}
"""

# ARGV[3] 1 when an expected value is given (ARGV[4]), 0 for "only if absent"; [5] value, [6] ttl,
# [7] max_keys, [8] max_bytes.  {0, 1} swapped, {0, 0} not.
_CAS = _COMMON + r"""
local current = live(m)
if ARGV[3] == '1' then
  if current ~= ARGV[4] then return {0, 0} end
elseif current then
  return {0, 0}
end
purge(__ON_WRITE__)
local value = ARGV[5]
local refused = fits(m, #m + #value, tonumber(ARGV[7]), tonumber(ARGV[8]))
if refused ~= 0 then return refused end
write(m, value, #m + #value, tonumber(ARGV[6]))
return {0, 1}
"""

# {0, 1} deleted, {0, 0} there was no live key
_DELETE = _COMMON + r"""
if not live(m) then return {0, 0} end
drop(m)
return {0, 1}
"""

# ARGV[3] delta (canonical decimal, int64), [4] ttl, [5] max_keys, [6] max_bytes.  {0, "<new value>"}.
# Counters are added by Redis' own INCRBY (int64, overflow checked): Lua's numbers are doubles.
_INCR = _COMMON + r"""
local delta = ARGV[3]
local current = live(m)
if not current then
  purge(__ON_WRITE__)
  local refused = fits(m, #m + __COUNTER__, tonumber(ARGV[5]), tonumber(ARGV[6]))
  if refused ~= 0 then return refused end
  write(m, delta, #m + __COUNTER__, tonumber(ARGV[4]))
  return {0, delta}
end
local sign, digits = string.match(current, '^(%-?)([0-9]+)$')
if not digits or #digits > 19 then return {3, 'the stored value is not a decimal integer'} end
digits = string.gsub(digits, '^0+', '')
local canonical
if digits == '' then canonical = '0' else canonical = sign .. digits end
if #digits == 19 and ((sign == '' and digits > '9223372036854775807') or
                      (sign == '-' and digits > '9223372036854775808')) then
  return {3, 'the stored value is outside int64'}
end
local key = prefix .. m
if canonical ~= current then redis.call('SET', key, canonical, 'KEEPTTL') end
local done = redis.pcall('INCRBY', key, delta)
if type(done) == 'table' and done.err then
  if canonical ~= current then redis.call('SET', key, current, 'KEEPTTL') end
  return {3, 'the sum would overflow int64'}
end
-- a value made a counter counts 20 bytes from now on: checked after the sum, as MemoryKv does
local size = redis.call('HGET', sizes, m)
local extra = #m + __COUNTER__ - (size and tonumber(size) or 0)
if extra > 0 then
  local refused = fits(m, #m + __COUNTER__, tonumber(ARGV[5]), tonumber(ARGV[6]))
  if refused ~= 0 then
    redis.call('SET', key, current, 'KEEPTTL')  -- as it was
    if refused[1] == 2 then return {5} end  -- worded as MemoryKv does
    return refused
  end
end
if extra ~= 0 then
  redis.call('HSET', sizes, m, #m + __COUNTER__)
  redis.call('INCRBY', total, extra)
end
return {0, redis.call('GET', key)}
"""

# Drops up to a batch of the namespace's keys; answers how many are left (0: the namespace is gone).
_CLEAR = r"""
local idx, sizes, total, prefix = KEYS[1], KEYS[2], KEYS[3], ARGV[1]
local members = redis.call('ZRANGE', idx, 0, __BATCH__ - 1)
for _, member in ipairs(members) do
  redis.call('DEL', prefix .. member)
  redis.call('ZREM', idx, member)
  redis.call('HDEL', sizes, member)
end
local left = redis.call('ZCARD', idx)
if left == 0 then redis.call('DEL', idx, sizes, total) end
return left
"""

# Purges a batch of expired keys: {4} when there may be more, else {0, live keys, bytes}.
_USAGE = _COMMON + r"""
if purge(__BATCH__) == __BATCH__ then return {4} end
return {0, redis.call('ZCARD', idx), held_bytes()}
"""


def _finish(script: str) -> bytes:
    return (script.replace("__BATCH__", str(PURGE_BATCH)).replace("__ON_WRITE__", str(PURGE_ON_WRITE))
            .replace("__COUNTER__", str(COUNTER_BYTES)).encode())


class _Script:
    __slots__ = ("sha", "source")

    def __init__(self, source: str) -> None:
        self.source = _finish(source)
        self.sha = hashlib.sha1(self.source).hexdigest().encode()


_SCRIPTS = {name: _Script(src) for name, src in
            (("set", _SET), ("cas", _CAS), ("delete", _DELETE), ("incr", _INCR), ("clear", _CLEAR), ("usage", _USAGE))}


class _Retry(Exception):
    """The script purged a batch of expired keys and must run again."""


class RedisKv:
    """A `KvStore` on one Redis server (``redis://``, ``rediss://``, ``unix://`` URLs, as redis-py reads
    them; a password in the URL is never logged). Thread-safe; `close` closes every connection."""

    blocking = True

    def __init__(self, url: str) -> None:
        self.url = url
        self.display_url = redacted_url(url)
        # redis-py reads the URL (scheme, TLS, user, password, db, query options); it only parses here
        pool = redis.ConnectionPool.from_url(url, retry=Retry(NoBackoff(), 0), socket_keepalive=True)
        self._connection_class: Any = pool.connection_class
        self._connection_kwargs: dict[str, Any] = dict(pool.connection_kwargs)
        # redis-py 8 fills in pool-bound helpers (maintenance notifications for RESP3) that our own
        # connections do not use
        for name in ("maint_notifications_pool_handler", "maint_notifications_config", "socket_timeout",
                     "socket_connect_timeout"):
            self._connection_kwargs.pop(name, None)
        self._lock = threading.Lock()
        self._idle: list[Any] = []
        self._closed = False
        self._down_until = 0.0
        self._down = False  # whether the last attempt failed (for the warning / back line)

    # -- connections ---------------------------------------------------------------------------

    def _connection(self, deadline: float) -> Any:
        now = time.monotonic()
        with self._lock:
            if self._closed:
                raise CapabilityError(EG_UNAVAILABLE, "the kv backend is closed")
            if now < self._down_until:
                raise CapabilityError(EG_UNAVAILABLE, f"Redis at {self.display_url} is unreachable")
            while self._idle:
                conn = self._idle.pop()
                if self._fresh(conn):
                    return conn
                self._discard(conn)  # closed by Redis (a restart, a timeout of idle clients): never used
        left = deadline - now
        if left <= 0:
            raise CapabilityError(EG_TIMEOUT, "no time left for the kv call")
        conn = self._connection_class(**self._connection_kwargs, socket_timeout=left,
                                      socket_connect_timeout=left)
        try:
            conn.connect()  # connect, then AUTH/SELECT, all within `left`
        except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
            self._discard(conn)
            with self._lock:
                self._down_until = time.monotonic() + DOWN_BACKOFF
            self._went_down(exc)
            if isinstance(exc, redis.TimeoutError):
                raise CapabilityError(EG_TIMEOUT, f"Redis at {self.display_url} did not answer in time") from None
            raise CapabilityError(EG_UNAVAILABLE, f"Redis at {self.display_url} is unreachable") from None
        except redis.RedisError as exc:  # AUTH refused, bad db, ...
            self._discard(conn)
            with self._lock:
                self._down_until = time.monotonic() + DOWN_BACKOFF
            self._went_down(exc)
            raise CapabilityError(EG_UNAVAILABLE, f"Redis at {self.display_url} refused the connection") from None
        return conn

    @staticmethod
    def _fresh(conn: Any) -> bool:
        """Whether an idle connection is still open: nothing to read on it (an EOF or a stray reply
        would be), as redis-py's own pool checks before reuse. Costs one select(2) with no wait."""
        sock = getattr(conn, "_sock", None)
        if sock is None:
            return False
        try:
            readable, _, _ = select.select([sock], [], [], 0)
        except (OSError, ValueError):
            return False
        return not readable

    def _release(self, conn: Any) -> None:
        with self._lock:
            if not self._closed and len(self._idle) < MAX_IDLE:
                self._idle.append(conn)
                return
        self._discard(conn)

    @staticmethod
    def _discard(conn: Any) -> None:
        try:
            conn.disconnect()
        except Exception:  # closing a broken socket: nothing more to do
            pass

    def _went_down(self, exc: BaseException) -> None:
        with self._lock:
            first, self._down = not self._down, True
        if first:
            log.warning("plugin kv: Redis at %s is unreachable (%s); kv calls answer EG_UNAVAILABLE or "
                        "EG_TIMEOUT until it is back", self.display_url, type(exc).__name__)

    def _came_back(self) -> None:
        with self._lock:
            was, self._down = self._down, False
        if was:
            log.info("plugin kv: Redis at %s answers again", self.display_url)

    @staticmethod
    def _arm(conn: Any, deadline: float) -> None:
        left = deadline - time.monotonic()
        if left <= 0:
            raise redis.TimeoutError("no time left")
        sock = getattr(conn, "_sock", None)
        if sock is not None:
            sock.settimeout(left)

    def _call(self, timeout: float, *args: Any) -> Any:
        """One command, at most `timeout` seconds; a Redis error as `CapabilityError`."""
        deadline = time.monotonic() + max(0.0, timeout)
        conn = self._connection(deadline)
        try:
            self._arm(conn, deadline)
            conn.send_command(*args)
            self._arm(conn, deadline)
            reply = conn.read_response()
        except redis.ResponseError:
            self._release(conn)  # an answer: the connection is fine
            raise
        except redis.TimeoutError:
            self._discard(conn)
            raise CapabilityError(EG_TIMEOUT, f"Redis at {self.display_url} did not answer in time") from None
        except (redis.ConnectionError, OSError) as exc:
            self._discard(conn)
            self._went_down(exc)
            raise CapabilityError(EG_UNAVAILABLE, f"the connection to Redis at {self.display_url} failed") from None
        except BaseException:
            self._discard(conn)
            raise
        self._release(conn)
        self._came_back()
        return reply

    def _script(self, name: str, namespace: str, args: list[bytes], timeout: float) -> Any:
        """Run a script (EVALSHA, EVAL when Redis does not know it yet) until it is done."""
        script = _SCRIPTS[name]
        tag = namespace_tag(namespace)
        keys = [b"eg:kv:" + tag + b"#index", b"eg:kv:" + tag + b"#sizes", b"eg:kv:" + tag + b"#bytes"]
        argv = [b"eg:kv:" + tag + b":", *args]
        deadline = time.monotonic() + max(0.0, timeout)
        while True:
            left = deadline - time.monotonic()
            try:
                try:
                    reply = self._call(left, b"EVALSHA", script.sha, 3, *keys, *argv)
                except redis.exceptions.NoScriptError:  # a restarted Redis, or the first call
                    reply = self._call(deadline - time.monotonic(), b"EVAL", script.source, 3, *keys, *argv)
            except redis.ResponseError as exc:
                raise self._refused(exc) from None
            if isinstance(reply, list) and reply and reply[0] == 4:
                continue  # a batch of expired keys was purged; go on within the deadline
            return reply

    def _refused(self, exc: redis.ResponseError) -> CapabilityError:
        # OOM (maxmemory), READONLY (a replica), NOAUTH, a script killed, ...: the backend cannot take it now
        log.warning("plugin kv: Redis at %s refused a call: %s", self.display_url, str(exc)[:200])
        return CapabilityError(EG_UNAVAILABLE, f"Redis refused the call: {str(exc)[:200]}")

    @staticmethod
    def _answer(reply: Any, limits: Limits) -> Any:
        code = reply[0]
        if code == 0:
            return reply[1] if len(reply) > 1 else None
        if code == 1:
            raise CapabilityError(EG_QUOTA, f"the namespace holds {reply[1]} keys, the most allowed "
                                  f"(max_kv_keys {limits.max_kv_keys})")
        if code == 2:
            raise CapabilityError(EG_QUOTA, f"the namespace would hold {reply[1]} bytes, over "
                                  f"max_kv_bytes {limits.max_kv_bytes}")
        if code == 3:
            raise CapabilityError(EG_NOT_A_NUMBER, reply[1].decode())
        if code == 5:
            raise CapabilityError(EG_QUOTA, "the counter's new value would go over max_kv_bytes")
        raise CapabilityError(EG_UNAVAILABLE, f"unexpected answer from the kv script: {reply!r:.100}")

    # -- KvStore -------------------------------------------------------------------------------

    def get(self, namespace: str, key: bytes, timeout: float = 1.0) -> bytes | None:
        try:
            value = self._call(timeout, b"GET", data_key(namespace, bytes(key)))
        except redis.ResponseError as exc:
            raise self._refused(exc) from None
        return None if value is None else bytes(value)

    def set(self, namespace: str, key: bytes, value: bytes, ttl_ms: int = 0, limits: Limits | None = None,
            timeout: float = 1.0) -> None:
        limits = limits or _DEFAULT_LIMITS
        reply = self._script("set", namespace, [bytes(key), bytes(value), b"%d" % ttl_ms,
                                                b"%d" % limits.max_kv_keys, b"%d" % limits.max_kv_bytes], timeout)
        self._answer(reply, limits)

    def delete(self, namespace: str, key: bytes, timeout: float = 1.0) -> bool:
        reply = self._script("delete", namespace, [bytes(key)], timeout)
        return bool(self._answer(reply, _DEFAULT_LIMITS))

    def incr(self, namespace: str, key: bytes, delta: int, ttl_ms: int = 0, limits: Limits | None = None,
             timeout: float = 1.0) -> int:
        if not INT64_MIN <= delta <= INT64_MAX:
            raise CapabilityError(EG_NOT_A_NUMBER, "the sum would overflow int64")
        limits = limits or _DEFAULT_LIMITS
        reply = self._script("incr", namespace, [bytes(key), b"%d" % delta, b"%d" % ttl_ms,
                                                 b"%d" % limits.max_kv_keys, b"%d" % limits.max_kv_bytes], timeout)
        return int(self._answer(reply, limits))

    def cas(self, namespace: str, key: bytes, expected: bytes | None, value: bytes, ttl_ms: int = 0,
            limits: Limits | None = None, timeout: float = 1.0) -> bool:
        limits = limits or _DEFAULT_LIMITS
        args = [bytes(key), b"0" if expected is None else b"1", b"" if expected is None else bytes(expected),
                bytes(value), b"%d" % ttl_ms, b"%d" % limits.max_kv_keys, b"%d" % limits.max_kv_bytes]
        return bool(self._answer(self._script("cas", namespace, args, timeout), limits))

    def clear(self, namespace: str) -> None:
        """Drop every key of a namespace (for every gateway sharing this Redis), a batch per script call."""
        deadline = time.monotonic() + DEFAULT_TIMEOUT
        try:
            while self._script("clear", namespace, [b""], deadline - time.monotonic()):
                pass
        except CapabilityError as exc:
            log.warning("plugin kv: could not clear the keys of %r at %s: %s", namespace, self.display_url,
                        exc.message or exc)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for conn in idle:
            self._discard(conn)

    # -- for operators and tests -------------------------------------------------------------

    def probe(self, timeout: float = 1.0) -> bool:
        """Whether Redis answers a PING now (a failure logs the one "unreachable" warning)."""
        try:
            self._call(timeout, b"PING")
        except (CapabilityError, redis.ResponseError) as exc:
            if isinstance(exc, redis.ResponseError):
                self._went_down(exc)
            return False
        return True

    def usage(self, namespace: str, timeout: float = DEFAULT_TIMEOUT) -> tuple[int, int]:
        """(live keys, bytes) of a namespace, after purging its expired keys."""
        reply = self._script("usage", namespace, [b""], timeout)
        return int(reply[1]), int(reply[2])
