"""Training in one command: every row of issue 16's table, each the command a user would type.

    python -m eval.benchmarks.one_command [--only scifact_rounds scifact_reranker squad_rounds scifact_pseudo]

- scifact_rounds: `rag train --rounds auto` from the base model on SciFact train (dev carved from it),
  then dense and hybrid nDCG@10 on SciFact test (hybrid with the fusion tuned on train for the base
  model, and again with fusion re-tuned on the held-out dev queries by the small grid, as `--reindex` does).
- scifact_reranker: `rag train --reranker` on the same data, then hybrid and hybrid + rerank
  top-20/50/100 on SciFact test (nDCG@10 and the reranker's latency per query), and the
  scifact_rounds model's hybrid reranked at the depth dev chose.
- squad_rounds: `rag train --rounds auto` on squad-dev (split dev, dev carved by article: 2 of the 6
  articles), dense and hybrid before and after on the held-out articles' questions.
- scifact_pseudo: the label-free row (`--sources pseudo`: SciFact train's queries, no judgments).

Wall time and peak RSS of each training run come from /usr/bin/time. Models and reports that exist are
reused (delete one to redo it). Writes docs/results/one-command/*.json and docs/results/one-command.md.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from eval.reindex import ALPHA

log = logging.getLogger("one_command")
RAG = [sys.executable, "-m", "service"]
SCIFACT, SQUAD = Path("../shared/data/scifact"), Path("../shared/data/squad-dev")
BASE_TUNED = Path("docs/results/tuned-scifact-train.json")  # fusion tuned on SciFact train for the base model
OFF = ["--chunking", "off"]  # SciFact: one passage per document, as BEIR reports it
RERANK_K = (20, 50, 100)  # the reranker row's depths


def run(cmd: list[str], log_file: Path | None = None) -> dict[str, float]:
    """Run a command (its output into ``log_file``); wall seconds and peak RSS (MB) of the process tree's largest."""
    log.info("%s", " ".join(cmd))
    t = time.perf_counter()
    timed = ["/usr/bin/time", "-v", *cmd] if Path("/usr/bin/time").is_file() else cmd
    with open(log_file or "/dev/null", "w") as out:
        p = subprocess.run(timed, stdout=out, stderr=subprocess.STDOUT)
    if p.returncode:
        raise SystemExit(f"failed ({p.returncode}): {' '.join(cmd)}; see {log_file}")
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", log_file.read_text()) if log_file else None
    return {"wall_s": round(time.perf_counter() - t, 1), "peak_rss_mb": round(int(rss.group(1)) / 1024, 1) if rss else 0.0}


def evaluate(out: Path, args: list[str]) -> dict:
    if not out.is_file():
        run([*RAG, "eval", "--no-progress", "--output", str(out), *args], out.with_suffix(".log"))
    return json.loads(out.read_text())["results"]


def train(model: Path, args: list[str]) -> dict:
    """Train unless the model exists; the run's wall time and peak RSS are kept beside it."""
    cost = model.parent / f"{model.name}.cost.json"
    if not model.is_dir():
        cost.write_text(json.dumps(run([*RAG, "train", "--no-progress", "--output", str(model), *args],
                                       model.parent / f"{model.name}.log")) + "\n")
    return json.loads(cost.read_text()) if cost.is_file() else {}


def scifact_rounds(models: Path, out: Path) -> dict:
    model = models / "scifact-rounds"
    cost = train(model, ["--dataset", str(SCIFACT), *OFF, "--rounds", "auto", "--learning-rate", "3e-5"])
    test = evaluate(out / "scifact-rounds-test.json", ["--dataset", str(SCIFACT), *OFF, "--model", str(model),
                                                       "--retrievers", "dense,hybrid", "--tuned-file", str(BASE_TUNED)])
    # what `--reindex` does with the dev queries: the small grid against the fusion in force (the base
    # model's), replaced only when significantly better (eval.reindex.ALPHA)
    tuned = out / "scifact-rounds-tuned-on-dev.json"
    if not tuned.is_file():
        shutil.copy(BASE_TUNED, tuned)
        run([*RAG, "eval", "--dataset", str(SCIFACT), *OFF, "--model", str(model), "--qrels", str(model / "dev_qrels.tsv"),
             "--tune", "--grid", "small", "--tuned-file", str(tuned), "--no-progress"], tuned.with_suffix(".log"))
    dev = json.loads(tuned.read_text())
    kept = dev["current"]["p_value_best_vs_current"] >= ALPHA
    hybrid_reindexed = test["hybrid"]["ndcg@10"] if kept else evaluate(
        out / "scifact-rounds-test-dev-fusion.json", ["--dataset", str(SCIFACT), *OFF, "--model", str(model),
                                                      "--retrievers", "hybrid", "--tuned-file", str(tuned)])["hybrid"]["ndcg@10"]
    return {"rounds": json.loads((model / "rounds.json").read_text()), "cost": cost, "dense": test["dense"]["ndcg@10"],
            "hybrid": test["hybrid"]["ndcg@10"], "hybrid_reindex": hybrid_reindexed,
            "dev_fusion": {"current": dev["current"]["ndcg@10"], "best": dev["tuned_on"]["ndcg@10"], "best_setting": dev["retrieval"],
                           "p": dev["current"]["p_value_best_vs_current"], "kept": kept, "queries": dev["tuned_on"]["queries"]}}


def _rows(results: dict, suffix: str = "") -> dict[str, dict]:
    """An eval's rows as nDCG@10 and latencies, each name with ``suffix``."""
    return {k + suffix: {"ndcg@10": v["ndcg@10"], **v["latency_ms"]} for k, v in results.items()}


def scifact_reranker(models: Path, out: Path) -> dict:
    """Hybrid + rerank at each depth (one file each, so a run cut short keeps the depths done), and the
    fine-tuned model's hybrid (scifact_rounds) reranked at the depth dev chose."""
    model = models / "scifact-reranker"
    cost = train(model, ["--dataset", str(SCIFACT), *OFF, "--reranker"])
    report = json.loads((model / "training_report.json").read_text())
    rows: dict[str, dict] = {}
    for depth in RERANK_K:
        res = evaluate(out / f"scifact-reranker-test-k{depth}.json", [
            "--dataset", str(SCIFACT), *OFF, "--retrievers", "hybrid", "--tuned-file", str(BASE_TUNED),
            "--reranker", str(model), "--rerank-k", str(depth)])
        rows.update(_rows(res))
    rounds = models / "scifact-rounds"
    if rounds.is_dir():
        res = evaluate(out / "scifact-rounds-reranked-test.json", [
            "--dataset", str(SCIFACT), *OFF, "--model", str(rounds), "--retrievers", "hybrid", "--tuned-file", str(BASE_TUNED),
            "--reranker", str(model), "--rerank-k", str(report["top_k"])])
        rows.update(_rows(res, " (`--rounds auto` model)"))
    return {"cost": cost, "chosen": {"top_k": report["top_k"], "weight": report["weight"]},
            "dev": {"hybrid": report["dev_ndcg_hybrid"], "reranked": report["dev_ndcg_reranked"]}, "rows": rows}


def squad_rounds(models: Path, out: Path) -> dict:
    model = models / "squad-rounds"
    cost = train(model, ["--dataset", str(SQUAD), "--split", "dev", "--dev-by", "title", "--dev-fraction", "0.34",
                         "--rounds", "auto"])
    held_out = ["--dataset", str(SQUAD), "--qrels", str(model / "dev_qrels.tsv"), "--retrievers", "dense,hybrid"]
    before = evaluate(out / "squad-base-heldout.json", held_out)
    after = evaluate(out / "squad-rounds-heldout.json", [*held_out, "--model", str(model)])
    return {"rounds": json.loads((model / "rounds.json").read_text()), "cost": cost,
            "queries": sum(1 for _ in (model / "dev_qrels.tsv").open()) - 1,
            "before": {m: before[m]["ndcg@10"] for m in before}, "after": {m: after[m]["ndcg@10"] for m in after}}


def scifact_pseudo(models: Path, out: Path) -> dict:
    model = models / "scifact-pseudo"
    cost = train(model, ["--dataset", str(SCIFACT), *OFF, "--sources", "pseudo", "--learning-rate", "3e-5"])
    test = evaluate(out / "scifact-pseudo-test.json", ["--dataset", str(SCIFACT), *OFF, "--model", str(model),
                                                       "--retrievers", "dense,hybrid", "--tuned-file", str(BASE_TUNED)])
    report = json.loads((model / "training_report.json").read_text())
    return {"cost": cost, "pairs": report["pairs"], "dense": test["dense"]["ndcg@10"], "hybrid": test["hybrid"]["ndcg@10"],
            "dev": [report["metrics_before"]["cosine_ndcg@10"], report["metrics_after"]["cosine_ndcg@10"]]}


ROWS = {"scifact_rounds": scifact_rounds, "scifact_reranker": scifact_reranker, "squad_rounds": squad_rounds,
        "scifact_pseudo": scifact_pseudo}


def _cost(c: dict) -> str:
    return f"{c.get('wall_s', 0) / 60:.0f} min, peak {c.get('peak_rss_mb', 0) / 1024:.1f} GB" if c else "-"


def write_table(out: Path) -> Path:
    """docs/results/one-command.md from the rows' JSON files that exist."""
    got = {n: json.loads((out / f"{n}.json").read_text()) for n in ROWS if (out / f"{n}.json").is_file()}
    # the base model the way the trained ones are run: today's defaults (ONNX int8 encoder, bm25s), same fusion file
    base = json.loads((out.parent / "scifact-defaults.json").read_text())["results"]
    lines = ["# Training in one command", "", "Produced by `python -m eval.benchmarks.one_command` on this 2-core CPU "
             "(no GPU lent); each row is the command in eval/benchmarks/one_command.py. SciFact figures are nDCG@10 on "
             "its test split, one passage per document, the defaults (ONNX int8 encoder, bm25s; the base row is "
             "docs/results/scifact-defaults.json), hybrid with the fusion tuned on train for the base model unless said.", "",
             ("| row | dense | hybrid | hybrid after `--reindex` (fusion re-tuned on dev only if significantly better) | "
              "wall, peak RSS |"), "|---|---:|---:|---:|---|",
             f"| base all-MiniLM-L6-v2 | {base['dense']['ndcg@10']:.4f} | {base['hybrid']['ndcg@10']:.4f} | | |"]
    if "scifact_rounds" in got:
        r = got["scifact_rounds"]
        lines.append(f"| `rag train --rounds auto` (kept round {r['rounds']['best_round']} of {len(r['rounds']['rounds'])}) | "
                     f"{r['dense']:.4f} | {r['hybrid']:.4f} | {r['hybrid_reindex']:.4f} | {_cost(r['cost'])} |")
        f = r["dev_fusion"]
        notes = ([r["note"]] if r.get("note") else []) + [
            f"`--reindex` on the {f['queries']} dev queries: the fusion in force (tuned on "
            f"train for the base model) scores {f['current']:.4f}, the small grid's best {f['best']:.4f} "
            f"({f['best_setting']['normalization']} {f['best_setting']['weight']}), p={f['p']:.2f}: "
            + ("kept, so the hybrid is unchanged." if f["kept"] else "replaced.")]
    else:
        notes = []
    if "scifact_pseudo" in got:
        r = got["scifact_pseudo"]
        lines.append(f"| label-free `--sources pseudo` ({r['pairs']} pairs; no judgments) | {r['dense']:.4f} | "
                     f"{r['hybrid']:.4f} | | {_cost(r['cost'])} |")
    for n in notes:
        lines += ["", n]
    for name in ("scifact_rounds", "squad_rounds"):
        if name in got:
            lines += ["", f"Rounds of `{name}` (dev nDCG@10 of each round; {got[name]['rounds']['stopped_because']}):", "",
                      "| round | dev before | dev after | steps | s | peak RSS MB |", "|---:|---:|---:|---:|---:|---:|"]
            lines += [f"| {x['round']} | {x['dev_ndcg@10_before']:.4f} | {x['dev_ndcg@10_after']:.4f} | {x['steps']} | "
                      f"{x['seconds']:.0f} | {x['peak_rss_mb']:.0f} |" for x in got[name]["rounds"]["rounds"]]
    if "squad_rounds" in got:
        r = got["squad_rounds"]
        lines += ["", f"squad-dev, `--dev-by title --dev-fraction 0.34 --rounds auto`: {r['queries']} questions of the "
                  f"held-out articles ({_cost(r['cost'])}):", "", "| | dense | hybrid |", "|---|---:|---:|",
                  f"| base | {r['before']['dense']:.4f} | {r['before']['hybrid']:.4f} |",
                  f"| trained | {r['after']['dense']:.4f} | {r['after']['hybrid']:.4f} |"]
    if "scifact_reranker" in got:
        r = got["scifact_reranker"]
        lines += ["", f"Reranker (`rag train --reranker`, {_cost(r['cost'])}; chose top_k {r['chosen']['top_k']}, weight "
                  f"{r['chosen']['weight']} on dev: {r['dev']['hybrid']:.4f} -> {r['dev']['reranked']:.4f}):", "",
                  "| row | nDCG@10 | p50 ms | p95 ms | rerank p50 ms |", "|---|---:|---:|---:|---:|"]
        lines += [f"| {k} | {v['ndcg@10']:.4f} | {v['p50']:.1f} | {v['p95']:.1f} | {v.get('rerank_p50', 0):.1f} |"
                  for k, v in r["rows"].items()]
    path = out.parent / "one-command.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", type=Path, default=Path("data/models/one-command"))
    ap.add_argument("--out", type=Path, default=Path("docs/results/one-command"))
    ap.add_argument("--only", nargs="*", choices=sorted(ROWS), default=list(ROWS))
    ap.add_argument("--table-only", action="store_true", help="only rebuild one-command.md from the rows' JSON")
    args = ap.parse_args()
    if args.table_only:
        log.info("wrote %s", write_table(args.out))
        return
    args.models.mkdir(parents=True, exist_ok=True)
    args.out.mkdir(parents=True, exist_ok=True)
    for name in args.only:
        result = ROWS[name](args.models, args.out)
        (args.out / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
        log.info("%s: %s", name, result)
    log.info("wrote %s", write_table(args.out))


if __name__ == "__main__":
    main()
