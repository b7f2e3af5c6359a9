"""Bounded load test of `rag serve` on loopback, against /v1/search on a BEIR index (SciFact).

    python -m eval.benchmarks.load [--index DIR] [--requests 400] [--env RAG_KEY=VALUE ...] [--output docs/benchmarks/load.json]

Starts `rag serve` (uvicorn, auth on, one key; --env adds server settings) on a copy of the index,
waits until /readyz says ready (after the start-up warm-up), times the first search against warm
ones and, as controls, against a warm server's search after a 0.2 s and a 3 s pause (any request after an idle
spell pays for cold CPU caches; what the first costs beyond that is start-up), then for concurrency
1, 8 and 32 sends a fixed number of search requests (test queries, cycled) and reports requests/s and
p50/p95/p99 latency and the errors. The HTTP layer's overhead is measured per request as the
client-observed latency minus the server's own search time (`timings_ms.total`); the client is
raw keep-alive HTTP/1.1 on asyncio streams, cheap enough not to be what is measured. During the
concurrency-8 run, 500 documents (Cranfield abstracts) are ingested through POST /v1/documents; at
the end the new documents must be searchable and SQL, BM25 and the dense index must agree.
Every loop is bounded in requests and in time; traffic goes to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from eval.benchmarks import free_port
from eval.report import write_atomic
from eval.stats import pct


class RawConnection:
    """A keep-alive HTTP/1.1 connection on asyncio streams: a few microseconds of client CPU per
    request (httpx spends about a millisecond), so on a shared 2-core machine the client is not what
    is measured."""

    def __init__(self, port: int, headers: dict[str, str]) -> None:
        self.port = port
        self.head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, body: dict) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        assert self.reader is not None
        data = json.dumps(body).encode()
        self.writer.write(f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{self.head}Content-Type: application/json\r\n"
                          f"Content-Length: {len(data)}\r\n\r\n".encode() + data)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:"))
        return status, await self.reader.readexactly(length)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


async def run_level(port, headers, queries, concurrency, n, deadline_s):
    lat, overhead, errors, stop = [], [], [], time.monotonic() + deadline_s
    it = iter(range(n))

    async def worker():
        conn = RawConnection(port, headers)
        try:
            for i in it:
                if time.monotonic() > stop:
                    return
                t = time.perf_counter()
                try:
                    status, body = await conn.post("/v1/search", {"query": queries[i % len(queries)], "top_k": 10})
                except (OSError, asyncio.IncompleteReadError) as exc:
                    errors.append(repr(exc))
                    conn.close()
                    conn = RawConnection(port, headers)
                    continue
                ms = (time.perf_counter() - t) * 1000
                if status != 200:
                    errors.append(status)
                    continue
                lat.append(ms)
                overhead.append(ms - json.loads(body)["timings_ms"]["total"])
        finally:
            conn.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    wall = time.perf_counter() - t0
    return {"concurrency": concurrency, "requests": len(lat) + len(errors), "errors": len(errors),
            "first_errors": errors[:3], "rps": round(len(lat) / wall, 2),
            "latency_ms": {"p50": pct(lat, 50), "p95": pct(lat, 95), "p99": pct(lat, 99)},
            "http_overhead_ms": {"p50": pct(overhead, 50), "p95": pct(overhead, 95)}}


async def ingest(client, base, headers, docs, batch=100):
    jobs = []
    for i in range(0, len(docs), batch):
        r = await client.post(f"{base}/v1/documents", json={"documents": docs[i : i + batch]}, headers=headers)
        r.raise_for_status()
        jobs.append(r.json()["status_url"])
    out = []
    for url in jobs:
        for _ in range(1200):  # at most 10 minutes a job
            job = (await client.get(url, headers=headers)).json()
            if job["status"] in ("done", "failed"):
                out.append(job)
                break
            await asyncio.sleep(0.5)
    return out


def served_copy(index: Path, work: Path, tuned_file: Path, scope: str, extra_env: dict[str, str]) -> tuple[dict[str, str], str]:
    """``index`` copied to ``work/index`` (the server writes there: keys, documents), the environment a
    benchmark's server runs with on it (chunking off, the rate limit out of the way, ``extra_env`` on
    top) and an API key of ``scope`` made in it."""
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(index, work / "index")
    env = {**os.environ, "RAG_INDEX_DIR": str(work / "index"), "RAG_CHUNKING__ENABLED": "false",
           "RAG_TUNED_FILE": str(tuned_file), "RAG_AUTH__RATE_PER_S": "100000", "RAG_AUTH__BURST": "100000", **extra_env}
    token = subprocess.run([sys.executable, "-m", "service", "keys", "create", "--scope", scope, "--name", "benchmark"],
                           env=env, capture_output=True, text=True, check=True).stdout.strip()
    return env, token


IDLE_S = (0.2, 3)  # the pauses of the controls


async def main_async(args) -> dict:
    work = Path(args.workdir)
    env, token = served_copy(args.index, work, args.tuned_file, "write", {
        "RAG_LIMITS__MAX_QUEUED_JOBS_PER_KEY": "16",  # the ingestion sends its 500 documents as 5 jobs at once
        **dict(kv.split("=", 1) for kv in args.env)})
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "service", "serve", "--port", str(port)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base, headers = f"http://127.0.0.1:{port}", {"Authorization": f"Bearer {token}"}
    queries = [json.loads(x)["text"] for x in (args.dataset / "queries.jsonl").read_text().splitlines()]
    cran = [json.loads(x) for x in (args.ingest_corpus / "corpus.jsonl").read_text().splitlines()]
    docs = [{"id": f"cran-{d['_id']}", "title": d["title"], "text": d["text"]} for d in cran if d["text"].strip()][: args.ingest]
    result: dict[str, Any] = {"index": str(args.index), "server_env": args.env, "levels": []}
    try:
        async with httpx.AsyncClient(timeout=120, limits=httpx.Limits(max_connections=64)) as client:
            for _ in range(240):
                try:
                    if (await client.get(f"{base}/readyz")).status_code in (200, 503):
                        break
                except httpx.TransportError:
                    await asyncio.sleep(0.5)
            url = f"{base}/v1/search"
            started = time.perf_counter()
            for _ in range(1200):  # the warm-up: /readyz says ready once the server has exercised every part
                if (await client.get(f"{base}/readyz")).status_code == 200:
                    break
                await asyncio.sleep(0.25)
            result["ready_after_s"] = round(time.perf_counter() - started, 1)
            first = await run_level(port, headers, queries[:1], 1, 1, 60)
            warm = await run_level(port, headers, queries, 1, 50, 120)
            result["first_search"] = {"first_ms": first["latency_ms"]["p50"], "warm_p50_ms": warm["latency_ms"]["p50"],
                                      "ratio": round(first["latency_ms"]["p50"] / warm["latency_ms"]["p50"], 2)}
            for i, pause in enumerate(IDLE_S):  # controls: a warm server's search after a pause, as the first came after the warm-up
                await asyncio.sleep(pause)
                idle = await run_level(port, headers, queries[1 + i : 2 + i], 1, 1, 60)
                result["first_search"][f"after_{pause}_s_idle_ms"] = idle["latency_ms"]["p50"]
            await run_level(port, headers, queries, 4, 200, 120)  # warm-up (JIT, caches)
            for c in args.levels:
                if c == 8 and args.ingest:
                    level, jobs = await asyncio.gather(run_level(port, headers, queries, c, args.requests * 2, 600),
                                                       ingest(client, base, headers, docs))
                    result["ingest_during_c8"] = {"documents": len(docs), "jobs": [j["status"] for j in jobs],
                                                  "added": sum(j["progress"].get("added", 0) for j in jobs)}
                else:
                    level = await run_level(port, headers, queries, c, args.requests, 600)
                result["levels"].append(level)
            await asyncio.sleep(1.5)  # the server looks for the new generation once a second
            found = 0
            docs = docs if "ingest_during_c8" in result else []
            for d in docs[:50]:
                r = await client.post(url, json={"query": d["title"], "mode": "bm25", "top_k": 5}, headers=headers)
                found += d["id"] in {h["document_id"] for h in r.json()["hits"]}
            if docs:
                result["ingest_during_c8"]["searchable_of_first_50_by_title"] = found
            ready = (await client.get(f"{base}/readyz")).json()
    finally:
        server.terminate()
        server.wait(timeout=30)
    from rag.reader import IndexReader
    from rag.store.sql import DocumentStore

    reader = IndexReader(work / "index")
    result["counts"] = {"sql_passages": DocumentStore(f"sqlite:///{work / 'index' / 'rag.db'}").counts()[1],
                        "served_passages": ready.get("passages"), "bm25_docs": len(reader.bm25),
                        "dense_vectors": len(reader.dense)}
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--index", type=Path, required=True, help="a published index (e.g. the SciFact eval cache)")
    ap.add_argument("--dataset", type=Path, default=Path("../shared/data/scifact"))
    ap.add_argument("--ingest-corpus", type=Path, default=Path("../shared/data/cranfield"))
    ap.add_argument("--ingest", type=int, default=500)
    ap.add_argument("--requests", type=int, default=300)
    ap.add_argument("--levels", type=lambda t: [int(x) for x in t.split(",")], default=[1, 8, 32],
                    help="concurrency levels, e.g. 1,8,32 (documents are ingested during the 8 run)")
    ap.add_argument("--tuned-file", type=Path, default=Path("docs/results/tuned-scifact-train.json"))
    ap.add_argument("--workdir", default="data/bench-load")
    ap.add_argument("--env", action="append", default=[], metavar="KEY=VALUE",
                    help="server setting, e.g. RAG_ENCODER__BACKEND=torch (repeatable)")
    ap.add_argument("--output", type=Path, default=Path("docs/benchmarks/load.json"))
    args = ap.parse_args()
    result = asyncio.run(main_async(args))
    write_atomic(args.output, json.dumps(result, indent=2) + "\n")
    sys.stdout.write(json.dumps(result, indent=2) + "\n")  # the script's report


if __name__ == "__main__":
    main()
