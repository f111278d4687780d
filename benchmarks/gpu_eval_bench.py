"""GPU: sentences/s of evaluation generation for a random-init XGLM-564M shape (24 layers, d 1024, 16 heads,
ffn 4096, vocab 256008), beam 4, batches by token budget, vs one sentence at a time, in one run.
No download needed: random weights; the prompts' ids come from the tiny model's tokenizer (a subset of the
large vocabulary). Stops at max_new_tokens (a random model rarely emits EOS): a worst case for beam search.

    python benchmarks/gpu_eval_bench.py                 # on a GPU node
    python benchmarks/gpu_eval_bench.py --smoke         # CPU: a 2-layer shrunken shape, checks the script runs
"""

from __future__ import annotations

import argparse
import os
import time

import torch


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--n", type=int, default=128)
    ap.add_argument("--n-single", type=int, default=16)
    ap.add_argument("--batch-tokens", type=int, default=65536)
    ap.add_argument("--max-new-tokens", type=int, default=150)
    args = ap.parse_args()
    from omegaconf import OmegaConf
    from transformers import XGLMConfig, XGLMForCausalLM

    from mfti_lightning.assets import FLORES101_DIR
    from mfti_lightning.core.template import Template
    from mfti_lightning.eval.generation import generate_batch, plan_batches
    from mfti_lightning.model.modeling import load_tokenizer, resolve_model_path

    shape = dict(num_layers=24, d_model=1024, attention_heads=16, ffn_dim=4096, vocab_size=256008)
    if args.smoke:
        shape.update(num_layers=2, d_model=128, attention_heads=4, ffn_dim=512)
        args.n, args.n_single, args.max_new_tokens = 8, 2, 8
    device = "cuda" if torch.cuda.is_available() and not args.smoke else "cpu"
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    mc = OmegaConf.load(os.path.join(os.path.dirname(__file__), "..", "conf", "model", "tiny.yaml")).model
    mc.name_or_path = os.path.join(os.environ.get("MFTI_CACHE_DIR", "/tmp/mfti-cache"), "tiny-xglm-v1")
    tok = load_tokenizer(resolve_model_path(mc))
    torch.manual_seed(0)
    cfg = XGLMConfig(**shape, max_position_embeddings=2048, pad_token_id=1, bos_token_id=0, eos_token_id=2)
    model = XGLMForCausalLM(cfg).to(device=device, dtype=dtype).eval()
    t = Template(name="t1", prefix="Translation: [<srclang>]: <input> [<tgtlang>]:", paper_id=1)
    de = (FLORES101_DIR / "devtest" / "deu.devtest").read_text(encoding="utf-8").splitlines()[: args.n]
    rows = [tok(t.render_prompt(s, "de", "en"))["input_ids"] for s in de]
    kw = dict(num_beams=4, max_new_tokens=args.max_new_tokens, extraction="reference")
    print(
        f"device {device} ({torch.cuda.get_device_name() if device == 'cuda' else 'cpu'}), dtype {dtype}, "
        f"shape {shape}, beam 4, max_new_tokens {args.max_new_tokens}, budget {args.batch_tokens}"
    )

    def sync():
        if device == "cuda":
            torch.cuda.synchronize()

    generate_batch(model, tok, t, rows[:2], **kw)  # warm-up
    sync()
    t0 = time.perf_counter()
    for r in rows[: args.n_single]:
        generate_batch(model, tok, t, [r], **kw)
    sync()
    single = args.n_single / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    batches = plan_batches([len(r) for r in rows], args.batch_tokens, args.max_new_tokens, 4)
    for b in batches:
        generate_batch(model, tok, t, [rows[i] for i in b], **kw)
    sync()
    batched = args.n / (time.perf_counter() - t0)
    peak = torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else float("nan")
    print(
        f"one-by-one {single:.2f} sent/s | batched ({len(batches)} batches) {batched:.2f} sent/s | "
        f"speed-up {batched / single:.2f}x | peak memory {peak:.1f} GiB"
    )


if __name__ == "__main__":
    main()
