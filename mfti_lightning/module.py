"""The mFTI LightningModule: causal-LM finetuning of a Hugging Face model, validated by translating."""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path

import pytorch_lightning as pl
import torch

from mfti_lightning import evaluation
from mfti_lightning.generation import gather_translations, translate
from mfti_lightning.modeling import load_model
from mfti_lightning.prepare import EvalSet
from mfti_lightning.template import Template

log = logging.getLogger(__name__)


class MFTIModule(pl.LightningModule):
    def __init__(
        self,
        model_path: str,
        template: dict,
        optimizer,  # a partial: optimizer(params) -> torch.optim.Optimizer
        warmup_steps: int = 0,
        dtype: str = "float32",
        attn_implementation: str = "eager",
        gradient_checkpointing: bool = False,
        val_sets: list[EvalSet] | None = None,
        eval_settings: dict | None = None,
        out_dir: str | None = None,
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["optimizer", "val_sets"])
        self.template = Template.from_dict(template)
        self.optimizer_factory = optimizer
        self.model = None
        self.val_sets = val_sets or []
        self.eval_settings = dict(eval_settings or {})
        self.out_dir = Path(out_dir) if out_dir else None
        self.val_prompts = evaluation.build_prompts(
            self.val_sets, self.template, int(self.eval_settings.get("shots", 0)), int(self.eval_settings.get("seed", 0))
        )
        self._val_out: dict[int, str] = {}
        self.tokenizer = None
        self.loss_history: list[tuple[int, float]] = []
        self._tokens_seen = 0
        self._t_start = None

    # ---- model ---------------------------------------------------------------------------------------
    def configure_model(self):
        if self.model is not None:
            return
        hp = self.hparams
        self.model = load_model(hp.model_path, hp.dtype, hp.attn_implementation)
        self.model.train()  # transformers 5 returns models in eval mode
        if hp.gradient_checkpointing:
            self.model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
            self.model.config.use_cache = False

    def forward(self, **batch):
        return self.model(**batch)

    # ---- training ------------------------------------------------------------------------------------
    def on_train_start(self):
        self._t_start = time.perf_counter()
        if self.eval_settings.get("score_before_training") and self.global_step == 0 and self.val_sets:
            result = self.run_eval(self.val_sets, "val_init", num_beams=int(self.eval_settings.get("val_num_beams", 1)))
            for logger in self.loggers:
                logger.log_metrics(result.metrics, step=0)
            self._write_json("metrics_val_init.json", {"metrics": result.metrics, "signatures": result.signatures})

    def training_step(self, batch, batch_idx):
        out = self.model(**batch)
        loss = out.loss
        real = int(batch["attention_mask"].sum())
        self._tokens_seen += real
        self.log("train/loss", loss, prog_bar=True, on_step=True, on_epoch=False, batch_size=batch["input_ids"].shape[0])
        self.log("train/padding_efficiency", real / batch["attention_mask"].numel(), on_step=True, on_epoch=False)
        if self.trainer.is_last_batch or (batch_idx + 1) % self.trainer.accumulate_grad_batches == 0:
            self.loss_history.append((self.global_step, float(loss.detach())))
        return loss

    def configure_optimizers(self):
        opt = self.optimizer_factory(params=[p for p in self.parameters() if p.requires_grad])
        warmup = int(self.hparams.warmup_steps)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: min(1.0, (step + 1) / warmup) if warmup else 1.0)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    # ---- validation: greedy translation of a small dev subset --------------------------------------------
    def on_validation_epoch_start(self):
        self._val_out = {}

    def validation_step(self, batch, batch_idx):
        prompts = [self.val_prompts[i][2] for i in batch]
        hyps = translate(
            self.model, self.tokenizer, self.template, prompts,
            num_beams=int(self.eval_settings.get("val_num_beams", 1)),
            max_new_tokens=int(self.eval_settings.get("max_new_tokens", 150)),
            batch_tokens=int(self.eval_settings.get("batch_tokens", 4096)),
        )
        self._val_out.update(zip(batch, hyps))

    def on_validation_epoch_end(self):
        if self.trainer.sanity_checking or not self.val_prompts:
            return
        hyps = gather_translations(self._val_out, len(self.val_prompts), self.trainer.world_size)
        result = evaluation.score_translations(
            self.val_sets, self.val_prompts, hyps, "val", self.eval_settings.get("bleu_tokenize", "auto")
        )
        for k, v in result.metrics.items():  # identical on every rank: no sync needed
            self.log(k, v, on_step=False, on_epoch=True, sync_dist=False)
        self._write_json(f"val/step{self.global_step:06d}.json", {"metrics": result.metrics})

    # ---- helpers -------------------------------------------------------------------------------------
    def run_eval(self, sets, split: str, num_beams: int):
        result = evaluation.evaluate(
            self.model, self.tokenizer, self.template, sets, split=split,
            shots=int(self.eval_settings.get("shots", 0)), seed=int(self.eval_settings.get("seed", 0)),
            num_beams=num_beams, max_new_tokens=int(self.eval_settings.get("max_new_tokens", 150)),
            batch_tokens=int(self.eval_settings.get("batch_tokens", 4096)),
            bleu_tokenize=self.eval_settings.get("bleu_tokenize", "auto"),
            rank=self.global_rank, world_size=self.trainer.world_size,
        )
        return result

    def on_train_end(self):
        elapsed = time.perf_counter() - (self._t_start or time.perf_counter())
        losses = [l for _, l in self.loss_history]
        summary = {
            "steps": int(self.global_step),
            "loss_first": losses[0] if losses else None,
            "loss_last": losses[-1] if losses else None,
            # mean over the first and last tenth of the steps: less noisy than single steps
            "loss_first_10pct": _mean(losses[: max(1, math.ceil(len(losses) / 10))]),
            "loss_last_10pct": _mean(losses[-max(1, math.ceil(len(losses) / 10)):]),
            "loss_history": self.loss_history,
            "train_time_s": elapsed,
            "tokens_per_s_rank0": self._tokens_seen / elapsed if elapsed > 0 else None,
        }
        self._write_json("train_summary.json", summary)

    def _write_json(self, name: str, obj) -> None:
        if self.out_dir is None or self.global_rank != 0:
            return
        path = self.out_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _mean(xs):
    return sum(xs) / len(xs) if xs else None
