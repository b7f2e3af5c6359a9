"""`rag train --reindex`: put a newly trained model to work (here, above training: it tunes fusion).

1. The serving index (INDEX_DIR), when one is published, is re-encoded with the new model and
   published as a new generation (what `rag index --model MODEL` without a source does).
2. Fusion is re-tuned for the new model on the dev queries the training held out (MODEL/dev_qrels.tsv),
   over the dataset indexed with the new model, with the small grid (weight x normalisation at the
   current depths: 80 dev queries overfit the 396-setting grid), and written to the tuned-settings
   file the CLI and the service read (INDEX_DIR/tuned.json, or --tuned-file).
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
    tuned = tune(open_searcher(ds, with_model), ds, settings.progress, small=True)
    write_tuned(settings.tuned_path, tuned)
    lines.append(f"fusion re-tuned on {len(ds.queries)} dev queries: nDCG@10 {tuned['tuned_on']['ndcg@10']:.4f} with "
                 f"{tuned['retrieval']}; written to {settings.tuned_path}")
    return lines
