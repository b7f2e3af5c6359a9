"""The indexing job: source -> chunks -> SQL store -> vectors -> new generation -> atomic publish.

Every step is idempotent, which is what makes the job resumable: documents are written in
transactions keyed by content hash (a re-run skips what a killed run committed), vectors are
committed per batch and only missing ones are encoded, and a generation is built in a staging
folder that only a finished run publishes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from functools import partial
from pathlib import Path

import numpy as np
from tqdm import tqdm

from indexer.sources import RecordsSource, Source
from rag import generations as gens
from rag import milvus
from rag.bm25 import build_bm25
from rag.chunking import Chunker, text_hash
from rag.dense import build_dense
from rag.encoders.base import Encoder
from rag.errors import IndexValidationError, InputError, RagError
from rag.factory import build_encoder, encoder_spec, make_chunker, make_encoder, make_store
from rag.manifest import Counts, DenseInfo, EncoderInfo, Manifest
from rag.milvus import MILVUS, MilvusSettings
from rag.passage_table import PassageTable, write_passage_table
from rag.reader import open_retrievers
from rag.settings import BM25Backend, IndexBackend, Settings
from rag.store.sql import DocumentStore, DocumentWrite
from rag.timing import Timer
from rag.types import IndexSummary, Passage, Rejection, SourceDocument, indexed_text

log = logging.getLogger(__name__)


class JobInterrupted(RagError):
    """The job was asked to stop (the process is shutting down); what it committed stays."""


class StrictModeError(InputError):
    """--strict and the source has bad records; nothing was written."""

    def __init__(self, rejections: list[Rejection]) -> None:
        self.rejections = rejections
        lines = "\n".join(f"  {r}" for r in rejections[:50])
        more = f"\n  ... and {len(rejections) - 50} more" if len(rejections) > 50 else ""
        super().__init__(f"{len(rejections)} bad record(s); nothing was indexed (--strict):\n{lines}{more}")


def content_hash(doc: SourceDocument, chunk_signature: str) -> str:
    parts: list = [doc.title, doc.text, doc.metadata, chunk_signature]
    if doc.sections:  # where pages or sections begin and end (documents without them hash as before)
        parts.append(doc.sections)
    payload = json.dumps(parts, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(payload.encode()).hexdigest()


@dataclass
class IndexJob:
    index_dir: Path
    store: DocumentStore
    encoder: Encoder
    chunker: Chunker
    bm25_backend: BM25Backend = BM25Backend.bm25s
    bm25_threads: int = 1
    hnsw_m: int = 32
    ef_construction: int = 200
    exact_threshold: int = 100_000
    keep_generations: int = 2
    encode_batch_size: int = 64
    #: passages encoded between commits: the most work a kill can lose
    commit_every: int = 512
    #: documents written per SQL transaction
    write_every: int = 256
    progress: bool = True
    #: called with (stage, done, total) as the job advances (the API's job status)
    on_progress: Callable[[str, int, int], None] | None = None
    #: index.backend=milvus: vectors and BM25 go to a Milvus collection per generation (None: local files)
    milvus: MilvusSettings | None = None
    #: BM25 parameters fixed at build time (Milvus only; local backends take them when opened)
    bm25_k1: float = 0.9
    bm25_b: float = 0.4
    #: encode on a Ray cluster ("auto", "local" or an address; None: in this process) with this many
    #: actors, each building its encoder with ``encoder_factory`` (picklable)
    ray_address: str | None = None
    ray_workers: int = 2
    encoder_factory: Callable[[], Encoder] | None = None
    #: set to stop the job at the next batch boundary (JobInterrupted); a re-run finishes it
    stop_event: threading.Event | None = None
    summary: IndexSummary = field(default_factory=IndexSummary)

    def run(
        self, source: Source | RecordsSource | None, sync: bool = False, strict: bool = False,
        delete: list[str] | None = None,
    ) -> IndexSummary:
        """Index ``source`` (None: only re-encode / rebuild from what the store holds); ``delete``
        removes documents by id first."""
        self.summary = IndexSummary()
        self._stage = Timer(scale=1.0, totals=self.summary.seconds)
        with gens.job_lock(self.index_dir):
            if self.on_progress:
                self.on_progress("ingest", 0, 0)
            with self._stage("load model"):
                self.encoder.count_tokens("warm up")  # loads the model now, so its time is not charged elsewhere
            if delete:
                with self._stage("store"):
                    self.summary.deleted += self.store.delete_documents(delete)
            if source is not None:
                if strict:
                    with self._stage("validate"):
                        bad = [r for r in source if isinstance(r, Rejection)]
                    if bad:
                        raise StrictModeError(bad)
                self._ingest(source, sync)
            self._encode()
            self._build_and_publish()
        try:  # reporting only: after a publish, a failure here must not fail the job
            self.summary.documents_total, self.summary.passages_total = self.store.counts()
        except Exception as exc:  # noqa: BLE001
            log.warning("could not count the store after the job: %s", exc)
        return self.summary

    # -- stages --------------------------------------------------------------------------------

    def _ingest(self, source: Source | RecordsSource, sync: bool) -> None:
        s = self.summary
        known = self.store.document_hashes()
        seen: set[str] = set()
        pending: list[DocumentWrite] = []
        bar = tqdm(desc="read+chunk", unit="doc", disable=not self.progress)
        for rec in source:
            bar.update(1)
            if isinstance(rec, Rejection):
                s.rejected += 1
                s.rejections.append(rec)
                log.warning("rejected %s", rec)
                continue
            seen.add(rec.id)
            with self._stage("chunk"):
                doc = SourceDocument(rec.id, self.chunker.fit_title(rec.title), rec.text, rec.metadata, rec.sections)
                h = content_hash(doc, self.chunker.signature)
                old = known.get(doc.id)
                if old is not None and old[1] == h:
                    s.skipped += 1
                    continue
                chunks = self.chunker.chunk(doc.title, doc.text, doc.sections)
                hashes = [text_hash(doc.title, c.text) for c in chunks]
            pending.append(DocumentWrite(doc, source.key, h, chunks, hashes))
            if old is None:
                s.added += 1
            else:
                s.updated += 1
            if len(pending) >= self.write_every:
                self._write(pending)
                self._check_stop()
        self._write(pending)
        bar.close()
        if sync:
            gone = [doc_id for doc_id, (src, _) in known.items() if src == source.key and doc_id not in seen]
            with self._stage("store"):
                s.deleted += self.store.delete_documents(gone)

    def _check_stop(self) -> None:
        if self.stop_event is not None and self.stop_event.is_set():
            raise JobInterrupted("the indexing job was stopped; run it again to finish it")

    def _write(self, pending: list[DocumentWrite]) -> None:
        with self._stage("store"):
            self.store.write_documents(pending)
        pending.clear()

    def _encode(self) -> None:
        key = self.encoder.model_key
        with self._stage("store"):
            missing = self.store.missing_vector_ids(key)
        if self.on_progress and missing:
            self.on_progress("encode", 0, len(missing))
        bar = tqdm(total=len(missing), desc="encode", unit="passage", disable=not self.progress)
        if self.ray_address is not None and missing:
            self._encode_on_ray(key, missing, bar)
            bar.close()
            return
        for i in range(0, len(missing), self.commit_every):
            with self._stage("store"):
                rows = self.store.passage_texts(missing[i : i + self.commit_every])
            texts = [indexed_text(title, text) for _, title, text in rows]
            with self._stage("encode"):
                vecs = self.encoder.encode_passages(texts, batch_size=self.encode_batch_size)
            with self._stage("store"):
                self.store.set_vectors(key, [(pid, v.tobytes()) for (pid, _, _), v in zip(rows, vecs, strict=True)])
            self.summary.passages_encoded += len(rows)
            bar.update(len(rows))
            self._check_stop()
            if self.on_progress:
                self.on_progress("encode", self.summary.passages_encoded, len(missing))
        bar.close()

    def _encode_on_ray(self, key: str, missing: list[str], bar: tqdm) -> None:
        from indexer.ray_encode import encode_on_ray

        if self.encoder_factory is None:
            raise InputError("encoding on Ray needs an encoder factory that Ray workers can call")
        ids: list[str] = []
        texts: list[str] = []
        with self._stage("store"):
            for i in range(0, len(missing), 2000):
                for pid, title, text in self.store.passage_texts(missing[i : i + 2000]):
                    ids.append(pid)
                    texts.append(indexed_text(title, text))

        def write_back(batch_ids: list[str], vecs: np.ndarray) -> None:
            self.store.set_vectors(key, [(pid, v.tobytes()) for pid, v in zip(batch_ids, vecs, strict=True)])
            self.summary.passages_encoded += len(batch_ids)
            bar.update(len(batch_ids))
            if self.on_progress:
                self.on_progress("encode", self.summary.passages_encoded, len(missing))
            self._check_stop()

        t = encode_on_ray(ids, texts, self.encoder_factory, self.ray_address or "auto", write_back, self.ray_workers,
                          batch_size=self.encode_batch_size)
        self.summary.seconds.update({"ray start-up": round(t.startup_s, 3), "encode": round(t.encode_s, 3),
                                     "ray write-back": round(t.write_back_s, 3)})

    def _fingerprints(self) -> tuple[str, str]:
        """(passages, whole index): the first changes with the passage set and the BM25 backend only,
        the second with anything a generation holds."""
        h = hashlib.sha256(self._bm25_name.encode())
        for row in self.store.state():
            h.update("\x00".join(row).encode())
            h.update(b"\n")
        passages = h.hexdigest()
        whole = hashlib.sha256(json.dumps([passages, self._index_settings()], sort_keys=True).encode()).hexdigest()
        return passages, whole

    @property
    def _bm25_name(self) -> str:
        return MILVUS if self.milvus is not None else BM25Backend(self.bm25_backend).value

    def _index_settings(self) -> dict:
        d: dict = {
            "encoder": self.encoder.model_key,
            "bm25_backend": self._bm25_name,
            "dense": {"hnsw_m": self.hnsw_m, "ef_construction": self.ef_construction, "exact_threshold": self.exact_threshold},
        }
        if self.milvus is not None:
            loc = milvus.locate(self.milvus, self.index_dir)
            d["milvus"] = {"uri": loc.uri, "db_name": loc.db_name, "prefix": loc.prefix, "k1": self.bm25_k1, "b": self.bm25_b,
                           "schema": milvus.SCHEMA}
        return d

    def _milvus_housekeeping(self) -> None:
        """After a publish (or finding the index unchanged): the alias names the current generation's
        collection, and collections of generations no longer kept (or never finished) are dropped."""
        if self.milvus is None:
            return
        loc = milvus.locate(self.milvus, self.index_dir)
        current = gens.current_generation(self.index_dir)
        if current is not None:
            milvus.point_alias(loc, milvus.read_pointer(current)["collection"])
        root = self.index_dir / gens.GENERATIONS
        kept = [milvus.read_pointer(p)["collection"] for p in root.iterdir() if (p / milvus.FILE).is_file()]
        for name in milvus.drop_unused(loc, kept):
            log.info("dropped Milvus collection %s", name)

    def _build_and_publish(self) -> None:
        if self.on_progress:
            self.on_progress("publish", 0, 1)
        with self._stage("store"):
            passages_fp, fingerprint = self._fingerprints()
        current, previous = self._intact_current()
        if current is not None and previous is not None and previous.fingerprint == fingerprint:
            log.info("index unchanged; generation %s stays current", current.name)
            self.summary.generation = current.name
            self._milvus_housekeeping()  # a run killed after the publish had not moved the alias yet
            return
        name, staging = gens.new_staging(self.index_dir)
        try:
            self._build(staging, current, previous, passages_fp, fingerprint)
            with self._stage("validate"):
                self._validate(staging)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        with self._stage("publish"):
            gens.publish(self.index_dir, name, staging, self._manifest)
        self.summary.generation = name
        self.summary.published = True
        try:  # published: what follows is housekeeping, and its failure must not fail the job
            gens.collect_garbage(self.index_dir, self.keep_generations)
            self._milvus_housekeeping()
        except (OSError, RagError) as exc:
            log.warning("could not remove old generations: %s", exc)

    def _intact_current(self) -> tuple[Path | None, Manifest | None]:
        """The published generation and its manifest; (None) when there is none or it is damaged, so a
        re-run rebuilds it rather than reporting an unchanged index."""
        try:
            current = gens.current_generation(self.index_dir)
            if current is None or not current.is_dir():
                return current, None
            damaged = gens.verify(current)
        except RagError as exc:
            log.warning("the published generation is unusable (%s): rebuilding", exc)
            return None, None
        if damaged:
            log.warning("generation %s is damaged (%s): rebuilding", current.name, ", ".join(damaged[:5]))
            return None, None
        manifest = gens.read_manifest(current)
        if manifest.bm25_backend == MILVUS and self.milvus is not None:
            try:
                bm25, _ = open_retrievers(current, MILVUS, self.index_dir, self.milvus)
                if len(bm25) != manifest.counts.passages:
                    raise RagError(f"its collection holds {len(bm25)} rows, not {manifest.counts.passages}")
            except RagError as exc:
                log.warning("generation %s is unusable in Milvus (%s): rebuilding", current.name, exc)
                return None, None
        return current, manifest

    def _build(self, staging: Path, current: Path | None, previous: Manifest | None, passages_fp: str, fingerprint: str) -> None:
        vectors: list[bytes] = []  # each passage's vector, in row order (kept for _validate)
        self._vectors = vectors
        documents: set[str] = set()
        self._expected_ids: list[str] = []

        def passages() -> Iterator[Passage]:
            for p in self.store.iter_passages():
                if p.embedding is None:
                    raise RuntimeError(f"passage {p.id} has no vector after encoding")
                vectors.append(p.embedding)
                documents.add(p.document_id)
                self._expected_ids.append(p.id)
                yield Passage(p.id, p.document_id, p.ordinal, p.title, p.text, p.source, p.metadata, p.token_count, p.location)

        with self._stage("docstore"):
            n = write_passage_table(passages(), staging)
        dim = self.encoder.dim
        if self.milvus is not None:
            with self._stage("milvus"):
                self._build_milvus(staging, vectors)
            kind = MILVUS
        else:
            with self._stage("bm25"):
                if current is not None and previous is not None and previous.passages_fingerprint == passages_fp:
                    # same passages, same backend (e.g. a new encoder): BM25 is untouched, its files are shared
                    shutil.copytree(current / "bm25", staging / "bm25", copy_function=os.link)
                else:
                    store = PassageTable(staging)
                    texts = ((pid, p.indexed_text) for chunk in _chunks(store.ids, 2000) for pid, p in store.get(chunk).items())
                    build_bm25(self.bm25_backend, texts, staging / "bm25", self.bm25_threads)
                    store.close()
            with self._stage("dense"):
                matrix = np.frombuffer(b"".join(vectors), dtype=np.float32).reshape(-1, dim) if vectors else np.zeros((0, dim), np.float32)
                kind = build_dense(matrix, staging / "dense", self.hnsw_m, self.ef_construction, self.exact_threshold)
        self._manifest = Manifest(
            created_at=datetime.now(timezone.utc).isoformat(), fingerprint=fingerprint, passages_fingerprint=passages_fp,
            counts=Counts(len(documents), n),
            encoder=EncoderInfo(self.encoder.model_key, str(getattr(self.encoder, "path", self.encoder.model_key)), dim,
                                self.encoder.max_length, self.encoder.query_prefix, self.encoder.passage_prefix,
                                self.encoder.numeric),
            chunking=self.chunker.signature, bm25_backend=self._bm25_name,
            dense=DenseInfo(kind, **self._index_settings()["dense"]),
        )

    def _build_milvus(self, staging: Path, vectors: list[bytes]) -> None:
        """The staged generation's collection, named after it, rows in passage-table order."""
        assert self.milvus is not None
        loc = milvus.locate(self.milvus, self.index_dir)
        name = loc.collection(staging.name.removeprefix(gens.STAGING_PREFIX))
        dim = self.encoder.dim
        table = PassageTable(staging)

        def rows() -> Iterator[milvus.Row]:
            row = 0
            for chunk in _chunks(table.ids, 2000):
                got = table.get(chunk)
                for pid in chunk:
                    p = got[pid]
                    yield milvus.Row(row, pid, p.document_id, p.title, p.text, p.metadata, np.frombuffer(vectors[row], np.float32))
                    row += 1
        try:
            milvus.build_collection(loc, name, tqdm(rows(), total=len(table), desc="milvus", unit="passage", disable=not self.progress),
                                    dim, self.hnsw_m, self.ef_construction, self.bm25_k1, self.bm25_b, self.milvus.batch)
        finally:
            table.close()
        milvus.write_pointer(staging, loc, name, dim, self.bm25_k1, self.bm25_b)

    def _validate(self, staging: Path) -> None:
        """The staged generation, read back through the readers the service uses, must hold exactly
        the store's passages in every format; otherwise it is not published."""
        expected = self._expected_ids
        sql_passages = self.store.counts()[1]
        passages = PassageTable(staging)
        try:
            problems = []
            if len(expected) != sql_passages:
                problems.append(f"the store holds {sql_passages} passages but {len(expected)} were read")
            if passages.ids != expected:
                problems.append(f"the passage table's ids differ from the store's ({len(passages.ids)} vs {len(expected)})")
            bm25, dense = open_retrievers(staging, self._bm25_name, self.index_dir, self.milvus)
            try:
                bm25_ids = list(bm25.ids)
            finally:
                getattr(bm25, "close", lambda: None)()
            if len(bm25_ids) != len(expected) or set(bm25_ids) != set(expected):
                missing = sorted(set(expected) - set(bm25_ids))[:3]
                problems.append(f"BM25 holds {len(bm25_ids)} passages, the store {len(expected)} (missing e.g. {missing})")
            if len(dense) != len(expected) or dense.dim != self.encoder.dim:
                problems.append(f"the dense index holds {len(dense)} vectors of {dense.dim} dims, "
                                f"expected {len(expected)} of {self.encoder.dim}")
            elif bm25_ids != expected and self.milvus is not None:  # Milvus keys rows: the order must hold too
                problems.append("Milvus holds the passages in another row order than the passage table")
            elif expected:  # a sample of stored vectors must be the store's, bit for bit (HNSW keeps them exactly)
                for row in np.linspace(0, len(expected) - 1, num=min(16, len(expected)), dtype=int):
                    if not np.array_equal(dense.vector(int(row)), np.frombuffer(self._vectors[row], np.float32)):
                        problems.append(f"the vector of {expected[row]} (row {row}) differs from the store's")
                        break
        finally:
            passages.close()
        if problems:
            raise IndexValidationError("the new generation failed validation and was not published: " + "; ".join(problems))


def _chunks(items: list[str], n: int) -> Iterator[list[str]]:
    for i in range(0, len(items), n):
        yield items[i : i + n]


def make_index_job(settings: Settings, encoder: Encoder | None = None, store: DocumentStore | None = None,
                   ray_address: str | None = None, ray_workers: int = 2):
    """The job for these settings (the only place that reads settings for it)."""
    encoder = encoder or make_encoder(settings)
    return IndexJob(
        index_dir=settings.index_dir,
        store=store or make_store(settings),
        encoder=encoder,
        chunker=make_chunker(settings, encoder),
        bm25_backend=settings.bm25.backend,
        bm25_threads=settings.bm25.threads,
        hnsw_m=settings.dense.hnsw_m,
        ef_construction=settings.dense.ef_construction,
        exact_threshold=settings.dense.exact_threshold,
        keep_generations=settings.keep_generations,
        encode_batch_size=settings.encoder.batch_size,
        progress=settings.progress,
        milvus=settings.milvus if settings.index.backend is IndexBackend.milvus else None,
        bm25_k1=settings.bm25.k1,
        bm25_b=settings.bm25.b,
        ray_address=ray_address,
        ray_workers=ray_workers,
        # a Ray worker builds the same encoder from its spec, one thread per worker
        encoder_factory=partial(build_encoder, replace(encoder_spec(settings, None), index_threads=1)),
    )
