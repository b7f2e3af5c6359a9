"""The reranking stage: ordering, the searcher's stage and timings, the CLI's refusals, and (slow) a
real cross-encoder trained by `rag train --reranker`, then used by `rag eval` and `rag search`."""

import json
import os
import subprocess
import sys
from collections.abc import Sequence

import numpy as np
import pytest

from indexer.sources import open_source
from rag.reader import IndexReader
from rag.rerank import RerankPlan, plan, rerank
from rag.search import Searcher
from rag.types import ScoredId
from tests.conftest import SAMPLE, make_job

RAG = [sys.executable, "-m", "service"]


class WordReranker:
    """Fake: the share of the query's words found in the passage (for the searcher's stage only)."""

    model_key = "fake:words"

    def __init__(self) -> None:
        self.calls: list[int] = []

    def score(self, query: str, texts: Sequence[str]) -> np.ndarray:
        self.calls.append(len(texts))
        words = set(query.lower().split())
        return np.array([len(words & set(t.lower().split())) / len(words) for t in texts], dtype=np.float32)

    def clear(self) -> None:
        pass


def hits(*scores: float) -> list[ScoredId]:
    return [ScoredId(f"p{i}", s) for i, s in enumerate(scores)]


def test_weight_one_is_the_rerankers_order_and_the_tail_follows_below():
    fused = hits(5, 4, 3, 2, 1)
    out = rerank(fused, np.array([0.1, 0.9, 0.5]), weight=1.0)
    assert [h.passage_id for h in out] == ["p1", "p2", "p0", "p3", "p4"]
    scores = [h.score for h in out]
    assert scores == sorted(scores, reverse=True) and len(set(scores)) == 5  # truncation reads a descending list


def test_weight_zero_keeps_the_fused_order_and_a_mix_sits_between():
    fused = hits(3.0, 2.9, 2.8)
    ce = np.array([0.0, 0.1, 10.0])
    assert [h.passage_id for h in rerank(fused, ce, 0.0)] == ["p0", "p1", "p2"]
    assert [h.passage_id for h in rerank(fused, ce, 1.0)] == ["p2", "p1", "p0"]
    assert rerank(fused, ce, 0.7)[0].passage_id == "p2"  # each list normalised: the weight decides
    assert rerank(fused, ce, 0.3)[0].passage_id == "p0"
    assert rerank(fused, np.zeros(0), 1.0) == fused


def test_the_plan_reads_the_folders_card_and_settings_override_it(tmp_path):
    (tmp_path / "reranker.json").write_text(json.dumps({"top_k": 20, "weight": 0.6}))
    assert plan(str(tmp_path), None, None) == RerankPlan(20, 0.6)
    assert plan(str(tmp_path), 100, 1.0) == RerankPlan(100, 1.0)
    assert plan(str(tmp_path / "elsewhere"), None, None) == RerankPlan(50, 1.0)


@pytest.fixture(scope="module")
def index(tmp_path_factory):
    from rag.encoders.hashing import HashEncoder

    d = tmp_path_factory.mktemp("idx")
    enc = HashEncoder(dim=64, max_length=256)
    make_job(d, enc, chunk={"enabled": False}).run(open_source(SAMPLE))
    return d, enc


def test_the_searcher_reranks_its_top_k_and_times_it(index):
    d, enc = index
    plain = Searcher(IndexReader(d), enc)
    fake = WordReranker()
    reranked = Searcher(IndexReader(d), enc, reranker=fake, rerank_plan=RerankPlan(top_k=8, weight=1.0))
    q = "how often should I water a snake plant in winter"
    a, b = plain.search(q, k=8), reranked.search(q, k=8)
    assert fake.calls == [8] and "rerank" in b.timings_ms and "rerank" not in a.timings_ms
    assert {h.passage.id for h in a.hits} == {h.passage.id for h in b.hits}  # the same 8, reordered
    overlap = [fake.score(q, [h.passage.indexed_text])[0] for h in b.hits]
    assert overlap == sorted(overlap, reverse=True)
    assert [h.rank for h in b.hits] == list(range(1, 9))


def test_eval_refuses_rerank_depths_without_a_reranker(tmp_path):
    r = subprocess.run([*RAG, "eval", "--dataset", str(SAMPLE), "--split", "dev", "--rerank-k", "20",
                        "--cache-dir", str(tmp_path), "--no-progress"], capture_output=True, text=True)
    assert r.returncode == 2 and "needs a reranker" in r.stderr and "Traceback" not in r.stderr
    r = subprocess.run([*RAG, "eval", "--dataset", str(SAMPLE), "--split", "dev", "--rerank-k", "0,x",
                        "--cache-dir", str(tmp_path), "--no-progress"], capture_output=True, text=True)
    assert r.returncode == 2 and "--rerank-k" in r.stderr and "Traceback" not in r.stderr


def test_a_reranker_folder_that_is_missing_is_named(tmp_path):
    r = subprocess.run([*RAG, "eval", "--dataset", str(SAMPLE), "--split", "dev", "--reranker", str(tmp_path / "nope"),
                        "--cache-dir", str(tmp_path), "--no-progress"], capture_output=True, text=True)
    assert r.returncode == 2 and "nope" in r.stderr and "Traceback" not in r.stderr


def test_train_reranker_refuses_rounds_and_zero_negatives(tmp_path):
    r = subprocess.run([*RAG, "train", "--reranker", "--dataset", str(SAMPLE), "--split", "dev", "--rounds", "2",
                        "--output", str(tmp_path / "m")], capture_output=True, text=True)
    assert r.returncode == 2 and "--rounds" in r.stderr and not (tmp_path / "m").exists()
    r = subprocess.run([*RAG, "train", "--reranker", "--dataset", str(SAMPLE), "--split", "dev", "--negatives", "0",
                        "--output", str(tmp_path / "m"), "--cache-dir", str(tmp_path / "c")], capture_output=True, text=True)
    assert r.returncode == 2 and "negative" in r.stderr and not (tmp_path / "m").exists()


@pytest.mark.slow
def test_train_a_reranker_then_eval_and_search_with_it(tmp_path):
    """Integration: a real cross-encoder from the packaged MiniLM, a few steps on the garden sample."""
    out, cache = tmp_path / "reranker", tmp_path / "cache"
    r = subprocess.run([*RAG, "train", "--reranker", "--dataset", str(SAMPLE), "--split", "dev", "--output", str(out),
                        "--batch-size", "8", "--max-seq-length", "128", "--negatives", "3", "--epochs", "1",
                        "--dev-fraction", "0.25", "--cache-dir", str(cache), "--no-progress"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    rep = json.loads((out / "training_report.json").read_text())
    card = json.loads((out / "reranker.json").read_text())
    assert rep["steps"] >= 1 and rep["rows"] % 4 == 0 and rep["dev_queries"] >= 1
    assert card == {"top_k": rep["top_k"], "weight": rep["weight"]} and len(rep["grid"]) == 15
    assert not list(tmp_path.glob(".reranker.*"))  # staging and checkpoints are gone

    r = subprocess.run([*RAG, "eval", "--dataset", str(SAMPLE), "--split", "dev", "--retrievers", "hybrid",
                        "--reranker", str(out), "--rerank-k", "5,10", "--cache-dir", str(cache),
                        "--output", str(tmp_path / "ev.json"), "--no-progress"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    res = json.loads((tmp_path / "ev.json").read_text())["results"]
    assert set(res) == {"hybrid", "hybrid+rerank@5", "hybrid+rerank@10"}
    assert res["hybrid+rerank@10"]["latency_ms"]["rerank_p50"] > 0

    idx = tmp_path / "idx"
    env = {**os.environ, "RAG_INDEX_DIR": str(idx)}
    subprocess.run([*RAG, "index", str(SAMPLE / "corpus.jsonl"), "--no-progress"], env=env, check=True,
                   capture_output=True)
    r = subprocess.run([*RAG, "search", "When should I prune roses?", "--json"], env={**env, "RAG_RERANK__MODEL": str(out)},
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "rerank" in json.loads(r.stdout)["timings_ms"]

    from rag.rerank import CrossEncoderReranker

    ce = CrossEncoderReranker(str(out), max_length=128)
    a = ce.score("When should I prune roses?", ["Prune roses in late winter.", "Water snake plants monthly."])
    b = ce.score("When should I prune roses?", ["Water snake plants monthly.", "Tomatoes need calcium.", "Tomatoes need calcium."])
    assert ce.pairs_scored == 3 and b[0] == a[1] and b[1] == b[2]  # seen pairs come from the cache, once each
    assert ce.score("When should I prune roses?", []).shape == (0,)
    ce.clear()
    assert ce.score("When should I prune roses?", ["Tomatoes need calcium."])[0] == b[1] and ce.pairs_scored == 4


@pytest.mark.slow
def test_the_cached_listwise_loss_gives_the_plain_ones_loss_and_gradients():
    """The reranker trains with the forward pass in chunks (bounded memory): same loss, same gradients."""
    import torch
    from sentence_transformers.cross_encoder import CrossEncoder

    from rag.encoders.folder import default_model_path
    from training.reranker import _Listwise

    model = CrossEncoder(default_model_path(), num_labels=1, max_length=64, device="cpu", local_files_only=True)
    model.eval()  # no dropout: the two passes see the same network
    inputs = [["when to prune roses", "how often to water a snake plant"],
              ["Prune roses in late winter.", "Water it once a month in winter."],
              ["Tomatoes need calcium.", "Roses like sun."], ["Snake plants tolerate shade.", "Prune in winter."]]
    grads = []
    for chunk in (None, 3):  # 8 pairs: all at once, then 3 + 3 + 2
        model.zero_grad()
        loss = _Listwise(model, chunk)(inputs, None)
        loss.backward()
        grads.append((loss.item(), [p.grad.clone() for p in model.parameters() if p.grad is not None]))
    (plain, g_plain), (cached, g_cached) = grads
    assert plain == pytest.approx(cached, rel=1e-5) and plain > 0
    assert len(g_plain) == len(g_cached) > 0
    assert all(torch.allclose(a, b, rtol=1e-3, atol=1e-6) for a, b in zip(g_plain, g_cached, strict=True))
