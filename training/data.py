"""Training pairs (query, positive passage) from qrels, or from a cold-start bootstrap."""

from __future__ import annotations

import contextlib
import json
import logging
import random
import re
from dataclasses import dataclass
from pathlib import Path

from rag.datasets import Dataset
from rag.errors import InputError
from rag.reader import IndexReader
from rag.types import document_of, indexed_text

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Pair:
    query_id: str
    query: str
    positive_id: str  # passage id
    positive: str  # passage text as the encoder reads it (title + text)
    source: str  # "qrels" | "bootstrap" | "feedback" | "synthetic" | "ict"


def passages_of_documents(reader: IndexReader) -> dict[str, list[str]]:
    """document id -> its passage ids, from the generation's passage table."""
    out: dict[str, list[str]] = {}
    for pid in reader.passages.ids:
        out.setdefault(document_of(pid), []).append(pid)
    return out


def qrels_pairs(ds: Dataset, reader: IndexReader) -> list[Pair]:
    """One pair per judged relevant document; a chunked document contributes the passage BM25
    ranks best for the query (its first passage when BM25 does not find any)."""
    by_doc = passages_of_documents(reader)
    pairs = []
    for qid, rel in ds.qrels.items():
        query = ds.queries[qid]
        ranked = None
        for doc_id, grade in rel.items():
            if grade <= 0 or doc_id not in by_doc:
                continue
            pids = by_doc[doc_id]
            if len(pids) > 1:
                ranked = ranked or [h.passage_id for h in reader.bm25.search(query, 200)]
                pids = sorted(pids, key=lambda p: ranked.index(p) if p in ranked else len(ranked))
            p = reader.passages.get([pids[0]])[pids[0]]
            pairs.append(Pair(qid, query, p.id, p.indexed_text, "qrels"))
    if not pairs:
        raise InputError(f"split {ds.split!r} of {ds.path} gives no training pairs")
    return pairs


_SENTENCE = re.compile(r"(?<=[.!?])\s+")


def bootstrap_pairs(reader: IndexReader, limit: int | None = None, top_k: int = 3, seed: int = 13) -> list[Pair]:
    """Cold start, no labels: a document's title (its first sentence when the title is shorter than
    two words) is a pseudo-query for its first passage, kept only when BM25 finds that passage in its top ``top_k`` (round trip)."""
    ids = [pid for pid in reader.passages.ids if pid.endswith("#0")]
    random.Random(seed).shuffle(ids)
    pairs: list[Pair] = []
    for pid in ids:
        if limit is not None and len(pairs) >= limit:
            break
        p = reader.passages.get([pid])[pid]
        from_title = len(p.title.split()) >= 2
        query = p.title if from_title else _SENTENCE.split(p.text, 1)[0]
        body = p.text if from_title else p.text[len(query):].strip()  # the pseudo-query is not in the positive
        if len(query.split()) < 2 or not body:
            continue
        if pid in {h.passage_id for h in reader.bm25.search(query, top_k)}:
            pairs.append(Pair(f"boot-{pid}", query, pid, body, "bootstrap"))
    return pairs


def ict_pairs(reader: IndexReader, limit: int | None = 2000, seed: int = 13, keep_sentence: float = 0.1,
              min_words: int = 6) -> list[Pair]:
    """Inverse cloze task (Lee et al., 2019), no labels: one sentence of a passage is the pseudo-query,
    and the passage without that sentence (its title kept) the positive, so the model learns what a
    passage is about rather than to find a copied string. In ``keep_sentence`` of the pairs the sentence
    stays in (as in the paper), which keeps lexical matching worth something. One pair per passage,
    from passages of two sentences or more; the sentence has at least ``min_words`` words."""
    from rag.evidence import sentence_spans

    rng = random.Random(seed)
    ids = list(reader.passages.ids)
    rng.shuffle(ids)
    pairs: list[Pair] = []
    for i in range(0, len(ids), 500):
        got = reader.passages.get(ids[i : i + 500])
        for pid in ids[i : i + 500]:
            if limit is not None and len(pairs) >= limit:
                return pairs
            p = got[pid]
            spans = sentence_spans(p.text)
            usable = [(a, b) for a, b in spans if len(p.text[a:b].split()) >= min_words]
            if len(spans) < 2 or not usable:
                continue
            a, b = rng.choice(usable)
            rest = p.text if rng.random() < keep_sentence else f"{p.text[:a].rstrip()} {p.text[b:].lstrip()}".strip()
            pairs.append(Pair(f"ict-{pid}", p.text[a:b].strip(), pid, indexed_text(p.title, rest), "ict"))
    return pairs


def pseudo_pairs(queries: dict[str, str], searcher, agree_within: int = 3) -> list[Pair]:
    """Label-free, from queries alone (a query log; a split's questions without their judgments): a
    query's pseudo-positive is the hybrid ranking's first passage when BM25 and the dense encoder both
    rank it within their first ``agree_within``. The dense model then learns what the hybrid (BM25's
    lexical evidence included) puts first. On SciFact train: 623 of 809 queries kept, 71 % of them
    truly relevant (the hybrid's first passage alone: 60 %; both retrievers' first passage: 80 % of 413)."""
    from rag.search import Mode
    from rag.timing import Timer

    pairs = []
    retrieval = searcher.retrieval.model_copy(update={"fold_documents": True})
    for qid, text in queries.items():
        c = searcher.candidates(text, Mode.hybrid, None, Timer())
        fused = searcher.fuse(c, Mode.hybrid, retrieval)
        if not fused:
            continue
        top = fused[0].passage_id
        if top in {h.passage_id for h in c.bm25[:agree_within]} and top in {h.passage_id for h in c.dense[:agree_within]}:
            p = searcher.reader.passages.get([top])[top]
            pairs.append(Pair(f"pseudo-{qid}", text, top, p.indexed_text, "pseudo"))
    log.info("pseudo pairs: kept %d of %d queries (both retrievers agree within %d)", len(pairs), len(queries), agree_within)
    return pairs


SYNTHETIC_PROMPT = (
    "Write one short question that the following passage answers. Reply with the question only.\n\n"
    "Passage:\n{passage}"
)


_PREAMBLE = re.compile(r"^\s*(?:(?:the\s+)?(?:question|answer)(?:\s+is)?\s*:\s*)+", re.IGNORECASE)


def clean_question(text: str) -> str:
    """Drop what small models wrap a question in: 'Question:', 'The answer is:', quotes."""
    return _PREAMBLE.sub("", text).strip().strip("\"'").strip()


def synthetic_pairs(reader: IndexReader, generator, limit: int, top_k: int = 5, seed: int = 13,
                    concurrency: int = 8, max_passage_words: int = 160, progress: bool = False,
                    journal: Path | None = None) -> list[Pair]:
    """LLM augmentation: the generator writes a question for each of ``limit`` sampled passages; a
    pair is kept only when BM25 ranks its passage in the top ``top_k`` for that question (round-trip
    filter), which drops vague or off-topic questions. Requests run concurrently so the local
    generator batches them. Each question is appended to ``journal`` as it arrives, and a re-run
    asks only for the passages not in it (generation is the slow part of a CPU run)."""
    from concurrent.futures import ThreadPoolExecutor

    from tqdm import tqdm

    from rag.generators.base import GenerationParams

    ids = list(reader.passages.ids)
    random.Random(seed).shuffle(ids)
    ids = ids[:limit]
    params = GenerationParams(temperature=0.0, max_tokens=48, repetition_penalty=1.1, stop=("\n",))
    asked: dict[str, str] = {}
    if journal is not None and journal.is_file():
        text = journal.read_text()
        if text and not text.endswith("\n"):
            with journal.open("a") as fh:
                fh.write("\n")  # end a line cut short by a kill before appending
        for line in text.splitlines():
            try:
                row = json.loads(line)
                asked[row["passage_id"]] = row["question"]
            except (json.JSONDecodeError, KeyError, TypeError):
                continue  # a line cut short by a kill
        log.info("synthetic queries: %d already written, in %s", len(asked), journal)

    def ask(pid: str) -> tuple[str, str]:
        p = reader.passages.get([pid])[pid]
        text = " ".join(p.indexed_text.split()[:max_passage_words])
        msgs = [{"role": "user", "content": SYNTHETIC_PROMPT.format(passage=text)}]
        return pid, generator.generate(msgs, params).text.strip()

    todo = [pid for pid in ids if pid not in asked]
    with ThreadPoolExecutor(concurrency) as pool, (journal.open("a") if journal else contextlib.nullcontext()) as out:
        for pid, question in tqdm(pool.map(ask, todo), total=len(todo), desc="synthetic queries", disable=not progress):
            asked[pid] = question
            if out is not None:
                out.write(json.dumps({"passage_id": pid, "question": question}) + "\n")
                out.flush()
    pairs = []
    positives = reader.passages.get(ids)
    for pid in ids:
        question = clean_question(asked[pid])
        if len(question.split()) >= 3 and pid in {h.passage_id for h in reader.bm25.search(question, top_k)}:
            pairs.append(Pair(f"syn-{pid}", question, pid, positives[pid].indexed_text, "synthetic"))
    log.info("synthetic queries: kept %d of %d after the round-trip filter", len(pairs), len(ids))
    return pairs


def feedback_pairs(store) -> list[Pair]:
    """Positive user feedback (click, useful) stored by the service: (query, passage) pairs."""
    return [Pair(f"fb-{i}", q, pid, indexed_text(title, text), "feedback")
            for i, (q, pid, title, text) in enumerate(store.positive_feedback())]


def split_dev(pairs: list[Pair], fraction: float, seed: int, group_of: dict[str, str] | None = None) -> tuple[list[Pair], list[Pair]]:
    """Carve a dev split by query (never by pair, so no query is in both), or by group (``group_of``:
    query id -> its group, e.g. the article its passage comes from, so no article is in both)."""
    groups = group_of or {p.query_id: p.query_id for p in pairs}
    keys = sorted({groups[p.query_id] for p in pairs})
    random.Random(seed).shuffle(keys)
    n_dev = max(1, int(len(keys) * fraction)) if fraction > 0 else 0
    dev = set(keys[:n_dev])
    return [p for p in pairs if groups[p.query_id] not in dev], [p for p in pairs if groups[p.query_id] in dev]


DEV_BY = ("query", "title")


def dev_groups(pairs: list[Pair], reader: IndexReader, dev_by: str) -> dict[str, str] | None:
    """``query``: None (each query its own group); ``title``: a query's group is the title of its
    first positive's document (for Wikipedia-like corpora, the article)."""
    if dev_by == "query":
        return None
    if dev_by != "title":
        raise InputError(f"--dev-by {dev_by!r}: choose from {', '.join(DEV_BY)}")
    out: dict[str, str] = {}
    for p in pairs:
        if p.query_id not in out:
            out[p.query_id] = reader.passages.get([p.positive_id])[p.positive_id].title
    if len(set(out.values())) < 2:
        raise InputError("--dev-by title: the training queries come from fewer than 2 titles; nothing to carve by")
    return out
