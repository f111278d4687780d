"""GPU training throughput of XGLM shapes: eager vs sdpa attention, padded vs length-grouped batches.

    python benchmarks/gpu_bench.py            # on one H100/H200: 564M and 1.7B shapes, bf16-mixed, < 8 min
    python benchmarks/gpu_bench.py --smoke    # anywhere (CPU): the tiny shape, 2 steps per case

Random-init models (no download), FLORES-like lengths (prompt + target ~ log-normal around 90 tokens, max 256),
AdamW, bf16 autocast with fp32 master weights (what trainer=gpu runs). Prints tokens/s (real tokens), MFU (FLOPs
from the shape and the real lengths, mfti_lightning.train.throughput) and peak memory per case, plus the sdpa/eager
speed-up measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

from mfti_lightning import xglm_sdpa
from mfti_lightning.data.datamodule import LengthGroupedBatches
from mfti_lightning.train import throughput

SHAPES = {
    "tiny": {"num_layers": 2, "d_model": 128, "attention_heads": 4, "ffn_dim": 512, "vocab_size": 4008},
    "xglm-564m": {"num_layers": 24, "d_model": 1024, "attention_heads": 16, "ffn_dim": 4096, "vocab_size": 256008},
    "xglm-1.7b": {"num_layers": 24, "d_model": 2048, "attention_heads": 16, "ffn_dim": 8192, "vocab_size": 256008},
}


def flores_like_lengths(n: int, seed: int = 0, max_len: int = 256) -> list[int]:
    rng = random.Random(seed)
    return [max(16, min(max_len, int(rng.lognormvariate(math.log(90), 0.45)))) for _ in range(n)]


def batches(lengths: list[int], micro: int, grouped: bool, seed: int = 0) -> list[list[int]]:
    if grouped:
        return LengthGroupedBatches(lengths, micro, seed, chunk=64).all_batches()
    idx = list(range(len(lengths)))
    random.Random(seed).shuffle(idx)
    return [idx[i : i + micro] for i in range(0, len(idx) - micro + 1, micro)]


def make_batch(lengths, rows, vocab, device):
    width = max(lengths[i] for i in rows)
    ids = torch.randint(4, vocab, (len(rows), width), device=device)
    mask = torch.zeros((len(rows), width), dtype=torch.long, device=device)
    for r, i in enumerate(rows):
        mask[r, : lengths[i]] = 1
    return ids, mask, ids.masked_fill(mask == 0, -100)


def run_case(shape, attn, grouped, lengths, micro, steps, warmup, device, amp):
    from transformers import XGLMConfig, XGLMForCausalLM

    torch.manual_seed(0)
    cfg = XGLMConfig(
        vocab_size=shape["vocab_size"],
        d_model=shape["d_model"],
        ffn_dim=shape["ffn_dim"],
        num_layers=shape["num_layers"],
        attention_heads=shape["attention_heads"],
        max_position_embeddings=2048,
        dropout=0.1,
        attention_dropout=0.1,
    )
    with torch.device(device):
        model = XGLMForCausalLM(cfg)
    if attn == "sdpa":
        xglm_sdpa.enable(model)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5, fused=device.type == "cuda")
    order = batches(lengths, micro, grouped)
    counter = throughput.Counter(shape)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    for step in range(warmup + steps):
        rows = order[step % len(order)]
        ids, mask, labels = make_batch(lengths, rows, shape["vocab_size"], device)
        right_padded = attn == "sdpa"  # as the LightningModule: drop the mask of right-padded batches
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t = time.perf_counter()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            out = model(input_ids=ids, attention_mask=None if right_padded else mask, labels=labels)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if step >= warmup:
            counter.seconds += time.perf_counter() - t
            counter.add_batch([lengths[i] for i in rows], ids.shape[1])
    name, peak = throughput.device_info(device)
    n = sum(p.numel() for p in model.parameters())
    rep = throughput.report(counter.as_list(), counter.seconds, 1, name, peak, throughput.peak_memory_gb(device), n, n)
    del model, opt
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return rep


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--smoke", action="store_true", help="tiny shape, 2 steps per case, any device")
    ap.add_argument("--models", nargs="*", default=["xglm-564m", "xglm-1.7b"])
    ap.add_argument("--micro", type=int, default=16)
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    args = ap.parse_args(argv)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    models, steps, warmup = (["tiny"], 2, 1) if args.smoke else (args.models, args.steps, 3)
    amp = device.type == "cuda"
    lengths = flores_like_lengths(4096)
    results = []
    t0 = time.time()
    for m in models:
        for grouped in (False, True):
            for attn in ("eager", "sdpa"):
                r = run_case(SHAPES[m], attn, grouped, lengths, args.micro, steps, warmup, device, amp)
                r.update(model=m, attn=attn, batching="length-grouped" if grouped else "padded")
                results.append(r)
                mfu = f"{100 * r['mfu']:.1f}%" if r["mfu"] else "n/a"
                print(
                    f"{m:10s} {r['batching']:14s} {attn:5s} tokens/s {r['tokens_per_s']:10.0f}  MFU {mfu:>6s}  "
                    f"pad-eff {r['padding_efficiency']:.2f}  peak {r['peak_memory_gb']:.1f} GiB",
                    flush=True,
                )
    for m in models:
        for b in ("padded", "length-grouped"):
            e, s = (
                next(r for r in results if (r["model"], r["batching"], r["attn"]) == (m, b, a))
                for a in ("eager", "sdpa")
            )
            print(f"{m} {b}: sdpa / eager tokens/s = {s['tokens_per_s'] / e['tokens_per_s']:.2f}x")
    print(f"device: {results[0]['device']}, torch {torch.__version__}, total {time.time() - t0:.0f} s")
    if args.out:
        args.out.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
