"""English analysis matching Anserini's default (Lucene StandardTokenizer, possessive filter,
lower-casing, Lucene's English stop words, Porter stemming), for BM25 backends outside Lucene."""

from __future__ import annotations

import re
from functools import lru_cache

import Stemmer

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
