"""The generator contract (rag.generators.base.Generator), run by every backend: the echo fake, the
OpenAI-compatible client (against this service's own /v1/chat/completions, echo behind it), and the
embedded SmolLM2-135M in process on transformers and on CTranslate2 int8 (slow)."""

import pytest

from rag.generators.base import GenerationParams
from rag.generators.echo import EchoGenerator
from rag.settings import Settings
from service import create_app
from tests.conftest import running_server

MSGS = [{"role": "system", "content": "Answer briefly."},
        {"role": "user", "content": "Passages:\n[1] Roses\nPrune roses in late winter, before new growth starts. Feed them in spring."
                                    "\n\nUsing only the passages above, answer the question: When should I prune roses?"}]


@pytest.fixture(scope="module", params=["echo", "openai", *(pytest.param(b, marks=pytest.mark.slow) for b in ("local", "ctranslate2"))])
def generator(request, tmp_path_factory):
    if request.param == "echo":
        yield EchoGenerator()
    elif request.param == "openai":
        from rag.generators.openai_compat import OpenAIGenerator

        app = create_app(Settings(index_dir=tmp_path_factory.mktemp("idx"), auth={"enabled": False}), generator_factory=EchoGenerator)
        with running_server(app) as url:
            yield OpenAIGenerator(f"{url}/v1", "echo", retries=0)
    else:
        from rag.generators.ct2 import CT2Generator
        from rag.generators.local import LocalGenerator

        # float32: batching and the prefix cache leave its outputs bit-identical (bfloat16 rounds them
        # apart now and then; its own test is below)
        gen = LocalGenerator(threads=1, dtype="float32") if request.param == "local" else CT2Generator(threads=1)
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


def test_concurrent_requests_each_get_their_own_answer(generator):
    """Batched by the backend's worker (in-process ones): no request sees another's tokens."""
    from concurrent.futures import ThreadPoolExecutor

    questions = ["When should I prune roses?", "When should I feed roses?"]
    msgs = [[MSGS[0], {"role": "user", "content": MSGS[1]["content"].replace("When should I prune roses?", q)}] for q in questions]
    p = GenerationParams(max_tokens=16)
    alone = [generator.generate(m, p).text for m in msgs]
    with ThreadPoolExecutor(2) as pool:
        together = list(pool.map(lambda m: generator.generate(m, p).text, msgs))
    assert together == alone


def test_scoring_continuations_prefers_the_answer_or_says_it_cannot(generator):
    """In-process backends score each continuation as the answer's start (the same scores again,
    from the prefix cache on the second call); the others say they cannot (None)."""
    from rag.prompts import Context, PromptBuilder
    from rag.types import Passage

    b = PromptBuilder(generator.count_tokens, generator.render, context=Context.sentence)
    m = b.build("Who designed the tower?", [Passage("a", "a", 0, "t", "The tower, finished in 1889, was designed by "
                                                                       "the architect Stephen Sauvestre.")]).messages
    spans = ["1889", "Stephen Sauvestre", "the tower"]
    got = generator.score_continuations(m, spans)
    if generator.name in ("echo", "openai"):
        assert got is None
        return
    assert len(got) == 3 and all(x < 0 for x in got)
    assert max(range(3), key=got.__getitem__) == 1
    assert generator.score_continuations(m, spans) == pytest.approx(got, abs=1e-4)
    assert generator.score_continuations(m, []) == []


@pytest.mark.slow
def test_the_local_scores_equal_a_plain_forward_pass():
    """LocalGenerator.score_continuations (cached prompt start, rows padded on the right) gives the
    mean log-probabilities one full forward pass over prompt + continuation gives."""
    import torch

    from rag.generators.local import LocalGenerator

    gen = LocalGenerator(threads=1, dtype="float32")  # bfloat16 rounds the cached and the plain pass apart
    gen.load()
    msgs = [{"role": "user", "content": "Sentence: Water the plant once a month in winter.\nQuestion: How often?"}]
    spans = ["once a month", "in winter", "Water"]
    try:
        gen.score_continuations(msgs, ["x"])  # fills the prefix cache with this prompt
        got = gen.score_continuations(msgs, spans)
    finally:
        gen.close()
    prompt = gen.tokenizer(gen.render(msgs), add_special_tokens=False)["input_ids"]
    want = []
    with torch.inference_mode():
        for s in spans:
            c = gen.tokenizer(s, add_special_tokens=False)["input_ids"]
            logp = gen.model(torch.tensor([prompt + c])).logits[0, len(prompt) - 1:-1].log_softmax(-1)
            want.append(logp.gather(1, torch.tensor(c).unsqueeze(-1)).mean().item())
    assert got == pytest.approx(want, abs=1e-4)


def test_a_folder_ctranslate2_cannot_load_is_a_configuration_error(tmp_path):
    from rag.errors import ConfigError
    from rag.generators.ct2 import CT2Generator

    (tmp_path / "config.json").write_text('{"model_type": "no-such-architecture"}')
    with pytest.raises(ConfigError, match="generator model"):
        CT2Generator(model=str(tmp_path), cache_dir=tmp_path / "cache").load()
    assert not list((tmp_path / "cache").glob("ct2/*")), "no half-converted model is left behind"
    with pytest.raises(ConfigError, match="compute_type"):
        CT2Generator(compute_type="int3")


def test_the_local_repetition_penalty_spares_the_prompt():
    """Only tokens the answer already generated are penalised (as CTranslate2 does), so an answer may
    reuse the passages' words."""
    import torch

    from rag.generators.local import _AnswerRepetitionPenalty

    scores = torch.tensor([[2.0, -2.0, 2.0, -2.0, 1.0]])
    prompt = torch.tensor([[0, 1]])
    pen = _AnswerRepetitionPenalty(2.0, prompt_length=2)
    assert torch.equal(pen(prompt, scores), scores)  # nothing generated yet: the prompt's tokens 0 and 1 keep theirs
    out = pen(torch.tensor([[0, 1, 2, 3, 2]]), scores)  # generated 2, 3, 2
    assert out.tolist() == [[2.0, -2.0, 1.0, -4.0, 1.0]]


@pytest.mark.slow
def test_transformers_and_ctranslate2_float32_decode_alike_with_a_repetition_penalty():
    from rag.generators.ct2 import CT2Generator
    from rag.generators.local import LocalGenerator

    p = GenerationParams(max_tokens=24, repetition_penalty=1.3)
    texts = []
    for gen in (LocalGenerator(threads=1, dtype="float32"), CT2Generator(threads=1, compute_type="float32")):
        texts.append(gen.generate(MSGS, p).text)
        gen.close()
    assert texts[0] == texts[1] and texts[0].strip()


def test_ctranslate2_batches_only_prompts_of_about_the_same_length():
    """CTranslate2 feeds the prompt tokens past the shortest prompt's one step at a time for the whole
    batch: a much longer prompt waits for another batch (another replica) instead."""
    from rag.generators.ct2 import SPREAD_SHARE, CT2Generator
    from rag.generators.local import _Request

    def req(n: int, **kw) -> _Request:
        r = _Request("", list(range(n)), GenerationParams(max_tokens=40, **kw))
        r.tokens_in = n
        return r

    gen, first = CT2Generator(), req(200)
    reach = int(SPREAD_SHARE * 40)
    assert gen._fits(first, req(200 + reach)) and gen._fits(first, req(200 - reach))
    assert not gen._fits(first, req(200 + reach + 1))
    assert not gen._fits(first, req(200, temperature=0.7)), "other sampling settings: another batch"


def _scripted_generator(workers: int, gate=None):
    """The in-process worker pool (rag.generators.local) around a scripted decode, no model: each batch
    first waits at ``gate`` (a Barrier or an Event), then streams each prompt reversed."""
    from rag.generators.local import LocalGenerator

    class Tok:
        eos_token_id = 0

        def __call__(self, text, add_special_tokens=False):
            return {"input_ids": [ord(c) for c in text]}

        def decode(self, ids, skip_special_tokens=True):
            return "".join(chr(i) for i in ids)

    class Scripted(LocalGenerator):
        name = "scripted"

        def load(self):
            self.tokenizer, self.eos_ids, self._loaded = Tok(), {0}, True

        def render(self, messages):
            return messages[-1]["content"]

        def _run(self, batch):
            if gate is not None:
                gate.wait(timeout=5)
            for r in batch:
                for tok in [*r.prompt_ids[::-1], 0]:  # then the end token
                    self._on_token(r, tok, 0.0)

    gen = Scripted(max_batch=1, max_wait_ms=0)
    gen.workers = workers
    return gen


def test_generator_workers_decode_batches_side_by_side():
    import threading
    from concurrent.futures import ThreadPoolExecutor

    msgs = [[{"role": "user", "content": text}] for text in ("abc", "xyz")]
    gen = _scripted_generator(workers=2, gate=threading.Barrier(2))
    with ThreadPoolExecutor(2) as pool:  # each batch waits for the other: one worker alone would time out
        texts = list(pool.map(lambda m: gen.generate(m, GenerationParams(max_tokens=8)).text, msgs))
    assert texts == ["cba", "zyx"]
    gen.close()
    assert not gen._workers


def test_closing_the_generator_fails_requests_that_came_after_it_and_serves_those_before():
    import threading
    import time

    from rag.generators.errors import GeneratorError

    gate = threading.Event()
    gen = _scripted_generator(workers=1, gate=gate)
    p = GenerationParams(max_tokens=8)
    running = gen.stream([{"role": "user", "content": "abc"}], p)  # the worker waits at the gate with it
    queued = gen.stream([{"role": "user", "content": "def"}], p)
    closer = threading.Thread(target=gen.close)
    closer.start()
    for _ in range(500):  # until the stop is queued behind "def"
        if gen._queue.qsize() == 2:
            break
        time.sleep(0.01)
    late = gen.stream([{"role": "user", "content": "ghi"}], p)
    gate.set()
    closer.join(10)
    assert not closer.is_alive()
    assert "".join(running) == "cba" and "".join(queued) == "fed"
    with pytest.raises(GeneratorError, match="closed"):
        list(late)


def test_a_scoring_job_never_joins_a_batch_and_runs_after_it():
    """A scoring (Generator.score_continuations) that arrives while the worker gathers a batch is put
    back, runs on its own after that batch, and its caller gets the scores; one queued when the
    generator closes gets an error, not a wait forever."""
    import threading
    import time

    from rag.generators.errors import GeneratorError

    gate = threading.Event()
    gen = _scripted_generator(workers=1, gate=gate)
    gen.max_batch, gen.max_wait = 4, 0.3
    order: list[str] = []
    run = gen._run
    gen._run = lambda batch: (run(batch), order.append(f"batch of {len(batch)}"))
    gen._score = lambda job: (order.append("score"), [float(len(c)) for c in job.continuations])[1]
    s = gen.stream([{"role": "user", "content": "abc"}], GenerationParams(max_tokens=8))
    got: list = []
    t = threading.Thread(target=lambda: got.append(gen.score_continuations([{"role": "user", "content": "q"}], ["xy", "z"])))
    t.start()
    time.sleep(0.1)  # queued while the worker still waits for more requests
    gate.set()
    assert "".join(s) == "cba"
    t.join(5)
    assert got == [[2.0, 1.0]] and order == ["batch of 1", "score"]
    gen.close()
    from rag.generators.local import _Scoring

    job = _Scoring([1], [[2]])
    gen._queue.put(job)  # no worker left: closing again drains it
    gen.close()
    assert isinstance(job.out.get_nowait(), GeneratorError)


@pytest.mark.slow
def test_the_local_generator_decodes_with_one_thread_on_cpu_by_default():
    """generator.threads unset: each decoding pass runs on one intra-op thread on CPU, whatever another
    torch user in the process set (docs/benchmarks/generator-threads.md)."""
    import torch

    from rag.generators.local import LocalGenerator

    before = torch.get_num_threads()
    gen = LocalGenerator()
    gen.load()
    seen, real = [], gen.model.generate
    gen.model.generate = lambda *a, **k: (seen.append(torch.get_num_threads()), real(*a, **k))[1]
    try:
        torch.set_num_threads(2)  # as a reranker or the torch encoder might
        gen.generate([{"role": "user", "content": "Hi"}], GenerationParams(max_tokens=2))
    finally:
        gen.close()
        torch.set_num_threads(before)
    assert seen == [1]


def test_the_prefix_cache_reuses_a_shared_prompt_start_without_changing_the_output():
    """rag.generators.local.PrefixCache on a tiny random Llama: the first prompt fills the cache; later
    ones sharing less cut it to what they share; greedy decoding from a copy gives what a full prefill
    gives, alone and for a batch whose rows are the cached start, padding, then each prompt's own part;
    a prompt sharing nothing gets no cache and leaves it as it was."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from rag.generators.local import PrefixCache, _after_prefix

    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                         num_attention_heads=4, num_key_value_heads=2, pad_token_id=0)).eval()
    shared = list(range(3, 43))  # 40 tokens every prompt starts with
    first, second, third = shared + [50, 51], shared + [52, 53, 54], shared[:35] + [60, 61]

    def greedy(ids, **kw):
        ids = torch.tensor([ids]) if isinstance(ids, list) else ids
        return model.generate(ids, attention_mask=kw.pop("attention_mask", torch.ones_like(ids)), max_new_tokens=6,
                              do_sample=False, pad_token_id=0, **kw)[:, -6:].tolist()

    cache = PrefixCache(min_tokens=32)
    with torch.inference_mode():
        kv, n = cache.get(model, [first], "cpu")  # the first prompt caches all of itself but its last token
        assert n == 41 and cache.ids == first[:41] and cache.hits == 1
        assert greedy(first, cache=kv) == greedy(first)
        kv, n = cache.get(model, [second], "cpu")  # shares 40: the cache shrinks to them
        assert n == 40 and kv.get_seq_length() == 40 and cache.ids == shared and cache.hits == 2
        assert greedy(second, cache=kv) == greedy(second)
        kv, n = cache.get(model, [first, second], "cpu")  # a batch: one row each, the prompts' own parts padded
        enc = _after_prefix([first, second], n, 0, "cpu")
        assert n == 40 and kv.get_seq_length() == 40 and enc["attention_mask"].tolist()[0] == [1] * 40 + [0] + [1] * 2
        assert greedy(enc["input_ids"], attention_mask=enc["attention_mask"], cache=kv) == greedy(first) + greedy(second)
        kv, n = cache.get(model, [third], "cpu")
        assert n == 35 and kv.get_seq_length() == 35 and cache.ids == shared[:35] and cache.hits == 5
        assert cache.get(model, [[1, 2, 3] * 12], "cpu") == (None, 0)  # shares nothing: no cache, and the old one is kept
        assert cache.ids == shared[:35]


def test_the_prefix_cache_holds_what_a_pass_over_its_own_tokens_gives():
    """When prompts share less than the cache holds, the cache is rebuilt for what they share, not
    cropped out of the longer pass: in bfloat16 a pass's rounding follows its length, so a cropped
    cache would make a prompt's answer depend on the prompts before it."""
    import torch
    from transformers import DynamicCache, LlamaConfig, LlamaForCausalLM

    from rag.generators.local import PrefixCache

    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=64, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                         num_attention_heads=4, num_key_value_heads=2)).eval().to(torch.bfloat16)
    shared = [(7 * i) % 60 + 3 for i in range(40)]
    cache = PrefixCache(min_tokens=32)
    with torch.inference_mode():
        cache.get(model, [shared + [1] * 30 + [2]], "cpu")  # caches 70 tokens
        kv, n = cache.get(model, [shared + [2, 2]], "cpu")  # shares 40 of them
        fresh = DynamicCache()
        model(torch.tensor([shared]), cache=fresh, use_cache=True)
    assert n == 40
    for got, want in zip(kv.layers, fresh.layers, strict=True):
        assert torch.equal(got.keys, want.keys) and torch.equal(got.values, want.values)


def test_prepacked_linears_compute_what_the_plain_ones_do():
    """bfloat16 on CPU multiplies with weights prepacked for oneDNN: every linear layer is swapped,
    the logits stay within bfloat16 rounding of torch's plain matmul, and a float32 model is left alone."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from rag.generators.local import pack_linears

    if not torch.backends.mkldnn.is_available():
        pytest.skip("this torch has no oneDNN")
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=64, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=2)
    model = LlamaForCausalLM(config).eval().to(torch.bfloat16)
    ids = torch.tensor([[(5 * i) % 60 + 2 for i in range(24)], [(3 * i) % 60 + 2 for i in range(24)]])
    with torch.inference_mode():
        plain = model(ids).logits.float()
        assert pack_linears(model) == 2 * 7 + 1  # q, k, v, o, gate, up, down per layer, and the head
        packed = model(ids).logits.float()
    assert not any(isinstance(m, torch.nn.Linear) for m in model.modules())
    assert (packed - plain).abs().max() <= 0.02 * plain.abs().max()
    assert (packed.argmax(-1) == plain.argmax(-1)).float().mean() >= 0.9
    fp32 = LlamaForCausalLM(config).eval()
    assert pack_linears(fp32) == 0 and sum(isinstance(m, torch.nn.Linear) for m in fp32.modules()) == 15


@pytest.mark.slow
def test_the_local_generator_prefix_cache_gives_the_same_answers():
    """The embedded model on the copy prompt the answers use: the same greedy outputs with and
    without the cache of the shared few-shot start, one at a time and batched, and the cache is used."""
    from concurrent.futures import ThreadPoolExecutor

    from rag.generators.local import LocalGenerator
    from rag.prompts import Context, PromptBuilder
    from rag.types import Passage

    items = [("Who designed the tower?", "The tower was designed by the architect Stephen Sauvestre for the fair."),
             ("What causes blossom end rot?", "It is caused by calcium not reaching the fruit, usually because watering is irregular."),
             ("How often should I water a snake plant?", "Water only when dry, every two weeks in summer and once a month in winter.")]
    p = GenerationParams(max_tokens=12, stop=("\n",), repetition_penalty=1.1)
    outs = []
    for on in (False, True):
        gen = LocalGenerator(threads=1, prefix_cache=on, max_wait_ms=200, dtype="float32")  # exact in float32 only
        gen.load()
        b = PromptBuilder(gen.count_tokens, gen.render, context=Context.sentence)
        msgs = [b.build(q, [Passage("a", "a", 0, "t", s)]).messages for q, s in items]
        outs.append([gen.generate(m, p).text for m in msgs])
        if on:  # then all three at once: one batch, the cached start copied to each row
            with ThreadPoolExecutor(3) as pool:
                outs.append([g.text for g in pool.map(lambda m, gen=gen: gen.generate(m, p), msgs)])
        gen.close()
    assert outs[0] == outs[1] == outs[2] and gen.prefix.hits == 3 + 3


def test_auto_dtype_is_bfloat16_on_cuda_and_on_cpus_that_multiply_it_natively(monkeypatch):
    import torch

    from rag.generators import local

    for native in (True, False):
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda native=native: native, raising=False)
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False, raising=False)
        assert local.resolve_dtype("auto", "cpu") == ("bfloat16" if native else "float32")
        assert local.resolve_dtype("auto", "cuda:0") == "bfloat16"
        assert local.resolve_dtype("float32", "cuda") == "float32"
    monkeypatch.delattr(torch.cpu, "_is_amx_tile_supported")  # an older torch without the probe: no claim
    assert local.resolve_dtype("auto", "cpu") == "float32"


@pytest.mark.slow
def test_the_local_generator_in_bfloat16_answers_as_in_float32():
    """dtype=bfloat16 (what auto picks on a CPU with AMX / AVX512-BF16): the model is loaded in bf16,
    its linear layers prepacked for oneDNN, streams what it returns, and a plain question gets the
    answer float32 gives."""
    import torch

    from rag.generators.local import LocalGenerator

    msgs = [{"role": "user", "content": "What is the capital of France? Answer in one sentence."}]
    p = GenerationParams(max_tokens=16, repetition_penalty=1.0)
    texts = []
    for dtype in ("bfloat16", "float32"):
        gen = LocalGenerator(threads=1, dtype=dtype)
        try:
            s = gen.stream(msgs, p)
            texts.append("".join(s))
            assert str(gen.model.dtype) == f"torch.{dtype}" and s.result.text == texts[-1]
            linears = sum(isinstance(m, torch.nn.Linear) for m in gen.model.modules())
            if dtype == "float32" or not torch.backends.mkldnn.is_available():
                assert gen.packed == 0 and linears > 200
            else:
                assert gen.packed > 200 and linears == 0
        finally:
            gen.close()
    assert "Paris" in texts[0] and "Paris" in texts[1]
