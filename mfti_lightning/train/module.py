"""The mFTI LightningModule: causal-LM finetuning of a Hugging Face model, validated by translating."""

from __future__ import annotations

import logging
import math
import time
import warnings
from pathlib import Path

import pytorch_lightning as pl
import torch

from mfti_lightning.core import layout
from mfti_lightning.core.results import write_json_atomic
from mfti_lightning.core.template import Template
from mfti_lightning.data.prepare import EvalSet
from mfti_lightning.eval import decode_and_score
from mfti_lightning.eval.generation import gather_translations, translate
from mfti_lightning.model.modeling import load_model
from mfti_lightning.train import throughput

log = logging.getLogger(__name__)
# MFTIModule.on_before_batch_transfer counts tokens on the CPU batch; the datamodule has no such hook, so Lightning's
# notice that the module's hook is used is expected
warnings.filterwarnings("ignore", message="You have overridden `on_before_batch_transfer` in `LightningModule`")


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
        peft: dict | None = None,
        shape: dict | None = None,
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["optimizer", "val_sets"])
        self.template = Template.from_dict(template)
        self.optimizer_factory = optimizer
        self.model = None
        self.val_sets = val_sets or []
        # tasks.train.build_module: DecodeSettings.record() plus val_num_beams, score_before_training, select
        self.eval_settings = dict(eval_settings or {})
        self.decode = decode_and_score.DecodeSettings.from_record(eval_settings) if eval_settings else None
        self.out_dir = Path(out_dir) if out_dir else None
        self.val_prompts = (
            decode_and_score.build_prompts(self.val_sets, self.template, self.decode.shots, self.decode.seed)
            if self.val_sets
            else []
        )
        self._val_out: dict[int, str] = {}
        self.tokenizer = None
        self.loss_history: list[tuple[int, float]] = []
        self._pending_losses: list = []  # (step, loss tensor on the device): read at logging intervals
        self._tokens_seen = 0
        self._t_start = None
        self.counter = throughput.Counter(shape)
        self.timer = throughput.BatchTimer()
        self._batch_stats: dict = {}

    # ---- model ---------------------------------------------------------------------------------------
    @property
    def attached_trainer(self):
        """The Trainer running this module, or None (Lightning's public ``trainer`` raises when there is none)."""
        try:
            return self.trainer
        except RuntimeError:
            return None

    def configure_model(self):
        if self.model is not None:
            return
        hp = self.hparams
        self.model = load_model(hp.model_path, hp.dtype, hp.attn_implementation, hp.get("peft"))
        self.model.train()  # transformers 5 returns models in eval mode
        if hp.gradient_checkpointing:
            self.model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
            if hp.get("peft"):
                self.model.enable_input_require_grads()
            self.model.config.use_cache = False
        trainer = self.attached_trainer
        if trainer is not None and type(trainer.strategy).__name__ == "ModelParallelStrategy":
            self._fully_shard()

    def _fully_shard(self):
        """FSDP2: one ``fully_shard`` unit per transformer block (``_no_split_modules``), then the root."""
        from torch.distributed.fsdp import fully_shard

        mesh = self.device_mesh["data_parallel"]
        names = set(getattr(_base_model(self.model), "_no_split_modules", None) or [])
        blocks = [m for m in self.model.modules() if type(m).__name__ in names]
        if not blocks:
            raise RuntimeError(
                f"trainer=fsdp2: no module of the classes {sorted(names)} to shard in {type(self.model).__name__}."
            )
        for block in blocks:
            fully_shard(block, mesh=mesh)
        fully_shard(self.model, mesh=mesh)

    def forward(self, **batch):
        return self.model(**batch)

    # ---- training ------------------------------------------------------------------------------------
    def on_train_start(self):
        self._t_start = time.perf_counter()
        if self.val_sets and self.eval_settings["score_before_training"] and self.global_step == 0:
            result = self.run_eval(
                self.val_sets, "val_init", num_beams=self.val_beams(), extraction=self.val_extraction()
            )
            if self.reference_selection():
                hyps = {d: [row["hypothesis"] for row in rows] for d, rows in result.rows.items()}
                decode_and_score.add_pooled_score(result, self.val_sets, hyps, "val_init", self.bleu_tokenize())
            for logger in self.loggers:
                logger.log_metrics(result.metrics, step=0)
            self._write_json(layout.VAL_INIT_FILE, {"metrics": result.metrics, "signatures": result.signatures})
            self._t_start = time.perf_counter()

    # No host synchronisation per micro-batch: token counts and the padding pattern are read from the batch's
    # CPU tensors before it moves to the accelerator, batch time is measured by CUDA events read at logging
    # intervals, and losses stay on the device until then.
    def on_before_batch_transfer(self, batch, dataloader_idx):
        trainer = self.attached_trainer
        if trainer is not None and trainer.training and isinstance(batch, dict) and "attention_mask" in batch:
            mask = batch["attention_mask"]
            lengths = mask.sum(dim=1)
            self.counter.add_lengths(lengths, mask.shape[1])
            real = int(lengths.sum())
            self._tokens_seen += real
            self._batch_stats = {"padding_efficiency": real / mask.numel(), "right_padded": bool(_right_padded(mask))}
        return batch

    def on_train_batch_start(self, batch, batch_idx):
        self.timer.start(self.device)

    def on_train_batch_end(self, outputs, batch, batch_idx):
        self.timer.stop(self.device)
        every = max(int(getattr(self.trainer, "log_every_n_steps", 50) or 50), 1)
        if self.trainer.is_last_batch or (self.global_step % every == 0 and self._pending_losses):
            self._read_device_values()

    def _read_device_values(self) -> None:
        """The one wait for the device: pending batch times and losses, read together."""
        self.counter.seconds = self.timer.fold()
        if self._pending_losses:
            values = torch.stack([v for _, v in self._pending_losses]).float().cpu().tolist()
            self.loss_history += [(step, v) for (step, _), v in zip(self._pending_losses, values)]
            self._pending_losses = []

    def training_step(self, batch, batch_idx):
        mask = batch["attention_mask"]
        inputs = batch
        if self.hparams.attn_implementation == "sdpa" and self._batch_stats.get("right_padded"):
            # right padding under a causal mask: no real token sees a pad, so the plain causal pattern gives the
            # same loss (pads carry label -100) and lets SDPA use its fused causal kernels
            inputs = {k: v for k, v in batch.items() if k != "attention_mask"}
        out = self.model(**inputs)
        loss = out.loss
        self.log("train/loss", loss, prog_bar=True, on_step=True, on_epoch=False, batch_size=mask.shape[0])
        if "padding_efficiency" in self._batch_stats:
            self.log("train/padding_efficiency", self._batch_stats["padding_efficiency"], on_step=True, on_epoch=False)
        if self.trainer.is_last_batch or (batch_idx + 1) % self.trainer.accumulate_grad_batches == 0:
            self._pending_losses.append((self.global_step, loss.detach()))
        return loss

    def configure_optimizers(self):
        opt = self.optimizer_factory(params=[p for p in self.parameters() if p.requires_grad])
        warmup = int(self.hparams.warmup_steps)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: min(1.0, (step + 1) / warmup) if warmup else 1.0)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    # ---- validation: greedy translation of a small dev subset --------------------------------------------
    def on_save_checkpoint(self, checkpoint):
        self._read_device_values()
        checkpoint["mfti_loss_history"] = list(self.loss_history)  # a resumed run reports the whole curve

    def on_load_checkpoint(self, checkpoint):
        self.loss_history = [tuple(x) for x in checkpoint.get("mfti_loss_history", [])]

    def on_validation_epoch_start(self):
        self._val_out = {}

    def validation_step(self, batch, batch_idx):
        prompts = [self.val_prompts[i][2] for i in batch]
        hyps = translate(
            self.model,
            self.tokenizer,
            self.template,
            prompts,
            num_beams=self.val_beams(),
            max_new_tokens=self.decode.max_new_tokens,
            batch_tokens=self.decode.batch_tokens,
            extraction=self.val_extraction(),
        )
        self._val_out.update(zip(batch, hyps))

    def on_validation_epoch_end(self):
        if self.trainer.sanity_checking or not self.val_prompts:
            return
        hyps = gather_translations(self._val_out, len(self.val_prompts), self.trainer.world_size)
        result = decode_and_score.score_translations(self.val_sets, self.val_prompts, hyps, "val", self.bleu_tokenize())
        if self.reference_selection():  # one corpus score over all directions pooled (eval.select=reference)
            by_dir = {d: [row["hypothesis"] for row in rows] for d, rows in result.rows.items()}
            decode_and_score.add_pooled_score(result, self.val_sets, by_dir, "val", self.bleu_tokenize())
        for k, v in result.metrics.items():  # identical on every rank: no sync needed
            self.log(k, v, on_step=False, on_epoch=True, sync_dist=False)
        self._write_json(f"val/step{self.global_step:06d}.json", {"metrics": result.metrics})

    # ---- helpers -------------------------------------------------------------------------------------
    def reference_selection(self) -> bool:
        """``eval.select=reference``: the reference code's checkpoint choice (see conf/train.yaml)."""
        return self.eval_settings["select"] == "reference"

    def val_beams(self) -> int:
        return self.decode.num_beams if self.reference_selection() else self.eval_settings["val_num_beams"]

    def val_extraction(self) -> str:
        return "reference" if self.reference_selection() else "clean"

    def bleu_tokenize(self) -> str:
        return self.decode.bleu_tokenize

    def run_eval(self, sets, split: str, num_beams: int, extraction: str = "clean"):
        result = decode_and_score.evaluate(
            self.model,
            self.tokenizer,
            self.template,
            sets,
            split=split,
            # validation's decoding: no error analysis, no COMET, the whole prompt
            decode=self.decode.replace(
                num_beams=num_beams,
                extraction=extraction,
                analyze_errors=False,
                comet_model=None,
                max_prompt_tokens=None,
            ),
            rank=self.global_rank,
            world_size=self.trainer.world_size,
        )
        return result

    def on_fit_end(self):
        # a run resumed from its last step trains nothing and gets no on_train_end: the summary of its steps (loss
        # history restored from the checkpoint) still belongs in the run directory, unless the attempt that trained
        # them wrote it
        if self._t_start is not None:
            return
        done = self.out_dir is not None and _summary_steps(self.out_dir) == int(self.global_step)
        if not self.trainer.strategy.broadcast(done):  # rank 0 decides: on_train_end is a collective
            self.on_train_end()

    def on_train_end(self):
        self._read_device_values()
        elapsed = time.perf_counter() - (self._t_start or time.perf_counter())
        tp = self.throughput_report()
        losses = [loss for _, loss in self.loss_history]
        summary = {
            "steps": int(self.global_step),
            "loss_first": losses[0] if losses else None,
            "loss_last": losses[-1] if losses else None,
            # mean over the first and last tenth of the steps: less noisy than single steps
            "loss_first_10pct": _mean(losses[: max(1, math.ceil(len(losses) / 10))]),
            "loss_last_10pct": _mean(losses[-max(1, math.ceil(len(losses) / 10)) :]),
            "loss_history": self.loss_history,
            "train_time_s": elapsed,
            "tokens_per_s_rank0": self._tokens_seen / elapsed if elapsed > 0 else None,
            "throughput": tp,
        }
        if self.global_rank == 0:
            log.info(
                "throughput: %s",
                {
                    k: v
                    for k, v in tp.items()
                    if k in ("tokens_per_s", "samples_per_s", "mfu", "padding_efficiency", "peak_memory_gb")
                },
            )
        for logger in self.loggers:
            logger.log_metrics(
                {f"throughput/{k}": v for k, v in tp.items() if isinstance(v, (int, float)) and v is not None},
                step=int(self.global_step),
            )
        self._write_json(layout.TRAIN_SUMMARY_FILE, summary)

    def throughput_report(self) -> dict:
        """Counters summed over ranks (a collective: every rank calls it) -> the results.json record."""
        totals = torch.tensor(self.counter.as_list(), dtype=torch.float64)
        trainer = self.attached_trainer
        world = trainer.world_size if trainer is not None else 1
        if world > 1:
            totals = trainer.strategy.reduce(totals.to(self.device), reduce_op="sum").cpu()
        totals = totals.tolist()
        seconds = totals[4] / world  # mean per-rank training time (ranks step in lockstep)
        device, peak = throughput.device_info(self.device)
        n_total = sum(p.numel() for p in self.parameters())
        n_train = sum(p.numel() for p in self.parameters() if p.requires_grad)
        from pytorch_lightning.strategies import FSDPStrategy

        if world > 1 and isinstance(self.trainer.strategy, FSDPStrategy):
            counts = self.trainer.strategy.reduce(
                torch.tensor([n_total, n_train], dtype=torch.float64, device=self.device), reduce_op="sum"
            )
            n_total, n_train = (int(x) for x in counts.tolist())  # FSDP1 shards: local numels sum to the total
        # (FSDP2 parameters are DTensors whose numel() is already the global size)
        return throughput.report(
            totals, seconds, world, device, peak, throughput.peak_memory_gb(self.device), n_total, n_train
        )

    def _write_json(self, name: str, obj) -> None:
        if self.out_dir is None or self.global_rank != 0:
            return
        write_json_atomic(self.out_dir / name, obj)


def _right_padded(mask: torch.Tensor) -> torch.Tensor:
    """True when every row is ones followed by zeros."""
    return (mask[:, 1:] <= mask[:, :-1]).all()


def _base_model(model):
    """The transformers model under a peft wrapper."""
    get = getattr(model, "get_base_model", None)
    return get() if callable(get) else model


def _summary_steps(out_dir: Path):
    import json

    try:  # missing or unreadable: None
        return json.loads((out_dir / layout.TRAIN_SUMMARY_FILE).read_text()).get("steps")
    except (OSError, ValueError):
        return None


def _mean(xs):
    return sum(xs) / len(xs) if xs else None
