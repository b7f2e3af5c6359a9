"""Passage encoding sharded over a Ray cluster (``rag index --ray ADDRESS|auto|local``).

Ray Data streams (row, text) batches through a pool of actors; each actor loads the encoder once (from
a picklable factory: the same spec the process would use) and takes one GPU where the cluster has
them. Vectors come back as their batches finish and are handed to ``on_batch`` with their passage
ids, which the job commits to the SQL store at once: a job killed mid-way keeps what came back and
re-encodes only the rest, as in-process. The numbers are the encoder's own, so the vectors equal
in-process encoding (the integration test checks it).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rag.encoders.base import Encoder
from rag.errors import ConfigError

log = logging.getLogger(__name__)


@dataclass
class RayTimings:
    """Where the wall time went: start-up (join the cluster, start the actors, load the models: until
    the first batch begins encoding), encoding (first batch begun to last batch ended, on the workers'
    clocks), and writing vectors back to the store (on the driver, overlapping encoding)."""

    startup_s: float = 0.0
    encode_s: float = 0.0
    write_back_s: float = 0.0
    workers: int = 0
    batches: int = 0
    per_worker: dict[str, int] = field(default_factory=dict)  # passages encoded by each actor


class _EncodeBatches:
    """A Ray Data actor: loads the encoder once, then encodes every batch it is given."""

    def __init__(self, make_encoder: Callable[[], Encoder], batch_size: int) -> None:
        import os

        self.encoder = make_encoder()
        self.batch_size = batch_size
        self.name = f"{os.uname().nodename}:{os.getpid()}"

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, Any]:
        began = time.time()  # wall clock: comparable across the cluster's hosts
        vectors = self.encoder.encode_passages(list(batch["text"]), batch_size=self.batch_size)
        n = len(vectors)
        return {"row": batch["row"], "vector": list(np.asarray(vectors, np.float32)), "worker": [self.name] * n,
                "began": [began] * n, "ended": [time.time()] * n}


def encode_on_ray(
    ids: Sequence[str], texts: Sequence[str], make_encoder: Callable[[], Encoder], address: str,
    on_batch: Callable[[list[str], np.ndarray], None], workers: int = 2, cpus_per_worker: float = 1.0,
    batch_size: int = 64,
) -> RayTimings:
    """Encode ``texts`` on the Ray cluster at ``address`` ("auto": the one this machine is part of;
    "local": start one in this process) with ``workers`` actors; ``on_batch(ids, vectors)`` receives
    each finished batch."""
    try:
        import ray
    except ImportError as exc:
        raise ConfigError("--ray needs Ray: pip install 'rag-search[scale]'") from exc
    t0 = time.time()
    timings = RayTimings(workers=workers)
    if not ray.is_initialized():
        if address not in ("auto", "local"):
            _reachable(address)
        try:
            if address == "local":
                ray.init(num_cpus=max(1, int(workers * cpus_per_worker)), include_dashboard=False, log_to_driver=False)
            else:
                ray.init(address=address, include_dashboard=False, log_to_driver=False)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise ConfigError(f"cannot join the Ray cluster at {address!r}: {exc}") from exc
    gpus = 1 if ray.cluster_resources().get("GPU", 0) >= workers else 0
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ds = ray.data.from_items([{"row": i, "text": t} for i, t in enumerate(texts)], override_num_blocks=max(workers * 4, 1))
    out = ds.map_batches(_EncodeBatches, fn_constructor_args=(make_encoder, batch_size), batch_size=batch_size,
                         compute=ray.data.ActorPoolStrategy(size=workers), num_cpus=cpus_per_worker, num_gpus=gpus)
    began, ended = float("inf"), t0
    for batch in out.iter_batches(batch_size=None, batch_format="numpy"):
        rows = batch["row"].tolist()
        w0 = time.perf_counter()
        on_batch([ids[r] for r in rows], np.stack(list(batch["vector"])).astype(np.float32))
        timings.write_back_s += time.perf_counter() - w0
        timings.batches += 1
        began, ended = min(began, float(batch["began"].min())), max(ended, float(batch["ended"].max()))
        for name in batch["worker"]:
            timings.per_worker[str(name)] = timings.per_worker.get(str(name), 0) + 1
    timings.startup_s = (began if timings.batches else time.time()) - t0
    timings.encode_s = max(0.0, ended - began) if timings.batches else 0.0
    log.info("Ray: %d passages on %d workers (%s); start-up %.1f s, encode %.1f s, write-back %.1f s",
             len(texts), workers, timings.per_worker, timings.startup_s, timings.encode_s, timings.write_back_s)
    return timings


def _reachable(address: str) -> None:
    """Fail in seconds on an address nothing answers at (ray.init would retry for minutes)."""
    import socket

    host, _, port = address.removeprefix("ray://").rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=3):
            return
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot join the Ray cluster at {address!r}: {exc}") from exc
