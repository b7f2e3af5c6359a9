"""Structure-aware chunking against fixed windows, on real PDFs: does the passage BM25 ranks first
come from the page a question is about?

    python -m eval.benchmarks.structure FILE.pdf ... [--output docs/benchmarks/structure.json]

Questions: the entries of each PDF's outline (the headings a viewer lists, with the page each opens),
asked of that PDF's own passages. A hit is a passage whose pages include the entry's page. Two ways to
cut, both 200 tokens of all-MiniLM-L6-v2's tokenizer with 32 overlap, title with every passage:

- fixed windows (as before): the document's text in one flow, windows blind to pages and paragraphs;
- structure-aware (now): cut within each page, at paragraph ends where one falls in a window's second half.

Reported: passages, passages spanning more than one page, page hit@1, hit@5 and MRR@10.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from pypdf import PdfReader

from eval.benchmarks.documents import outline_entries
from eval.report import write_with_table
from indexer.sources import read_document_file
from rag.bm25 import BM25Backend, build_bm25, open_bm25
from rag.chunking import Chunker
from rag.factory import make_encoder
from rag.settings import load_settings
from rag.types import indexed_text


def pages_of(text: str, chunk_text: str, start_hint: int, bounds: list[tuple[int, int, int]]) -> tuple[set[int], int]:
    """The pages a window of the flowing text covers (by its character offsets), and where it starts."""
    at = text.find(chunk_text, start_hint)
    at = at if at >= 0 else text.find(chunk_text)
    end = at + len(chunk_text)
    return {page for a, b, page in bounds if a < end and b > at}, max(at, 0)


def evaluate(path: Path, fixed: Chunker, aware: Chunker) -> dict:
    doc = read_document_file(path, path.name)  # the document `rag index` makes of it: text and page sections
    if isinstance(doc, str):
        raise SystemExit(f"{path}: {doc}")
    entries = outline_entries(PdfReader(path))
    text, title = doc.text, doc.title
    bounds = [(a, b, loc["page"]) for a, b, loc in doc.sections]
    variants: dict[str, list[tuple[str, set[int]]]] = {}
    hint, windows = 0, []
    for c in fixed.chunk(title, text):
        pages, hint = pages_of(text, c.text, hint, bounds)
        windows.append((c.text, pages))
    variants["fixed windows"] = windows
    variants["structure-aware"] = [(c.text, {c.location["page"]}) for c in aware.chunk(title, text, doc.sections)]
    out = {}
    for name, passages in variants.items():
        with tempfile.TemporaryDirectory() as tmp:
            build_bm25(BM25Backend.rank_bm25, ((str(i), indexed_text(title, t)) for i, (t, _) in enumerate(passages)), Path(tmp))
            bm25 = open_bm25(BM25Backend.rank_bm25, Path(tmp))
            h1 = h5 = mrr = 0.0
            for title, page in entries:
                ranked = [int(h.passage_id) for h in bm25.search(title, 10)]
                ranks = [r for r, i in enumerate(ranked, start=1) if page in passages[i][1]]
                h1 += bool(ranks) and ranks[0] == 1
                h5 += bool(ranks) and ranks[0] <= 5
                mrr += 1 / ranks[0] if ranks else 0.0
        n = max(len(entries), 1)
        out[name] = {"passages": len(passages), "multi_page_passages": sum(len(p) > 1 for _, p in passages),
                     "hit@1": round(h1 / n, 4), "hit@5": round(h5 / n, 4), "mrr@10": round(mrr / n, 4)}
    return {"file": path.name, "questions": len(entries), **out}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("files", type=Path, nargs="+")
    ap.add_argument("--output", type=Path)
    args = ap.parse_args()
    s = load_settings({"progress": False})
    enc = make_encoder(s)
    fixed = Chunker(enc, s.chunking.size, s.chunking.overlap, paragraphs=False)
    aware = Chunker(enc, s.chunking.size, s.chunking.overlap)
    rows = [evaluate(p, fixed, aware) for p in args.files]
    lines = ["| file | questions | chunking | passages | spanning pages | page hit@1 | hit@5 | MRR@10 |",
             "|---|---:|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        for name in ("fixed windows", "structure-aware"):
            m = r[name]
            lines.append(f"| {r['file']} | {r['questions']} | {name} | {m['passages']} | {m['multi_page_passages']} | "
                         f"{m['hit@1']:.3f} | {m['hit@5']:.3f} | {m['mrr@10']:.3f} |")
    sys.stdout.write("\n".join(lines) + "\n")
    if args.output:
        write_with_table({"files": rows}, args.output, "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
