"""BM25 with bm25s (scores precomputed into a sparse matrix: a query sums a few of its rows). The
analysis is the project's Lucene-equivalent one (rag.bm25.analysis) and the scoring Lucene's, so
it ranks like the Lucene backend without a JVM.

bm25s bakes k1 and b into the matrix at indexing time: the build stores the matrix for the default
k1/b and the analysed tokens, and opening with other values rebuilds the matrix from the tokens in
memory (a second or so per 10^5 passages) rather than searching with the wrong parameters.
"""

from __future__ import annotations

import json
import logging
import pickle
from collections.abc import Iterable
from pathlib import Path

from rag.bm25.analysis import analyze, analyze_all, top_hits
from rag.types import ScoredId

log = logging.getLogger(__name__)
IDS = "ids.json"
TOKENS = "tokens.pkl"  # read only to rebuild the matrix for other k1/b
MATRIX = "matrix"
BUILT_K1, BUILT_B = 0.9, 0.4


def _index(tokens: list[list[str]], k1: float, b: float):
    import bm25s

    model = bm25s.BM25(k1=k1, b=b, method="lucene", idf_method="lucene")
    if tokens:
        model.index(tokens, show_progress=False)
    return model


def build_bm25s(docs: Iterable[tuple[str, str]], out_dir: Path) -> None:
    ids, tokens = analyze_all(docs)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / IDS).write_text(json.dumps(ids), encoding="utf-8")
    with (out_dir / TOKENS).open("wb") as fh:
        pickle.dump(tokens, fh, protocol=pickle.HIGHEST_PROTOCOL)
    if ids:
        _index(tokens, BUILT_K1, BUILT_B).save(str(out_dir / MATRIX), show_progress=False)


class BM25S:
    def __init__(self, index_dir: Path, k1: float = 0.9, b: float = 0.4) -> None:
        import bm25s

        index_dir = Path(index_dir)
        params = index_dir / MATRIX / "params.index.json"
        built = json.loads(params.read_text()) if params.is_file() else {}
        self.ids: list[str] = json.loads((index_dir / IDS).read_text(encoding="utf-8"))
        if (built.get("k1"), built.get("b")) == (k1, b):
            self._bm25 = bm25s.BM25.load(str(index_dir / MATRIX), show_progress=False, verbosity=0)
        else:
            log.info("bm25s: rebuilding the matrix for k1=%s b=%s (built with %s)", k1, b, built or "nothing")
            with (index_dir / TOKENS).open("rb") as fh:
                self._bm25 = _index(pickle.load(fh), k1, b)

    def __len__(self) -> int:
        return len(self.ids)

    def search(self, query: str, k: int) -> list[ScoredId]:
        terms = analyze(query)
        if not terms or not self.ids:
            return []
        return top_hits(self.ids, self._bm25.get_scores(terms), k)
