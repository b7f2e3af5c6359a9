"""BEIR-format datasets: corpus.jsonl, queries.jsonl, qrels/SPLIT.tsv, validated up front."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

from rag.errors import InputError
from rag.hashing import file_sha256


@dataclass
class Dataset:
    path: Path
    split: str
    queries: dict[str, str]  # the split's queries only
    qrels: dict[str, dict[str, int]]

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def corpus(self) -> Path:
        return self.path / "corpus.jsonl"

    def corpus_hash(self) -> str:
        return file_sha256(self.corpus)


def splits(path: Path) -> list[str]:
    return sorted(p.stem for p in (path / "qrels").glob("*.tsv"))


def load_dataset(path: str | Path, split: str, qrels_file: Path | None = None) -> Dataset:
    """The split's queries and judgments; ``qrels_file`` replaces qrels/SPLIT.tsv (a fine-tuned model's
    held-out dev_qrels.tsv, say) and names the split after itself."""
    path = Path(path)
    if not path.is_dir():
        raise InputError(f"dataset folder {str(path)!r} does not exist")
    missing = [n for n in ("corpus.jsonl", "queries.jsonl", "qrels") if not (path / n).exists()]
    if missing:
        raise InputError(f"dataset {str(path)!r} is missing {', '.join(missing)} (BEIR format expected)")
    if qrels_file is not None:
        if not Path(qrels_file).is_file():
            raise InputError(f"qrels file {str(qrels_file)!r} does not exist")
        qrels_file, split = Path(qrels_file), Path(qrels_file).stem
    else:
        qrels_file = path / "qrels" / f"{split}.tsv"
        if not qrels_file.is_file():
            raise InputError(f"dataset {str(path)!r} has no split {split!r}; available: {', '.join(splits(path)) or 'none'}")
    qrels = _read_qrels(qrels_file)
    all_queries = _read_queries(path / "queries.jsonl")
    unknown_q = sorted(set(qrels) - set(all_queries))
    if unknown_q:
        raise InputError(f"{qrels_file}: {len(unknown_q)} query id(s) not in queries.jsonl, e.g. {unknown_q[:5]}")
    doc_ids = _corpus_ids(path / "corpus.jsonl")
    unknown_d = sorted({d for rel in qrels.values() for d in rel} - doc_ids)
    if unknown_d:
        raise InputError(f"{qrels_file}: {len(unknown_d)} document id(s) not in corpus.jsonl, e.g. {unknown_d[:5]}")
    queries = {q: all_queries[q] for q in qrels}
    empty = [q for q, t in queries.items() if not t.strip()]
    if empty:
        raise InputError(f"{path / 'queries.jsonl'}: empty query text for id(s) {empty[:5]}")
    return Dataset(path, split, queries, qrels)


def _read_qrels(path: Path) -> dict[str, dict[str, int]]:
    qrels: dict[str, dict[str, int]] = {}
    with path.open(newline="") as fh:
        for lineno, row in enumerate(csv.reader(fh, delimiter="\t"), start=1):
            if not row or (lineno == 1 and row[0] == "query-id"):
                continue
            if len(row) < 3:
                raise InputError(f"{path}:{lineno}: expected query-id, corpus-id, score")
            try:
                score = int(row[2])
            except ValueError:
                raise InputError(f"{path}:{lineno}: score {row[2]!r} is not an integer") from None
            qrels.setdefault(row[0], {})[row[1]] = score
    if not qrels:
        raise InputError(f"{path}: no judgments")
    return qrels


def _read_queries(path: Path) -> dict[str, str]:
    out = {}
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
                out[str(obj["_id"])] = obj.get("text") or ""
            except (json.JSONDecodeError, KeyError, TypeError):
                raise InputError(f"{path}:{lineno}: expected a JSON object with _id and text") from None
    return out


def _corpus_ids(path: Path) -> set[str]:
    ids = set()
    with path.open(encoding="utf-8", errors="replace") as fh:
        for line in fh:
            if line.strip():
                try:
                    ids.add(str(json.loads(line)["_id"]))
                except (json.JSONDecodeError, KeyError, TypeError):
                    continue  # the indexer reports bad corpus lines with their line numbers
    return ids
