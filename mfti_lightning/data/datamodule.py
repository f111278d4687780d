"""Tokenization, label masks, length-grouped batching and the LightningDataModule."""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from mfti_lightning.core.errors import ConfigError
from mfti_lightning.core.template import Template

log = logging.getLogger(__name__)
IGNORE = -100


@dataclass
class Encoded:
    input_ids: list[int]
    labels: list[int]


def encode_examples(
    examples: list[dict], tokenizer, template: Template, max_length: int, loss_on: str, overlong: str
) -> tuple[list[Encoded], dict]:
    """Token ids and labels for each example (``text`` + EOS). ``loss_on=target`` masks the prompt.

    An example longer than ``max_length`` is dropped, or (``overlong=truncate_source``) re-rendered with a
    shorter source; the target is never cut. Returns the encoded examples and counts of what happened.
    """
    if loss_on not in ("full", "target"):
        raise ConfigError(f"data.loss_on={loss_on!r}: use full or target.")
    if overlong not in ("drop", "truncate_source"):
        raise ConfigError(f"data.overlong={overlong!r}: use drop or truncate_source.")
    eos = tokenizer.eos_token_id
    out, stats = [], {"kept": 0, "dropped_overlong": 0, "truncated_source": 0}
    for ex in examples:
        ids, n_prompt = _encode(tokenizer, ex["prompt"], ex["text"], eos)
        if len(ids) > max_length and overlong == "truncate_source":
            ids, n_prompt = _truncate_source(tokenizer, template, ex, max_length, eos)
            if ids is not None:
                stats["truncated_source"] += 1
        if ids is None or len(ids) > max_length:
            stats["dropped_overlong"] += 1
            continue
        labels = list(ids)
        if loss_on == "target":
            labels[:n_prompt] = [IGNORE] * n_prompt
        out.append(Encoded(ids, labels))
        stats["kept"] += 1
    return out, stats


def _encode(tokenizer, prompt: str, text: str, eos: int) -> tuple[list[int], int]:
    ids = tokenizer(text)["input_ids"] + [eos]
    prompt_ids = tokenizer(prompt)["input_ids"]
    n = 0  # the prompt's length inside the full sequence: longest common prefix of the two encodings
    while n < min(len(prompt_ids), len(ids)) and prompt_ids[n] == ids[n]:
        n += 1
    return ids, n


def _truncate_source(tokenizer, template, ex, max_length, eos):
    words = ex["source"].split()
    while len(words) > 1:
        words = words[: max(1, int(len(words) * 0.8))]
        src = " ".join(words)
        prompt = template.render_prefix(src, ex["src_lang"], ex["tgt_lang"])
        text = template.render_example(src, ex["target"], ex["src_lang"], ex["tgt_lang"])
        ids, n = _encode(tokenizer, prompt, text, eos)
        if len(ids) <= max_length:
            return ids, n
    return None, 0


class LengthGroupedBatches:
    """Batches of similar length: shuffle, sort inside chunks of ``chunk`` batches, shuffle the batches.

    Deterministic for (seed, data epoch); under DDP each rank takes every world_size-th batch and all ranks get
    the same number of batches.

    With ``total`` set (training), the sampler is one stream of ``total`` micro batches that runs through as many
    data epochs as needed, each reshuffled with its own seed: the batch at position i is a pure function of
    (seed, i, rank, world size). Lightning sees a single epoch of ``total`` batches, and a resumed run sets
    ``start`` to the number of micro batches already consumed (global step x accumulation) and continues with
    exactly the batches an uninterrupted run would have seen. Without ``total``: one data epoch, ``set_epoch``
    picks it, and ``start`` skips batches once.
    """

    def __init__(
        self,
        lengths,
        batch_size: int,
        seed: int,
        chunk: int = 64,
        rank: int = 0,
        world_size: int = 1,
        total: int | None = None,
    ):
        self.lengths, self.batch_size, self.seed, self.chunk = list(lengths), batch_size, seed, chunk
        self.rank, self.world_size, self.epoch, self.start = rank, world_size, 0, 0
        self.total = total
        self._cache: tuple[int, list[list[int]]] | None = None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def epoch_batches(self, epoch: int) -> list[list[int]]:
        """This rank's batches of data epoch ``epoch``."""
        if self._cache is not None and self._cache[0] == epoch:
            return self._cache[1]
        rng = random.Random(self.seed * 10_007 + epoch)
        idx = list(range(len(self.lengths)))
        rng.shuffle(idx)
        span = self.batch_size * self.chunk
        batches = []
        for c in range(0, len(idx), span):
            chunk = sorted(idx[c : c + span], key=lambda i: self.lengths[i])
            batches += [chunk[b : b + self.batch_size] for b in range(0, len(chunk), self.batch_size)]
        batches = [b for b in batches if len(b) == self.batch_size] or batches[:1]
        rng.shuffle(batches)
        per_rank = len(batches) // self.world_size
        mine = batches[self.rank :: self.world_size][:per_rank]
        self._cache = (epoch, mine)
        return mine

    def all_batches(self) -> list[list[int]]:
        """The batches of the current data epoch (``set_epoch``)."""
        return self.epoch_batches(self.epoch)

    def __iter__(self):
        if self.total is None:
            start, self.start = self.start, 0
            yield from self.all_batches()[start:]
            return
        per_epoch = len(self.epoch_batches(0))
        for i in range(self.start, self.total):
            epoch, j = divmod(i, per_epoch)
            yield self.epoch_batches(epoch)[j]

    def __len__(self) -> int:
        return self.total if self.total is not None else len(self.all_batches())

    def padding_efficiency(self) -> float:
        """Real tokens / computed tokens of this epoch's batches on this rank."""
        return padding_efficiency(self.all_batches(), self.lengths)


class Collator:
    """Right-padded batches with attention mask and -100 labels on padding."""

    def __init__(self, pad_id: int):
        self.pad_id = pad_id

    def __call__(self, items: list[Encoded]) -> dict[str, torch.Tensor]:
        width = max(len(e.input_ids) for e in items)
        ids = torch.full((len(items), width), self.pad_id, dtype=torch.long)
        labels = torch.full((len(items), width), IGNORE, dtype=torch.long)
        mask = torch.zeros((len(items), width), dtype=torch.long)
        for r, e in enumerate(items):
            n = len(e.input_ids)
            ids[r, :n] = torch.tensor(e.input_ids)
            labels[r, :n] = torch.tensor(e.labels)
            mask[r, :n] = 1
        return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def eval_batches(n: int, rank: int, world_size: int, batch_size: int) -> list[list[int]]:
    """This rank's evaluation batches: sentence indices ``rank, rank + world, ...`` (every sentence on exactly
    one rank, no padding duplicates, unlike DistributedSampler), split into the same number of batches on every
    rank so that collective-using generation (FSDP) never waits on a rank that has finished. A rank with fewer
    sentences than batches gets empty trailing batches."""
    if world_size < 1 or not 0 <= rank < world_size or batch_size < 1:
        raise ValueError(f"eval_batches: rank={rank}, world_size={world_size}, batch_size={batch_size}")
    mine = list(range(rank, n, world_size))
    per_rank_max = -(-n // world_size)
    n_batches = -(-per_rank_max // batch_size)
    if n_batches == 0:
        return []
    size, extra = divmod(len(mine), n_batches)
    out, start = [], 0
    for b in range(n_batches):
        stop = start + size + (1 if b < extra else 0)
        out.append(mine[start:stop])
        start = stop
    return out


class PromptBatches(torch.utils.data.Dataset):
    """Validation items: this rank's prompt indices in batches (see :func:`eval_batches`)."""

    def __init__(self, batches: list[list[int]]):
        self.batches = batches

    def __len__(self):
        return len(self.batches)

    def __getitem__(self, i):
        return self.batches[i]


class MFTIDataModule(pl.LightningDataModule):
    def __init__(
        self,
        encoded: list[Encoded],
        pad_id: int,
        micro_batch_size: int,
        seed: int,
        chunk: int = 64,
        num_workers: int = 0,
        n_val_prompts: int = 0,
        val_batch_size: int = 32,
        total_micro_batches: int | None = None,
    ):
        super().__init__()
        self.total_micro_batches = total_micro_batches  # optim.max_steps x accumulation: one stream, see above
        self.encoded, self.pad_id, self.micro_batch_size = encoded, pad_id, micro_batch_size
        self.seed, self.chunk, self.num_workers = seed, chunk, num_workers
        self.n_val_prompts, self.val_batch_size = n_val_prompts, val_batch_size
        self.batch_sampler: LengthGroupedBatches | None = None

    def _rank_world(self):
        t = self.trainer
        return (t.global_rank, t.world_size) if t is not None else (0, 1)

    def train_dataloader(self):
        rank, world = self._rank_world()
        self.batch_sampler = LengthGroupedBatches(
            [len(e.input_ids) for e in self.encoded],
            self.micro_batch_size,
            self.seed,
            self.chunk,
            rank,
            world,
            total=self.total_micro_batches,
        )
        if self.trainer is not None and self.total_micro_batches is not None:
            # resume: continue the stream after the micro batches of the optimizer steps already taken
            self.batch_sampler.start = self.trainer.global_step * self.trainer.accumulate_grad_batches
        if not self.batch_sampler.epoch_batches(0):
            raise ConfigError(
                f"{len(self.encoded)} training examples give no full micro batch of {self.micro_batch_size} on "
                f"each of {world} rank(s). Add examples (num_examples.n) or lower optim.micro_batch_size."
            )
        return DataLoader(
            self.encoded,
            batch_sampler=self.batch_sampler,
            collate_fn=Collator(self.pad_id),
            num_workers=self.num_workers,
        )

    def val_dataloader(self):
        rank, world = self._rank_world()
        ds = PromptBatches(eval_batches(self.n_val_prompts, rank, world, self.val_batch_size))
        return DataLoader(ds, batch_size=None, shuffle=False)


def padding_efficiency(batches: list[list[int]], lengths: list[int]) -> float:
    """Real tokens / computed tokens (rows x longest row) over a set of batches."""
    real = sum(lengths[i] for b in batches for i in b)
    computed = sum(len(b) * max(lengths[i] for i in b) for b in batches)
    return real / computed if computed else 1.0
