"""Evidence sentences and the extractive answer on squad-dev, through the whole pipeline (retrieval
over all 1,204 paragraphs with the default settings, then sentences of the best 5 passages).

    python -m eval.benchmarks.evidence [--dataset ../shared/data/squad-dev] [--output docs/results/evidence-squad.json]

Questions are split by article (a stable hash of the gold paragraph's article): about 40 % form the
dev part, on which the weights of the signals and the abstention threshold are chosen; the rest is
reported. Reports evidence recall@1/@3 (a gold answer occurs in the best 1 or 3 sentences), and for
the extractive sentence answer contains-gold, token F1, EM and the abstention rate, per part, for
each single signal and the tuned combination.

Abstention is for questions the documents do not answer, which squad-dev lacks. So the threshold is
chosen against off-topic questions as well: Cranfield's aeronautics questions and the garden QA set's
dev questions asked of the squad-dev index, and squad-dev's dev questions asked of the garden sample
corpus. The threshold maximises (share of dev's right best sentences kept) + (mean share of the
off-topic questions abstained on) - 1, and the report gives both shares.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import pickle
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from tqdm import tqdm

from eval.answers import contains, exact_match, load_answers, token_f1
from eval.runner import open_searcher
from rag.datasets import load_dataset
from rag.evidence import EvidenceFinder, EvidenceWeights, answer_span, relevance
from rag.settings import load_settings


def is_dev(doc_id: str) -> bool:
    article = doc_id.rsplit("-", 1)[0]
    return int(hashlib.sha1(article.encode()).hexdigest(), 16) % 10 < 4


GARDEN = Path(__file__).resolve().parents[2] / "rag" / "sample_data" / "garden"


def off_topic(dataset: Path, split: str, k: int) -> dict[str, list[np.ndarray]]:
    """The features of questions the corpus does not answer (see the module's doc), by set."""
    settings = load_settings({"progress": False})
    ds, garden = load_dataset(dataset, split), load_dataset(GARDEN, "dev")
    cranfield = dataset.parent / "cranfield" / "queries.jsonl"
    sets = {
        "Cranfield questions, squad-dev index": (ds, [json.loads(line)["text"] for line in cranfield.open()]),
        "garden dev questions, squad-dev index": (ds, [garden.queries[q] for q in garden.qrels]),
        "squad-dev dev questions, garden index": (garden, [q for qid, q in ds.queries.items() if is_dev(next(iter(ds.qrels[qid])))]),
    }
    opened = {corpus.name: open_searcher(corpus, settings) for corpus in (ds, garden)}  # each index and encoder once
    out = {}
    for name, (corpus, questions) in sets.items():
        searcher = opened[corpus.name]
        finder = EvidenceFinder(searcher.encoder)
        out[name] = [finder.features(q, [h.passage for h in searcher.search(q, k=k).hits])[1] for q in tqdm(questions, desc=name)]
    return out


def collect(dataset: Path, split: str, k: int):
    settings = load_settings({"progress": False})
    ds = load_dataset(dataset, split)
    gold = load_answers(ds)
    searcher = open_searcher(ds, settings)
    finder = EvidenceFinder(searcher.encoder)
    rows = []
    t = time.perf_counter()
    for qid, question in tqdm(ds.queries.items(), desc="questions"):
        hits = searcher.search(question, k=k).hits
        passages = [h.passage for h in hits]
        sentences, feats = finder.features(question, passages)
        gold_doc = next(iter(ds.qrels[qid]))
        rows.append({"id": qid, "question": question, "dev": is_dev(gold_doc), "gold": gold[qid], "sentences": [s.text for s in sentences],
                     "feats": feats, "labels": np.array([contains(s.text, gold[qid]) for s in sentences]),
                     "gold_passage": any(p.document_id == gold_doc for p in passages)})
    return rows, (time.perf_counter() - t) / max(len(rows), 1) * 1000


def recall(rows, w: EvidenceWeights) -> tuple[float, float]:
    """Evidence recall@1 and @3 alone: what the weight grid ranks by (no answer metrics per setting)."""
    vec, r1, r3 = w.vector(), 0.0, 0.0
    for r in rows:
        if len(r["feats"]):
            order = np.argsort(-(r["feats"] @ vec), kind="stable")
            r1 += r["labels"][order[0]]
            r3 += r["labels"][order[:3]].max()
    return r1 / len(rows), r3 / len(rows)


def evaluate(rows, w: EvidenceWeights, abstain_on=relevance) -> dict:
    """The metrics of ``w``; it abstains below ``w.min_relevance`` on ``abstain_on(feats)`` (default:
    the question's relevance, as the service does)."""
    vec = w.vector()
    r1 = r3 = c = f1 = em = abstain = sc = sf1 = sem = 0.0
    for r in rows:
        if not len(r["feats"]):
            abstain += 1
            continue
        scores = r["feats"] @ vec
        order = np.argsort(-scores, kind="stable")
        r1 += r["labels"][order[0]]
        r3 += r["labels"][order[:3]].max()
        if abstain_on(r["feats"]) < w.min_relevance:
            abstain += 1
            continue
        best = r["sentences"][order[0]]
        c += contains(best, r["gold"])
        f1 += token_f1(best, r["gold"])
        em += exact_match(best, r["gold"])
        span = answer_span(r["question"], best)
        short = best[span[0]:span[1]] if span else best
        sc += contains(short, r["gold"])
        sf1 += token_f1(short, r["gold"])
        sem += exact_match(short, r["gold"])
    n = len(rows)
    return {"questions": n, "evidence_recall@1": round(r1 / n, 4), "evidence_recall@3": round(r3 / n, 4),
            "contains_gold": round(c / n, 4), "f1": round(f1 / n, 4), "exact_match": round(em / n, 4),
            "span_contains_gold": round(sc / n, 4), "span_f1": round(sf1 / n, 4), "span_exact_match": round(sem / n, 4),
            "abstention": round(abstain / n, 4), "gold_passage_in_top_k": round(sum(r["gold_passage"] for r in rows) / n, 4)}


def off_topic_abstained(off: dict[str, list[np.ndarray]], w: EvidenceWeights, abstain_on=relevance) -> dict[str, float]:
    return {name: round(float(np.mean([abstain_on(f) < w.min_relevance for f in rows])), 4) for name, rows in off.items()}


def threshold(dev, off: dict[str, list[np.ndarray]], w: EvidenceWeights, abstain_on) -> float:
    """The lowest value of ``abstain_on(feats)`` that maximises (share of dev's right best sentences
    kept) + (mean share of off-topic questions abstained on) - 1."""
    vec = w.vector()
    scored = [r for r in dev if len(r["feats"])]
    top = np.array([abstain_on(r["feats"]) for r in scored])
    right = np.array([bool(r["labels"][int(np.argmax(r["feats"] @ vec))]) for r in scored])
    off_tops = [np.array([abstain_on(f) for f in rows]) for rows in off.values()]
    candidates = np.unique(np.concatenate([top, *off_tops]))
    candidates = candidates[np.isfinite(candidates)]
    j = [(right & (top >= t)).sum() / max(right.sum(), 1) + np.mean([(o < t).mean() for o in off_tops]) - 1 for t in candidates]
    return round(float(candidates[int(np.argmax(j))]), 4)


def best_sentence_score(w: EvidenceWeights):
    """The rule before the relevance score: abstain on the best sentence's own score."""
    vec = w.vector()
    return lambda feats: float((feats @ vec).max()) if len(feats) else -np.inf


def tune(dev, off: dict[str, list[np.ndarray]]) -> EvidenceWeights:
    """Grid over the weights by dev evidence recall@1 (ties: recall@3), then the abstention threshold
    on the question's relevance (see :func:`threshold`)."""
    grid = [0.0, 0.25, 0.5, 1.0, 2.0]
    best = max((EvidenceWeights(1.0, b, o, r, t, ot) for b, o, r, t, ot in itertools.product(grid, grid, grid, grid, grid)),
               key=lambda w: recall(dev, w))  # the first of equals, as the grid is ordered
    return replace(best, min_relevance=threshold(dev, off, best, relevance))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", type=Path, default=Path("../shared/data/squad-dev"))
    ap.add_argument("--split", default="dev")
    ap.add_argument("--k", type=int, default=5, help="passages the sentences come from (answer.max_passages)")
    ap.add_argument("--output", type=Path)
    ap.add_argument("--reuse", action="store_true", help="reuse the features of the last run (data/bench/evidence-features-*.pkl)")
    args = ap.parse_args()
    cache = Path("data/bench") / f"evidence-features-v3-{args.dataset.name}-{args.split}-k{args.k}.pkl"
    if args.reuse and cache.is_file():  # features only: scoring variants re-run in seconds
        rows, ms, off = pickle.loads(cache.read_bytes())
    else:
        rows, ms = collect(args.dataset, args.split, args.k)
        off = off_topic(args.dataset, args.split, args.k)
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_bytes(pickle.dumps((rows, ms, off)))
    dev, test = [r for r in rows if r["dev"]], [r for r in rows if not r["dev"]]
    tuned = tune(dev, off)
    never = -np.inf
    singles = {"dense only": EvidenceWeights(1, 0, 0, 0, 0, 0, never), "bm25 only": EvidenceWeights(0, 1, 0, 0, 0, 0, never),
               "overlap only": EvidenceWeights(0, 0, 1, 0, 0, 0, never), "overlap with the title only": EvidenceWeights(0, 0, 0, 0, 0, 1, never),
               "first sentence of the best passage": EvidenceWeights(0, 0, 0, 1, 0, 0, never),
               "untuned weights (1, 0.5, 0.5, 0.25, 0.25)": EvidenceWeights(1, 0.5, 0.5, 0.25, 0.25, 0, never),
               "tuned on dev, no abstention": replace(tuned, min_relevance=never),
               "tuned on dev, with abstention": tuned}
    # the rule before: abstain on the best sentence's own score, its threshold chosen the same way
    old_rule = best_sentence_score(tuned)
    old = replace(tuned, min_relevance=threshold(dev, off, tuned, old_rule))
    rows_report = {name: {"dev": evaluate(dev, w), "test": evaluate(test, w)} for name, w in singles.items()}
    rows_report["tuned on dev, abstaining on the best sentence's score (before)"] = {
        "dev": evaluate(dev, old, old_rule), "test": evaluate(test, old, old_rule)}
    report = {"dataset": str(args.dataset), "k": args.k, "ms_per_question_search_and_features": round(ms, 1),
              "tuned": tuned.__dict__, "shipped_defaults": EvidenceWeights().__dict__,
              "best_sentence_score_threshold": old.min_relevance,
              "off_topic_abstained": {"tuned": off_topic_abstained(off, tuned), "shipped_defaults": off_topic_abstained(off, EvidenceWeights()),
                                      "best_sentence_score": off_topic_abstained(off, old, old_rule)},
              "rows": rows_report}
    lines = ["| scorer | part | questions | evidence R@1 | evidence R@3 | sentence: contains / F1 / EM | span: contains / F1 / EM | "
             "abstain | gold passage in top k |",
             "|---|---|---:|---:|---:|---|---|---:|---:|"]
    for name, parts in report["rows"].items():
        for part, m in parts.items():
            lines.append(f"| {name} | {part} | {m['questions']} | {m['evidence_recall@1']:.3f} | {m['evidence_recall@3']:.3f} | "
                         f"{m['contains_gold']:.3f} / {m['f1']:.3f} / {m['exact_match']:.3f} | "
                         f"{m['span_contains_gold']:.3f} / {m['span_f1']:.3f} / {m['span_exact_match']:.3f} | "
                         f"{m['abstention']:.3f} | {m['gold_passage_in_top_k']:.3f} |")
    shares = report["off_topic_abstained"]
    lines += ["", "Off-topic questions abstained on (tuned / the shipped defaults / the best sentence's score, before):", ""]
    lines += [f"- {name}: {share:.3f} / {shares['shipped_defaults'][name]:.3f} / {shares['best_sentence_score'][name]:.3f}"
              f" ({len(off[name])} questions)" for name, share in shares["tuned"].items()]
    text = json.dumps(report, indent=2)
    sys.stdout.write("\n".join(lines) + "\n" + f"tuned: {tuned}\n")
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text + "\n")
        args.output.with_suffix(".md").write_text("\n".join(lines) + f"\n\ntuned on dev: {tuned}\n")


if __name__ == "__main__":
    main()
