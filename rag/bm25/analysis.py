"""English analysis matching Anserini's default (Lucene StandardTokenizer, possessive filter,
lower-casing, Lucene's English stop words, Porter stemming), for BM25 backends outside Lucene."""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache

import numpy as np
import Stemmer

from rag.types import ScoredId

# org.apache.lucene.analysis.en.EnglishAnalyzer.ENGLISH_STOP_WORDS_SET
LUCENE_STOPWORDS = frozenset(
    "a an and are as at be but by for if in into is it no not of on or such that the their then "
    "there these they this to was will with".split()
)
_TOKEN = re.compile(r"[^\W_]+(?:['’.][^\W_]+)*")


@lru_cache(maxsize=1)
def _stemmer() -> Stemmer.Stemmer:
    return Stemmer.Stemmer("porter")  # Lucene's PorterStemFilter is the original Porter algorithm


def analyze(text: str) -> list[str]:
    out = []
    for tok in _TOKEN.findall(text.lower()):
        if tok.endswith(("'s", "’s")):
            tok = tok[:-2]
        if tok and tok not in LUCENE_STOPWORDS:
            out.append(tok)
    return _stemmer().stemWords(out)


def analyze_all(docs: Iterable[tuple[str, str]]) -> tuple[list[str], list[list[str]]]:
    """The ids and analysed tokens of (passage id, text) pairs: what the non-Lucene backends index."""
    ids, tokens = [], []
    for pid, text in docs:
        ids.append(pid)
        tokens.append(analyze(text))
    return ids, tokens


def top_hits(ids: list[str], scores: np.ndarray, k: int) -> list[ScoredId]:
    """The ``k`` best positive scores, best first, ties by row (the order Lucene breaks them in)."""
    k = min(k, len(scores))
    top = np.argpartition(-scores, k - 1)[:k]
    top = top[np.lexsort((top, -scores[top]))]
    return [ScoredId(ids[i], float(scores[i])) for i in top if scores[i] > 0]
