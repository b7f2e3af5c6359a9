import json
import subprocess
import sys

import pytest

from indexer.sources import open_source
from rag.encoders.hashing import HashEncoder
from rag.errors import InputError
from rag.generators.base import Generation, Generator, TokenStream
from rag.reader import IndexReader
from rag.search import Searcher
from tests.conftest import SAMPLE, make_job
from training.data import bootstrap_pairs, split_dev
from training.mining import MiningSettings, mine

RAG = [sys.executable, "-m", "service"]


@pytest.fixture(scope="module")
def searcher(tmp_path_factory):
    d = tmp_path_factory.mktemp("idx")
    enc = HashEncoder(dim=256, max_length=256)
    make_job(d, enc, chunk={"enabled": False}).run(open_source(SAMPLE))
    return Searcher(IndexReader(d), enc)


def test_bootstrap_pairs_round_trip(searcher):
    pairs = bootstrap_pairs(searcher.reader)
    assert 50 < len(pairs) <= 113
    for p in pairs[:20]:
        assert p.positive_id in {h.passage_id for h in searcher.reader.bm25.search(p.query, 3)}
        assert not p.positive.startswith(p.query + "\n")  # the title line is not left in its own positive


def test_dev_split_is_by_query():
    from training.data import Pair

    pairs = [Pair(f"q{i // 2}", "q", f"d{i}#0", "t", "qrels") for i in range(40)]
    train, dev = split_dev(pairs, 0.25, seed=1)
    assert {p.query_id for p in train}.isdisjoint({p.query_id for p in dev})
    assert len(dev) == 10 and len(train) + len(dev) == 40


def test_dev_split_by_title_keeps_each_article_on_one_side(searcher):
    from training.data import Pair, dev_groups

    ids = searcher.reader.passages.ids[:40]
    got = searcher.reader.passages.get(ids)
    pairs = [Pair(f"q{i}", "q", pid, "t", "qrels") for i, pid in enumerate(ids)]
    groups = dev_groups(pairs, searcher.reader, "title")
    assert groups == {p.query_id: got[p.positive_id].title for p in pairs}
    train, dev = split_dev(pairs, 0.25, seed=1, group_of=groups)
    assert dev and train and {groups[p.query_id] for p in train}.isdisjoint({groups[p.query_id] for p in dev})
    assert dev_groups(pairs, searcher.reader, "query") is None
    with pytest.raises(InputError, match="--dev-by"):
        dev_groups(pairs, searcher.reader, "author")
    with pytest.raises(InputError, match="fewer than 2 titles"):
        dev_groups(pairs[:1], searcher.reader, "title")


def test_pseudo_pairs_take_the_hybrids_first_passage_when_both_retrievers_agree(searcher):
    from rag.datasets import load_dataset
    from training.data import pseudo_pairs

    queries = load_dataset(SAMPLE, "dev").queries
    pairs = pseudo_pairs(queries, searcher, agree_within=3)
    assert pairs and len(pairs) <= len(queries) and all(p.source == "pseudo" for p in pairs)
    for p in pairs:
        bm25 = [h.passage_id for h in searcher.reader.bm25.search(p.query, 3)]
        dense = [h.passage.id for h in searcher.search(p.query, mode="dense", k=3).hits]
        assert p.positive_id in bm25 and p.positive_id in dense
        assert p.positive_id == searcher.search(p.query, mode="hybrid", k=1).hits[0].passage.id
    assert len(pseudo_pairs(queries, searcher, agree_within=1)) <= len(pairs)


def test_mining_window_and_false_negative_filters(searcher):
    pairs = bootstrap_pairs(searcher.reader)[:30]
    known = {p.query_id: {p.positive_id.split("#")[0]} for p in pairs}
    victim = pairs[0]
    # pretend the top BM25 non-positive of the first query is a known positive: it must never be a negative
    other = next(h.passage_id for h in searcher.reader.bm25.search(victim.query, 5) if h.passage_id != victim.positive_id)
    known[victim.query_id].add(other.split("#")[0])
    triplets, dropped = mine(pairs, searcher.reader, searcher.encoder, known, MiningSettings(count=2, skip_top=0, window=10))
    assert triplets and all(len(t.negatives) == 2 for t in triplets)
    for t in triplets:
        ids = {n["id"] for n in t.negatives}
        assert t.positive_id not in ids and not (ids & {f"{d}#0" for d in known[t.query_id]})
        assert all(n["dense_sim"] is not None for n in t.negatives)
    # every candidate of the window examined: the known positive is met, and dropped only when filtering
    every = dict(count=5, window=6)
    _, d_on = mine([victim], searcher.reader, searcher.encoder, known, MiningSettings(**every, max_ratio=10.0))
    (t_off,), d_off = mine([victim], searcher.reader, searcher.encoder, known, MiningSettings(**every, filter=False))
    assert d_on["known_positive"] == 1 and not d_off.get("known_positive")
    assert other in {n["id"] for n in t_off.negatives}
    strict, strict_dropped = mine(pairs, searcher.reader, searcher.encoder, known, MiningSettings(count=2, window=10, max_ratio=0.0))
    assert strict_dropped["margin"] > dropped.get("margin", 0)


def test_output_folder_that_exists_is_refused(tmp_path):
    out = tmp_path / "model"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    r = subprocess.run([*RAG, "train", "--dataset", str(SAMPLE), "--split", "dev", "--output", str(out)],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "exists" in r.stderr and (out / "keep.txt").read_text() == "mine"


def test_dataset_without_the_split(tmp_path):
    r = subprocess.run([*RAG, "train", "--dataset", str(SAMPLE), "--output", str(tmp_path / "m")], capture_output=True, text=True)
    assert r.returncode == 2 and "no split 'train'" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "m").exists()


def test_model_path_that_does_not_load(tmp_path):
    bad = tmp_path / "notamodel"
    bad.mkdir()
    (bad / "config.json").write_text("{broken")
    r = subprocess.run([*RAG, "train", "--dataset", str(SAMPLE), "--split", "dev", "--output", str(tmp_path / "m"),
                        "--model", str(bad), "--cache-dir", str(tmp_path / "c")], capture_output=True, text=True)
    assert r.returncode == 2 and "notamodel" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "m").exists()


@pytest.mark.slow
def test_train_with_reindex_then_search_and_eval_with_the_new_model(tmp_path):
    """Integration: real MiniLM fine-tuned for a few steps with --reindex (the serving index re-encoded,
    fusion re-tuned on the held-out dev queries), then `rag search` and `rag eval --model`."""
    out, cache, idx = tmp_path / "model", tmp_path / "cache", tmp_path / "idx"
    tuned = idx / "tuned.json"  # where the CLI and the service read it
    subprocess.run([*RAG, "index", str(SAMPLE), "--index-dir", str(idx), "--no-progress"], check=True, capture_output=True)
    before = IndexReader(idx).generation
    r = subprocess.run([*RAG, "train", "--dataset", str(SAMPLE), "--split", "dev", "--output", str(out), "--batch-size", "8",
                        "--max-seq-length", "64", "--dev-fraction", "0.25", "--window", "10", "--cache-dir", str(cache),
                        "--reindex", "--index-dir", str(idx), "--no-progress"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    rep = json.loads((out / "training_report.json").read_text())
    assert rep["steps"] >= 1 and rep["triplets"] > 0 and "cosine_ndcg@10" in rep["metrics_after"]
    assert "dev metrics" in (out / "README.md").read_text().lower()
    mined = [json.loads(x) for x in (out / "hard_negatives.jsonl").read_text().splitlines()]
    assert mined and all(m["negatives"] for m in mined)
    dev_q = {line.split("\t")[0] for line in (out / "dev_qrels.tsv").read_text().splitlines()[1:]}
    assert len(dev_q) == rep["dev_queries"] and not dev_q & {m["query_id"] for m in mined}  # held out
    reader = IndexReader(idx)
    assert reader.generation != before and reader.manifest.encoder.model == str(out)  # re-encoded, published
    if "fusion re-tuned" in r.stdout:  # the small grid's best was significantly better on dev (eval.tune's guard)
        t = json.loads(tuned.read_text())
        assert t["tuned_on"]["split"] == "dev_qrels" and t["tuned_on"]["queries"] == len(dev_q)
        assert t["tuned_on"]["configs_tried"] == 15 and t["current"]["p_value_best_vs_current"] < 0.05
    else:
        assert "fusion kept as it is" in r.stdout and f"{len(dev_q)} dev queries" in r.stdout and not tuned.exists()
    r = subprocess.run([*RAG, "search", "tomato black bottom", "--index-dir", str(idx), "--json"],
                       capture_output=True, text=True)
    assert r.returncode == 0 and json.loads(r.stdout)["hits"]  # the query encoder follows the index's model
    r = subprocess.run([sys.executable, "-m", "service", "eval", "--dataset", str(SAMPLE), "--split", "test", "--model", str(out),
                        "--retrievers", "dense", "--cache-dir", str(cache), "--no-progress"], capture_output=True, text=True)
    assert r.returncode == 0 and "| dense |" in r.stdout


def test_reindex_goes_with_qrels_training_only(tmp_path):
    r = subprocess.run([*RAG, "train", "--dataset", str(SAMPLE), "--split", "dev", "--output", str(tmp_path / "m"),
                        "--reindex", "--sources", "bootstrap"], capture_output=True, text=True)
    assert r.returncode == 2 and "--reindex" in r.stderr and not (tmp_path / "m").exists()


def test_feedback_pairs_come_from_positive_signals(tmp_path):
    from rag.store.sql import DocumentStore
    from training.data import feedback_pairs

    d = tmp_path / "idx"
    make_job(d, HashEncoder()).run(open_source(SAMPLE))
    store = DocumentStore(f"sqlite:///{d / 'rag.db'}")
    store.add_feedback("when to plant garlic", "garden-042#0", "useful")
    store.add_feedback("garlic", "garden-042#0", "not_useful")
    (p,) = feedback_pairs(store)
    assert (p.query, p.positive_id, p.source) == ("when to plant garlic", "garden-042#0", "feedback")
    assert p.positive.startswith("Growing garlic\n")


class Asker(Generator):
    """Asks about the passage's title (a good question), or something unrelated for every third one."""

    n = 0

    def count_tokens(self, text):
        return len(text.split())

    def stream(self, messages, params):
        Asker.n += 1
        title = messages[-1]["content"].split("Passage:\n", 1)[1].split("\n", 1)[0]
        text = f"What about {title}?" if Asker.n % 3 else "What is the meaning of life itself?"
        s = TokenStream(iter([text]))
        s.result = Generation(text, 1, len(text.split()), 0.0, 0.0, "stop")
        return s


def test_synthetic_queries_keep_only_round_trips(searcher):
    from training.data import synthetic_pairs

    Asker.n = 0
    pairs = synthetic_pairs(searcher.reader, Asker(), limit=30, concurrency=1)
    assert 10 <= len(pairs) <= 20  # the unrelated third are dropped by the round trip
    for p in pairs:
        assert p.source == "synthetic" and p.positive_id in {h.passage_id for h in searcher.reader.bm25.search(p.query, 5)}


def test_synthetic_queries_resume_from_their_journal(searcher, tmp_path):
    from training.data import clean_question, synthetic_pairs

    Asker.n = 0
    whole = synthetic_pairs(searcher.reader, Asker(), limit=30, concurrency=1)
    journal = tmp_path / "syn.jsonl"
    Asker.n = 0
    first = synthetic_pairs(searcher.reader, Asker(), limit=12, concurrency=1, journal=journal)
    lines = journal.read_text().splitlines()
    journal.write_text("\n".join(lines) + '\n{"passage_id": "cut sh')  # killed mid-line
    Asker.n = 12
    again = synthetic_pairs(searcher.reader, Asker(), limit=30, concurrency=1, journal=journal)
    assert Asker.n == 30  # only the 18 passages not in the journal were asked
    assert [p.query for p in again[:len(first)]] == [p.query for p in first]
    assert [(p.positive_id, p.query) for p in again] == [(p.positive_id, p.query) for p in whole]
    assert synthetic_pairs(searcher.reader, Asker(), limit=30, concurrency=1, journal=journal) == again and Asker.n == 30
    assert clean_question('The answer is: "What kills tomato seedlings?"') == "What kills tomato seedlings?"
    assert clean_question("Question: Why mulch?") == "Why mulch?"


def test_ict_pairs_take_a_sentence_out_of_its_passage(searcher):
    from training.data import ict_pairs

    pairs = ict_pairs(searcher.reader, limit=40, seed=3, keep_sentence=0.0)
    assert len(pairs) == 40 and len({p.positive_id for p in pairs}) == 40  # one per passage
    texts = searcher.reader.passages.get([p.positive_id for p in pairs])
    for p in pairs:
        full = texts[p.positive_id]
        assert p.source == "ict" and len(p.query.split()) >= 6 and p.query in full.text
        assert p.query not in p.positive and p.positive.startswith(full.title)  # masked; the title stays
    kept = ict_pairs(searcher.reader, limit=40, seed=3, keep_sentence=1.0)
    assert all(p.query in p.positive for p in kept)
    assert ict_pairs(searcher.reader, limit=40, seed=3, keep_sentence=0.0) == pairs  # seeded
