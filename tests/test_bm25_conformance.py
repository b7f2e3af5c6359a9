"""Every BM25 backend passes the same tests (Lucene through pyserini's jar, rank-bm25, bm25s, and
Milvus's BM25 function on milvus-lite)."""

import json

import numpy as np
import pytest

from rag import milvus
from rag.bm25 import build_bm25, open_bm25
from rag.settings import BM25Backend
from tests.conftest import SAMPLE_CORPUS

DOCS = [(d["_id"], f"{d['title']}\n{d['text']}") for d in map(json.loads, SAMPLE_CORPUS.read_text().splitlines())]
BACKENDS = [BM25Backend.lucene, BM25Backend.rank_bm25, BM25Backend.bm25s]
MILVUS = "milvus"


def milvus_bm25(out_dir, k1=0.9, b=0.4):
    """A generation whose BM25 lives in a Milvus collection (its k1 and b are fixed when it is built)."""
    settings = milvus.MilvusSettings()
    loc = milvus.locate(settings, out_dir)
    name = loc.collection(f"k{k1}_b{b}")
    rows = (milvus.Row(i, pid, pid, "", text, {}, np.ones(2, np.float32)) for i, (pid, text) in enumerate(DOCS))
    milvus.build_collection(loc, name, rows, 2, k1=k1, b=b)
    milvus.write_pointer(out_dir, loc, name, 2, k1, b)
    return milvus.open_parts(out_dir, settings, out_dir)[0]


@pytest.fixture(scope="module", params=[*BACKENDS, MILVUS], ids=lambda b: getattr(b, "value", b))
def bm25(request, tmp_path_factory):
    out = tmp_path_factory.mktemp(getattr(request.param, "value", request.param))
    if request.param == MILVUS:
        return milvus_bm25(out)
    build_bm25(request.param, DOCS, out / "bm25")
    return open_bm25(request.param, out / "bm25", k1=0.9, b=0.4)


def test_counts_every_document(bm25):
    assert len(bm25) == len(DOCS)


def test_exact_term_ranks_its_document_first(bm25):
    assert bm25.search("Zamioculcas zamiifolia rhizomes", 5)[0].passage_id == "garden-005"


def test_stemming_matches_other_word_forms(bm25):
    # the corpus says "propagate readily"; the query says "propagating" -> porter stem "propag"
    ids = [h.passage_id for h in bm25.search("propagating jade", 10)]
    assert "garden-014" in ids[:3]


def test_stopwords_only_query_finds_nothing(bm25):
    assert bm25.search("the and of", 10) == []
    assert bm25.search("   ", 10) == []


def test_k_and_descending_scores(bm25):
    hits = bm25.search("water soil plants", 7)
    assert len(hits) == 7
    scores = [h.score for h in hits]
    assert scores == sorted(scores, reverse=True) and scores[-1] > 0
    assert len({h.passage_id for h in hits}) == 7


def test_unknown_terms_find_nothing(bm25):
    assert bm25.search("xylophonezzz", 10) == []


def test_backends_agree_on_top_ranks(tmp_path):
    queries = ["tomato blight potato", "humidity tropical plants", "compost worms kitchen scraps",
               "pruning apple trees winter", "aphids honeydew ladybirds"]
    results = {}
    for be in BACKENDS:
        build_bm25(be, DOCS, tmp_path / be.value)
        r = open_bm25(be, tmp_path / be.value)
        results[be] = [[h.passage_id for h in r.search(q, 5)] for q in queries]
    results[MILVUS] = [[h.passage_id for h in milvus_bm25(tmp_path).search(q, 5)] for q in queries]
    for other in [*BACKENDS[1:], MILVUS]:
        for lu, rk in zip(results[BM25Backend.lucene], results[other], strict=True):
            assert lu[0] == rk[0], other
            assert len(set(lu) & set(rk)) >= 4, other


# Milvus is not here: its k1 and b are fixed when the collection is built, and milvus-lite ignores them
# (measured: the same scores at 0.9/0.4 and 1.5/0.9); the Milvus server applies them.
@pytest.mark.parametrize("backend", BACKENDS, ids=lambda b: b.value)
def test_k1_and_b_given_at_open_change_the_scores(tmp_path, backend):
    build_bm25(backend, DOCS, tmp_path / "bm25")
    default = open_bm25(backend, tmp_path / "bm25", k1=0.9, b=0.4).search("water soil plants", 5)
    other = open_bm25(backend, tmp_path / "bm25", k1=1.5, b=0.9).search("water soil plants", 5)
    assert [round(h.score, 4) for h in default] != [round(h.score, 4) for h in other]

