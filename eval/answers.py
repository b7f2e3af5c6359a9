"""Answer evaluation: exact match and token F1 (SQuAD normalisation), the share of answers that
contain a gold answer, citation precision (a cited passage belongs to a judged-relevant document)
and latency, for several prompt/truncation settings side by side."""

from __future__ import annotations

import json
import logging
import os
import re
import string
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tqdm import tqdm

from eval.report import write_atomic, write_with_table
from eval.stats import pct
from rag.datasets import Dataset
from rag.errors import InputError
from rag.types import AnswerMode

log = logging.getLogger(__name__)
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalize(text: str) -> str:
    text = text.lower()
    text = "".join(ch for ch in text if ch not in set(string.punctuation))
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match(pred: str, golds: list[str]) -> float:
    return float(any(normalize(pred) == normalize(g) for g in golds))


def token_f1(pred: str, golds: list[str]) -> float:
    best = 0.0
    p = normalize(pred).split()
    for g in golds:
        gt = normalize(g).split()
        common = sum((Counter(p) & Counter(gt)).values())
        if common:
            prec, rec = common / len(p), common / len(gt)
            best = max(best, 2 * prec * rec / (prec + rec))
    return best


def contains(pred: str, golds: list[str]) -> float:
    n = f" {normalize(pred)} "
    return float(any(f" {normalize(g)} " in n for g in golds if normalize(g)))


def load_answers(ds: Dataset) -> dict[str, list[str]]:
    path = ds.path / "answers.jsonl"
    if not path.is_file():
        raise InputError(f"dataset {str(ds.path)!r} has no answers.jsonl ({{\"_id\": query id, \"answers\": [...]}} a line)")
    out = {}
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
            out[str(obj["_id"])] = [str(a) for a in obj["answers"]]
        except (json.JSONDecodeError, KeyError, TypeError):
            raise InputError(f"{path}:{lineno}: expected {{\"_id\": ..., \"answers\": [...]}}") from None
    missing = [q for q in ds.queries if q not in out]
    if missing:
        raise InputError(f"{path}: no answers for {len(missing)} query id(s) of split {ds.split!r}, e.g. {missing[:5]}")
    return out


def citations_valid(r) -> bool:
    """Every citation names a passage the answer had, and an answer made of evidence is found, word for
    word, where its citation points."""
    if r.invalid_citations:
        return False
    numbered = {i + 1: p for i, p in enumerate(r.passages)}
    if any(numbered.get(c.number) is None or numbered[c.number].id != c.passage_id for c in r.citations):
        return False
    e = r.answer_evidence
    if e is not None:
        text = numbered[r.citations[0].number].text if r.citations else ""
        start, end = (e.span_start, e.span_end) if e.span_start is not None else (e.start, e.end)
        return text[start:end] == r.answer
    return True


def evaluate_config(answerer, ds: Dataset, answers: dict[str, list[str]], contextualize: bool, k: int,
                    progress: bool = True) -> dict[str, Any]:
    rows, lat, tps, cited, cited_ok, valid = [], [], [], 0, 0, 0
    for qid, question in tqdm(ds.queries.items(), desc=f"answer ctx={contextualize} k={k}", disable=not progress):
        t = time.perf_counter()
        r = answerer.answer(question, k=k, contextualize=contextualize)
        lat.append((time.perf_counter() - t) * 1000)
        if r.error:
            raise InputError(f"generation failed during the evaluation: {r.error}")
        gold_docs = {d for d, g in ds.qrels.get(qid, {}).items() if g > 0}
        cited += len(r.citations)
        cited_ok += sum(c.document_id in gold_docs for c in r.citations)
        valid += citations_valid(r)
        tps.append(r.usage.get("tokens_per_s", 0.0))
        rows.append({"id": qid, "question": question, "answer": r.answer, "gold": answers[qid],
                     "em": exact_match(r.answer, answers[qid]), "f1": token_f1(r.answer, answers[qid]),
                     "contains": contains(r.answer, answers[qid]),
                     "cited": [c.document_id for c in r.citations], "inferred": any(c.inferred for c in r.citations),
                     "gold_in_prompt": any(p.document_id in gold_docs for p in r.passages),
                     "extractive": r.extractive.answer if r.extractive else None,
                     "evidence_recall": max((contains(e.text, answers[qid]) for e in r.evidence), default=0.0)})
    n = len(rows)
    ext = [r for r in rows if r["extractive"] is not None]
    extractive = {
        "contains_gold": round(sum(contains(r["extractive"], r["gold"]) for r in ext) / n, 4),
        "f1": round(sum(token_f1(r["extractive"], r["gold"]) for r in ext) / n, 4),
        "exact_match": round(sum(exact_match(r["extractive"], r["gold"]) for r in ext) / n, 4),
        "abstention": round(1 - len(ext) / n, 4),
    } if answerer.evidence is not None or answerer.mode is AnswerMode.extractive else None
    return {
        "mode": answerer.mode.value,
        "extractive": extractive, "evidence_recall": round(sum(r["evidence_recall"] for r in rows) / n, 4),
        "contextualize": contextualize, "k": k, "questions": n,
        "exact_match": round(sum(r["em"] for r in rows) / n, 4), "f1": round(sum(r["f1"] for r in rows) / n, 4),
        "contains_gold": round(sum(r["contains"] for r in rows) / n, 4),
        "citation_precision": round(cited_ok / cited, 4) if cited else 0.0,
        "citations_valid": round(valid / n, 4),
        "citations_inferred": round(sum(r["inferred"] for r in rows) / n, 4),
        "gold_passage_in_prompt": round(sum(r["gold_in_prompt"] for r in rows) / n, 4),
        "latency_ms": {"p50": pct(lat, 50, 1), "p95": pct(lat, 95, 1)},
        "tokens_per_s_p50": pct(tps, 50, 2),
        "answers": rows,
    }


def markdown(report: dict[str, Any]) -> str:
    lines = [f"**{report['dataset']}** / {report['split']} ({report['num_queries']} questions), generator {report['generator']}", "",
             "| mode | contextualize | k | EM | F1 | contains gold | citation precision | inferred | gold in prompt | "
             "evidence recall | extractive EM / F1 / contains / abstain | citations valid | p50 ms | p95 ms |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|"]
    for c in report["configs"]:
        x = c.get("extractive")
        ext = f"{x['exact_match']:.3f} / {x['f1']:.3f} / {x['contains_gold']:.3f} / {x['abstention']:.3f}" if x else "-"
        lines.append(f"| {c.get('mode', 'generative')} | {'on' if c['contextualize'] else 'off'} | {c['k']} | {c['exact_match']:.3f} | "
                     f"{c['f1']:.3f} | {c['contains_gold']:.3f} | {c['citation_precision']:.3f} | {c['citations_inferred']:.3f} | "
                     f"{c['gold_passage_in_prompt']:.3f} | {c.get('evidence_recall', 0.0):.3f} | {ext} | {c.get('citations_valid', 0.0):.3f} | "
                     f"{c['latency_ms']['p50']:.0f} | {c['latency_ms']['p95']:.0f} |")
    return "\n".join(lines) + "\n"


def write(report: dict[str, Any], output: Path) -> tuple[Path, Path]:
    """The JSON report and its Markdown table, each written whole or not at all."""
    return write_with_table(report, output, markdown(report))


class Journal:
    """Finished configurations of one answer evaluation, a JSON line each after a header line that
    says what was evaluated (a journal of another run is not reused)."""

    def __init__(self, path: Path, header: dict[str, Any],
                 key: Callable[[dict[str, Any]], tuple] = lambda c: (c["contextualize"], c["k"])) -> None:
        """``key``: what names a finished configuration (default: contextualize and k)."""
        self.path, self.header, self.key = path, header, key

    def start(self) -> None:
        write_atomic(self.path, json.dumps({"header": self.header}, ensure_ascii=False) + "\n")

    def append(self, config: dict[str, Any]) -> None:
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps({"config": config}, ensure_ascii=False) + "\n")
            fh.flush()
            os.fsync(fh.fileno())

    def load(self) -> dict[tuple, dict[str, Any]]:
        """key -> finished configuration; empty when there is no journal of this run."""
        if not self.path.is_file():
            return {}
        out: dict[tuple, dict[str, Any]] = {}
        for i, line in enumerate(self.path.read_text(encoding="utf-8").splitlines()):
            try:
                obj = json.loads(line)
            except ValueError:
                continue  # a line cut short by the crash
            if i == 0 and obj.get("header") != json.loads(json.dumps(self.header)):
                log.warning("%s is from another run (dataset, split, generator or settings differ): starting over", self.path)
                return {}
            if "config" in obj:
                out[self.key(obj["config"])] = obj["config"]
        return out
