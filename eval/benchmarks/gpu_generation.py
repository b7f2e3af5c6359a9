"""GPU decoding speed of a ~1B-parameter Llama-architecture model at random init (speed does not
depend on the weights), with and without a static KV cache + compiled decode step.

    python -m eval.benchmarks.gpu_generation [--output docs/benchmarks/gpu_generation.json] [--tiny]

Reports time to first token and decode tokens/s at batch 1 and 8. ``--tiny`` runs a toy config on
CPU to check the script itself.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from transformers import LlamaConfig, LlamaForCausalLM


def config(tiny: bool) -> LlamaConfig:
    if tiny:
        return LlamaConfig(vocab_size=1000, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                           num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512)
    # TinyLlama-1.1B's shape
    return LlamaConfig(vocab_size=32000, hidden_size=2048, intermediate_size=5632, num_hidden_layers=22,
                       num_attention_heads=32, num_key_value_heads=4, max_position_embeddings=4096)


def run(model, batch: int, prompt_len: int, new_tokens: int, device: str) -> dict:
    ids = torch.randint(0, model.config.vocab_size, (batch, prompt_len), device=device)
    kw = dict(do_sample=False, pad_token_id=0, eos_token_id=None)

    def sync():
        if device == "cuda":
            torch.cuda.synchronize()

    with torch.inference_mode():
        for _ in range(2):  # warm-up (and compilation)
            model.generate(ids, max_new_tokens=new_tokens, min_new_tokens=new_tokens, **kw)
        sync()
        t = time.perf_counter()
        model.generate(ids, max_new_tokens=1, min_new_tokens=1, **kw)
        sync()
        ttft = time.perf_counter() - t
        t = time.perf_counter()
        model.generate(ids, max_new_tokens=new_tokens, min_new_tokens=new_tokens, **kw)
        sync()
        total = time.perf_counter() - t
    decode = max(total - ttft, 1e-9)
    return {"batch": batch, "ttft_ms": round(ttft * 1000, 2), "tok_s_per_sequence": round((new_tokens - 1) / decode, 1),
            "tok_s_total": round(batch * (new_tokens - 1) / decode, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prompt-len", type=int, default=512)
    ap.add_argument("--new-tokens", type=int, default=128)
    ap.add_argument("--tiny", action="store_true")
    ap.add_argument("--output", type=Path, default=Path("docs/benchmarks/gpu_generation.json"))
    args = ap.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    torch.manual_seed(0)
    out = {"device": torch.cuda.get_device_name() if device == "cuda" else "cpu", "torch": torch.__version__,
           "prompt_len": args.prompt_len, "new_tokens": args.new_tokens, "results": {}}
    for mode in ("dynamic", "static+compile"):
        model = LlamaForCausalLM(config(args.tiny)).to(device=device, dtype=dtype).eval()
        out["params_b"] = round(sum(p.numel() for p in model.parameters()) / 1e9, 3)
        if mode != "dynamic":
            model.generation_config.cache_implementation = "static"
            model.forward = torch.compile(model.forward, mode="reduce-overhead", fullgraph=True)
        out["results"][mode] = [run(model, b, args.prompt_len, args.new_tokens, device) for b in (1, 8)]
        del model
        if device == "cuda":
            torch.cuda.empty_cache()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(out, indent=2) + "\n")
    sys.stdout.write(json.dumps(out, indent=2) + "\n")  # the script's report


if __name__ == "__main__":
    main()
