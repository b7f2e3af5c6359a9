"""The generator contract (rag.generators.base.Generator), run by every backend: the echo fake, the
OpenAI-compatible client (against this service's own /v1/chat/completions, echo behind it) and the
in-process transformers generator with the embedded SmolLM2-135M (slow)."""

import pytest

from rag.generators.base import GenerationParams
from rag.generators.echo import EchoGenerator
from rag.settings import Settings
from service import create_app
from tests.conftest import running_server

MSGS = [{"role": "system", "content": "Answer briefly."},
        {"role": "user", "content": "Passages:\n[1] Roses\nPrune roses in late winter, before new growth starts. Feed them in spring."
                                    "\n\nUsing only the passages above, answer the question: When should I prune roses?"}]


@pytest.fixture(scope="module", params=["echo", "openai", pytest.param("local", marks=pytest.mark.slow)])
def generator(request, tmp_path_factory):
    if request.param == "echo":
        yield EchoGenerator()
    elif request.param == "openai":
        from rag.generators.openai_compat import OpenAIGenerator

        app = create_app(Settings(index_dir=tmp_path_factory.mktemp("idx"), auth={"enabled": False}), generator_factory=EchoGenerator)
        with running_server(app) as url:
            yield OpenAIGenerator(f"{url}/v1", "echo", retries=0)
    else:
        from rag.generators.local import LocalGenerator

        gen = LocalGenerator(torch_threads=1)
        yield gen
        gen.close()


def test_the_stream_adds_up_to_the_final_generation(generator):
    s = generator.stream(MSGS, GenerationParams(max_tokens=24))
    deltas = list(s)
    g = s.final()
    assert deltas and "".join(deltas).strip() == g.text.strip() and g.text.strip()
    assert 1 <= g.tokens_out <= 24 and g.tokens_in > 0 and g.finish_reason in ("stop", "length")
    assert g.seconds >= (g.first_token_s or 0) >= 0


def test_max_tokens_and_stop_sequences_are_honoured(generator):
    g = generator.generate(MSGS, GenerationParams(max_tokens=3))
    assert g.tokens_out <= 3 and g.finish_reason == "length"
    full = generator.generate(MSGS, GenerationParams(max_tokens=24)).text
    word = full.split()[1] if len(full.split()) > 1 else full.split()[0]
    cut = generator.generate(MSGS, GenerationParams(max_tokens=24, stop=(word,))).text
    assert word not in cut and full.startswith(cut.rstrip()[: len(cut.rstrip())])


def test_counting_and_rendering(generator):
    assert generator.count_tokens("prune roses in late winter") > 0
    prompt = generator.render(MSGS)
    assert "When should I prune roses?" in prompt and generator.count_tokens(prompt) > generator.count_tokens("prune")
    generator.check()  # ready: raises when it cannot serve
