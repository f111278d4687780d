"""The LightningModule fits the tiny model on one process (in-process Trainer, real data and tokenizer)."""

from __future__ import annotations

from pathlib import Path

import pytest


def fit_tiny(cfg, run_dir: Path, *, max_steps: int = 4):
    """The training task's own phases (mfti_lightning.tasks.train) up to fit, in process, without validation or
    loggers; returns (module, trainer, periodic checkpoint callback)."""
    from omegaconf import open_dict

    from mfti_lightning.tasks import train as task
    from mfti_lightning.tasks.job import resolved_container
    from mfti_lightning.train.checkpoint_callbacks import PeriodicCheckpoint

    with open_dict(cfg):
        cfg.optim.max_steps = max_steps
        cfg.optim.warmup_steps = 0
        cfg.data.loss_on = "target"
        cfg.eval.score_before_training = False
        cfg.logger.name = "none"
    job = task.prepare_run(cfg, run_dir, {"config": resolved_container(cfg)})
    task.prepare_data(job)
    job.val_sets = []  # no validation: only the periodic checkpoints
    task.build_module(job)
    task.fit(job)
    periodic = next(c for c in job.trainer.callbacks if isinstance(c, PeriodicCheckpoint))
    return job.module, job.trainer, periodic


@pytest.mark.slow
@pytest.mark.timeout(120)
@pytest.mark.parametrize("attn", ["eager", "sdpa"])
def test_fit_tiny_one_process(cfg_factory, tmp_path, attn):
    import json

    cfg = cfg_factory(
        "num_examples.n=16",
        "optim.global_batch_size=16",
        "optim.micro_batch_size=8",
        "checkpoint.every_n_steps=2",
        "progress.mode=none",
        f"model.attn_implementation={attn}",
        "optim.gradient_checkpointing=true",
    )
    module, trainer, periodic = fit_tiny(cfg, tmp_path, max_steps=4)
    assert trainer.global_step == 4 and trainer.accumulate_grad_batches == 2
    assert module.model.training  # transformers 5 loads in eval mode; the module switches to train mode
    assert module.model.is_gradient_checkpointing
    summary = json.loads((tmp_path / "train_summary.json").read_text())
    assert summary["steps"] == 4 and summary["loss_last"] < summary["loss_first"]
    tp = summary["throughput"]
    assert tp["samples_per_s"] > 0 and tp["mfu"] is None and tp["device"].startswith("cpu")  # no CPU peak table
    assert tp["real_tokens"] > 0 and tp["model_flops"] > 6 * 900_000 * tp["real_tokens"]
    assert sorted(p.name for p in (tmp_path / "checkpoints" / "periodic").iterdir()) == [
        "step000002.ckpt",
        "step000004.ckpt",
    ]


def test_throughput_math():
    from mfti_lightning.train import throughput as t

    shape = {"num_layers": 24, "d_model": 2048, "attention_heads": 16, "ffn_dim": 8192, "vocab_size": 256008}
    assert t.matmul_params(shape) == 24 * (4 * 2048**2 + 2 * 2048 * 8192) + 256008 * 2048
    assert t.peak_flops("NVIDIA H200") == 989e12 and t.peak_flops("NVIDIA H100 PCIe") == 756e12  # the fallback
    assert t.peak_flops("cpu") is None
    c = t.Counter(shape)
    c.add_batch([100, 50], 100)
    c.seconds = 2.0
    r = t.report(c.as_list(), 2.0, 1, "NVIDIA H100", 989e12, 1.0, 10, 5)
    assert r["padding_efficiency"] == 0.75 and r["tokens_per_s"] == 75 and r["samples_per_s"] == 1
    expected = sum(6 * t.matmul_params(shape) * n + 12 * 24 * 2048 * n * n for n in (100, 50))
    assert r["mfu"] == pytest.approx(expected / 2 / 989e12)


@pytest.mark.parametrize(
    "name, peak",
    [
        ("NVIDIA H100 80GB HBM3", 989.4e12),  # Lightning's table (its "h100 sxm")
        ("NVIDIA H100 PCIe", 756e12),
        ("NVIDIA A100-SXM4-80GB", 312e12),
        ("NVIDIA GeForce RTX 4090", 82.6e12),  # a card only Lightning's table knows
        ("NVIDIA H200", 989e12),  # the name torch reports for an H200 SXM: Lightning has none, the fallback answers
        ("NVIDIA B200", None),  # in neither: no MFU rather than a wrong one
    ],
)
def test_peak_flops_from_lightnings_table_else_the_fallback(monkeypatch, name, peak):
    """The MFU's peak: Lightning's get_available_flops (bf16) for the CUDA device's name where it has one. No GPU
    here: torch.cuda.get_device_name answers the name a real card reports."""
    import warnings

    import torch
    from lightning_fabric.utilities.throughput import get_available_flops

    from mfti_lightning.train import throughput as t

    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: name)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the fallback is silent: no "FLOPs not found" warning per run
        assert t.device_info(torch.device("cuda", 0)) == (name, peak)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lightning = get_available_flops(torch.device("cuda", 0), torch.bfloat16)
    assert lightning == (peak if name not in ("NVIDIA H200",) else None)


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_no_device_reads_per_micro_batch(cfg_factory, tmp_path, monkeypatch):
    """training_step and the batch hooks read no tensor value back (no .item()/.tolist()/float()/bool(), no
    torch.cuda.synchronize): on a GPU each would stall the host once per micro-batch. Values are read only in
    _read_device_values, at logging intervals and at the end, and the throughput numbers stay right."""
    import json
    import sys

    import torch

    watched = {"training_step", "on_train_batch_start", "on_train_batch_end"}
    reads: list[str] = []

    def spy(name):
        real = getattr(torch.Tensor, name)

        def wrapper(self, *a, **k):
            f = sys._getframe(1)
            if f.f_code.co_filename.endswith("train/module.py") and f.f_code.co_name in watched | {
                "_read_device_values"
            }:
                reads.append(f.f_code.co_name)
            return real(self, *a, **k)

        monkeypatch.setattr(torch.Tensor, name, wrapper)

    for name in ("item", "tolist", "__float__", "__bool__", "__int__"):
        spy(name)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda *a, **k: pytest.fail("torch.cuda.synchronize called"))
    cfg = cfg_factory(
        "num_examples.n=16", "optim.global_batch_size=8", "optim.micro_batch_size=4", "checkpoint.every_n_steps=100",
        "progress.mode=none", "trainer.log_every_n_steps=3",
    )  # fmt: skip
    module, trainer, _ = fit_tiny(cfg, tmp_path, max_steps=6)
    assert trainer.global_step == 6
    assert not [r for r in reads if r in watched]  # nothing read per micro-batch
    assert 1 <= reads.count("_read_device_values") <= 6 // 3 + 2  # at logging intervals and at the end
    summary = json.loads((tmp_path / "train_summary.json").read_text())
    assert [s for s, _ in summary["loss_history"]] == list(range(6))  # every optimizer step's loss, in order
    tp = summary["throughput"]
    assert tp["real_tokens"] == module.counter.real_tokens > 0 and tp["train_seconds"] > 0
