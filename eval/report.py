"""Reports: the JSON document, a Markdown table and a PNG of recall@k curves."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

METRICS = ["ndcg@10", "recall@10", "recall@100", "mrr@10", "map@100"]


def markdown(report: dict[str, Any]) -> str:
    head = f"**{report['dataset']}** / {report['split']} ({report['num_queries']} queries)"
    lines = [head, "", "| retriever | " + " | ".join(METRICS) + " | p50 ms | p95 ms |",
             "|---|" + "---:|" * (len(METRICS) + 2)]
    for name, r in report["results"].items():
        cells = [f"{r[m]:.4f}" for m in METRICS] + [f"{r['latency_ms']['p50']:.1f}", f"{r['latency_ms']['p95']:.1f}"]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    hyb = report["results"].get("hybrid", {}).get("latency_ms", {})
    if "rest_p50" in hyb:
        lines += ["", f"hybrid p50: query encoder {hyb['encode_p50']:.2f} ms + the rest (BM25, dense search, fusion) {hyb['rest_p50']:.2f} ms"]
    return "\n".join(lines) + "\n"


def plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    for name, r in report["results"].items():
        ks = [int(k) for k in r["recall_curve"]]
        ax.plot(ks, list(r["recall_curve"].values()), marker="o", label=name)
    ax.set_xscale("log")
    ax.set_xlabel("k (documents)")
    ax.set_ylabel("recall@k")
    ax.set_title(f"{report['dataset']} / {report['split']}")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write(report: dict[str, Any], output: Path) -> tuple[Path, Path, Path]:
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=2) + "\n")
    md, png = output.with_suffix(".md"), output.with_suffix(".png")
    md.write_text(markdown(report))
    plot(report, png)
    return output, md, png


def write_atomic(path: Path, text: str) -> None:
    """``text`` in ``path``, whole or not at all (a temporary file, synced, then renamed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def write_with_table(data: Any, output: Path, table: str) -> tuple[Path, Path]:
    """A benchmark's JSON at ``output`` and its Markdown table beside it (``.md``), each written atomically."""
    md = output.with_suffix(".md")
    write_atomic(output, json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    write_atomic(md, table)
    return output, md
