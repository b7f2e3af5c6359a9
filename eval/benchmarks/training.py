"""Bi-encoder fine-tuning on SciFact, ablated; every figure on the test split.

    python -m eval.benchmarks.training [--only NAME ...] [--epochs 1]

Each configuration trains with `rag train` on SciFact's train qrels (dev carved from them; the
synthetic and bootstrap rows use no labels at all), then `rag eval` reports dense and hybrid nDCG@10
on test with the new model (hybrid with the fusion settings tuned on train for the base model, and
again with fusion re-tuned on the model's held-out dev queries). Rounds 2-5 each train one more
epoch from the previous round's model with negatives re-mined by it; all CPU, ~25 min a row here.
Models that exist are reused. Writes docs/results/training/<name>.json and docs/results/training.md.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

CONFIGS = {
    "in_batch_only": ["--negatives", "0"],
    "bm25_negatives": ["--negatives", "1", "--no-filter"],
    "bm25_negatives_filtered": ["--negatives", "1"],
    "synthetic_only": ["--sources", "synthetic", "--negatives", "1", "--synthetic-limit", "300"],
    "bootstrap_only": ["--sources", "bootstrap", "--negatives", "1", "--bootstrap-limit", "830"],
    # further rounds from the previous round's model, negatives re-mined with it (BM25 + its own dense candidates)
    **{f"round{n}": ["--model", f"data/models/scifact-{prev}", "--negatives", "1", "--dense-negatives", "--learning-rate", "2e-5"]
       for n, prev in [(2, "bm25_negatives_filtered"), (3, "round2"), (4, "round3"), (5, "round4")]},
}
LABELS = {
    "in_batch_only": "qrels, in-batch negatives only",
    "bm25_negatives": "qrels + BM25 hard negatives",
    "bm25_negatives_filtered": "qrels + BM25 hard negatives + false-negative filtering",
    "synthetic_only": "synthetic queries only (SmolLM2-135M questions for 300 passages, round-trip filtered; no qrels)",
    "bootstrap_only": "cold-start bootstrap only (830 titles as pseudo-queries, no labels)",
    "round2": "+ a second epoch from the filtered model, negatives re-mined with it (BM25 + dense)",
    **{f"round{n}": f"+ epoch {n}, the same way from the previous one" for n in (3, 4, 5)},
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path("../shared/data/scifact"))
    ap.add_argument("--models", type=Path, default=Path("data/models"))
    ap.add_argument("--out", type=Path, default=Path("docs/results/training"))
    ap.add_argument("--tuned-file", type=Path, default=Path("docs/results/tuned-scifact-train.json"))
    ap.add_argument("--epochs", default="1")
    ap.add_argument("--only", nargs="*", choices=sorted(CONFIGS))
    ap.add_argument("--table-only", action="store_true", help="only rebuild training.md from the reports")
    args = ap.parse_args()
    if args.table_only:
        write_table(args)
        return
    args.out.mkdir(parents=True, exist_ok=True)
    for name in args.only or CONFIGS:
        model = args.models / f"scifact-{name}"
        if not (model / "training_report.json").is_file():
            subprocess.run([sys.executable, "-m", "service", "train", "--dataset", str(args.data), "--output", str(model),
                            "--chunking", "off", "--epochs", args.epochs, "--batch-size", "32", "--learning-rate", "3e-5",
                            "--no-progress", *CONFIGS[name]], check=True)
        evaluate = [sys.executable, "-m", "service", "eval", "--dataset", str(args.data), "--chunking", "off", "--model", str(model),
                    "--no-progress"]
        subprocess.run([*evaluate, "--split", "test", "--retrievers", "dense,hybrid", "--tuned-file", str(args.tuned_file),
                        "--output", str(args.out / f"{name}.json")], check=True)
        if (model / "dev_qrels.tsv").is_file():  # fusion re-tuned on the model's held-out dev queries
            tuned = args.out / f"{name}-fusion-tuned-on-dev.json"
            subprocess.run([*evaluate, "--qrels", str(model / "dev_qrels.tsv"), "--tune", "--tuned-file", str(tuned)], check=True)
            subprocess.run([*evaluate, "--split", "test", "--retrievers", "hybrid", "--tuned-file", str(tuned),
                            "--output", str(args.out / f"{name}-hybrid-dev-fusion.json")], check=True)
    write_table(args)


def write_table(args) -> None:
    base = json.loads((args.out.parent / "scifact.json").read_text())["results"]
    rows = ["| training data | dense nDCG@10 | hybrid nDCG@10 | hybrid, fusion re-tuned on dev | dense R@100 | steps | train s "
            "| peak MB | dev nDCG@10 before -> after |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---|",
            f"| none (all-MiniLM-L6-v2) | {base['dense']['ndcg@10']:.4f} | {base['hybrid']['ndcg@10']:.4f} | | "
            f"{base['dense']['recall@100']:.4f} | | | | |"]
    for name in CONFIGS:
        f = args.out / f"{name}.json"
        if not f.is_file():
            rows.append(f"| {LABELS[name]} | not run | | | | | | | |")
            continue
        r = json.loads(f.read_text())["results"]
        t = json.loads((args.models / f"scifact-{name}" / "training_report.json").read_text())
        g = args.out / f"{name}-hybrid-dev-fusion.json"
        dev_fusion = f"{json.loads(g.read_text())['results']['hybrid']['ndcg@10']:.4f}" if g.is_file() else ""
        rows.append(f"| {LABELS[name]} | {r['dense']['ndcg@10']:.4f} | {r['hybrid']['ndcg@10']:.4f} | {dev_fusion} | "
                    f"{r['dense']['recall@100']:.4f} | {t['steps']} | {t['seconds']:.0f} | {t['peak_rss_mb']:.0f} | "
                    f"{t['metrics_before']['cosine_ndcg@10']:.4f} -> {t['metrics_after']['cosine_ndcg@10']:.4f} |")
    (args.out.parent / "training.md").write_text(
        "# Fine-tuning the bi-encoder on SciFact\n\nProduced by `python -m eval.benchmarks.training`; SciFact test split, "
        "one passage per document. Training: 1 epoch, batch 32, lr 3e-5, max_seq_length 256, seed 13, CPU (2 cores).\n"
        "Hybrid uses the fusion tuned on SciFact train for the base model; the next column re-tunes fusion for the new "
        "model on its held-out dev queries (`rag eval --qrels MODEL/dev_qrels.tsv --tune`; 80 queries, 396 settings).\n\n" + "\n".join(rows) + "\n")


if __name__ == "__main__":
    main()
