"""Where the HTTP overhead of /v1/search goes, one client at a time, in one run:

    python -m eval.benchmarks.http_overhead --index DIR [--requests 2000] [--output docs/benchmarks/http-overhead.json]

Servers on loopback, each started fresh on a copy of the index, auth on (one key), the service's own
settings:

1. ``bare``: a FastAPI route with a pydantic body, a thread-pool hop and an orjson response of the
   same size as a real one, nothing else (the floor of this framework stack on this machine); then
   the same with ``--work-ms`` of computing in the pool thread per request, standing in for a search
   (overhead = latency minus that time: the cost of waking the idle event loop and client), in a
   pool thread and on the event loop itself;
2. ``stub``: the whole service app, its searcher answering every query with one result computed at
   start-up (``service.fake_server:fixed_search_app``, started by name: eval does not import the
   service): the HTTP layer's own cost (middleware, auth, routing, validation, serialisation);
3. ``real``: the whole service with real searches; overhead = client-observed latency minus the
   search's own ``timings_ms.total``, as in ``eval.benchmarks.load``; with the defaults (every
   search on the search threads) and with ``search_inline`` (a lone search on the event loop).

The client is ``eval.benchmarks.load.run_level`` at concurrency 1 (raw keep-alive HTTP/1.1); the
first fifth of each run is a warm-up and not counted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import orjson
from fastapi import FastAPI
from fastapi.responses import Response
from pydantic import BaseModel

from eval.benchmarks import free_port
from eval.benchmarks.load import run_level, served_copy
from eval.report import write_atomic


class _Query(BaseModel):
    query: str
    top_k: int = 10


def bare_app():
    """uvicorn factory: the framework floor (see the module docstring); with BARE_WORK_MS set, each
    request first spends that long computing in the pool thread, as a search would, and reports it as
    its ``timings_ms.total``."""
    app, pool = FastAPI(), ThreadPoolExecutor(2)
    work_s = float(os.environ.get("BARE_WORK_MS", "0")) / 1000
    inline = os.environ.get("BARE_INLINE") == "1"  # the work on the event loop itself: no thread hop
    hits = [{"rank": i, "text": "x" * 1500} for i in range(10)]

    def work() -> bytes:
        t = time.perf_counter()
        while time.perf_counter() - t < work_s:
            sum(range(200))
        return orjson.dumps({"hits": hits, "timings_ms": {"total": (time.perf_counter() - t) * 1000 if work_s else 0.0}})

    @app.post("/v1/search")
    async def search(q: _Query) -> Response:
        body = work() if inline else await asyncio.get_running_loop().run_in_executor(pool, work)
        return Response(body, media_type="application/json")

    return app


async def _measure(port: int, token: str, queries: list[str], n: int) -> dict:
    """``n`` requests one at a time, the first fifth a warm-up (not counted)."""
    headers = {"Authorization": f"Bearer {token}"}
    await run_level(port, headers, queries, 1, n // 5, 600)
    level = await run_level(port, headers, queries, 1, n - n // 5, 600)
    return {"latency_ms": level["latency_ms"], "overhead_ms": level["http_overhead_ms"], "errors": level["errors"]}


def _serve(target: list[str], env: dict[str, str]) -> tuple[subprocess.Popen, int]:
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "uvicorn", *target, "--port", str(port), "--log-level", "warning",
                               "--no-access-log", "--loop", "uvloop", "--http", "httptools"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(240):
        try:
            httpx.post(f"http://127.0.0.1:{port}/v1/search", json={}, timeout=5)
            return server, port
        except httpx.TransportError:
            time.sleep(0.5)
    server.terminate()
    raise RuntimeError(f"{' '.join(target)} did not start")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--index", type=Path, required=True, help="a published index (e.g. the SciFact eval cache)")
    ap.add_argument("--dataset", type=Path, default=Path("../shared/data/scifact"))
    ap.add_argument("--tuned-file", type=Path, default=Path("docs/results/tuned-scifact-train.json"))
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--work-ms", type=float, default=5.0, help="the bare server's stand-in for a search's time")
    ap.add_argument("--output", type=Path, default=Path("docs/benchmarks/http-overhead.json"))
    ap.add_argument("--workdir", type=Path, default=Path("data/bench-http"), help="where the index is copied to (keys go there)")
    args = ap.parse_args()
    env, token = served_copy(args.index, args.workdir, args.tuned_file, "read", {})
    queries = [json.loads(x)["text"] for x in (args.dataset / "queries.jsonl").read_text().splitlines()]
    bare = ["eval.benchmarks.http_overhead:bare_app", "--factory"]
    work = {"BARE_WORK_MS": str(args.work_ms)}
    real = ["service.app:app_from_env", "--factory"]
    targets = {"bare": (bare, {}), f"bare, {args.work_ms:g} ms of work": (bare, work),
               f"bare, {args.work_ms:g} ms of work on the event loop": (bare, work | {"BARE_INLINE": "1"}),
               "stub": (["service.fake_server:fixed_search_app", "--factory"], {}),
               "real": (real, {}), "real, a lone search on the event loop (search_inline=true)": (real, {"RAG_SEARCH_INLINE": "true"})}
    result: dict = {"index": str(args.index), "requests": args.requests, "servers": {}}
    for name, (target, extra) in targets.items():
        server, port = _serve(target, env | extra)
        try:
            for _ in range(0 if name.startswith("bare") else 240):  # the service's start-up warm-up
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5).status_code == 200:
                    break
                time.sleep(0.5)
            result["servers"][name] = asyncio.run(_measure(port, token, queries, args.requests))
        finally:
            server.terminate()
            server.wait(timeout=30)
    write_atomic(args.output, json.dumps(result, indent=2) + "\n")
    sys.stdout.write(json.dumps({k: v["overhead_ms"] for k, v in result["servers"].items()}, indent=2) + "\n")  # the report


if __name__ == "__main__":
    main()
