"""What translates in an evaluation (``eval.engine``): a Hugging Face model in eval mode, or a CTranslate2 engine
converted from the same weights. Used by mfti-eval and by mfti-train's final test; torch is imported inside the
functions."""

from __future__ import annotations

from pathlib import Path

from mfti_lightning.model.checkpoint_files import model_state_of_file


def engine_id(cfg) -> str:
    """The decoder as the saved per-direction state records it (a resumed evaluation with another engine redoes
    the directions): ``hf`` or ``ctranslate2:<compute type>``."""
    engine = cfg.eval.engine
    return engine if engine == "hf" else f"{engine}:{cfg.eval.ct2_compute_type}"


def load_decoder(cfg, info: dict, device, rank: int = 0, world_size: int = 1):
    """``(decoder, tokenizer)`` for ``info`` (:func:`mfti_lightning.model.source.resolve_checkpoint`): the
    Hugging Face model on ``device``, or a CTranslate2 engine converted from the same weights (once per checkpoint;
    a Lightning checkpoint is loaded into the base model on the CPU only when the conversion cache has no copy
    yet)."""
    if cfg.eval.engine != "ctranslate2":
        return load_for_eval(cfg, info, device)
    from mfti_lightning.model.modeling import load_tokenizer

    tokenizer = load_tokenizer(info["tokenizer_path"], info["model_path"])
    model = None
    if info.get("ckpt_file"):

        def model():
            import torch

            return load_for_eval(cfg, info, torch.device("cpu"))[0]

    engine = ct2_decoder(cfg, info["model_path"], tokenizer, device, rank, world_size, info.get("ckpt_file"), model)
    return engine, tokenizer


def ct2_decoder(cfg, model_path, tokenizer, device, rank, world_size, ckpt_file=None, model=None):
    """A :class:`~mfti_lightning.eval.ct2_generation.CT2Engine` for ``model_path`` (+ ``ckpt_file``'s weights, given
    as ``model``, a loaded model or a function that loads one); rank 0 converts, the other ranks wait for it."""
    import torch

    from mfti_lightning.eval.ct2_generation import load_engine

    barrier = None
    if world_size > 1:
        import torch.distributed as dist

        barrier = dist.barrier if dist.is_initialized() else None
    return load_engine(
        str(model_path),
        tokenizer,
        cache_dir=str(cfg.paths.cache_dir),
        device=device,
        compute_type=cfg.eval.ct2_compute_type,
        ckpt_file=ckpt_file,
        model=model,
        threads=torch.get_num_threads() if device.type == "cpu" else 0,
        is_first_rank=rank == 0,
        barrier=barrier,
    )


def load_for_eval(cfg, info: dict, device):
    """Model in eval mode on ``device`` and its tokenizer; a Lightning checkpoint's weights are loaded into the
    base model (``model.`` prefix stripped; already checked by
    :func:`~mfti_lightning.model.checkpoint_files.check_state_dict`)."""
    from mfti_lightning.model.modeling import load_model, load_tokenizer

    tokenizer = load_tokenizer(info["tokenizer_path"], info["model_path"])
    dtype = cfg.model.dtype
    precision = str(cfg.trainer.precision)
    if device.type == "cuda" and precision.startswith("bf16"):
        dtype = "bfloat16"
    elif device.type == "cuda" and precision.startswith("16"):
        dtype = "float16"
    model = load_model(info["model_path"], dtype, cfg.model.attn_implementation)
    if info.get("ckpt_file"):
        state = model_state_of_file(Path(info["ckpt_file"]), cfg.trust_checkpoint)
        model.load_state_dict(state, strict=False)
        model.tie_weights()
    model.to(device).eval()
    return model, tokenizer
