"""The results page: bm25, dense and hybrid on the test splits of SciFact, Cranfield and CISI.

    python -m eval.benchmarks.beir [--data ../shared/data] [--out docs/results] [--chunking off]

Fusion is tuned on SciFact's train queries only (`rag eval --tune`); Cranfield and CISI have no
train split and use the SciFact-tuned settings unchanged. Writes docs/results/<dataset>.{json,md,png}
and docs/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

DATASETS = ["scifact", "cranfield", "cisi"]


def rag_eval(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "service", "eval", *args, "--no-progress"], check=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--out", type=Path, default=Path("docs/results"))
    ap.add_argument("--chunking", default="off", choices=["on", "off"])
    ap.add_argument("--skip-tune", action="store_true", help="reuse the tuned file")
    ap.add_argument("--page-only", action="store_true", help="only rebuild RESULTS.md from the reports")
    args = ap.parse_args()
    tuned = args.out / "tuned-scifact-train.json"
    common = ["--chunking", args.chunking, "--tuned-file", str(tuned)]
    if args.page_only:
        write_page(args.out, tuned, args.chunking)
        return
    if not args.skip_tune:
        rag_eval("--dataset", str(args.data / "scifact"), "--split", "train", "--tune", *common)
    for name in DATASETS:
        rag_eval("--dataset", str(args.data / name), "--split", "test", "--output", str(args.out / f"{name}.json"), *common)
    write_page(args.out, tuned, args.chunking)


def write_page(out: Path, tuned: Path, chunking: str) -> None:
    t = json.loads(tuned.read_text())
    lines = [
        "# Retrieval results", "",
        "Produced by `python -m eval.benchmarks.beir` (which runs `rag eval`); every figure is on a test split.",
        f"Index: one passage per document (`--chunking {chunking}`), Lucene BM25 (k1=0.9, b=0.4, title + text),",
        "all-MiniLM-L6-v2 (exact inner product below 100k vectors). Metrics by pytrec_eval; latency is per query,",
        "one query at a time in a warm process on this project's 2-core CPU machine.", "",
        "Hybrid fusion was tuned on **SciFact train** queries only "
        f"({t['tuned_on']['queries']} queries, {t['tuned_on']['configs_tried']} configurations, train nDCG@10 {t['tuned_on']['ndcg@10']}):",
        f"`{json.dumps(t['retrieval'])}`. Cranfield and CISI have no train split and use these settings unchanged.", "",
        "Reference points: Pyserini's published BEIR flat BM25 on SciFact is nDCG@10 0.679 / Recall@100 0.925; the",
        "published MTEB figure for all-MiniLM-L6-v2 on SciFact is nDCG@10 0.645. Search latency in a quiet process,",
        "stage by stage, is in `benchmarks/latency.json` (`python -m eval.benchmarks.latency`).", "",
    ]
    for name in DATASETS:
        lines.append((out / f"{name}.md").read_text())
        lines.append(f"![recall@k]({out.name}/{name}.png)\n")
    lines.append(f"Fine-tuning the encoder on SciFact: [{out.name}/training.md]({out.name}/training.md). "
                 f"Answer quality on the project's QA set: [{out.name}/answers-garden-test.md]({out.name}/answers-garden-test.md).\n")
    (out.parent / "RESULTS.md").write_text("\n".join(lines))


if __name__ == "__main__":
    main()
