"""Prometheus metrics, one registry per app (tests build many apps)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

STAGE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("rag_http_requests_total", "HTTP requests", ["route", "method", "status"], registry=self.registry)
        self.latency = Histogram("rag_http_request_seconds", "HTTP request latency", ["route"], buckets=STAGE_BUCKETS,
                                 registry=self.registry)
        self.stage = Histogram("rag_stage_seconds", "time per pipeline stage", ["stage"], buckets=STAGE_BUCKETS,
                               registry=self.registry)
        self.passages = Gauge("rag_index_passages", "passages in the served generation", registry=self.registry)
        self.tokens_per_s = Histogram("rag_generation_tokens_per_second", "decode speed per answer",
                                      buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000), registry=self.registry)
        self.tokens = Counter("rag_generation_tokens_total", "tokens generated", registry=self.registry)
        self.active = 0  # HTTP requests being served now: the middleware counts, on the event loop's thread only

    def observe_stages(self, timings_ms: dict[str, float], prefix: str = "") -> None:
        for name, ms in timings_ms.items():
            self.stage.labels(prefix + name).observe(ms / 1000)
