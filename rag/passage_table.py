"""The passage table of one index generation: a read-only SQLite file beside the BM25 and dense
indexes. Retrieval reads passages from here, never from the live SQL store, so a reader keeps a
consistent view of its generation while the indexing job rewrites the store."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from rag.errors import IndexUnavailableError, InputError
from rag.types import Passage
from rag.validation import filters_problem

FILE = "passages.sqlite"
_COLUMNS = "id, document_id, ordinal, title, text, source, metadata, token_count"
#: generations written before passages had locations have no such column
#: filter keys that name a column rather than a metadata key
COLUMN_FILTERS = {"source": "source", "document_id": "document_id"}


def write_passage_table(passages: Iterable[Passage], out_dir: Path) -> int:
    """Write passages in the given order; row numbers (0-based) are the dense index's positions."""
    out_dir.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(out_dir / FILE)
    try:
        conn.execute(
            "CREATE TABLE passages (row INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, document_id TEXT NOT NULL,"
            " ordinal INTEGER NOT NULL, title TEXT NOT NULL, text TEXT NOT NULL, source TEXT NOT NULL,"
            " metadata TEXT NOT NULL, token_count INTEGER NOT NULL, location TEXT)"
        )
        rows = (
            (i, p.id, p.document_id, p.ordinal, p.title, p.text, p.source, json.dumps(p.metadata), p.token_count,
             json.dumps(p.location) if p.location else None)
            for i, p in enumerate(passages)
        )
        conn.executemany(f"INSERT INTO passages (row, {_COLUMNS}, location) VALUES (?,?,?,?,?,?,?,?,?,?)", rows)
        conn.execute("CREATE INDEX ix_document ON passages (document_id)")
        conn.commit()
        return int(conn.execute("SELECT count(*) FROM passages").fetchone()[0])
    finally:
        conn.close()


class PassageTable:
    def __init__(self, gen_dir: Path) -> None:
        path = (Path(gen_dir) / FILE).resolve()
        if not path.is_file():
            raise IndexUnavailableError(f"{path} is missing")
        self._conn = sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True, check_same_thread=False)
        with _readable():
            self.ids: list[str] = [r[0] for r in self._conn.execute("SELECT id FROM passages ORDER BY row")]
            has_location = any(r[1] == "location" for r in self._conn.execute("PRAGMA table_info(passages)"))
        self.row_of: dict[str, int] = {pid: i for i, pid in enumerate(self.ids)}
        self._select = f"SELECT {_COLUMNS}, {'location' if has_location else 'NULL'} FROM passages"

    def __len__(self) -> int:
        return len(self.ids)

    def get(self, ids: Sequence[str]) -> dict[str, Passage]:
        if not ids:
            return {}
        marks = ",".join("?" * len(ids))
        with _readable():
            rows = self._conn.execute(f"{self._select} WHERE id IN ({marks})", list(ids)).fetchall()
            return {r[0]: Passage(r[0], r[1], r[2], r[3], r[4], r[5], json.loads(r[6]), r[7], json.loads(r[8]) if r[8] else {})
                    for r in rows}

    def rows_matching(self, filters: Mapping[str, Any]) -> np.ndarray:
        """Rows whose passage matches every filter: equality on ``source``, ``document_id`` or a metadata key."""
        if problem := filters_problem(filters):
            raise InputError(f"filters: {problem}")
        where: list[str] = []
        args: list[Any] = []
        for key, value in filters.items():
            if key in COLUMN_FILTERS:
                where.append(f"{COLUMN_FILTERS[key]} = ?")
            else:
                where.append("json_extract(metadata, ?) = ?")
                args.append("$." + json.dumps(key))
            args.append(int(value) if isinstance(value, bool) else value)
        sql = "SELECT row FROM passages" + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY row"
        with _readable():
            return np.fromiter((r[0] for r in self._conn.execute(sql, args).fetchall()), dtype=np.int64)

    def close(self) -> None:
        self._conn.close()


@contextmanager
def _readable() -> Iterator[None]:
    """A damaged passage table is the index's fault, not the request's: a 503 with the reason."""
    try:
        yield
    except (sqlite3.DatabaseError, ValueError) as exc:
        raise IndexUnavailableError(f"the passage table cannot be read: {exc}") from exc
