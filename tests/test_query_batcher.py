"""The query micro-batcher: concurrent encodes share forward passes, a lone caller never waits for
company, a failure reaches every caller of its pass, and closing stops the worker."""

import threading
import time

import numpy as np
import pytest

from rag.encoders.batcher import QueryBatcher


class Recorder:
    def __init__(self, delay_s: float = 0.0, fail_on: str | None = None) -> None:
        self.calls: list[list[str]] = []
        self.delay_s, self.fail_on = delay_s, fail_on

    def __call__(self, texts):
        self.calls.append(list(texts))
        time.sleep(self.delay_s)
        if self.fail_on in texts:
            raise ValueError(f"cannot encode {self.fail_on!r}")
        return np.array([[float(len(t)), float(i)] for i, t in enumerate(texts)], dtype=np.float32)


def test_concurrent_queries_share_passes_and_each_gets_its_own_row():
    rec = Recorder(delay_s=0.02)  # while one pass runs, the others queue up
    b = QueryBatcher(rec, max_batch=8, max_wait_ms=5)
    out: dict[str, np.ndarray] = {}
    texts = [f"q{'x' * i}" for i in range(16)]
    threads = [threading.Thread(target=lambda t=t: out.__setitem__(t, b.encode([t]))) for t in texts]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    b.close()
    assert all(out[t].shape == (1, 2) and out[t][0, 0] == len(t) for t in texts)  # its own row, not a neighbour's
    assert b.queries == 16 and b.passes < 16 and max(len(c) for c in rec.calls) <= 8


def test_a_lone_caller_does_not_wait_for_company():
    b = QueryBatcher(Recorder(), max_batch=32, max_wait_ms=200)
    b.encode(["warm"])
    t = time.perf_counter()
    for _ in range(5):
        b.encode(["alone"])
    assert (time.perf_counter() - t) / 5 < 0.1  # far below the 200 ms wait
    b.close()


def test_a_failure_reaches_the_callers_of_its_pass_and_the_worker_goes_on():
    b = QueryBatcher(Recorder(fail_on="bad"), max_batch=8, max_wait_ms=1)
    with pytest.raises(ValueError, match="cannot encode 'bad'"):
        b.encode(["bad"])
    assert b.encode(["good"]).shape == (1, 2)
    b.close()
    with pytest.raises(RuntimeError, match="closed"):
        b.encode(["late"])
