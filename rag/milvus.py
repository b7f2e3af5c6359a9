"""The Milvus index backend (``index.backend = milvus``): past one machine's memory.

One collection per index generation holds every passage's row (its position in the generation's
passage table, the primary key), passage id, document id, title, text, metadata (JSON), its dense
vector (HNSW, inner product) and a sparse BM25 vector that Milvus's own BM25 function derives from the
text. The generation folder keeps what it keeps locally (manifest, passage table) plus ``milvus.json``
naming the collection, so one search still reads one generation throughout: the reader opens the
collection its manifest names, never "whatever the alias points at now". The alias (the collection
prefix itself) is moved to a new collection once it is verified and published, for other Milvus clients.

Both retrieval contracts are served from the collection: :class:`MilvusDense` (rag.dense.base.DenseIndex)
and :class:`MilvusBM25` (rag.bm25.base.BM25Retriever); fusion, truncation and everything after them are
ours, so tuned settings carry over. A metadata filter is resolved to rows by the passage table and
sent to Milvus as ``row in [...]``: only integers reach the expression, so nothing from a request can
change its meaning.

milvus-lite (a local ``.db`` file, the default URI) runs the same client API in-process: it is what the
tests use. Its BM25 distances are negative (best first all the same); scores are reported as magnitudes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from rag.bm25.analysis import analyze
from rag.errors import ConfigError, IndexUnavailableError
from rag.types import ScoredId, indexed_text

log = logging.getLogger(__name__)

FILE = "milvus.json"
SCHEMA = 3  # the collection layout; a generation built with another is rebuilt (3: BM25 over our analysed title + text; text alone)
MILVUS = "milvus"  # the manifest's BM25 backend and dense kind for a generation kept in Milvus
TEXT_BYTES = 65_535  # Milvus VARCHAR limit, in bytes
# Milvus's BM25 function runs over ``terms``: the text as our other BM25 backends analyse it (Lucene's
# tokenizer rules, stop words and Porter stems, rag.bm25.analysis), joined by spaces, which Milvus's
# standard tokenizer splits back into the same terms. Milvus's own English filters were measured first
# (standard tokenizer, lowercase, stop words, English stemmer): milvus-lite accepts the stemmer but does
# not stem ("cats" misses "cat"), reads "_english_" as a word, and knows no other tokenizer, and on
# SciFact test its BM25 lost 0.012 nDCG@10 and 0.039 Recall@100 to Lucene. Analysing once, here, gives
# every Milvus the same terms as the local backends, so tuned fusion settings carry over.
ANALYZER = {"tokenizer": "standard"}
MAX_TOPK = 16_384  # Milvus's limit on one search's results
_NAME_OK = re.compile(r"[^A-Za-z0-9_]")


class MilvusSettings(BaseModel):
    """Where the collections live. Frozen: one value per configuration."""

    model_config = ConfigDict(frozen=True)

    uri: str = Field("", description="http://host:19530 for a Milvus server; a .db path for milvus-lite; default INDEX_DIR/milvus.db")
    token: str = Field("", description="user:password or an API key (never written to the index)")
    db_name: str = Field("", description="Milvus database; default the server's default")
    prefix: str = Field("", description="collection names start with it, and it is the alias of the current one; "
                                        "default rag_ + a hash of the index directory")
    batch: int = Field(512, ge=1, le=10_000, description="rows per insert")


@dataclass(frozen=True)
class Location:
    """Which Milvus and which names one index directory uses."""

    uri: str
    token: str
    db_name: str
    prefix: str

    def collection(self, generation: str) -> str:
        return f"{self.prefix}_{_NAME_OK.sub('_', generation)}"


def locate(settings: MilvusSettings, index_dir: Path) -> Location:
    index_dir = Path(index_dir).resolve()
    uri = settings.uri or str(index_dir / "milvus.db")
    prefix = settings.prefix or "rag_" + hashlib.sha256(str(index_dir).encode()).hexdigest()[:10]
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,200}", prefix):
        raise ConfigError(f"milvus.prefix {prefix!r} is not a Milvus name (letters, digits, underscores)")
    return Location(uri, settings.token, settings.db_name, prefix)


_clients: dict[tuple[str, str, str], Any] = {}
_clients_lock = threading.Lock()


def client(loc: Location) -> Any:
    """One MilvusClient per (uri, token, database) in this process, shared by every reader and job."""
    from pymilvus import MilvusClient
    from pymilvus.exceptions import MilvusException

    key = (loc.uri, loc.token, loc.db_name)
    with _clients_lock:
        if key not in _clients:
            if "://" not in loc.uri:  # milvus-lite, served from this process
                Path(loc.uri).parent.mkdir(parents=True, exist_ok=True)
                # its server logs a traceback at ERROR for each index the client waits on (AllocTimestamp is
                # not implemented there; the client copes): not an error of ours
                logging.getLogger("grpc._server").setLevel(logging.CRITICAL)
            try:
                _clients[key] = MilvusClient(uri=loc.uri, token=loc.token, db_name=loc.db_name)
            except (MilvusException, OSError, ValueError) as exc:
                raise IndexUnavailableError(f"cannot connect to Milvus at {loc.uri!r}: {exc}") from exc
        return _clients[key]


@dataclass(frozen=True)
class Row:
    """One passage as a collection row (BM25 reads its title and text, as the local backends do)."""

    row: int
    id: str
    document_id: str
    title: str
    text: str
    metadata: dict[str, Any]
    vector: np.ndarray


def terms(text: str) -> str:
    """What Milvus's BM25 indexes and searches: our analysed terms, inner ' and . as _ (one token to Milvus)."""
    return " ".join(analyze(text)).translate(_JOIN)


_JOIN = str.maketrans({"'": "_", "’": "_", ".": "_"})


def _fit(text: str, limit: int) -> str:
    data = text.encode()
    if len(data) <= limit:
        return text
    log.warning("a passage field of %d bytes is cut to Milvus's limit of %d", len(data), limit)
    return data[:limit].decode(errors="ignore")


def build_collection(
    loc: Location, name: str, rows: Iterable[Row], dim: int,
    hnsw_m: int = 32, ef_construction: int = 200, k1: float = 0.9, b: float = 0.4, batch: int = 512,
) -> int:
    """Create collection ``name`` (replacing a leftover of that name), insert ``rows`` in batches, index
    and load it; returns the number of rows inserted."""
    from pymilvus import DataType, Function, FunctionType

    c = client(loc)
    if c.has_collection(name):
        c.drop_collection(name)
    schema = c.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("row", DataType.INT64, is_primary=True)
    schema.add_field("id", DataType.VARCHAR, max_length=1024)
    schema.add_field("document_id", DataType.VARCHAR, max_length=1024)
    schema.add_field("title", DataType.VARCHAR, max_length=4096)
    schema.add_field("text", DataType.VARCHAR, max_length=TEXT_BYTES)
    schema.add_field("terms", DataType.VARCHAR, max_length=TEXT_BYTES, enable_analyzer=True, analyzer_params=ANALYZER)
    schema.add_field("metadata", DataType.JSON)
    schema.add_field("dense", DataType.FLOAT_VECTOR, dim=dim)
    schema.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
    schema.add_function(Function(name="bm25", function_type=FunctionType.BM25,
                                 input_field_names=["terms"], output_field_names=["sparse"]))
    index = c.prepare_index_params()
    index.add_index(field_name="dense", index_type="HNSW", metric_type="IP", params={"M": hnsw_m, "efConstruction": ef_construction})
    index.add_index(field_name="sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25", params={"bm25_k1": k1, "bm25_b": b})
    c.create_collection(name, schema=schema, index_params=index)
    n = 0
    for chunk in _batches(rows, batch):
        c.insert(name, [{
            "row": r.row, "id": r.id, "document_id": r.document_id, "title": _fit(r.title, 4096),
            "text": _fit(r.text, TEXT_BYTES), "terms": _fit(terms(indexed_text(r.title, r.text)), TEXT_BYTES), "metadata": r.metadata,
            "dense": np.asarray(r.vector, np.float32).tolist(),
        } for r in chunk])
        n += len(chunk)
    c.flush(name)
    c.load_collection(name)
    return n


def _batches(rows: Iterable[Row], n: int) -> Iterator[list[Row]]:
    batch: list[Row] = []
    for r in rows:
        batch.append(r)
        if len(batch) >= n:
            yield batch
            batch = []
    if batch:
        yield batch


def write_pointer(gen_dir: Path, loc: Location, name: str, dim: int, k1: float, b: float) -> None:
    """``milvus.json`` in the generation: which collection holds its vectors and BM25 (no credentials)."""
    (Path(gen_dir) / FILE).write_text(json.dumps({"collection": name, "uri": loc.uri, "db_name": loc.db_name, "schema": SCHEMA,
                                                  "dim": dim, "bm25": {"k1": k1, "b": b}}, indent=2), encoding="utf-8")


def read_pointer(gen_dir: Path) -> dict[str, Any]:
    try:
        d = json.loads((Path(gen_dir) / FILE).read_text(encoding="utf-8"))
        str(d["collection"]), int(d["dim"])
        return d
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise IndexUnavailableError(f"{Path(gen_dir) / FILE} is unreadable ({exc}); re-run `rag index`") from exc


def open_parts(
    gen_dir: Path, settings: MilvusSettings, index_dir: Path, ef_search: int = 128, k1: float | None = None, b: float | None = None,
) -> tuple[MilvusBM25, MilvusDense]:
    """The BM25 retriever and dense index of one generation stored in Milvus. BM25's k1 and b were
    fixed when the collection was built: other values asked for here are reported, not applied."""
    from pymilvus.exceptions import MilvusException

    pointer = read_pointer(gen_dir)
    if pointer.get("schema", 1) != SCHEMA:
        raise IndexUnavailableError(f"generation {Path(gen_dir).name} was built in Milvus by another release (collection "
                                    f"layout {pointer.get('schema', 1)}, this one reads {SCHEMA}); re-run `rag index`")
    built = pointer.get("bm25", {})
    if (k1, b) != (None, None) and (k1, b) != (built.get("k1"), built.get("b")):
        log.warning("the Milvus BM25 index of %s was built with k1=%s b=%s; bm25.k1/b (%s, %s) apply after a re-index",
                    Path(gen_dir).name, built.get("k1"), built.get("b"), k1, b)
    loc = locate(settings, index_dir)
    name = pointer["collection"]
    c = client(loc)
    try:
        if not c.has_collection(name):
            raise IndexUnavailableError(f"Milvus collection {name!r} of generation {Path(gen_dir).name} is missing "
                                        f"at {loc.uri!r}; re-run `rag index`")
        c.load_collection(name)  # collections come back released after a restart
        count = int(c.query(name, filter="", output_fields=["count(*)"])[0]["count(*)"])
    except MilvusException as exc:
        raise IndexUnavailableError(f"Milvus collection {name!r} cannot be opened: {exc}") from exc
    return MilvusBM25(c, name, count), MilvusDense(c, name, count, int(pointer["dim"]), ef_search)


class _Collection:
    def __init__(self, c: Any, name: str, count: int) -> None:
        self._c, self.name, self._count = c, name, count

    def __len__(self) -> int:
        return self._count

    def _search(self, data: list, field: str, k: int, expr: str, params: dict[str, Any], out: str) -> list:
        from pymilvus.exceptions import MilvusException

        try:
            return self._c.search(self.name, data=data, anns_field=field, limit=k, filter=expr,
                                  output_fields=[out], search_params={"params": params})
        except MilvusException as exc:
            raise IndexUnavailableError(f"Milvus search on {self.name!r} failed: {exc}") from exc


class MilvusDense(_Collection):
    kind = MILVUS

    def __init__(self, c: Any, name: str, count: int, dim: int, ef_search: int = 128) -> None:
        super().__init__(c, name, count)
        self._dim, self.ef_search = dim, ef_search

    @property
    def dim(self) -> int:
        return self._dim

    def search(self, queries: np.ndarray, k: int, rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        queries = np.atleast_2d(np.asarray(queries, np.float32))
        n = self._count if rows is None else min(self._count, len(rows))
        k = min(k, n, MAX_TOPK)
        scores = np.full((len(queries), k), -np.inf, np.float32)
        found = np.full((len(queries), k), -1, np.int64)
        if k == 0:
            return scores, found
        expr = "" if rows is None else f"row in [{','.join(str(int(r)) for r in rows)}]"
        res = self._search(queries.tolist(), "dense", k, expr, {"ef": max(self.ef_search, k)}, "row")
        for i, hits in enumerate(res):
            for j, h in enumerate(hits[:k]):
                scores[i, j], found[i, j] = h["distance"], h["entity"]["row"]
        return scores, found

    def vector(self, row: int) -> np.ndarray:
        got = self._c.query(self.name, filter=f"row == {int(row)}", output_fields=["dense"])
        if not got:
            raise IndexError(f"row {row} is not in Milvus collection {self.name!r}")
        return np.asarray(got[0]["dense"], np.float32)


class MilvusBM25(_Collection):
    def search(self, query: str, k: int) -> list[ScoredId]:
        q = terms(query)
        if not q or k <= 0 or not self._count:
            return []
        res = self._search([q], "sparse", min(k, MAX_TOPK), "", {}, "id")
        # Milvus returns the best first; milvus-lite reports BM25 as negative distances
        return [ScoredId(h["entity"]["id"], abs(float(h["distance"]))) for h in res[0] if h["distance"] != 0]

    @property
    def ids(self) -> list[str]:
        """Every passage id, in row order (the job's check before publishing). Rows are 0..n-1, so
        the collection is read in row ranges (milvus-lite has no query iterator)."""
        out: list[str] = []
        for lo in range(0, self._count, 8192):
            page = self._c.query(self.name, filter=f"row >= {lo} and row < {lo + 8192}", output_fields=["row", "id"])
            out.extend(r["id"] for r in sorted(page, key=lambda r: r["row"]))
        return out


def point_alias(loc: Location, name: str) -> None:
    """Move the alias (the prefix) to ``name``: other Milvus clients switch at once. Idempotent."""
    c = client(loc)
    if loc.prefix not in c.list_aliases().get("aliases", []):
        c.create_alias(name, loc.prefix)
    elif c.describe_alias(loc.prefix).get("collection_name") != name:
        c.alter_alias(name, loc.prefix)


def drop_unused(loc: Location, keep: Iterable[str]) -> list[str]:
    """Drop this index's collections that no kept generation names (killed builds, old generations)."""
    c = client(loc)
    keep = set(keep)
    dropped = []
    for name in c.list_collections():
        if name.startswith(loc.prefix + "_") and name not in keep:
            c.drop_collection(name)
            dropped.append(name)
    return dropped
