"""Per-stage timings, accumulated by name."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager


class Timer:
    """``with timer("stage"): ...`` adds the elapsed time to ``timer.totals["stage"]``.

    ``scale`` converts seconds: 1000 for milliseconds (search responses), 1 for seconds (jobs)."""

    def __init__(self, scale: float = 1000.0, totals: dict[str, float] | None = None) -> None:
        self.scale = scale
        self.totals: dict[str, float] = {} if totals is None else totals

    @contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        t = time.perf_counter()
        try:
            yield
        finally:
            self.totals[stage] = self.totals.get(stage, 0.0) + (time.perf_counter() - t) * self.scale
