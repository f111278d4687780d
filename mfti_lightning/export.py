"""``mfti-export``: a training checkpoint -> a Hugging Face directory (model, tokenizer, template.json).

Reads single-device and DDP checkpoints (one ``.ckpt`` file) and FSDP / FSDP2 sharded checkpoints (a ``.ckpt``
directory written by torch.distributed.checkpoint), consolidating the shards on CPU in one process. LoRA adapters
are merged into the base weights; XGLM is saved with transformers' eager attention so the directory loads with a
plain ``from_pretrained`` anywhere.

    mfti-export outputs/train/runs/<run>              # best checkpoint of a run -> <run>/hf
    mfti-export <run>/checkpoints/periodic/step000250.ckpt --out exported/
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

log = logging.getLogger(__name__)
META = "meta.pt"


def load_checkpoint(path: str | Path) -> dict:
    """The checkpoint as one dict (``state_dict``, ``hyper_parameters``, ...), shards consolidated."""
    import torch

    path = Path(path)
    if path.is_file():
        return torch.load(path, map_location="cpu", weights_only=False)
    if not (path / ".metadata").exists():
        raise FileNotFoundError(f"{path} is neither a checkpoint file nor a torch.distributed.checkpoint directory.")
    from torch.distributed.checkpoint import FileSystemReader
    from torch.distributed.checkpoint.format_utils import _EmptyStateDictLoadPlanner
    from torch.distributed.checkpoint.state_dict_loader import _load_state_dict

    ckpt: dict = {}
    _load_state_dict(ckpt, storage_reader=FileSystemReader(path), planner=_EmptyStateDictLoadPlanner(),
                     no_dist=True)
    if (path / META).exists():
        ckpt.update(torch.load(path / META, map_location="cpu", weights_only=False))
    if "state_dict" not in ckpt and "model" in ckpt:  # FSDPStrategy (FSDP1) sharded layout
        ckpt["state_dict"] = ckpt.pop("model")
    return ckpt


def model_state(state_dict: dict) -> dict:
    """LightningModule keys (``model.<hf key>``) -> keys of the wrapped Hugging Face (or peft) model."""
    out = {}
    for k, v in state_dict.items():
        if k.startswith("model."):
            k = k[len("model."):]
        out[k.replace("_orig_mod.", "").replace("_fsdp_wrapped_module.", "").replace(
            "_checkpoint_wrapped_module.", "")] = v
    return out


def model_from_checkpoint(path: str | Path, ckpt: dict | None = None):
    """A fresh (unsharded) model with the checkpoint's weights, built as the training run built it."""
    from mfti_lightning.modeling import load_model

    ckpt = ckpt if ckpt is not None else load_checkpoint(path)
    hp = ckpt.get("hyper_parameters") or {}
    if "model_path" not in hp:
        raise ValueError(f"{path}: no mFTI hyper_parameters in the checkpoint; was it written by mfti-train?")
    model = load_model(hp["model_path"], hp.get("dtype", "float32"), hp.get("attn_implementation", "eager"),
                       hp.get("peft"))
    state = model_state(ckpt["state_dict"])
    missing, unexpected = model.load_state_dict(state, strict=False)
    tied = set(getattr(model, "_tied_weights_keys", None) or {})
    missing = [k for k in missing if not any(k.endswith(t) for t in tied)]
    if missing or unexpected:
        raise RuntimeError(f"{path}: checkpoint does not match the model: missing {missing[:5]}, "
                           f"unexpected {unexpected[:5]}")
    return model


def save_hf(model, out_dir: str | Path, tokenizer, template) -> tuple[Path, object]:
    """``save_pretrained`` model (LoRA merged, eager attention) + tokenizer + template.json into ``out_dir``.

    Returns the directory and the model to keep using (the merged one for peft models; sdpa stays on)."""
    from mfti_lightning import xglm_sdpa

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
    from mfti_lightning.modeling import load_tokenizer
    from mfti_lightning.template import Template

    ckpt = load_checkpoint(ckpt_path)
    hp = ckpt["hyper_parameters"]
    model = model_from_checkpoint(ckpt_path, ckpt)
    tok_src = tokenizer_dir
    if tok_src is None:
        run_tok = Path(ckpt_path).resolve().parents[2] / "tokenizer"  # <run>/checkpoints/<kind>/<ckpt>
        tok_src = run_tok if (run_tok / "tokenizer_config.json").exists() else hp["model_path"]
    out, _ = save_hf(model, out_dir, load_tokenizer(str(tok_src)), Template.from_dict(hp["template"]))
    log.info("Exported %s -> %s", ckpt_path, out)
    return out


def pick_checkpoint(path: Path) -> Path:
    """A checkpoint path as given, or for a run directory its best checkpoint (else the newest one)."""
    from mfti_lightning.trainer import checkpoint_complete, newest_checkpoint

    if path.suffix == ".ckpt":
        return path
    best = sorted(p for p in (path / "checkpoints" / "best").glob("*.ckpt") if checkpoint_complete(p))
    if best:
        return best[-1]
    newest = newest_checkpoint(path)
    if newest is None:
        raise FileNotFoundError(f"No checkpoint under {path / 'checkpoints'}.")
    return newest


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="mfti-export", description=__doc__.split("\n\n")[0])
    ap.add_argument("checkpoint", type=Path, help="a .ckpt file or directory, or a run directory (best checkpoint)")
    ap.add_argument("--out", type=Path, default=None, help="output directory (default: <run dir>/hf)")
    ap.add_argument("--tokenizer", type=Path, default=None, help="tokenizer directory (default: the run's)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        ckpt = pick_checkpoint(args.checkpoint)
    except FileNotFoundError as e:
        print(f"mfti-export: {e}", file=sys.stderr)
        return 2
    out = args.out or (ckpt.resolve().parents[2] / "hf")
    export(ckpt, out, args.tokenizer)
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
