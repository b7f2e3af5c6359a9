"""API key rows: the public id, a hash of the secret, the scope, when revoked."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from rag.store.models import ApiKeyRow, rowcount, utcnow


@dataclass(frozen=True)
class StoredKey:
    id: str
    name: str
    key_hash: str
    scope: str
    created_at: datetime
    revoked: bool


class KeyTable:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def add(self, key_id: str, name: str, key_hash: str, scope: str) -> None:
        with self._sessions() as s, s.begin():
            s.add(ApiKeyRow(id=key_id, name=name, key_hash=key_hash, scope=scope, created_at=utcnow()))

    def get(self, key_id: str) -> StoredKey | None:
        with self._sessions() as s:
            row = s.get(ApiKeyRow, key_id)
            return None if row is None else _key(row)

    def all(self) -> list[StoredKey]:
        with self._sessions() as s:
            return [_key(r) for r in s.scalars(select(ApiKeyRow).order_by(ApiKeyRow.created_at))]

    def revoke(self, key_id: str) -> bool:
        """False when there is no such key."""
        with self._sessions() as s, s.begin():
            return rowcount(s.execute(update(ApiKeyRow).where(ApiKeyRow.id == key_id).values(revoked_at=utcnow()))) > 0


def _key(row: ApiKeyRow) -> StoredKey:
    return StoredKey(row.id, row.name, row.key_hash, row.scope, row.created_at, row.revoked_at is not None)
