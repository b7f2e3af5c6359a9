"""BM25 with Lucene (Anserini's IndexCollection and SimpleSearcher from pyserini's jar)."""

from __future__ import annotations

import json
import logging
import subprocess
import tempfile
import threading
from collections.abc import Iterable
from pathlib import Path

from rag.bm25.jvm import JVM_OPTIONS, anserini_jar, java_executable, start_jvm
from rag.errors import RagError
from rag.types import ScoredId

log = logging.getLogger(__name__)


def build_lucene(docs: Iterable[tuple[str, str]], out_dir: Path, threads: int = 1) -> None:
    """Index with Anserini's JsonCollection (default English analysis: Porter stemming, stop words).

    Runs ``java -cp anserini-fatjar io.anserini.index.IndexCollection`` in a child process: the
    indexing JVM's memory is returned when it ends, and a crash cannot take the job with it.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir.parent, prefix=".lucene-input-") as tmp:
        with open(Path(tmp) / "docs.jsonl", "w", encoding="utf-8") as fh:
            for pid, text in docs:
                fh.write(json.dumps({"id": pid, "contents": text}, ensure_ascii=False))
                fh.write("\n")
        cmd = [
            java_executable(), *JVM_OPTIONS, "-cp", anserini_jar(), "io.anserini.index.IndexCollection",
            "-collection", "JsonCollection", "-generator", "DefaultLuceneDocumentGenerator",
            "-input", tmp, "-index", str(out_dir), "-threads", str(threads), "-optimize",
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout)[-2000:]
        raise RagError(f"Lucene indexing failed (exit {proc.returncode}): {tail}")
    log.debug("lucene index built in %s", out_dir)


class LuceneBM25:
    def __init__(self, index_dir: Path, k1: float = 0.9, b: float = 0.4) -> None:
        start_jvm()
        from jnius import autoclass

        self._searcher = autoclass("io.anserini.search.SimpleSearcher")(str(index_dir))
        self._searcher.set_bm25(float(k1), float(b))
        self._n = int(self._searcher.get_total_num_docs())
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return self._n

    def search(self, query: str, k: int) -> list[ScoredId]:
        if not query.strip() or self._n == 0:
            return []
        hits = self._searcher.search(query, int(k))
        return [ScoredId(h.docid, float(h.score)) for h in hits]

    def close(self) -> None:
        self._searcher.close()
