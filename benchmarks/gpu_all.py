"""Every GPU number the project needs, in one prepared run (< 8 min planned on one H100/H200), and the throughput
JSON that mfti-plan's cost model reads (mfti_lightning/assets/throughput.json: package data, shipped in the wheel).

    python benchmarks/gpu_all.py                      # on one GPU: writes mfti_lightning/assets/throughput.json
    python benchmarks/gpu_all.py --smoke              # anywhere (CPU, seconds): the tiny shape, every code path
    python benchmarks/gpu_all.py --only train         # or: --only eval

Random-init models (no download), the XGLM shapes of conf/model/*.yaml:

- training: tokens/s (real tokens), MFU (FLOPs from the shape and the real lengths, mfti_lightning.train.throughput)
  and peak memory for the 564M, 1.7B and 7.5B shapes, sdpa vs eager attention, length-grouped vs random (padded)
  batches, FLORES-like lengths (log-normal around 90 tokens, max 256). 564M and 1.7B: bf16 autocast with fp32
  master weights and AdamW (trainer=gpu); 7.5B: bf16 weights (fp32 master weights and AdamW states would need
  ~120 GB), length-grouped only.
- evaluation: sentences/s of FLORES de-en devtest prompts (template 1), beam 4, up to 150 new tokens (random
  weights rarely emit EOS: a worst case), for the 564M and 7.5B shapes: eval.batch_tokens=4096 vs auto
  (eval.budget) with Hugging Face generate, and CTranslate2 (eval.engine=ctranslate2, bfloat16, auto budget),
  each through the project's own generation.translate. Generation "MFU" = 2 x matmul params x (prompt tokens +
  beams x generated tokens) / (time x peak), the quantity mfti-plan's cost model divides by.

Every case prints as it finishes; cases that would pass ``--time-limit`` seconds in total are skipped and listed.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

from mfti_lightning.assets import THROUGHPUT_FILE
from mfti_lightning.data.datamodule import LengthGroupedBatches
from mfti_lightning.model import xglm_sdpa
from mfti_lightning.train import throughput

SHAPES = {
    "tiny": {"num_layers": 2, "d_model": 128, "attention_heads": 4, "ffn_dim": 512, "vocab_size": 4008},
    "xglm-564m": {"num_layers": 24, "d_model": 1024, "attention_heads": 16, "ffn_dim": 4096, "vocab_size": 256008},
    "xglm-1.7b": {"num_layers": 24, "d_model": 2048, "attention_heads": 16, "ffn_dim": 8192, "vocab_size": 256008},
    "xglm-7.5b": {"num_layers": 32, "d_model": 4096, "attention_heads": 32, "ffn_dim": 16384, "vocab_size": 256008},
}
OUT = THROUGHPUT_FILE


def build(shape: dict, device, dtype=None):
    from transformers import XGLMConfig, XGLMForCausalLM

    torch.manual_seed(0)
    cfg = XGLMConfig(**shape, max_position_embeddings=2048, dropout=0.1, attention_dropout=0.1,
                     pad_token_id=1, bos_token_id=0, eos_token_id=2)  # fmt: skip
    with torch.device(device):
        model = XGLMForCausalLM(cfg)
    return model.to(dtype) if dtype is not None else model


# ---- training ------------------------------------------------------------------------------------------------
def flores_like_lengths(n: int, seed: int = 0, max_len: int = 256) -> list[int]:
    rng = random.Random(seed)
    return [max(16, min(max_len, int(rng.lognormvariate(math.log(90), 0.45)))) for _ in range(n)]


def batch_order(lengths, micro: int, grouped: bool) -> list[list[int]]:
    if grouped:
        return LengthGroupedBatches(lengths, micro, 0, chunk=64).all_batches()
    idx = list(range(len(lengths)))
    random.Random(0).shuffle(idx)
    return [idx[i : i + micro] for i in range(0, len(idx) - micro + 1, micro)]


def train_case(name, attn, grouped, micro, steps, warmup, device, pure_bf16=False) -> dict:
    shape = SHAPES[name]
    model = build(shape, device, torch.bfloat16 if pure_bf16 else None)
    if attn == "sdpa":
        xglm_sdpa.enable(model)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5, foreach=True)
    lengths = flores_like_lengths(4096)
    order = batch_order(lengths, micro, grouped)
    counter = throughput.Counter(shape)
    amp = device.type == "cuda" and not pure_bf16
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    for step in range(warmup + steps):
        if step == warmup:
            sync(device)
            t0 = time.perf_counter()
        rows = order[step % len(order)]
        width = max(lengths[i] for i in rows)
        ids = torch.randint(4, shape["vocab_size"], (len(rows), width), device=device)
        mask = (
            torch.arange(width, device=device)[None] < torch.tensor([lengths[i] for i in rows], device=device)[:, None]
        ).long()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            # right-padded batches need no mask under sdpa (as the LightningModule does)
            out = model(
                input_ids=ids, attention_mask=None if attn == "sdpa" else mask, labels=ids.masked_fill(mask == 0, -100)
            )
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        if step >= warmup:
            counter.add_batch([lengths[i] for i in rows], width)
    sync(device)
    counter.seconds = time.perf_counter() - t0
    dev, peak = throughput.device_info(device)
    n = sum(p.numel() for p in model.parameters())
    rep = throughput.report(counter.as_list(), counter.seconds, 1, dev, peak, throughput.peak_memory_gb(device), n, n)
    del model, opt, out
    free(device)
    precision = "bf16-true" if pure_bf16 else ("bf16-mixed" if amp else "fp32")
    return {**rep, "model": name, "attn": attn, "batching": "length-grouped" if grouped else "padded",
            "precision": precision, "micro_batch": micro}  # fmt: skip


# ---- evaluation ----------------------------------------------------------------------------------------------
def prompts_ids(n: int):
    """FLORES de-en devtest prompts (template 1) tokenized with the demo's tokenizer (ids < 4008: valid in the
    256008-token vocabulary of the XGLM shapes)."""
    import os

    from omegaconf import OmegaConf

    from mfti_lightning.assets import FLORES101_DIR
    from mfti_lightning.core.template import Template
    from mfti_lightning.model.modeling import load_tokenizer, resolve_model_path

    mc = OmegaConf.load(Path(__file__).resolve().parents[1] / "conf" / "model" / "tiny.yaml").model
    mc.name_or_path = os.path.join(os.environ.get("MFTI_CACHE_DIR", "/tmp/mfti-cache"), "tiny-xglm-v1")
    tok = load_tokenizer(resolve_model_path(mc))
    t = Template(name="t1", prefix="Translation: [<srclang>]: <input> [<tgtlang>]:", paper_id=1)
    de = (FLORES101_DIR / "devtest" / "deu.devtest").read_text(encoding="utf-8").splitlines()[:n]
    return tok, t, [t.render_prompt(s, "de", "en") for s in de]


def eval_case(name, engine_name, budget, model, tok, template, prompts, beams, new, device, ct2_engine=None) -> dict:
    from mfti_lightning.eval.budget import resolve_batch_tokens
    from mfti_lightning.eval.generation import encode_prompts, plan_batches, translate

    decoder = ct2_engine if engine_name == "ctranslate2" else model
    resolved = resolve_batch_tokens(budget, decoder, new)
    kw = dict(num_beams=beams, max_new_tokens=new, extraction="reference")
    translate(decoder, tok, template, prompts[:2], batch_tokens=resolved, **kw)  # warm-up
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    sync(device)
    t0 = time.perf_counter()
    hyps = translate(decoder, tok, template, prompts, batch_tokens=budget, **kw)
    sync(device)
    seconds = time.perf_counter() - t0
    enc = encode_prompts(tok, prompts)
    n_batches = len(plan_batches([len(e) for e in enc], resolved, new, beams))
    gen_tokens = sum(
        len(tok(h, add_special_tokens=False)["input_ids"]) for h in hyps
    )  # a lower bound (ids >= 4008 vanish)
    dev, peak = throughput.device_info(device)
    flops = 2 * throughput.matmul_params(SHAPES[name]) * (sum(len(e) for e in enc) + beams * new * len(prompts))
    return {"model": name, "engine": engine_name, "batch_tokens": str(budget), "resolved_batch_tokens": resolved,
            "batches": n_batches, "sentences": len(prompts), "sentences_per_s": len(prompts) / seconds,
            "seconds": seconds, "beams": beams, "max_new_tokens": new, "decoded_tokens_lower_bound": gen_tokens,
            "mfu": flops / seconds / peak if peak else None, "device": dev,
            "peak_memory_gb": throughput.peak_memory_gb(device)}  # fmt: skip


def ct2_for(model, name: str, device, workdir: Path, tok):
    """The model converted for CTranslate2 (bfloat16 on CUDA, float32 on CPU) through the project's converter."""
    from mfti_lightning.eval.ct2_generation import load_engine

    model_dir = workdir / name
    model.config.save_pretrained(model_dir)  # the converter reads the config; the weights come from memory
    on = model.device
    model.cpu()
    try:
        t0 = time.perf_counter()
        engine = load_engine(str(model_dir), tok, cache_dir=str(workdir / "cache"), device=device,
                             model=model, threads=0 if device.type == "cuda" else 2)  # fmt: skip
        print(f"  {name}: converted for CTranslate2 in {time.perf_counter() - t0:.0f} s", flush=True)
    finally:
        model.to(on)
    return engine


# ---- driver --------------------------------------------------------------------------------------------------
def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def free(device):
    import gc

    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def train_plan(smoke: bool):
    """(model, attn, grouped, micro, steps, warmup, pure_bf16) per case, in order of importance."""
    if smoke:
        return [("tiny", a, g, 8, 2, 1, False) for g in (True, False) for a in ("sdpa", "eager")]
    cases = [
        (m, a, g, 16, 12, 3, False)
        for m in ("xglm-564m", "xglm-1.7b")
        for g in (True, False)
        for a in ("sdpa", "eager")
    ]
    return cases + [("xglm-7.5b", a, True, 8, 6, 2, True) for a in ("sdpa", "eager")]


def eval_plan(smoke: bool):
    """(model, n sentences, max_new_tokens, [(engine, budget)...])."""
    runs = [("hf", 4096), ("hf", "auto"), ("ctranslate2", "auto")]
    if smoke:
        return [("tiny", 6, 8, runs)]
    return [("xglm-564m", 64, 150, runs), ("xglm-7.5b", 64, 150, runs)]


def ct2_unavailable(device) -> str | None:
    """Why CTranslate2 cannot decode on ``device`` (None: it can). Its PyPI wheels link CUDA's runtime statically
    but dlopen cuBLAS by major version (libcublas.so.12 in 4.x) on the first GPU product: on a machine with CUDA 13
    libraries only that fails mid-run, so it is probed here, before any conversion."""
    try:
        import ctranslate2
    except ImportError as e:
        return f"ctranslate2 not importable ({e})"
    if device.type != "cuda":
        return None
    if ctranslate2.get_cuda_device_count() < 1:
        return "ctranslate2 sees no CUDA device (a CPU-only build?)"
    import ctypes
    import re

    libs = Path(ctranslate2.__file__).resolve().parents[1] / "ctranslate2.libs"
    needed = set()
    for lib in list(libs.glob("libctranslate2*.so*")) + list(Path(ctranslate2.__file__).parent.glob("*.so*")):
        needed |= {m.decode() for m in re.findall(rb"libcublas\.so\.[0-9]+", lib.read_bytes())}
    for soname in sorted(needed):
        try:
            ctypes.CDLL(soname)
        except OSError as e:
            return f"ctranslate2 {ctranslate2.__version__} needs {soname}, which does not load here ({e})"
    return None


def run_eval_model(name, n, new, runs, device, results, deadline, workdir):
    tok, template, prompts = prompts_ids(n)
    dtype = torch.bfloat16 if device.type == "cuda" else None
    model = build(SHAPES[name], device, dtype).eval()
    xglm_sdpa.enable(model)
    engine = None
    for engine_name, budget in runs:
        if time.time() > deadline:
            results["skipped"].append(f"eval {name} {engine_name} {budget}: time limit")
            continue
        if engine_name == "ctranslate2" and (why := ct2_unavailable(device)):
            results["skipped"].append(f"eval {name} {engine_name} {budget} on {device.type}: {why}")
            print(f"eval  {name:10s} {engine_name:11s} skipped: {why}", flush=True)
            continue
        if engine_name == "ctranslate2" and engine is None:
            engine = ct2_for(model, name, device, workdir, tok)
            if device.type == "cuda":
                model.cpu()  # the engine decodes now: the torch copy leaves the GPU
                free(device)
        r = eval_case(name, engine_name, budget, model, tok, template, prompts, 4, new, device, engine)
        results["eval"].append(r)
        mfu = f"{100 * r['mfu']:.2f}%" if r["mfu"] else "n/a"
        print(f"eval  {name:10s} {engine_name:11s} budget {budget!s:>5s} ({r['resolved_batch_tokens']}, "
              f"{r['batches']} batches) {r['sentences_per_s']:8.2f} sent/s  MFU {mfu}  peak {r['peak_memory_gb']:.1f} GiB",
              flush=True)  # fmt: skip
    del model, engine
    free(device)


def summary(results: dict) -> dict:
    """The throughput JSON mfti-plan reads: per model the best training case's MFU, and per model, engine and
    budget the generation MFU and sentences/s (launch.sweep.rates)."""
    train, gen = {}, {}
    for r in results["train"]:
        if r["mfu"] and (r["model"] not in train or r["mfu"] > train[r["model"]]["mfu"]):
            train[r["model"]] = {
                k: r[k] for k in ("mfu", "tokens_per_s", "peak_memory_gb", "attn", "batching", "precision")
            }
    for r in results["eval"]:
        gen.setdefault(r["model"], {}).setdefault(r["engine"], {})[r["batch_tokens"]] = {
            k: r[k]
            for k in ("mfu", "sentences_per_s", "resolved_batch_tokens", "beams", "max_new_tokens", "peak_memory_gb")
        }
    return {"schema": 1, "device": results["device"], "peak_tflops": results["peak_tflops"], "train": train,
            "generate": gen, "measured": results["measured"], "versions": results["versions"],
            "cases": {"train": results["train"], "eval": results["eval"]}, "skipped": results["skipped"]}  # fmt: skip


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--smoke", action="store_true", help="the tiny shape on any device, in seconds")
    ap.add_argument("--only", choices=("train", "eval"), default=None)
    ap.add_argument("--out", type=Path, default=None, help=f"throughput JSON (default {OUT}; --smoke: none)")
    ap.add_argument("--time-limit", type=float, default=450.0, help="skip cases that start after this many seconds")
    args = ap.parse_args(argv)
    device = torch.device("cuda" if torch.cuda.is_available() and not args.smoke else "cpu")
    if device.type == "cpu" and not args.smoke:
        ap.error("no GPU: run with --smoke to check the script on a CPU (no numbers are written)")
    try:
        import ctranslate2  # only the ctranslate2 eval cases use it (ct2_unavailable says why they are skipped)

        ct2_version = ctranslate2.__version__
    except ImportError:
        ct2_version = None
    dev, peak = throughput.device_info(device)
    t_start = time.time()
    deadline = t_start + args.time_limit
    results = {"device": dev, "peak_tflops": peak / 1e12 if peak else None, "train": [], "eval": [], "skipped": [],
               "measured": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
               "versions": {"torch": torch.__version__, "ctranslate2": ct2_version,
                            "python": platform.python_version()}}  # fmt: skip
    print(f"device {dev}, torch {torch.__version__}, ctranslate2 {ct2_version}", flush=True)
    target = args.out or (None if args.smoke else OUT)

    def save():  # after every case: a run stopped by a hard time limit keeps what it measured
        if target:
            target.write_text(json.dumps(summary(results), indent=1) + "\n")

    if args.only in (None, "train"):
        for case in train_plan(args.smoke):
            if time.time() > deadline:
                results["skipped"].append(f"train {case[:3]}: time limit")
                continue
            r = train_case(*case[:6], device, pure_bf16=case[6])
            results["train"].append(r)
            mfu = f"{100 * r['mfu']:.1f}%" if r["mfu"] else "n/a"
            print(f"train {r['model']:10s} {r['batching']:14s} {r['attn']:5s} {r['precision']:10s} tokens/s "
                  f"{r['tokens_per_s']:9.0f}  MFU {mfu:>6s}  peak {r['peak_memory_gb']:.1f} GiB", flush=True)  # fmt: skip
            save()
    if args.only in (None, "eval"):
        with tempfile.TemporaryDirectory(prefix="gpu_all-") as work:
            for name, n, new, runs in eval_plan(args.smoke):
                run_eval_model(name, n, new, runs, device, results, deadline, Path(work))
                save()
    out = summary(results)
    print(f"total {time.time() - t_start:.0f} s; skipped: {results['skipped'] or 'none'}")
    if target:
        save()
        print(f"wrote {target}")
    return out


if __name__ == "__main__":
    main()
