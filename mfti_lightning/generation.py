"""Batched translation: prompts sorted by length, batched under a token budget, left-padded, generated, and
extracted by token position through the template. Works on one process or shards across DDP ranks."""

from __future__ import annotations

from typing import Sequence

import torch

from mfti_lightning.template import Template


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


@torch.no_grad()
def translate(
    model,
    tokenizer,
    template: Template,
    prompts: Sequence[str],
    *,
    num_beams: int = 1,
    max_new_tokens: int = 150,
    batch_tokens: int = 4096,
    max_prompt_tokens: int | None = None,
) -> list[str]:
    """Translations for ``prompts``, in input order."""
    if not prompts:
        return []
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    encoded = [tokenizer(p, add_special_tokens=True)["input_ids"] for p in prompts]
    if max_prompt_tokens:
        encoded = [ids[-max_prompt_tokens:] for ids in encoded]  # keep the end: the test prefix
    outputs: list[str] = [""] * len(prompts)
    pad = tokenizer.pad_token_id
    for batch in token_budget_batches([len(e) for e in encoded], batch_tokens, max_new_tokens, num_beams):
        width = max(len(encoded[i]) for i in batch)
        input_ids = torch.full((len(batch), width), pad, dtype=torch.long)
        attention_mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, i in enumerate(batch):  # left padding
            ids = encoded[i]
            input_ids[row, width - len(ids):] = torch.tensor(ids)
            attention_mask[row, width - len(ids):] = 1
        generated = model.generate(
            input_ids=input_ids.to(device),
            attention_mask=attention_mask.to(device),
            num_beams=num_beams,
            do_sample=False,
            max_new_tokens=max_new_tokens,
            early_stopping=True if num_beams > 1 else False,
            pad_token_id=pad,
            eos_token_id=tokenizer.eos_token_id,
        )
        new_tokens = generated[:, width:].tolist()  # by position: everything after the (padded) prompt
        for row, i in enumerate(batch):
            outputs[i] = template.extract(new_tokens[row], tokenizer)
    model.train(was_training)
    return outputs


def shard(n: int, rank: int, world_size: int) -> list[int]:
    """Indices of rank ``rank``: every sentence on exactly one rank, no padding duplicates."""
    return list(range(rank, n, world_size))


def gather_translations(local: dict[int, str], n: int, world_size: int) -> list[str]:
    """Collect ``{index: translation}`` from every rank into one list (on every rank)."""
    if world_size > 1:
        import torch.distributed as dist

        parts: list = [None] * world_size
        dist.all_gather_object(parts, local)
        merged: dict[int, str] = {}
        for p in parts:
            merged.update(p)
    else:
        merged = local
    missing = [i for i in range(n) if i not in merged]
    if missing:
        raise RuntimeError(f"{len(missing)} sentence(s) were not translated by any rank: {missing[:5]}...")
    return [merged[i] for i in range(n)]
