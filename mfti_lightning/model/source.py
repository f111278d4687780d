"""Which weights and tokenizer an evaluation loads (``model=`` and ``ckpt_path=`` of mfti-eval), resolved and
checked before anything is loaded."""

from __future__ import annotations

from pathlib import Path

from mfti_lightning.core.errors import ModelLoadError
from mfti_lightning.core.layout import TOKENIZER_DIR
from mfti_lightning.model.checkpoint_files import check_state_dict, run_dir_of_checkpoint
from mfti_lightning.model.modeling import check_loadable

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "sentencepiece.bpe.model")


def resolve_checkpoint(cfg) -> dict:
    """What to load: ``{"kind": hub|dir|lightning, "model_path", "tokenizer_path", "ckpt_file", "run_dir"}``.
    A Lightning checkpoint is checked against the base model's config here (keys and shapes, on the meta
    device: no weights are loaded)."""
    ckpt = cfg.ckpt_path
    if not ckpt:
        path = check_loadable(cfg.model)
        return {
            "kind": "hub" if not Path(path).is_dir() else "dir",
            "model_path": path,
            "tokenizer_path": path,
            "ckpt_file": None,
            "run_dir": Path(path) if Path(path).is_dir() else None,
        }
    path = Path(str(ckpt)).expanduser()
    if not path.exists():
        raise ModelLoadError(f"ckpt_path={ckpt} does not exist.")
    if path.is_dir():
        return hf_directory(cfg, path)
    base = check_loadable(cfg.model)
    # damaged or needing more than plain types (unless trust_checkpoint=true): CheckpointError now, nothing loaded
    check_state_dict(path, base, cfg.trust_checkpoint)
    # <run dir>/checkpoints/{periodic,best}/<name>.ckpt (or a checkpoint file anywhere else)
    run_dir = run_dir_of_checkpoint(path)
    tok = run_dir / TOKENIZER_DIR
    return {
        "kind": "lightning",
        "model_path": base,
        "ckpt_file": str(path),
        "run_dir": run_dir,
        "tokenizer_path": str(tok) if (tok / "tokenizer_config.json").exists() else base,
    }


def hf_directory(cfg, path: Path) -> dict:
    """``ckpt_path=<dir>``: a Hugging Face directory (its own tokenizer, else the base model's); a directory
    without config.json (a sharded Lightning checkpoint) is refused with how to consolidate it."""
    if not (path / "config.json").exists():
        raise ModelLoadError(
            f"ckpt_path={cfg.ckpt_path} is a directory without config.json: a sharded (FSDP) Lightning checkpoint? "
            "Consolidate it into a Hugging Face directory first (mfti-export, or Lightning's "
            "`python -m lightning.pytorch.utilities.consolidate_checkpoint`), then pass that directory."
        )
    has_tok = any((path / f).exists() for f in TOKENIZER_FILES)
    return {
        "kind": "dir",
        "model_path": str(path),
        "ckpt_file": None,
        "run_dir": path,
        "tokenizer_path": str(path) if has_tok else check_loadable(cfg.model),
    }
