"""The LightningModule fits the tiny model on one process (in-process Trainer, real data and tokenizer)."""

from __future__ import annotations

from pathlib import Path

import pytest


def fit_tiny(cfg, run_dir: Path, *, max_steps: int = 4):
    """Module + datamodule + Trainer as the pipeline builds them; returns (module, trainer, periodic callback)."""
    import pytorch_lightning as pl
    from hydra.utils import instantiate
    from omegaconf import open_dict

    from mfti_lightning.core.config import batch_math
    from mfti_lightning.core.template import from_config
    from mfti_lightning.data.datamodule import MFTIDataModule, encode_examples
    from mfti_lightning.data.prepare import training_examples
    from mfti_lightning.model.modeling import load_tokenizer, peft_settings, resolve_model_path
    from mfti_lightning.train.module import MFTIModule
    from mfti_lightning.train.trainer import build_trainer

    with open_dict(cfg):
        cfg.optim.max_steps = max_steps
    pl.seed_everything(0, verbose=False)
    template = from_config(cfg.template)
    path = resolve_model_path(cfg.model)
    tok = load_tokenizer(path)
    examples, _ = training_examples(cfg, template)
    encoded, _ = encode_examples(examples, tok, template, 256, "target", "drop")
    bm = batch_math(cfg)
    module = MFTIModule(
        model_path=path,
        template=template.to_dict(),
        optimizer=instantiate(cfg.optim.optimizer),
        warmup_steps=0,
        attn_implementation=cfg.model.attn_implementation,
        gradient_checkpointing=bool(cfg.optim.gradient_checkpointing),
        out_dir=str(run_dir),
        peft=peft_settings(cfg.model),
        shape=dict(cfg.model.shape),
    )
    module.tokenizer = tok
    dm = MFTIDataModule(encoded, tok.pad_token_id, bm["micro_batch_size"], 0)
    trainer, _, periodic = build_trainer(cfg, bm, run_dir, [], None, path)
    trainer.fit(module, datamodule=dm)
    return module, trainer, periodic


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
    assert t.peak_flops("NVIDIA H100 80GB HBM3") == 989e12 and t.peak_flops("NVIDIA H100 PCIe") == 756e12
    assert t.peak_flops("NVIDIA A100-SXM4-80GB") == 312e12 and t.peak_flops("NVIDIA H200") == 989e12
    assert t.peak_flops("cpu") is None
    c = t.Counter(shape)
    c.add_batch([100, 50], 100)
    c.seconds = 2.0
    r = t.report(c.as_list(), 2.0, 1, "NVIDIA H100", 989e12, 1.0, 10, 5)
    assert r["padding_efficiency"] == 0.75 and r["tokens_per_s"] == 75 and r["samples_per_s"] == 1
    expected = sum(6 * t.matmul_params(shape) * n + 12 * 24 * 2048 * n * n for n in (100, 50))
    assert r["mfu"] == pytest.approx(expected / 2 / 989e12)
