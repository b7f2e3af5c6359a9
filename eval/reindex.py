"""`rag train --reindex`: put a newly trained model to work (here, above training: it tunes fusion).

1. The serving index (INDEX_DIR), when one is published, is re-encoded with the new model and
   published as a new generation (what `rag index --model MODEL` without a source does).
2. Fusion is re-tuned for the new model on the dev queries the training held out (MODEL/dev_qrels.tsv),
   over the dataset indexed with the new model, with the small grid (weight x normalisation at the
   current depths: 80 dev queries overfit the 396-setting grid), and written to the tuned-settings
   file the CLI and the service read (INDEX_DIR/tuned.json, or --tuned-file), but only when the best
   setting beats the current one significantly on those queries (paired randomisation test, p < 0.05):
   SciFact's 80 dev queries, `--rounds auto` model: the fusion tuned on the train split for the base
   model scores 0.7883 there and the grid's best 0.7900 (p=0.18), so it is kept; an unguarded
   re-tune from the defaults had chosen min-max 0.3 (dev 0.7873), 0.023 below it on test
   (docs/results/one-command/unguarded-retune-*).
"""

from __future__ import annotations

import logging
from pathlib import Path

from rag.datasets import load_dataset
from rag.errors import InputError
from rag.generations import current_generation
from rag.settings import Settings
from training.job import DEV_QRELS

log = logging.getLogger(__name__)
ALPHA = 0.05  # the small grid's best replaces the current fusion only when significantly better on dev


def reindex_and_tune(settings: Settings, dataset: Path, model: Path) -> list[str]:
    """Returns what was done, a line each."""
    from eval.runner import open_searcher
    from eval.tune import tune, write_tuned
    from indexer.job import make_index_job

    dev = model / DEV_QRELS
    if not dev.is_file():
        raise InputError(f"{model} has no {DEV_QRELS} (a model trained without qrels): nothing to tune fusion on")
    with_model = settings.model_copy(update={"encoder": settings.encoder.model_copy(update={"model": str(model)})})
    lines = []
    if current_generation(settings.index_dir) is not None:
        summary = make_index_job(with_model).run(None)
        lines.append(f"re-encoded {summary.passages_encoded} passages of {settings.index_dir} with the new model; "
                     f"published {summary.generation}")
    else:
        lines.append(f"no published index in {settings.index_dir} to re-encode (run `rag index --model {model}` later)")
    ds = load_dataset(dataset, "dev", dev)
    tuned = tune(open_searcher(ds, with_model), ds, settings.progress, small=True, alpha=ALPHA)
    now = tuned["current"]
    if now["kept"]:
        lines.append(f"fusion kept as it is ({now['retrieval']}): on {len(ds.queries)} dev queries it scores nDCG@10 "
                     f"{now['ndcg@10']:.4f}, and the small grid's best, {tuned['top'][0]['ndcg@10']:.4f}, is not "
                     f"significantly better (p={now['p_value_best_vs_current']:.3f}); {settings.tuned_path} unchanged")
        return lines
    write_tuned(settings.tuned_path, tuned)
    lines.append(f"fusion re-tuned on {len(ds.queries)} dev queries: nDCG@10 {now['ndcg@10']:.4f} -> "
                 f"{tuned['tuned_on']['ndcg@10']:.4f} with {tuned['retrieval']} (p={now['p_value_best_vs_current']:.3f}); "
                 f"written to {settings.tuned_path}")
    return lines
