"""PDF extraction on real files: pages, passages, characters, time per page, and a check against
what a PDF viewer shows: each entry of the PDF's outline (the bookmarks a viewer lists beside the
page, with the page it opens) must be found, as text, on that page of the extraction.

    python -m eval.benchmarks.documents FILE.pdf ... [--output docs/benchmarks/documents.json]

Passages are cut with the default settings (200 tokens of all-MiniLM-L6-v2's tokenizer, 32 overlap,
never across a page).
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path
from typing import Any

from pypdf import PdfReader

from eval.report import write_with_table
from indexer.documents import read_file
from rag.chunking import Chunker
from rag.factory import make_encoder
from rag.settings import load_settings


def _norm(s: str) -> str:
    return re.sub(r"[^a-z0-9]+", "", s.lower())


def outline_entries(reader: Any) -> list[tuple[str, int]]:
    """(title, page) of every entry of a ``pypdf.PdfReader``'s outline that points at a page."""
    entries: list[tuple[str, int]] = []

    def walk(items: Any) -> None:
        for it in items:
            if isinstance(it, list):
                walk(it)
            else:
                page = reader.get_destination_page_number(it)
                if page is not None:  # an outline entry may point nowhere
                    entries.append((str(it.title), page + 1))

    walk(reader.outline)
    return entries


def outline_check(reader: Any, pages: dict[int, str]) -> tuple[int, int, list[str]]:
    """(outline entries found on their page, entries, a few misses)."""
    entries = outline_entries(reader)
    found = 0
    misses: list[str] = []
    for title, page in entries:
        # the heading as printed may carry a number ("3.2 Shell Commands") or wrap: compare letters and digits only
        words = _norm(re.sub(r"^[\d.]+\s*", "", title))
        if words and words in _norm(pages.get(page, "")):
            found += 1
        elif len(misses) < 3:
            misses.append(f"{title!r} (p. {page})")
    return found, len(entries), misses


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("files", type=Path, nargs="+")
    ap.add_argument("--output", type=Path)
    args = ap.parse_args()
    settings = load_settings({"progress": False})
    chunker = Chunker(make_encoder(settings), settings.chunking.size, settings.chunking.overlap)
    rows = []
    for path in args.files:
        t = time.perf_counter()
        parsed = read_file(path)
        seconds = time.perf_counter() - t
        reader = PdfReader(path)  # the page count and the outline, as a viewer sees them
        n_pages = len(reader.pages)
        pages = {s.location["page"]: s.text for s in parsed.sections}
        passages = sum(len(chunker.chunk(parsed.title, s.text, [(0, len(s.text), s.location)])) for s in parsed.sections)
        found, entries, misses = outline_check(reader, pages)
        rows.append({"file": path.name, "bytes": path.stat().st_size, "pages": n_pages, "pages_with_text": len(pages),
                     "passages": passages, "characters": sum(len(s.text) for s in parsed.sections), "title": parsed.title,
                     "ms_per_page": round(seconds / max(n_pages, 1) * 1000, 1),
                     "outline_found_on_page": found, "outline_entries": entries, "outline_misses": misses})
    lines = ["| file | pages | passages | characters | ms/page | outline entries found on their page | title |",
             "|---|---:|---:|---:|---:|---|---|"]
    for r in rows:
        share = f"{r['outline_found_on_page']}/{r['outline_entries']}" if r["outline_entries"] else "no outline"
        lines.append(f"| {r['file']} | {r['pages']} | {r['passages']} | {r['characters']:,} | {r['ms_per_page']} | {share} | "
                     f"{r['title'][:50]} |")
    sys.stdout.write("\n".join(lines) + "\n")
    if args.output:
        write_with_table({"files": rows}, args.output, "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
