"""Checkpoints, in one place: where a run keeps them, which one is complete, newest or best, which one a run resumes
from (damaged ones set aside), how a (maybe sharded) checkpoint is read back into one dict, how its keys map onto
the Hugging Face model, and how it is checked against an architecture before any weights are loaded. Written by
:mod:`mfti_lightning.train.checkpoint_callbacks` (atomic, resumable); read by training (resume), ``mfti-export`` and
``mfti-eval``, always after :func:`~mfti_lightning.model.checkpoint_check.check_checkpoint` and with
``torch.load(weights_only=True)`` unless the user trusts the file (``trust_checkpoint=true``).

Layout: ``<run dir>/checkpoints/periodic/step<N>.ckpt`` (for resume) and ``<run dir>/checkpoints/best/*.ckpt``
(by ``eval.monitor``); an FSDP/FSDP2 checkpoint is a ``.ckpt`` directory written by torch.distributed.checkpoint
plus ``meta.pt`` (step, hyper-parameters, loop state). Damaged checkpoints are moved to ``checkpoints/damaged/``
(never deleted); a write in progress is ``.<name>.<pid>.partial`` beside its target (removed on the next start).
"""

from __future__ import annotations

import logging
import re
import shutil
import tempfile
from pathlib import Path

from mfti_lightning.core.errors import CheckpointError, ModelLoadError, UntrustedCheckpointError
from mfti_lightning.core.layout import CHECKPOINTS_DIR, HF_DIR
from mfti_lightning.model.checkpoint_check import DCP_METADATA, META, check_checkpoint

log = logging.getLogger(__name__)

STEP = re.compile(r"step(\d+)")
KINDS = ("periodic", "best")  # the checkpoint folders a run resumes and evaluates from
DAMAGED_DIR = "damaged"  # checkpoints/damaged/: damaged checkpoints set aside, never deleted
PARTIAL = ".partial"  # suffix of a file or folder still being written (a leftover when its writer was killed)
OLDER = "resuming from an older checkpoint instead."  # what follows when a damaged checkpoint is set aside
REVALIDATED = "its step is validated again after resuming."  # ... when it was a best checkpoint


def run_dir_of_checkpoint(path: str | Path) -> Path:
    """The run directory of ``<run dir>/checkpoints/<kind>/<name>.ckpt`` (for a checkpoint elsewhere: its folder)."""
    p = Path(path).resolve()
    return next((a.parent for a in p.parents if a.name == CHECKPOINTS_DIR), p.parent)


def checkpoint_complete(path: Path) -> bool:
    """A checkpoint file, or a sharded checkpoint directory whose last file (``meta.pt``) was written."""
    if path.is_file():
        return path.suffix == ".ckpt"
    return path.is_dir() and (path / META).exists() and (path / DCP_METADATA).exists()


def step_of(path: Path) -> int | None:
    m = STEP.search(Path(path).name)
    return int(m.group(1)) if m else None


def run_checkpoints(run_dir: Path) -> list[Path]:
    """The complete checkpoints under ``<run_dir>/checkpoints/{periodic,best}``, newest step last (periodic after
    best on a tie)."""
    found = []
    for kind in KINDS:
        for p in (Path(run_dir) / CHECKPOINTS_DIR / kind).glob("*.ckpt"):
            step = step_of(p)
            if step is not None and checkpoint_complete(p):
                found.append((step, kind == "periodic", p.stat().st_mtime, p))
    return [p for *_, p in sorted(found)]


def newest_checkpoint(run_dir: Path) -> Path | None:
    """The complete checkpoint with the highest step under ``<run_dir>/checkpoints`` (periodic wins ties)."""
    found = run_checkpoints(run_dir)
    return found[-1] if found else None


def resume_checkpoint(run_dir: Path, trust: bool = False, move: bool = True) -> Path | None:
    """The newest intact checkpoint of a run (None: start fresh). A damaged periodic checkpoint is moved to
    ``checkpoints/damaged/`` (``move``: rank 0 only) with a warning, and the next older one is tried. A damaged best
    checkpoint newer than that is set aside too (resuming recomputes it); an older one raises
    :class:`CheckpointError`: it holds weights no remaining checkpoint can recompute. A checkpoint that needs
    more than plain types raises :class:`UntrustedCheckpointError` (see ``check_checkpoint``)."""
    candidates = run_checkpoints(run_dir)
    resume = None
    while candidates and resume is None:
        path = candidates.pop()
        try:
            check_checkpoint(path, trust)
            resume = path
        except UntrustedCheckpointError:
            raise
        except CheckpointError as e:  # the run resumes from an older one: a best one's step is validated again
            set_aside(path, e, move, REVALIDATED if path.parent.name == "best" else OLDER)
    resume_step = step_of(resume) if resume is not None else -1
    for best in sorted((Path(run_dir) / CHECKPOINTS_DIR / "best").glob("*.ckpt")):
        if best == resume or not checkpoint_complete(best):
            continue
        try:
            check_checkpoint(best, trust)
        except UntrustedCheckpointError:
            raise
        except CheckpointError as e:
            if (step_of(best) or 0) > resume_step:
                set_aside(best, e, move, REVALIDATED)
                continue
            raise CheckpointError(
                f"{e} It is the best checkpoint so far and no remaining checkpoint can recompute it: restore it "
                f"from a backup, or move {best.parent} and {best.parent.parent / 'periodic'} away to train this "
                "run again from the start."
            ) from e
    return resume


def check_best_checkpoint(best: str | None, run_dir: Path, trust: bool = False) -> None:
    """The best checkpoint a completed run is re-evaluated from: damaged is a :class:`CheckpointError` naming the
    file and the fixes (its ``hf/`` export, a backup, training again)."""
    if not best:
        return
    try:
        check_checkpoint(best, trust)
    except UntrustedCheckpointError:
        raise
    except CheckpointError as e:
        raise CheckpointError(
            f"{e} Re-evaluating this completed run needs its best checkpoint. Evaluate the exported model instead "
            f"(mfti-eval ckpt_path={Path(run_dir) / HF_DIR} ...), restore the file from a backup, or delete "
            f"{run_dir} to train again."
        ) from e


def set_aside(path: Path, error: Exception, move: bool = True, then: str = "") -> Path | None:
    """Move a damaged checkpoint to ``<run dir>/checkpoints/damaged/<kind>-<name>`` (never deleted), warning
    with ``error`` and what happens ``then``."""
    if not move:
        return None
    dest_dir = path.parent.parent / DAMAGED_DIR
    dest_dir.mkdir(parents=True, exist_ok=True)
    dest = dest_dir / f"{path.parent.name}-{path.name}"
    n = 1
    while dest.exists():
        dest, n = dest_dir / f"{path.parent.name}-{path.name}.{n}", n + 1
    try:
        path.rename(dest)
    except FileNotFoundError:  # another rank of this job moved it first
        return None
    log.warning("%s Moved it to %s; %s", error, dest, then or OLDER)
    return dest


def clean_partial_writes(run_dir: Path) -> list[Path]:
    """Remove what killed writes left in a run directory: ``.*.partial`` files and folders (checkpoints, the
    ``hf/`` export), the earlier writer's ``*.ckpt.tmp``, consolidation folders of ``load_checkpoint`` and sharded
    checkpoint folders without their last file (``meta.pt``). Returns what was removed."""
    run_dir = Path(run_dir)
    found = list(run_dir.glob(f".*{PARTIAL}"))
    for kind in KINDS:
        folder = run_dir / CHECKPOINTS_DIR / kind
        found += [*folder.glob(f".*{PARTIAL}"), *folder.glob("*.ckpt.tmp"), *folder.glob(".consolidate-*")]
        found += [p for p in folder.glob("step*.ckpt") if p.is_dir() and not checkpoint_complete(p)]
    for p in found:
        shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
        log.info("Removed %s, left by a write that was killed.", p)
    return found


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


def load_checkpoint(path: str | Path, trust: bool = False) -> dict:
    """The checkpoint as one dict (``state_dict``, ``hyper_parameters``, ...), checked first and loaded with
    ``weights_only=True`` unless ``trust``; shards consolidated on CPU with torch.distributed.checkpoint's public
    ``dcp_to_torch_save`` (into a temporary folder next to the checkpoint: same filesystem, removed afterwards)."""
    import torch

    path = Path(path)
    if not path.is_file() and not (path / DCP_METADATA).exists():
        raise FileNotFoundError(f"{path} is neither a checkpoint file nor a torch.distributed.checkpoint directory.")
    check_checkpoint(path, trust)
    if path.is_file():
        return torch.load(path, map_location="cpu", weights_only=not trust)
    from torch.distributed.checkpoint.format_utils import dcp_to_torch_save

    with tempfile.TemporaryDirectory(prefix=".consolidate-", dir=path.parent) as tmp:
        dcp_to_torch_save(path, Path(tmp) / "full.pt")  # its byte items were checked above
        ckpt = torch.load(Path(tmp) / "full.pt", map_location="cpu", weights_only=not trust)
    if (path / META).exists():
        ckpt.update(torch.load(path / META, map_location="cpu", weights_only=not trust))
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


def model_from_checkpoint(path: str | Path, ckpt: dict | None = None, trust: bool = False):
    """A fresh (unsharded) model with the checkpoint's weights, built as the training run built it."""
    from mfti_lightning.model.modeling import load_model

    ckpt = ckpt if ckpt is not None else load_checkpoint(path, trust)
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


def model_state_of_file(path: Path, trust: bool = False) -> dict:
    """The model weights of a checkpoint file, keys mapped as :func:`model_state` (memory-mapped; checked first,
    ``weights_only=True`` unless ``trust``)."""
    import torch

    check_checkpoint(path, trust)
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=not trust, mmap=True)
    except Exception as e:
        raise ModelLoadError(f"ckpt_path={path}: not a readable PyTorch/Lightning checkpoint ({e}).") from e
    state = ckpt.get("state_dict", ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(state, dict) or not state:
        raise ModelLoadError(f"ckpt_path={path}: no state_dict inside (keys: {list(ckpt)[:8]}).")
    return model_state(state)  # the same key mapping as mfti-export (model. prefix, wrapper prefixes)


def check_state_dict(ckpt_file: Path, model_path: str, trust: bool = False) -> None:
    """Keys and shapes of the checkpoint against the architecture of ``model_path`` (meta device)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    state = model_state_of_file(Path(ckpt_file), trust)
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
