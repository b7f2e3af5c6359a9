"""State that API replicas share through a Redis-compatible server (``redis_url``): the per-key rate
limit and the cache of verified API keys. Without ``redis_url`` each process keeps its own (rag.auth's
RateLimiter and the service's TTL cache), which is right for one process and wrong for N: N replicas
would each allow a key its full rate.

- The rate limit is one token bucket per key in Redis, updated by a Lua script (atomic on the server,
  timed by the server's clock, so replicas on hosts with skewed clocks agree).
- A verified key is cached under ``rag:key:<key id>:<sha256 of the token>`` for ``key_ttl_s``; revoking a
  key (``rag keys revoke`` or the API, with ``redis_url`` set) deletes its entries, so every replica
  refuses it at once rather than when its own cache expires. Unknown tokens are cached briefly too,
  so a flood of bad tokens does not reach SQL.
- If Redis cannot be reached, requests are not refused for it: the limiter falls back to a
  per-process bucket and keys are verified in SQL, and the failure is logged.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from rag.auth import ApiKey, parse_token
from rag.errors import ConfigError
from rag.types import Scope

log = logging.getLogger(__name__)
MISSING = object()
RETRY_AFTER_S = 5.0

_BUCKET = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local rate, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local b = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(b[1]) or burst
local ts = tonumber(b[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - ts) * rate)
local allowed, wait = 0, 0
if tokens >= 1 then tokens = tokens - 1; allowed = 1 else wait = (1 - tokens) / rate end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('EXPIRE', KEYS[1], math.ceil(burst / rate) + 2)
return {allowed, tostring(wait)}
"""


def connect(url: str) -> Any:
    """A Redis client for ``url`` (redis://host:port/db); a clear error when it cannot be reached."""
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    try:  # short timeouts, one retry: a request waits on Redis briefly or not at all
        client = redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 1))
        client.ping()
    except (redis.RedisError, ValueError) as exc:
        raise ConfigError(f"redis_url {url!r} cannot be reached: {exc}") from exc
    return client


class _Breaker:
    """After a Redis failure, Redis is left alone for RETRY_AFTER_S: an outage costs no time per request."""

    _down_until = 0.0

    def _up(self) -> bool:
        return time.monotonic() >= self._down_until

    def _failed(self, exc: Exception, meanwhile: str) -> None:
        self._down_until = time.monotonic() + RETRY_AFTER_S
        log.error("Redis is unreachable (%s): %s for the next %.0f s", exc, meanwhile, RETRY_AFTER_S)


class RedisRateLimiter(_Breaker):
    """Token bucket per key, shared by every process using the same Redis: ``rate`` requests a second
    in total across replicas, bursts up to ``burst``. Same interface as rag.auth.RateLimiter."""

    def __init__(self, client: Any, rate: float, burst: int, fallback: Any, prefix: str = "rag:rate:") -> None:
        self._client, self.rate, self.burst, self._fallback, self._prefix = client, rate, burst, fallback, prefix
        self._script = client.register_script(_BUCKET)

    def allow(self, key: str) -> tuple[bool, float]:
        import redis

        if self._up():
            try:
                allowed, wait = self._script(keys=[self._prefix + key], args=[self.rate, self.burst])
                return bool(int(allowed)), float(wait)
            except redis.RedisError as exc:
                self._failed(exc, "rate limits are per process")
        return self._fallback.allow(key)


class TTLCache:
    """Verified keys are remembered for ``ttl_s`` seconds, saving a SQL lookup per request (so a
    revoked key stops working within that time)."""

    def __init__(self, ttl_s: float = 10.0, max_items: int = 10_000) -> None:
        self.ttl_s, self.max_items = ttl_s, max_items
        self._items: dict[str, tuple[float, object]] = {}
        self._lock = threading.Lock()

    def peek(self, key: str):
        """The cached value, or MISSING."""
        with self._lock:
            hit = self._items.get(key)
            return hit[1] if hit is not None and hit[0] > time.monotonic() else MISSING

    def get(self, key: str, compute):
        value = self.peek(key)
        if value is MISSING:
            value = compute()
            with self._lock:
                if len(self._items) >= self.max_items:
                    self._items.clear()
                self._items[key] = (time.monotonic() + self.ttl_s, value)
        return value


class RedisKeyCache(_Breaker):
    """Verified API keys, shared by every replica; the same peek/get interface as the service's TTL cache."""

    def __init__(self, client: Any, key_ttl_s: float = 60.0, unknown_ttl_s: float = 10.0, prefix: str = "rag:key:") -> None:
        self._client, self.key_ttl_s, self.unknown_ttl_s, self._prefix = client, key_ttl_s, unknown_ttl_s, prefix

    def _name(self, token: str) -> str:
        parsed = parse_token(token)
        key_id = parsed[0] if parsed else "-"
        return f"{self._prefix}{key_id}:{hashlib.sha256(token.encode()).hexdigest()}"

    def peek(self, token: str) -> Any:
        import redis

        if not self._up():
            return MISSING
        try:
            raw = self._client.get(self._name(token))
        except redis.RedisError as exc:
            self._failed(exc, "keys are verified in SQL on every request")
            return MISSING
        if raw is None:
            return MISSING
        d = json.loads(raw)
        return None if d is None else ApiKey(d["id"], d["name"], Scope(d["scope"]))

    def get(self, token: str, compute: Callable[[], Any]) -> Any:
        import redis

        value = self.peek(token)
        if value is MISSING:
            value = compute()
            if not self._up():
                return value
            payload = None if value is None else {"id": value.id, "name": value.name, "scope": value.scope.value}
            try:
                self._client.set(self._name(token), json.dumps(payload), ex=max(1, round(self.key_ttl_s if value else self.unknown_ttl_s)))
            except redis.RedisError as exc:
                log.warning("could not cache a verified key in Redis: %s", exc)
        return value

    def forget(self, key_id: str) -> int:
        """Drop every cached verification of ``key_id`` (after it is revoked); returns how many."""
        names = list(self._client.scan_iter(match=f"{self._prefix}{key_id}:*", count=1000))
        return int(self._client.delete(*names)) if names else 0
