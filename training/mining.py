"""Hard negatives mined with BM25 (and optionally the current dense encoder), with false-negative
filtering.

What matters most is negatives close to the gold passage that are not secretly relevant. Each
candidate comes from a rank window (skip the first ranks, sample from a range) and is dropped
when it is a known positive of the query, a near-duplicate of the positive, or scored by the
current encoder within a margin of the positive (positive-aware filtering: a negative may score
at most ``max_ratio`` x the positive's similarity; Moreira et al., "NV-Retriever: Improving text
embedding models with effective hard-negative mining", 2024).
"""

from __future__ import annotations

import json
import random
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rag.encoders.base import Encoder
from rag.reader import IndexReader
from rag.types import document_of
from training.data import Pair


@dataclass(frozen=True)
class MiningSettings:
    count: int = 1
    skip_top: int = 0  # ranks skipped before the window (the very top is most often unjudged relevant)
    window: int = 30  # candidates are sampled from ranks skip_top+1 .. skip_top+window
    dense: bool = False  # also draw candidates from the current dense encoder
    filter: bool = True
    max_ratio: float = 0.95  # drop if sim(q, neg) > max_ratio * sim(q, pos)
    near_duplicate: float = 0.9  # drop if token Jaccard with the positive is at least this
    seed: int = 13


@dataclass
class Triplet:
    query_id: str
    query: str
    positive_id: str
    positive: str
    negatives: list[dict] = field(default_factory=list)


def _jaccard(a: str, b: str) -> float:
    x, y = set(a.lower().split()), set(b.lower().split())
    return len(x & y) / max(1, len(x | y))


def mine(pairs: list[Pair], reader: IndexReader, enc: Encoder, known_positives: dict[str, set[str]], s: MiningSettings,
         progress: bool = False) -> tuple[list[Triplet], Counter]:
    """Mine ``s.count`` negatives per pair; returns the triplets and counts of dropped candidates."""
    from tqdm import tqdm

    rng = random.Random(s.seed)
    dropped: Counter = Counter()
    qvecs = enc.encode_queries([p.query for p in pairs]) if s.filter or s.dense else np.zeros((len(pairs), enc.dim), np.float32)
    out = []
    depth = s.skip_top + s.window
    for i, p in enumerate(tqdm(pairs, desc="mine", unit="pair", disable=not progress)):
        cands = [h.passage_id for h in reader.bm25.search(p.query, depth)][s.skip_top:]
        if s.dense:
            _, rows = reader.dense.search(qvecs[i : i + 1], depth)
            cands += [reader.passages.ids[r] for r in rows[0][s.skip_top:] if r >= 0]
        cands = list(dict.fromkeys(cands))
        rng.shuffle(cands)
        texts = reader.passages.get(cands)
        pos_vec = _vector(reader, p.positive_id) if s.filter else None
        negs: list[dict[str, Any]] = []
        for cid in cands:
            if len(negs) >= s.count:
                break
            doc = document_of(cid)
            if cid == p.positive_id or doc == document_of(p.positive_id):
                continue
            text = texts[cid].indexed_text
            sim = None
            if s.filter:
                if doc in known_positives.get(p.query_id, ()):
                    dropped["known_positive"] += 1
                    continue
                if _jaccard(text, p.positive) >= s.near_duplicate:
                    dropped["near_duplicate"] += 1
                    continue
                sim = float(qvecs[i] @ _vector(reader, cid))
                pos_sim = float(qvecs[i] @ pos_vec)
                if sim > s.max_ratio * pos_sim:
                    dropped["margin"] += 1
                    continue
            negs.append({"id": cid, "text": text, "dense_sim": sim})
        if len(negs) < s.count:
            dropped["pairs_without_enough_negatives"] += 1
            continue
        out.append(Triplet(p.query_id, p.query, p.positive_id, p.positive, negs))
    return out, dropped


def _vector(reader: IndexReader, passage_id: str) -> np.ndarray:
    """The indexed vector of a passage."""
    return reader.dense.vector(reader.passages.row_of[passage_id])


def save(triplets: list[Triplet], path: Path) -> None:
    """One JSON object a line, for a person to inspect."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as fh:
        for t in triplets:
            fh.write(json.dumps(asdict(t), ensure_ascii=False) + "\n")
