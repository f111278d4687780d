"""Checkpoints, in one place: where a run keeps them, which one is complete, newest or best, how a (maybe sharded)
checkpoint is read back into one dict, how its keys map onto the Hugging Face model, and how it is checked against
an architecture before any weights are loaded. Written by :mod:`mfti_lightning.train.checkpointing` (atomic,
resumable); read by training (resume), ``mfti-export`` and ``mfti-eval``.

Layout: ``<run dir>/checkpoints/periodic/step<N>.ckpt`` (for resume) and ``<run dir>/checkpoints/best/*.ckpt``
(by ``eval.monitor``); an FSDP/FSDP2 checkpoint is a ``.ckpt`` directory written by torch.distributed.checkpoint
plus ``meta.pt`` (step, hyper-parameters, loop state).
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

from mfti_lightning.core.errors import ModelLoadError
from mfti_lightning.core.layout import CHECKPOINTS_DIR

META = "meta.pt"  # the non-tensor part of a sharded checkpoint
STEP = re.compile(r"step(\d+)")


def run_dir_of_checkpoint(path: str | Path) -> Path:
    """The run directory of ``<run dir>/checkpoints/<kind>/<name>.ckpt`` (for a checkpoint elsewhere: its folder)."""
    p = Path(path).resolve()
    return next((a.parent for a in p.parents if a.name == CHECKPOINTS_DIR), p.parent)


def checkpoint_complete(path: Path) -> bool:
    """A checkpoint file, or a sharded checkpoint directory whose last file (``meta.pt``) was written."""
    if path.is_file():
        return path.suffix == ".ckpt"
    return path.is_dir() and (path / META).exists() and (path / ".metadata").exists()


def newest_checkpoint(run_dir: Path) -> Path | None:
    """The complete checkpoint with the highest step under ``<run_dir>/checkpoints`` (periodic wins ties)."""
    root = Path(run_dir) / CHECKPOINTS_DIR
    if not root.is_dir():
        return None
    found = []
    for p in root.glob("*/*.ckpt"):
        m = STEP.search(p.name)
        if m and checkpoint_complete(p):
            found.append((int(m.group(1)), p.parent.name == "periodic", p.stat().st_mtime, p))
    return max(found)[3] if found else None


def pick_checkpoint(path: Path) -> Path:
    """A checkpoint path as given, or for a run directory its best checkpoint (else the newest one)."""
    if path.suffix == ".ckpt":
        return path
    best = sorted(p for p in (path / CHECKPOINTS_DIR / "best").glob("*.ckpt") if checkpoint_complete(p))
    if best:
        return best[-1]
    newest = newest_checkpoint(path)
    if newest is None:
        raise FileNotFoundError(f"No checkpoint under {path / CHECKPOINTS_DIR}.")
    return newest


def load_checkpoint(path: str | Path) -> dict:
    """The checkpoint as one dict (``state_dict``, ``hyper_parameters``, ...), shards consolidated on CPU with
    torch.distributed.checkpoint's public ``dcp_to_torch_save`` (into a temporary file next to the checkpoint)."""
    import torch

    path = Path(path)
    if path.is_file():
        return torch.load(path, map_location="cpu", weights_only=False)
    if not (path / ".metadata").exists():
        raise FileNotFoundError(f"{path} is neither a checkpoint file nor a torch.distributed.checkpoint directory.")
    from torch.distributed.checkpoint.format_utils import dcp_to_torch_save

    with tempfile.TemporaryDirectory(prefix=".consolidate-", dir=path.parent) as tmp:
        dcp_to_torch_save(path, Path(tmp) / "full.pt")
        ckpt = torch.load(Path(tmp) / "full.pt", map_location="cpu", weights_only=False)
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
            k = k[len("model.") :]
        out[
            k.replace("_orig_mod.", "").replace("_fsdp_wrapped_module.", "").replace("_checkpoint_wrapped_module.", "")
        ] = v
    return out


def model_from_checkpoint(path: str | Path, ckpt: dict | None = None):
    """A fresh (unsharded) model with the checkpoint's weights, built as the training run built it."""
    from mfti_lightning.model.modeling import load_model

    ckpt = ckpt if ckpt is not None else load_checkpoint(path)
    hp = ckpt.get("hyper_parameters") or {}
    if "model_path" not in hp:
        raise ValueError(f"{path}: no mFTI hyper_parameters in the checkpoint; was it written by mfti-train?")
    model = load_model(
        hp["model_path"], hp.get("dtype", "float32"), hp.get("attn_implementation", "eager"), hp.get("peft")
    )
    state = model_state(ckpt["state_dict"])
    missing, unexpected = model.load_state_dict(state, strict=False)
    tied = set(getattr(model, "_tied_weights_keys", None) or {})
    missing = [k for k in missing if not any(k.endswith(t) for t in tied)]
    if missing or unexpected:
        raise RuntimeError(
            f"{path}: checkpoint does not match the model: missing {missing[:5]}, unexpected {unexpected[:5]}"
        )
    return model


def model_state_of_file(path: Path) -> dict:
    """The model weights of a checkpoint file, keys mapped as :func:`model_state` (memory-mapped)."""
    import torch

    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False, mmap=True)
    except Exception as e:
        raise ModelLoadError(f"ckpt_path={path}: not a readable PyTorch/Lightning checkpoint ({e}).") from e
    state = ckpt.get("state_dict", ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(state, dict) or not state:
        raise ModelLoadError(f"ckpt_path={path}: no state_dict inside (keys: {list(ckpt)[:8]}).")
    return model_state(state)  # the same key mapping as mfti-export (model. prefix, wrapper prefixes)


def check_state_dict(ckpt_file: Path, model_path: str) -> None:
    """Keys and shapes of the checkpoint against the architecture of ``model_path`` (meta device)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    state = model_state_of_file(Path(ckpt_file))
    config = AutoConfig.from_pretrained(model_path)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in state.items()}
    missing = sorted(set(expected) - set(got))
    unexpected = sorted(set(got) - set(expected))
    wrong = sorted(k for k in set(expected) & set(got) if expected[k] != got[k])
    ignorable = {k for k in missing if k.endswith("lm_head.weight")}  # tied to the embeddings
    missing = [k for k in missing if k not in ignorable]
    if missing or unexpected or wrong:
        detail = "; ".join(
            f"{label}: {items[:3]}{' ...' if len(items) > 3 else ''} ({len(items)})"
            for label, items in (
                ("missing", missing),
                ("unexpected", unexpected),
                ("shape mismatch", [f"{k} {got[k]} vs {expected[k]}" for k in wrong]),
            )
            if items
        )
        raise ModelLoadError(
            f"ckpt_path={ckpt_file} does not match model.name_or_path={model_path} ({detail}). Pass the model= "
            "preset the checkpoint was trained from (see its run's results.json: config.model)."
        )
