"""CPU: eval.engine=hf vs eval.engine=ctranslate2 side by side in one run, through generation.translate (the same
length-sorted token-budget batches), greedy and beam 4, plus one-by-one vs batched for each engine.

    MFTI_CACHE_DIR=/tmp/mfti-cache python benchmarks/bench_engines.py [--shape tiny|564m] [--n 48] [--threads 1]

``tiny``: the demo's model (trained-free random init, 0.9M parameters). ``564m``: the 24-layer, d_model 1024
body of XGLM-564M with random weights (vocabulary 256008), prompts tokenized with the demo's tokenizer. Both
engines get the same number of threads (torch.set_num_threads / CTranslate2 intra_threads), fp32.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

from mfti_lightning.assets import FLORES101_DIR
from mfti_lightning.core.template import Template
from mfti_lightning.eval.ct2_generation import load_engine
from mfti_lightning.eval.generation import translate
from mfti_lightning.model.modeling import load_model, load_tokenizer, resolve_model_path

BODY_564M = {"num_layers": 24, "d_model": 1024, "attention_heads": 16, "ffn_dim": 4096, "vocab_size": 256008}


def models(shape: str, work: Path):
    from omegaconf import OmegaConf

    mc = OmegaConf.load(Path(__file__).resolve().parents[1] / "conf" / "model" / "tiny.yaml").model
    mc.name_or_path = os.path.join(os.environ.get("MFTI_CACHE_DIR", "/tmp/mfti-cache"), "tiny-xglm-v1")
    path = resolve_model_path(mc)
    tok = load_tokenizer(path)
    if shape == "tiny":
        return load_model(path), tok, path
    from transformers import XGLMConfig, XGLMForCausalLM

    torch.manual_seed(0)
    cfg = XGLMConfig(**BODY_564M, max_position_embeddings=2048, pad_token_id=1, bos_token_id=0, eos_token_id=2,
                     dropout=0.0, attention_dropout=0.0)  # fmt: skip
    model = XGLMForCausalLM(cfg).eval()
    model.config.save_pretrained(work / "564m")
    return model, tok, str(work / "564m")


def timed(decoder, tok, t, prompts, one_by_one: bool, **kw):
    t0 = time.perf_counter()
    if one_by_one:
        out = [translate(decoder, tok, t, [p], **kw)[0] for p in prompts]
    else:
        out = translate(decoder, tok, t, prompts, **kw)
    return out, len(prompts) / (time.perf_counter() - t0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shape", choices=("tiny", "564m"), default="tiny")
    ap.add_argument("--n", type=int, default=48)
    ap.add_argument("--max-new-tokens", type=int, default=32)
    ap.add_argument("--batch-tokens", type=int, default=8192)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--no-single", action="store_true", help="skip the one-by-one runs")
    ap.add_argument("--beams", type=int, nargs="+", default=[1, 4])
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    work = Path(tempfile.mkdtemp(prefix="bench-engines-"))
    model, tok, path = models(args.shape, work)
    t0 = time.perf_counter()
    engine = load_engine(path, tok, cache_dir=str(work / "cache"), device="cpu", threads=args.threads,
                         model=None if args.shape == "tiny" else model)  # fmt: skip
    convert_s = time.perf_counter() - t0
    t = Template(name="t1", prefix="Translation: [<srclang>]: <input> [<tgtlang>]:", paper_id=1)
    de = (FLORES101_DIR / "devtest" / "deu.devtest").read_text(encoding="utf-8").splitlines()[: args.n]
    prompts = [t.render_prompt(s, "de", "en") for s in de]
    n_params = sum(p.numel() for p in model.parameters())
    print(f"machine: {platform.platform()}, {os.cpu_count()} cores, torch {torch.__version__}, threads "
          f"{args.threads}; {args.shape} ({n_params:,} params), {args.n} FLORES de-en prompts, max_new_tokens "
          f"{args.max_new_tokens}, budget {args.batch_tokens}; CTranslate2 conversion {convert_s:.1f} s")  # fmt: skip
    for beams in args.beams:
        kw = dict(num_beams=beams, max_new_tokens=args.max_new_tokens, extraction="reference")
        res = {}
        for name, dec in (("hf", model), ("ctranslate2", engine)):
            translate(dec, tok, t, prompts[:2], **kw)  # warm-up
            batched, rate = timed(dec, tok, t, prompts, False, batch_tokens=args.batch_tokens, **kw)
            single_rate = None if args.no_single else timed(dec, tok, t, prompts, True, **kw)[1]
            res[name] = (batched, rate, single_rate)
        same = sum(a == b for a, b in zip(res["hf"][0], res["ctranslate2"][0]))
        for name, (_, rate, single) in res.items():
            one = f"one-by-one {single:7.2f} sent/s, batched/one-by-one {rate / single:5.2f}x | " if single else ""
            print(f"beam {beams} {name:11s}: {one}batched {rate:7.2f} sent/s")
        print(f"beam {beams}: ctranslate2 / hf batched = {res['ctranslate2'][1] / res['hf'][1]:.2f}x; identical "
              f"hypotheses {same}/{args.n}")  # fmt: skip


if __name__ == "__main__":
    main()
