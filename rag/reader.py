"""Open the published index generation: its passages, BM25 index and dense index, as one unit."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path

from rag import generations as gens
from rag.bm25 import BM25Backend, BM25Retriever, open_bm25
from rag.dense import DenseIndex, open_dense
from rag.errors import IndexUnavailableError
from rag.manifest import Manifest
from rag.milvus import MILVUS, MilvusSettings, open_parts
from rag.passage_table import PassageTable

log = logging.getLogger(__name__)


def open_retrievers(
    gen_dir: Path, bm25_backend: str, index_dir: Path, milvus: MilvusSettings | None = None, k1: float | None = None,
    b: float | None = None, ef_search: int = 128, faiss_threads: int | None = 1,
) -> tuple[BM25Retriever, DenseIndex]:
    """The BM25 retriever and dense index of one generation, from whichever backend built them: files
    in the generation folder, or (``bm25_backend`` milvus) the Milvus collection it names. ``k1``/``b``
    None: the defaults (local) or the values built in (Milvus)."""
    if bm25_backend == MILVUS:
        return open_parts(gen_dir, milvus or MilvusSettings(), index_dir, ef_search, k1, b)
    bm25 = open_bm25(BM25Backend(bm25_backend), gen_dir / "bm25", *(() if k1 is None or b is None else (k1, b)))
    return bm25, open_dense(gen_dir / "dense", ef_search, faiss_threads)


@dataclass(frozen=True)
class GenerationView:
    """The open parts of one generation. A search takes one view and uses it throughout, so a switch
    to a newer generation mid-search cannot pair one generation's rows with another's passages."""

    gen_dir: Path
    manifest: Manifest
    passages: PassageTable
    bm25: BM25Retriever
    dense: DenseIndex

    @property
    def generation(self) -> str:
        return self.gen_dir.name

    def close(self) -> None:
        self.passages.close()
        getattr(self.bm25, "close", lambda: None)()


class IndexReader:
    """A consistent view of one generation; :meth:`refresh` moves to a newer one if published."""

    def __init__(
        self, index_dir: Path, k1: float = 0.9, b: float = 0.4, ef_search: int = 128, faiss_threads: int | None = 1,
        milvus: MilvusSettings | None = None,
    ) -> None:
        self.index_dir = Path(index_dir)
        self._k1, self._b, self._ef_search, self._faiss_threads = k1, b, ef_search, faiss_threads
        self._milvus = milvus  # where generations built with index.backend=milvus live (None: the defaults)
        self._failed: str | None = None  # a newer generation that would not open
        self._retired: GenerationView | None = None  # the previous view, closed at the next switch
        self.refresh_error: str | None = None
        self._switch = threading.Lock()
        self.view = self._open(gens.require_current(self.index_dir))

    def _open(self, gen_dir: Path) -> GenerationView:
        """Open every part of ``gen_dir`` or raise :class:`IndexUnavailableError` saying what is wrong
        (a checksum that differs from the manifest, a part that does not open, counts that differ)."""
        manifest = gens.read_manifest(gen_dir)
        damaged = gens.verify(gen_dir)
        if damaged:
            raise IndexUnavailableError(
                f"generation {gen_dir.name} is damaged: {', '.join(damaged[:5])} differ from its manifest; re-run `rag index`")
        passages = PassageTable(gen_dir)
        try:
            bm25, dense = open_retrievers(gen_dir, manifest.bm25_backend, self.index_dir, self._milvus, self._k1, self._b,
                                          self._ef_search, self._faiss_threads)
        except IndexUnavailableError:
            passages.close()
            raise
        except Exception as exc:  # noqa: BLE001 - faiss, Java and pickle each fail their own way
            passages.close()
            raise IndexUnavailableError(f"generation {gen_dir.name} cannot be opened: {exc}") from exc
        view = GenerationView(gen_dir, manifest, passages, bm25, dense)
        if not len(passages) == len(bm25) == len(dense):
            view.close()
            raise IndexUnavailableError(f"generation {gen_dir.name} is inconsistent: {len(passages)} passages, "
                                        f"{len(bm25)} in BM25, {len(dense)} vectors; re-run `rag index`")
        log.info("opened generation %s (%d passages)", gen_dir.name, len(passages))
        return view

    # the current view's parts
    gen_dir = property(lambda self: self.view.gen_dir)
    manifest = property(lambda self: self.view.manifest)
    passages = property(lambda self: self.view.passages)
    bm25 = property(lambda self: self.view.bm25)
    dense = property(lambda self: self.view.dense)
    generation = property(lambda self: self.view.generation)

    def refresh(self) -> bool:
        """Switch to the newest published generation; True when it changed. A newer generation that
        cannot be opened leaves this one in use (``refresh_error`` says why)."""
        with self._switch:
            return self._refresh()

    def _refresh(self) -> bool:
        try:
            gen = gens.current_generation(self.index_dir)
        except IndexUnavailableError as exc:
            self.refresh_error = str(exc)
            return False
        if gen is None or gen.name in (self.view.generation, self._failed):
            return False
        try:
            view = self._open(gen)
        except IndexUnavailableError as exc:
            log.error("staying on generation %s: %s", self.view.generation, exc)
            self._failed, self.refresh_error = gen.name, str(exc)
            return False
        if self._retired is not None:  # searches on it ended long ago: switches are at least a second apart
            self._retired.close()
        self._retired, self.view = self.view, view
        self._failed = self.refresh_error = None
        return True
