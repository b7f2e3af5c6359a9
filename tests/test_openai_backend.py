import os
import socket
import subprocess
import sys
import threading
import time

import httpx
import pytest

from rag.generators.base import GenerationParams
from rag.generators.echo import EchoGenerator
from rag.generators.errors import GeneratorTimeout, GeneratorUnavailable
from rag.generators.openai_compat import OpenAIGenerator
from rag.settings import Settings
from service import create_app
from tests.conftest import free_port, running_server

MSGS = [{"role": "user", "content": "Passages:\n[1] T\nBasil blackens below ten degrees. More.\n\nq"}]


def test_unreachable_server_is_a_clear_error():
    g = OpenAIGenerator(f"http://127.0.0.1:{free_port()}/v1", "m", retries=1, backoff_s=0.01)
    t = time.perf_counter()
    with pytest.raises(GeneratorUnavailable, match="unreachable"):
        g.generate(MSGS, GenerationParams())
    assert time.perf_counter() - t < 5
    with pytest.raises(GeneratorUnavailable):
        g.check()


def test_silent_server_times_out():
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    port = srv.getsockname()[1]
    conns = []
    threading.Thread(target=lambda: conns.append(srv.accept()), daemon=True).start()
    g = OpenAIGenerator(f"http://127.0.0.1:{port}/v1", "m", timeout_s=0.5, retries=0)
    with pytest.raises(GeneratorTimeout, match="timed out"):
        g.generate(MSGS, GenerationParams())
    srv.close()


class Flaky(EchoGenerator):
    """Fails the first call with 'server down', then works: the backend must retry."""

    calls = 0

    def stream(self, messages, params):
        Flaky.calls += 1
        if Flaky.calls == 1:
            raise GeneratorUnavailable("warming up")
        return super().stream(messages, params)


@pytest.fixture
def echo_server(tmp_path):
    with running_server(create_app(Settings(index_dir=tmp_path, auth={"enabled": False}), generator_factory=Flaky)) as url:
        yield f"{url}/v1"


def test_retry_then_stream_from_a_real_http_server(echo_server):
    Flaky.calls = 0
    g = OpenAIGenerator(echo_server, "echo", retries=2, backoff_s=0.01)
    s = g.stream(MSGS, GenerationParams(max_tokens=50))
    deltas = list(s)
    assert Flaky.calls == 2 and "".join(deltas) == s.result.text == "Basil blackens below ten degrees. [1]"
    assert len(deltas) > 1 and s.result.tokens_out == len(deltas) and s.result.tokens_in > 0
    g.check()


@pytest.mark.slow
def test_openai_backend_against_rag_serve_with_the_local_generator(tmp_path):
    """A real OpenAI-compatible server process on loopback: `rag serve`, whose /v1/chat/completions
    runs the local SmolLM2. Greedy output through HTTP equals greedy output in-process."""
    from rag.generators.local import LocalGenerator

    port = free_port()
    env = {**os.environ, "RAG_INDEX_DIR": str(tmp_path), "RAG_GENERATOR__TORCH_THREADS": "1", "RAG_AUTH__ENABLED": "false"}
    proc = subprocess.Popen([sys.executable, "-m", "service", "serve", "--port", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        base = f"http://127.0.0.1:{port}/v1"
        for _ in range(240):
            try:
                if httpx.get(f"{base}/models", timeout=60).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.5)
        msgs = [{"role": "user", "content": "What is the capital of France? Answer in one sentence."}]
        p = GenerationParams(max_tokens=16, repetition_penalty=1.0)
        remote = OpenAIGenerator(base, "smollm2", timeout_s=120)
        s = remote.stream(msgs, p)
        text = "".join(s)
        local = LocalGenerator(threads=1).generate(msgs, p)
        assert text == s.result.text == local.text and "Paris" in text
        assert s.result.tokens_out == local.tokens_out and s.result.tokens_in == local.tokens_in
    finally:
        proc.terminate()
        proc.wait(timeout=30)
