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
from pathlib import Path

from mfti_lightning.core.layout import TOKENIZER_DIR

log = logging.getLogger(__name__)


def save_hf(model, out_dir: str | Path, tokenizer, template) -> tuple[Path, object]:
    """``save_pretrained`` model (LoRA merged, eager attention) + tokenizer + template.json into ``out_dir``.

    Returns the directory and the model to keep using (the merged one for peft models; sdpa stays on)."""
    from mfti_lightning.model import xglm_sdpa

    if hasattr(model, "merge_and_unload"):  # peft: fold the adapters into the base weights
        model = model.merge_and_unload()
    sdpa = xglm_sdpa.uses_sdpa(model)
    xglm_sdpa.disable(model)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        model.save_pretrained(out_dir)
    finally:
        if sdpa:
            xglm_sdpa.enable(model)
    tokenizer.save_pretrained(out_dir)
    template.save(out_dir)
    return out_dir, model


def export(ckpt_path: str | Path, out_dir: str | Path, tokenizer_dir: str | Path | None = None) -> Path:
    """Write ``out_dir`` with ``save_pretrained`` model + tokenizer + template.json; returns it."""
    from mfti_lightning.core.template import Template
    from mfti_lightning.model.checkpoints import load_checkpoint, model_from_checkpoint, run_dir_of_checkpoint
    from mfti_lightning.model.modeling import load_tokenizer

    ckpt = load_checkpoint(ckpt_path)
    hp = ckpt["hyper_parameters"]
    model = model_from_checkpoint(ckpt_path, ckpt)
    tok_src = tokenizer_dir
    if tok_src is None:
        run_tok = run_dir_of_checkpoint(ckpt_path) / TOKENIZER_DIR
        tok_src = run_tok if (run_tok / "tokenizer_config.json").exists() else hp["model_path"]
    out, _ = save_hf(model, out_dir, load_tokenizer(str(tok_src)), Template.from_dict(hp["template"]))
    log.info("Exported %s -> %s", ckpt_path, out)
    return out
