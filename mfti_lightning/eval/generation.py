"""Batched translation: prompts sorted by length, batched under a token budget, left-padded, generated, and
extracted by token position through the template. Works on one process or across DDP / FSDP ranks.

Stopping (``extraction``, :data:`EXTRACTION_MODES`): ``reference``, the reference code's protocol, stops a row only
at EOS (XGLM was pretrained with newlines replaced by ``</s>``) or after ``max_new_tokens``, and the whole
continuation is the hypothesis. ``clean`` also stops a row as soon as its generated text contains a newline or one
of the template's stop markers (the model starting a new template turn, e.g. ``Translation:``) and cuts there;
under beam search a beam that hits such a stop is finished like a beam that emitted EOS, which can change which
beam wins.

Distributed: :func:`plan_batches` builds the length-sorted batches over *all* prompts and deals them to ranks
round-robin; every rank runs the same number of ``generate`` calls (a rank with fewer real batches runs a
one-row dummy batch whose output is thrown away) so FSDP, whose forward is collective, cannot hang, and
``synced_gpus=True`` keeps the ranks decoding in lock-step inside each call (otherwise FSDP ranks that finish early hang the others). Each prompt is
translated by exactly one rank (:func:`translate_share`); :func:`gather_translations` collects them on every
rank (:func:`translate` does both: one list in input order, on one process or several).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import torch

from mfti_lightning.core.choices import EXTRACTION_MODES
from mfti_lightning.core.template import Template
from mfti_lightning.eval.budget import DEFAULT_BATCH_TOKENS, resolve_batch_tokens
from mfti_lightning.eval.ct2_generation import is_engine

log = logging.getLogger(__name__)
_TAIL_TOKENS = 12  # tokens decoded per row and step to look for a newline or a stop marker


def token_budget_batches(lengths: Sequence[int], budget: int, new_tokens: int, beams: int) -> list[list[int]]:
    """Indices grouped into batches (longest first) so that rows * (longest prompt + new tokens) * beams stays
    within ``budget``; a single over-budget prompt still gets a batch of its own."""
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    batches, cur, cur_max = [], [], 0
    for i in order:
        width = max(cur_max, lengths[i]) + new_tokens
        if cur and (len(cur) + 1) * width * beams > budget:
            batches.append(cur)
            cur, cur_max = [], 0
        cur.append(i)
        cur_max = max(cur_max, lengths[i])
    if cur:
        batches.append(cur)
    return batches


def plan_batches(
    lengths: Sequence[int], budget: int, new_tokens: int, beams: int, rank: int = 0, world_size: int = 1
) -> list[list[int]]:
    """This rank's batches: global length-sorted batches dealt round-robin, padded with empty batches so that
    every rank gets ``ceil(n_batches / world_size)`` of them (an empty batch = one dummy generate call)."""
    batches = token_budget_batches(lengths, budget, new_tokens, beams)
    per_rank = -(-len(batches) // world_size) if batches else 0
    mine = batches[rank::world_size]
    return mine + [[] for _ in range(per_rank - len(mine))]


class StopOnText:
    """``StoppingCriteria``: a row is done once the text generated after the prompt, decoded as the extraction
    decodes it, contains a newline or a stop marker of the template. A marker can only complete on a token whose
    text holds the marker's last character, so only rows whose last token is such a trigger token are decoded (a
    vocabulary-sized lookup table, built once per tokenizer and marker set), and only their last few tokens.

    Not transformers' ``StopStringCriteria``: it matches the pieces' own strings, where the first generated piece
    keeps the leading space (``▁[Fr`` is `` [Fr``) that decoding drops, so it stops rows that the extraction then
    does not cut (measured on the demo model with markers the model produces: 13 of 120 greedy hypotheses
    truncated, benchmarks/RESULTS.md); ``generate(stop_strings=...)`` also matches markers begun in the prompt."""

    def __init__(self, tokenizer, markers: Sequence[str], prompt_width: int):
        self.tokenizer = tokenizer
        self.markers = ("\n", *[m for m in markers if m])
        self.prompt_width = prompt_width
        self.trigger = _trigger_table(tokenizer, "".join(sorted({m[-1] for m in self.markers})))

    def __call__(self, input_ids: torch.LongTensor, scores=None, **kwargs) -> torch.BoolTensor:
        done = torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
        if input_ids.shape[1] <= self.prompt_width:
            return done
        last = input_ids[:, -1].cpu()
        rows = (self.trigger[last.clamp(max=len(self.trigger) - 1)] & (last < len(self.trigger))).nonzero()
        rows = rows.flatten().tolist()
        if rows:
            new = input_ids[rows, self.prompt_width :]
            texts = self.tokenizer.batch_decode(new[:, -_TAIL_TOKENS:].tolist(), skip_special_tokens=True)
            for r, t in zip(rows, texts):
                if any(m in t for m in self.markers):
                    done[r] = True
        return done


_TRIGGERS: dict = {}


def _trigger_table(tokenizer, chars: str) -> torch.Tensor:
    key = (id(tokenizer), len(tokenizer), chars)
    if key not in _TRIGGERS:
        pieces = tokenizer.batch_decode([[i] for i in range(len(tokenizer))], skip_special_tokens=False)
        table = torch.tensor([any(c in p for c in chars) for p in pieces], dtype=torch.bool)
        # byte-fallback / partial pieces that decode to "\ufffd" may complete a character later: keep them
        table |= torch.tensor(["\ufffd" in p for p in pieces], dtype=torch.bool)
        _TRIGGERS[key] = table
    return _TRIGGERS[key]


def needs_synced_gpus(model, world_size: int) -> bool:
    """True when the model's parameters are sharded across ranks (FSDP 1 or 2), i.e. every forward is a
    collective and all ranks must keep calling it until the last rank is done."""
    if world_size <= 1:
        return False
    from torch.distributed.fsdp import FSDPModule, FullyShardedDataParallel
    from torch.distributed.tensor import DTensor

    if any(isinstance(m, (FullyShardedDataParallel, FSDPModule)) for m in model.modules()):
        return True
    return any(isinstance(p, DTensor) for p in model.parameters())


def _left_pad(rows: list[list[int]], pad: int) -> tuple[torch.Tensor, torch.Tensor, int]:
    width = max(len(r) for r in rows)
    input_ids = torch.full((len(rows), width), pad, dtype=torch.long)
    attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
    for row, ids in enumerate(rows):
        input_ids[row, width - len(ids) :] = torch.tensor(ids, dtype=torch.long)
        attention_mask[row, width - len(ids) :] = 1
    return input_ids, attention_mask, width


@torch.no_grad()
def generate_batch(
    model,
    tokenizer,
    template: Template,
    rows: list[list[int]],
    *,
    num_beams: int,
    max_new_tokens: int,
    synced_gpus: bool = False,
    extraction: str = "clean",
) -> list[str]:
    """One ``generate`` call on already tokenized prompts (left-padded here); the extracted translations."""
    device = next(model.parameters()).device
    pad = tokenizer.pad_token_id
    input_ids, attention_mask, width = _left_pad(rows, pad)
    kwargs = {}
    if extraction == "clean":
        from transformers import StoppingCriteriaList

        kwargs["stopping_criteria"] = StoppingCriteriaList([StopOnText(tokenizer, template.stop_markers, width)])
    if synced_gpus:
        kwargs["synced_gpus"] = True
    generated = model.generate(
        input_ids=input_ids.to(device),
        attention_mask=attention_mask.to(device),
        num_beams=num_beams,
        do_sample=False,
        max_new_tokens=max_new_tokens,
        early_stopping=num_beams > 1,
        pad_token_id=pad,
        eos_token_id=tokenizer.eos_token_id,
        **kwargs,
    )
    new_tokens = generated[:, width:].tolist()  # by position: everything after the (padded) prompt
    return [template.extract(t, tokenizer, extraction) for t in new_tokens]


def encode_prompts(tokenizer, prompts: Sequence[str], max_prompt_tokens: int | None = None) -> list[list[int]]:
    encoded = [tokenizer(p, add_special_tokens=True)["input_ids"] for p in prompts]
    if max_prompt_tokens:
        encoded = [ids[-max_prompt_tokens:] for ids in encoded]  # keep the end: the test prefix
    return encoded


def translate(model, tokenizer, template: Template, prompts: Sequence[str], **decode) -> list[str]:
    """Translations of ``prompts``, a list in input order, whatever the world size: with ``world_size > 1`` each
    rank translates its share (:func:`translate_share`) and the shares are gathered on every rank
    (:func:`gather_translations`, a collective: every rank calls it). ``decode``: :func:`translate_share`'s
    keywords."""
    world_size = decode.get("world_size", 1)
    share = translate_share(model, tokenizer, template, prompts, **decode)
    return gather_translations(share, len(prompts), world_size)


@torch.no_grad()
def translate_share(
    model,
    tokenizer,
    template: Template,
    prompts: Sequence[str],
    *,
    max_new_tokens: int,
    num_beams: int = 1,
    batch_tokens: int | str = DEFAULT_BATCH_TOKENS,
    max_prompt_tokens: int | None = None,
    rank: int = 0,
    world_size: int = 1,
    synced_gpus: bool | None = None,
    extraction: str = "clean",
) -> dict[int, str]:
    """This rank's share of the translations of ``prompts``: ``{prompt index: translation}`` (every prompt on
    exactly one rank; all of them when ``world_size == 1``). No collective call (but under ``synced_gpus`` the
    model's forwards are).

    ``synced_gpus=None`` detects FSDP-sharded parameters. ``extraction``: ``reference`` or ``clean`` (module doc).
    ``model``: a Hugging Face model or a :class:`~mfti_lightning.eval.ct2_generation.CT2Engine`. ``batch_tokens``: a
    number, or ``auto`` (:func:`resolve_batch_tokens`). A batch that runs out of accelerator memory is split in
    half and retried (:func:`decode_splitting`).
    """
    if extraction not in EXTRACTION_MODES:
        raise ValueError(f"extraction={extraction!r}: use one of {EXTRACTION_MODES}")
    encoded = encode_prompts(tokenizer, prompts, max_prompt_tokens)
    if synced_gpus is None:
        synced_gpus = False if is_engine(model) else needs_synced_gpus(model, world_size)
    budget = resolve_batch_tokens(batch_tokens, model, max_new_tokens, world_size)
    batches = plan_batches([len(e) for e in encoded], budget, max_new_tokens, num_beams, rank, world_size)
    decode = dict(num_beams=num_beams, max_new_tokens=max_new_tokens, synced_gpus=synced_gpus, extraction=extraction)
    was_training = model.training
    model.eval()
    try:
        return decode_batches(model, tokenizer, template, encoded, batches, **decode)
    finally:
        model.train(was_training)


def decode_batches(model, tokenizer, template, encoded, batches, **decode) -> dict[int, str]:
    """``{index: translation}`` for ``batches`` of indices into ``encoded`` (:func:`decode_splitting` each). An
    empty batch is skipped, unless the model is sharded (``synced_gpus``): then one dummy row, whose output is
    thrown away, joins the collective forwards of the other ranks."""
    out: dict[int, str] = {}
    for batch in batches:
        if batch or decode["synced_gpus"]:
            rows = [encoded[i] for i in batch] or [encoded[0] if encoded else [tokenizer.eos_token_id]]
            can_split = not decode["synced_gpus"]
            out.update(zip(batch, decode_splitting(model, tokenizer, template, rows, can_split=can_split, **decode)))
    return out


def decode_rows(model, tokenizer, template: Template, rows: list[list[int]], **decode) -> list[str]:
    """One batch through the engine: Hugging Face ``generate`` (:func:`generate_batch`) or CTranslate2."""
    if is_engine(model):
        new = model.generate_tokens(rows, num_beams=decode["num_beams"], max_new_tokens=decode["max_new_tokens"])
        return [template.extract(t, tokenizer, decode["extraction"]) for t in new]
    return generate_batch(model, tokenizer, template, rows, **decode)


def decode_splitting(model, tokenizer, template, rows, *, can_split: bool = True, **decode) -> list[str]:
    """:func:`decode_rows`, and on an out-of-memory error the batch split in half and each half retried (again
    and again down to one row); the halves' outputs, in order, are the batch's. A sharded model (``synced_gpus``)
    cannot split: its ranks must run the same number of forwards, so the error is raised with what to set."""
    try:
        return decode_rows(model, tokenizer, template, rows, **decode)
    except (torch.OutOfMemoryError, RuntimeError) as e:
        if not is_oom(e):
            raise
        if len(rows) <= 1 or not can_split:
            raise RuntimeError(
                f"out of memory generating a batch of {len(rows)} row(s) ({e}); set a smaller eval.batch_tokens"
                + ("" if can_split else " (a sharded model cannot split a batch on one rank only)")
            ) from e
    empty_cache()
    half = len(rows) // 2
    log.warning("out of memory on a batch of %d rows: retrying as %d + %d", len(rows), half, len(rows) - half)
    first = decode_splitting(model, tokenizer, template, rows[:half], can_split=can_split, **decode)
    return first + decode_splitting(model, tokenizer, template, rows[half:], can_split=can_split, **decode)


def is_oom(error: BaseException) -> bool:
    """torch's OutOfMemoryError, or a runtime error that says so (CTranslate2: ``CUDA failed ... out of memory``)."""
    return isinstance(error, torch.OutOfMemoryError) or "out of memory" in str(error).lower()


def empty_cache() -> None:
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def gather_translations(local: dict[int, str], n: int, world_size: int) -> list[str]:
    """Collect ``{index: translation}`` from every rank into one list (on every rank). An index translated by
    two ranks or by none is an error (corpus BLEU over duplicated sentences would be silently wrong)."""
    if world_size > 1:
        import torch.distributed as dist

        parts: list = [None] * world_size
        dist.all_gather_object(parts, local)
        merged: dict[int, str] = {}
        for p in parts:
            dup = merged.keys() & p.keys()
            if dup:
                raise RuntimeError(f"{len(dup)} sentence(s) translated by more than one rank: {sorted(dup)[:5]}")
            merged.update(p)
    else:
        merged = local
    missing = [i for i in range(n) if i not in merged]
    if missing:
        raise RuntimeError(f"{len(missing)} sentence(s) were not translated by any rank: {missing[:5]}...")
    return [merged[i] for i in range(n)]
