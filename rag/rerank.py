"""The optional reranking stage after fusion: a cross-encoder reads each (query, passage) pair of the
top-k fused hits and reorders them.

A reranker folder trained by `rag train --reranker` carries ``reranker.json``: the weight of the
cross-encoder's scores against the fused ones (chosen on that run's dev queries) and the depth it was
chosen at. Settings override both.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from rag.cpu import cores
from rag.errors import ConfigError
from rag.fusion import Normalization, normalize
from rag.types import ScoredId

log = logging.getLogger(__name__)
CARD = "reranker.json"  # what `rag train --reranker` chose on dev: {"weight": .., "top_k": ..}


class Reranker(Protocol):
    model_key: str

    def score(self, query: str, texts: Sequence[str]) -> np.ndarray:
        """One relevance score per text, higher is better (any scale)."""
        ...

    def clear(self) -> None:
        """Forget any remembered scores (an evaluation times each depth from cold)."""
        ...


@dataclass(frozen=True)
class RerankPlan:
    """How the stage runs: the hits it reads and the weight of its scores against the fused ones."""

    top_k: int = 50
    weight: float = 1.0


def plan(model: str, top_k: int | None, weight: float | None) -> RerankPlan:
    """Settings first, then the folder's ``reranker.json``, then the defaults (its order alone over 50)."""
    card_path = Path(model) / CARD
    card = json.loads(card_path.read_text()) if card_path.is_file() else {}
    d = RerankPlan()
    return RerankPlan(top_k or int(card.get("top_k", d.top_k)), float(weight if weight is not None else card.get("weight", d.weight)))


def rerank(fused: list[ScoredId], scores: np.ndarray, weight: float) -> list[ScoredId]:
    """The first ``len(scores)`` hits ordered by ``weight * z(reranker) + (1 - weight) * z(fused)``;
    the hits beyond them follow in their fused order, scored below every reranked one."""
    n = len(scores)
    if n == 0:
        return fused
    head = fused[:n]
    mixed = weight * normalize(np.asarray(scores, dtype=np.float64), Normalization.zscore)
    if weight < 1:
        mixed = mixed + (1 - weight) * normalize(np.array([h.score for h in head], dtype=np.float64), Normalization.zscore)
    order = sorted(range(n), key=lambda i: (-mixed[i], i))
    out = [ScoredId(head[i].passage_id, float(mixed[i])) for i in order]
    floor = float(mixed.min())
    out += [ScoredId(h.passage_id, floor - 1e-6 * (j + 1)) for j, h in enumerate(fused[n:])]
    return out


class CrossEncoderReranker:
    """sentence-transformers' CrossEncoder over a local folder, one forward pass at a time with its own
    thread count (the query path's encoder keeps one thread; scoring 50 pairs wants the cores). Scores
    are remembered for the last ``CACHE_PAIRS`` (query, passage) pairs: a repeated query, or the same
    query reranked at a greater depth, only scores the passages it has not seen."""

    CACHE_PAIRS = 50_000

    def __init__(self, path: str, max_length: int = 256, batch_size: int = 32, device: str = "auto",
                 threads: int | None = None) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        import torch
        from sentence_transformers.cross_encoder import CrossEncoder

        if not Path(path).is_dir():
            raise ConfigError(f"rerank.model {path!r} is not a folder (train one with `rag train --reranker`)")
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        try:
            self.model = CrossEncoder(path, max_length=max_length, device=device, local_files_only=True)
        except Exception as exc:  # noqa: BLE001 - any load failure is the configured folder
            raise ConfigError(f"cannot load the reranker {path!r}: {exc}") from exc
        self.model_key = f"cross-encoder:{Path(path).resolve().name}"
        self.batch_size = batch_size
        self.threads = threads or cores()
        self.pairs_scored = 0  # through the model, not from the cache
        self._identity = torch.nn.Identity()
        self._lock = threading.Lock()
        self._cache: OrderedDict[tuple[str, str], float] = OrderedDict()

    def score(self, query: str, texts: Sequence[str]) -> np.ndarray:
        import torch

        keys = [(query, hashlib.blake2b(t.encode(), digest_size=16).hexdigest()) for t in texts]
        with self._lock:
            first: dict[tuple[str, str], int] = {}
            for i, k in enumerate(keys):
                if k not in self._cache:
                    first.setdefault(k, i)
            todo = list(first.values())
            if todo:
                if torch.get_num_threads() != self.threads:
                    torch.set_num_threads(self.threads)
                logits = self.model.predict([(query, texts[i]) for i in todo], batch_size=self.batch_size,
                                            activation_fn=self._identity, convert_to_numpy=True, show_progress_bar=False)
                self.pairs_scored += len(todo)
                for i, v in zip(todo, np.asarray(logits, dtype=np.float32).reshape(-1), strict=True):
                    self._cache[keys[i]] = float(v)
            out = np.array([self._cache[k] for k in keys], dtype=np.float32)
            for k in keys:
                self._cache.move_to_end(k)
            while len(self._cache) > self.CACHE_PAIRS:
                self._cache.popitem(last=False)
        return out

    def clear(self) -> None:
        with self._lock:
            self._cache.clear()
