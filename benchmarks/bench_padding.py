"""Padding efficiency (real tokens / computed tokens) of length-grouped vs random batches (run by hand).

    python benchmarks/bench_padding.py [--batch 10] [--tokenizer <dir of a HF tokenizer>]

Lengths: FLORES-101 dev of the 13 paper languages rendered as template-1 training examples for the 156
directions (one example per dev sentence and direction, capped at --max-examples), measured in tokens of the
given tokenizer (default: the demo's tiny XGLM-architecture tokenizer, built on first use) or, with
--whitespace, in whitespace tokens (characters / 3 for zh).
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mfti_lightning import languages
from mfti_lightning.core.template import Template
from mfti_lightning.data import corpora
from mfti_lightning.data.datamodule import LengthGroupedBatches, padding_efficiency


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=10)
    ap.add_argument("--chunk", type=int, default=64)
    ap.add_argument("--max-examples", type=int, default=20000)
    ap.add_argument("--tokenizer", default=None)
    ap.add_argument("--whitespace", action="store_true")
    args = ap.parse_args()
    t = Template("t1", "Translation: [<srclang>]: <input> [<tgtlang>]:", 1)
    flores = {c: corpora.read_flores(None, "dev", c) for c in languages.PAPER_LANGUAGES}
    rng = random.Random(0)
    texts = []
    for s, g in languages.all_directions(languages.PAPER_LANGUAGES):
        for i in rng.sample(range(997), 997 * args.max_examples // (156 * 997) + 1):
            texts.append(t.render_example(flores[s][i], flores[g][i], s, g))
    if args.whitespace:
        lengths = [len(x.split()) for x in texts]
        unit = "whitespace tokens"
    else:
        from mfti_lightning.model.modeling import load_tokenizer

        if args.tokenizer is None:
            sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
            from conftest import compose

            from mfti_lightning.model.modeling import resolve_model_path

            args.tokenizer = resolve_model_path(compose([], "/tmp/mfti-bench-compose").model)
        tok = load_tokenizer(str(args.tokenizer))
        lengths = [len(ids) + 1 for ids in tok(texts)["input_ids"]]
        unit = f"tokens of {args.tokenizer}"
    grouped = LengthGroupedBatches(lengths, args.batch, seed=0, chunk=args.chunk).all_batches()
    idx = list(range(len(lengths)))
    random.Random(0).shuffle(idx)
    rand = [idx[i : i + args.batch] for i in range(0, len(idx) - args.batch + 1, args.batch)]
    print(f"{len(lengths)} examples, {unit}, batch {args.batch}, chunk {args.chunk} batches")
    print(f"random batches : padding efficiency {padding_efficiency(rand, lengths):.3f}")
    print(f"length-grouped : padding efficiency {padding_efficiency(grouped, lengths):.3f}")


if __name__ == "__main__":
    main()
