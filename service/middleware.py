"""A pure ASGI middleware (Starlette's BaseHTTPMiddleware costs about a millisecond a request):
request-body size limit, and request count and latency per route for /metrics."""

from __future__ import annotations

import json
import time

from service.metrics import Metrics


class LimitsAndMetrics:
    def __init__(self, app, metrics: Metrics, max_body_bytes: int, limits_by_path: dict[str, int] | None = None) -> None:
        """``limits_by_path``: routes with their own body limit (file uploads)."""
        self.app = app
        self.metrics = metrics
        self.max_body = max_body_bytes
        self.by_path = limits_by_path or {}

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit = self.by_path.get(scope["path"], self.max_body)
        declared = next((value for name, value in scope["headers"] if name == b"content-length"), None)
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            return await self._too_large(send, limit)
        if declared is None:
            # no Content-Length (chunked): the limit applies to the bytes actually read, so read them
            # here, up to the limit, and hand the app the whole body
            chunks, size = [], 0
            while True:
                message = await receive()
                if message["type"] != "http.request":
                    return  # the client went away
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > limit:
                    return await self._too_large(send, limit)
                chunks.append(chunk)
                if not message.get("more_body", False):
                    break
            receive = _replay(b"".join(chunks), receive)
        status = 500
        t = time.perf_counter()

        async def send_status(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        self.metrics.active += 1
        try:
            await self.app(scope, receive, send_status)
        finally:
            self.metrics.active -= 1
            route = getattr(scope.get("route"), "path", "unmatched")
            self.metrics.requests.labels(route, scope["method"], str(status)).inc()
            self.metrics.latency.labels(route).observe(time.perf_counter() - t)

    async def _too_large(self, send, limit: int) -> None:
        await _json(send, 413, {"error": {"type": "too_large", "message": f"request body over {limit} bytes"}})


def _replay(body: bytes, receive):
    """A receive() that gives ``body`` once, then defers to the server's (for disconnects)."""
    given = False

    async def replay():
        nonlocal given
        if not given:
            given = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _json(send, status: int, body: dict) -> None:
    data = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": data})
