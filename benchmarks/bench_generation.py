"""CPU: sentences/s of batched, length-sorted generation (token budget) vs one sentence at a time through
``generate``, same tiny model, greedy and beam 4, in one run.

    MFTI_CACHE_DIR=/tmp/mfti-cache python benchmarks/bench_generation.py [--n 48] [--max-new-tokens 32]
"""

from __future__ import annotations

import argparse
import platform
import time

import torch

from mfti_lightning.assets import FLORES101_DIR
from mfti_lightning.core.template import Template
from mfti_lightning.eval.generation import translate
from mfti_lightning.model.modeling import load_model, load_tokenizer, resolve_model_path


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=48)
    ap.add_argument("--max-new-tokens", type=int, default=32)
    ap.add_argument("--batch-tokens", type=int, default=8192)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    import os

    from omegaconf import OmegaConf

    model_cfg = OmegaConf.load(os.path.join(os.path.dirname(__file__), "..", "conf", "model", "tiny.yaml")).model
    model_cfg.name_or_path = os.path.join(os.environ.get("MFTI_CACHE_DIR", "/tmp/mfti-cache"), "tiny-xglm-v1")
    path = resolve_model_path(model_cfg)
    model, tok = load_model(path), load_tokenizer(path)
    t = Template(name="t1", prefix="Translation: [<srclang>]: <input> [<tgtlang>]:", paper_id=1)
    de = (FLORES101_DIR / "devtest" / "deu.devtest").read_text(encoding="utf-8").splitlines()[: args.n]
    prompts = [t.render_prompt(s, "de", "en") for s in de]
    print(
        f"machine: {platform.platform()}, torch {torch.__version__}, threads {args.threads}; tiny XGLM "
        f"({sum(p.numel() for p in model.parameters())} params), {args.n} FLORES de-en prompts, "
        f"max_new_tokens {args.max_new_tokens}"
    )
    for beams in (1, 4):
        kw = dict(num_beams=beams, max_new_tokens=args.max_new_tokens)
        translate(model, tok, t, prompts[:2], **kw)  # warm-up
        t0 = time.perf_counter()
        single = [translate(model, tok, t, [p], **kw)[0] for p in prompts]
        t_single = time.perf_counter() - t0
        t0 = time.perf_counter()
        batched = translate(model, tok, t, prompts, batch_tokens=args.batch_tokens, **kw)
        t_batch = time.perf_counter() - t0
        same = sum(a == b for a, b in zip(single, batched))
        print(
            f"beam {beams}: one-by-one {args.n / t_single:7.2f} sent/s | batched {args.n / t_batch:7.2f} sent/s "
            f"| speed-up {t_single / t_batch:5.2f}x | identical outputs {same}/{args.n}"
        )


if __name__ == "__main__":
    main()
