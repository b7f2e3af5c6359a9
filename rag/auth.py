"""API keys: ``rag_<id>_<secret>``; only sha256(secret) is stored. Scopes are ordered:
read < write < admin (a write key can also read)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass

from rag.errors import InputError
from rag.store.sql import DocumentStore
from rag.types import Scope


@dataclass(frozen=True)
class ApiKey:
    id: str
    name: str
    scope: Scope


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_key(store: DocumentStore, scope: Scope, name: str = "") -> tuple[ApiKey, str]:
    """A new key; the returned token is shown once and never stored."""
    key_id, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
    store.keys.add(key_id, name, _hash(secret), Scope(scope).value)
    return ApiKey(key_id, name, Scope(scope)), f"rag_{key_id}_{secret}"


def parse_token(token: str) -> tuple[str, str] | None:
    """(key id, secret) of a ``rag_<id>_<secret>`` token; None when it has another shape."""
    parts = token.split("_", 2)
    return (parts[1], parts[2]) if len(parts) == 3 and parts[0] == "rag" else None


def verify(store: DocumentStore, token: str) -> ApiKey | None:
    parsed = parse_token(token)
    if parsed is None:
        return None
    row = store.keys.get(parsed[0])
    if row is None or row.revoked or not hmac.compare_digest(row.key_hash, _hash(parsed[1])):
        return None
    return ApiKey(row.id, row.name, Scope(row.scope))


def list_keys(store: DocumentStore) -> list[dict]:
    return [{"id": r.id, "name": r.name, "scope": r.scope, "created_at": r.created_at.isoformat(), "revoked": r.revoked}
            for r in store.keys.all()]


def revoke(store: DocumentStore, key_id: str) -> None:
    if not store.keys.revoke(key_id):
        raise InputError(f"no API key with id {key_id!r}")


class RateLimiter:
    """Token bucket per key: ``rate`` requests a second on average, bursts up to ``burst``."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate, self.burst = rate, burst
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def allow(self, key: str) -> tuple[bool, float]:
        """(allowed, seconds until the next request would be allowed)."""
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(key, (float(self.burst), now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            if tokens >= 1:
                self._buckets[key] = (tokens - 1, now)
                return True, 0.0
            self._buckets[key] = (tokens, now)
            return False, (1 - tokens) / self.rate
