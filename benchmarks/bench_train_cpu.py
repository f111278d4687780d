"""Framework overhead on CPU: MFTIModule under pl.Trainer vs a minimal plain-PyTorch loop, same model, batches,
optimizer (AdamW) and gradient clipping, measured in one run, alternating, median of the repeats.

    MFTI_CACHE_DIR=/tmp/cache python benchmarks/bench_train_cpu.py [--steps 30] [--repeats 3] [--attn eager]

The tiny demo model (built on first use); batches are real length-grouped FLORES training examples.
Time counted: first to last training step (model loading and Trainer setup excluded in both).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--attn", default="eager")
    ap.add_argument("--profile", action="store_true", help="also profile one Lightning run: where its own time goes")
    args = ap.parse_args(argv)

    import os
    import tempfile

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import pytorch_lightning as pl
    import torch
    from conftest import compose
    from torch.utils.data import DataLoader

    from mfti_lightning.data.datamodule import Collator, LengthGroupedBatches
    from mfti_lightning.model.modeling import load_model
    from mfti_lightning.tasks import train as task
    from mfti_lightning.tasks.job import resolved_container
    from mfti_lightning.train.module import MFTIModule

    tmp = Path(tempfile.mkdtemp())
    cfg = compose(["num_examples.n=200", "optim.micro_batch_size=16", "data.loss_on=target", "logger=none",
                   "eval.score_before_training=false"], tmp)  # fmt: skip
    # data, tokenizer and encoding exactly as mfti-train prepares them (its own phases)
    job = task.prepare_run(cfg, tmp, {"config": resolved_container(cfg)})
    task.prepare_data(job)
    task.build_module(job)
    template, path, tok, encoded = job.template, job.model_path, job.tokenizer, job.encoded
    sampler = LengthGroupedBatches([len(e.input_ids) for e in encoded], 16, 0)
    collate = Collator(tok.pad_token_id)
    batches = [collate([encoded[i] for i in b]) for b in sampler.all_batches()][: args.steps]
    assert len(batches) == args.steps, f"only {len(batches)} batches"
    lr = 1e-3

    def plain():
        torch.manual_seed(0)
        model = load_model(path, "float32", args.attn).train()
        opt = torch.optim.AdamW(model.parameters(), lr=lr)
        t = time.perf_counter()
        for b in batches:
            inputs = {k: v for k, v in b.items() if not (args.attn == "sdpa" and k == "attention_mask")}
            loss = model(**inputs).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            opt.zero_grad()
        return time.perf_counter() - t

    class Timer(pl.Callback):
        def on_train_batch_start(self, trainer, *a):
            if trainer.global_step == 0:
                self.t = time.perf_counter()

        def on_train_end(self, trainer, *a):
            self.elapsed = time.perf_counter() - self.t

    def lightning():
        torch.manual_seed(0)
        from functools import partial

        module = MFTIModule(
            model_path=path,
            template=template.to_dict(),
            optimizer=partial(torch.optim.AdamW, lr=lr),
            attn_implementation=args.attn,
            shape=dict(cfg.model.shape),
        )
        timer = Timer()
        trainer = pl.Trainer(
            accelerator="cpu",
            devices=1,
            max_steps=args.steps,
            gradient_clip_val=1.0,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            callbacks=[timer],
            num_sanity_val_steps=0,
            limit_val_batches=0,
        )
        trainer.fit(module, train_dataloaders=DataLoader(batches, batch_size=None))
        return timer.elapsed

    if args.profile:
        profile_lightning(lightning, args.steps)
    res = {"plain": [], "lightning": []}
    for _ in range(args.repeats):
        res["plain"].append(plain())
        res["lightning"].append(lightning())
    p, l_ = statistics.median(res["plain"]), statistics.median(res["lightning"])
    print(f"steps {args.steps} x repeats {args.repeats}, attn {args.attn}, torch threads {torch.get_num_threads()}")
    print(f"plain loop : {args.steps / p:.2f} steps/s  (runs: {', '.join(f'{x:.2f}s' for x in res['plain'])})")
    print(f"Lightning  : {args.steps / l_:.2f} steps/s  (runs: {', '.join(f'{x:.2f}s' for x in res['lightning'])})")
    print(f"overhead   : {100 * (l_ / p - 1):+.1f}% (median)")


def profile_lightning(run, steps: int) -> None:
    """cProfile one Lightning run; print the time spent in Lightning's own Python code (its files' self time)
    per step, by file and the top functions, next to the total."""
    import cProfile
    import pstats

    prof = cProfile.Profile()
    prof.enable()
    run()
    prof.disable()
    st = pstats.Stats(prof)
    own = ("pytorch_lightning", "lightning_fabric", "lightning_utilities", "torchmetrics", "mfti_lightning")
    by_pkg: dict = {}
    rows = []
    for (file, line, fn), (_, _, tt, _, _) in st.stats.items():
        pkg = next((p for p in own if f"/{p}/" in file), None)
        if pkg:
            by_pkg[pkg] = by_pkg.get(pkg, 0.0) + tt
            rows.append((tt, f"{file.split('/site-packages/')[-1]}:{line}({fn})"))
    total = st.total_tt
    print(f"profile of one Lightning run ({steps} steps, {total:.2f} s under cProfile):")
    for pkg, tt in sorted(by_pkg.items(), key=lambda kv: -kv[1]):
        print(f"  {pkg:20s} self time {tt:6.3f} s = {1000 * tt / steps:6.2f} ms/step ({100 * tt / total:4.1f}%)")
    for tt, name in sorted(rows, reverse=True)[:12]:
        print(f"    {1000 * tt / steps:6.2f} ms/step  {name}")


if __name__ == "__main__":
    main()
