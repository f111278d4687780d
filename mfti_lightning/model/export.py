"""``mfti-export``: a training checkpoint -> a Hugging Face directory (model, tokenizer, template.json).

Reads single-device and DDP checkpoints (one ``.ckpt`` file) and FSDP / FSDP2 sharded checkpoints (a ``.ckpt``
directory written by torch.distributed.checkpoint), consolidating the shards on CPU in one process. LoRA adapters
are merged into the base weights; XGLM is saved with transformers' eager attention so the directory loads with a
plain ``from_pretrained`` anywhere.

    mfti-export outputs/train/runs/<run>              # best checkpoint of a run -> <run>/hf
    mfti-export <run>/checkpoints/periodic/step000250.ckpt --out exported/
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from mfti_lightning.core.layout import TOKENIZER_DIR
from mfti_lightning.model.checkpoint_files import PARTIAL

log = logging.getLogger(__name__)


def save_hf(model, out_dir: str | Path, tokenizer, template, replace: bool = False) -> tuple[Path, object]:
    """``save_pretrained`` model (LoRA merged, eager attention) + tokenizer + template.json into ``out_dir``.
    ``replace``: written into ``.<name>.partial`` beside it, then swapped in for the old ``out_dir``, so a kill
    mid-export leaves the old directory or none, never a mix (leftovers: ``model.checkpoint_files.clean_partial_writes``).

    Returns the directory and the model to keep using (the merged one for peft models; sdpa stays on)."""
    from mfti_lightning.model import xglm_sdpa

    if hasattr(model, "merge_and_unload"):  # peft: fold the adapters into the base weights
        model = model.merge_and_unload()
    sdpa = xglm_sdpa.uses_sdpa(model)
    xglm_sdpa.disable(model)
    out_dir = Path(out_dir)
    target = out_dir.with_name(f".{out_dir.name}{PARTIAL}") if replace else out_dir
    if replace:
        shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True, exist_ok=True)
    try:
        model.save_pretrained(target)
    finally:
        if sdpa:
            xglm_sdpa.enable(model)
    tokenizer.save_pretrained(target)
    template.save(target)
    if replace:
        old = out_dir.with_name(f".{out_dir.name}.old{PARTIAL}")
        if out_dir.exists():
            shutil.rmtree(old, ignore_errors=True)
            out_dir.rename(old)
        target.rename(out_dir)
        shutil.rmtree(old, ignore_errors=True)
    return out_dir, model


def export(
    ckpt_path: str | Path, out_dir: str | Path, tokenizer_dir: str | Path | None = None, trust: bool = False
) -> Path:
    """Write ``out_dir`` with ``save_pretrained`` model + tokenizer + template.json; returns it. The checkpoint is
    checked and loaded with ``weights_only=True`` unless ``trust`` (see ``model.checkpoint_check``)."""
    from mfti_lightning.core.template import Template
    from mfti_lightning.model.checkpoint_files import load_checkpoint, model_from_checkpoint, run_dir_of_checkpoint
    from mfti_lightning.model.modeling import load_tokenizer

    ckpt = load_checkpoint(ckpt_path, trust)
    hp = ckpt["hyper_parameters"]
    model = model_from_checkpoint(ckpt_path, ckpt)
    tok_src = tokenizer_dir
    if tok_src is None:
        run_tok = run_dir_of_checkpoint(ckpt_path) / TOKENIZER_DIR
        tok_src = run_tok if (run_tok / "tokenizer_config.json").exists() else hp["model_path"]
    out, _ = save_hf(model, out_dir, load_tokenizer(str(tok_src)), Template.from_dict(hp["template"]))
    log.info("Exported %s -> %s", ckpt_path, out)
    return out
