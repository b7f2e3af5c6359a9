"""Open the published index generation: its passages, BM25 index and dense index, as one unit."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from rag import generations as gens
from rag.bm25 import BM25Retriever, open_bm25
from rag.dense import DenseIndex
from rag.docstore import DocStore

log = logging.getLogger(__name__)


class IndexReader:
    """A consistent view of one generation; :meth:`refresh` moves to a newer one if published."""

    def __init__(
        self, index_dir: Path, k1: float = 0.9, b: float = 0.4, ef_search: int = 128, faiss_threads: int | None = 1
    ) -> None:
        self.index_dir = Path(index_dir)
        self._params = dict(k1=k1, b=b, ef_search=ef_search, faiss_threads=faiss_threads)
        self._open(gens.require_current(self.index_dir))

    def _open(self, gen_dir: Path) -> None:
        self.gen_dir = gen_dir
        self.manifest: dict[str, Any] = gens.read_manifest(gen_dir)
        self.docstore = DocStore(gen_dir)
        self.bm25: BM25Retriever = open_bm25(
            self.manifest["bm25"]["backend"], gen_dir / "bm25", self._params["k1"], self._params["b"]
        )
        self.dense = DenseIndex(gen_dir / "dense", self._params["ef_search"], self._params["faiss_threads"])
        log.info("opened generation %s (%d passages)", gen_dir.name, len(self.docstore))

    @property
    def generation(self) -> str:
        return self.gen_dir.name

    def refresh(self) -> bool:
        """Switch to the newest published generation; True when it changed."""
        gen = gens.current_generation(self.index_dir)
        if gen is None or gen.name == self.gen_dir.name:
            return False
        old = self.docstore
        self._open(gen)
        old.close()
        return True
