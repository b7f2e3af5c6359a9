"""The passage table of one index generation: a read-only SQLite file beside the BM25 and dense
indexes. Retrieval reads passages from here, never from the live SQL store, so a reader keeps a
consistent view of its generation while the indexing job rewrites the store."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from pathlib import Path

from rag.types import Passage

FILE = "passages.sqlite"
_COLUMNS = "id, document_id, ordinal, title, text, source, metadata"


def write_docstore(passages: Iterable[Passage], out_dir: Path) -> int:
    """Write passages in the given order; row numbers (0-based) are the dense index's positions."""
    out_dir.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(out_dir / FILE)
    try:
        conn.execute(
            "CREATE TABLE passages (row INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, document_id TEXT NOT NULL,"
            " ordinal INTEGER NOT NULL, title TEXT NOT NULL, text TEXT NOT NULL, source TEXT NOT NULL,"
            " metadata TEXT NOT NULL)"
        )
        rows = (
            (i, p.id, p.document_id, p.ordinal, p.title, p.text, p.source, json.dumps(p.metadata))
            for i, p in enumerate(passages)
        )
        conn.executemany(f"INSERT INTO passages (row, {_COLUMNS}) VALUES (?,?,?,?,?,?,?,?)", rows)
        conn.execute("CREATE INDEX ix_document ON passages (document_id)")
        conn.commit()
        return int(conn.execute("SELECT count(*) FROM passages").fetchone()[0])
    finally:
        conn.close()


class DocStore:
    def __init__(self, gen_dir: Path) -> None:
        uri = f"file:{(Path(gen_dir) / FILE).resolve()}?mode=ro&immutable=1"
        self._conn = sqlite3.connect(uri, uri=True, check_same_thread=False)
        self.ids: list[str] = [r[0] for r in self._conn.execute("SELECT id FROM passages ORDER BY row")]
        self.row_of: dict[str, int] = {pid: i for i, pid in enumerate(self.ids)}

    def __len__(self) -> int:
        return len(self.ids)

    def get(self, ids: Sequence[str]) -> dict[str, Passage]:
        if not ids:
            return {}
        marks = ",".join("?" * len(ids))
        cur = self._conn.execute(f"SELECT {_COLUMNS} FROM passages WHERE id IN ({marks})", list(ids))
        return {r[0]: Passage(r[0], r[1], r[2], r[3], r[4], r[5], json.loads(r[6])) for r in cur}

    def document_count(self) -> int:
        return int(self._conn.execute("SELECT count(DISTINCT document_id) FROM passages").fetchone()[0])

    def close(self) -> None:
        self._conn.close()
