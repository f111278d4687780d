"""Clean stopping, two implementations on the same model: ``translate()`` of this checkout (StopOnText, which
decodes the generated tail as the extraction does) against ``translate()`` of a git revision (by default
``e0e46bd``, StopOnText on transformers' ``StopStringCriteria``, reverted after this measurement), on the demo's
FLORES devtest directions, greedy and beam 4, with the paper's template 1, a custom template
(``<input> = [<tgtlang>]:``, whose only stop string, a newline, the tiny vocabulary cannot produce) and a probe
template whose markers are pieces of what the model generates unstopped (so stopping really fires; one also
holds ``=``, a character outside the tiny vocabulary). Prints, per case, sentences compared, identical
hypotheses, rows cut by a marker, seconds per ``translate()`` call of each, and for greedy decoding how many
hypotheses of each equal the oracle (the whole unstopped continuation, decoded, cut by the template).

    python benchmarks/bench_stop_strings.py --model outputs/train/runs/<demo run>/hf [--rev e0e46bd] [--n 40]

``--vocab-timing`` instead times building the stop tables on a synthetic XGLMTokenizer of XGLM's size (256k
random pieces): transformers' ``StopStringCriteria`` (cold, then its own cache hit), this checkout's
StopOnText and the revision's.
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import platform
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from mfti_lightning.assets import FLORES101_DIR
from mfti_lightning.core.languages import LANGUAGES
from mfti_lightning.core.template import Template
from mfti_lightning.eval.generation import translate
from mfti_lightning.model.modeling import load_model, load_tokenizer

REPO = Path(__file__).resolve().parents[1]
DIRECTIONS = ("de-en", "en-fr", "zh-en")  # conf/lang_pairs/demo.yaml
T1 = Template(name="t1", prefix="Translation: [<srclang>]: <input> [<tgtlang>]:", paper_id=1)
CUSTOM = Template(name="custom", prefix="<input> = [<tgtlang>]:", lang_names="native")


@functools.cache
def old_module(rev: str):
    """``eval/generation.py`` at git revision ``rev``, loaded as a module of its own."""
    text = subprocess.run(
        ["git", "-C", str(REPO), "show", f"{rev}:mfti_lightning/eval/generation.py"],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    path = Path(tempfile.mkdtemp()) / "generation_old.py"
    path.write_text(text, encoding="utf-8")
    spec = importlib.util.spec_from_file_location("generation_old", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def prompts(direction: str, n: int, template: Template) -> list[str]:
    src, tgt = direction.split("-")
    lines = (FLORES101_DIR / "devtest" / f"{LANGUAGES[src].flores101}.devtest").read_text(encoding="utf-8")
    return [template.render_prompt(s, src, tgt) for s in lines.splitlines()[:n]]


def probe_template(model, tok, batch) -> Template:
    """Template 1 with markers cut from the model's own unstopped continuations (4 characters from every third
    one, spanning token boundaries), so that clean stopping fires on many rows, plus one marker with ``=``."""
    free = translate(model, tok, T1, batch, num_beams=1, max_new_tokens=24, extraction="reference")
    markers = tuple(dict.fromkeys(h[3:7] for h in free[::3] if len(h) >= 8 and h[3:7].strip()))
    return Template(name="probe", prefix=T1.prefix, stop_markers=(*markers, "a = b"))


def timed(fn, *args, **kw):
    start = time.perf_counter()
    out = fn(*args, **kw)
    return out, time.perf_counter() - start


def big_tokenizer(size: int = 256_008):
    from transformers import XGLMTokenizer

    rng = random.Random(0)
    alphabet = "abcdefghijklmnopqrstuvwxyzäöüßçéèñ[]:.,'абвгдежзийклмн中文字的是不了人我在有他这为之大来以个们αβγδεζηθ"
    pieces = {c: None for c in alphabet}
    while len(pieces) < size - 4:
        pieces["▁" * (rng.random() < 0.5) + "".join(rng.choices(alphabet, k=rng.randint(1, 8)))] = None
    specials = [("<s>", 0.0), ("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)]
    return XGLMTokenizer(vocab=specials + [(p, -rng.random() * 10) for p in pieces])


def vocab_timing(rev: str):
    from transformers import StopStringCriteria

    from mfti_lightning.eval.generation import StopOnText

    tok = big_tokenizer()
    print(f"{platform.node()}: synthetic XGLMTokenizer, {len(tok)} pieces; stop strings: newline, {T1.stop_markers}")
    for what, build in (
        ("transformers StopStringCriteria", lambda: StopStringCriteria(tok, ["\n", *T1.stop_markers])),
        ("this checkout's StopOnText", lambda: StopOnText(tok, T1.stop_markers, 10)),
        (f"StopOnText of {rev}", lambda: old_module(rev).StopOnText(tok, T1.stop_markers, 10)),
    ):
        times = [timed(build)[1] for _ in range(3)]
        print(f"{what}: build {', '.join(f'{t:.2f}' for t in times)} s (1st, 2nd, 3rd)")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vocab-timing", action="store_true", help="time the stop tables on a 256k vocabulary")
    ap.add_argument("--model", help="a Hugging Face directory (the demo run's hf/)")
    ap.add_argument("--rev", default="e0e46bd", help="git revision of the implementation to compare with")
    ap.add_argument("--n", type=int, default=40, help="devtest sentences per direction (the demo: 40)")
    ap.add_argument("--max-new-tokens", type=int, default=150)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.vocab_timing:
        return vocab_timing(args.rev)
    if not args.model:
        ap.error("--model DIR is required (or --vocab-timing)")
    model, tok = load_model(args.model), load_tokenizer(args.model)
    old = old_module(args.rev).translate
    t1_batch = [p for d in DIRECTIONS for p in prompts(d, args.n, T1)]
    probe = probe_template(model, tok, t1_batch)
    print(f"{platform.node()} {platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{args.threads} thread(s); {args.model}; old = {args.rev}; probe markers {probe.stop_markers}")  # fmt: skip
    kw = dict(max_new_tokens=args.max_new_tokens, extraction="clean")
    total = same_total = 0
    for template in (T1, CUSTOM, probe):
        for beams in (1, 4):
            for d in DIRECTIONS:
                batch = prompts(d, args.n, template)
                old(model, tok, template, batch[:2], num_beams=beams, **kw)  # warm-up: lookup tables
                translate(model, tok, template, batch[:2], num_beams=beams, **kw)
                a, t_old = timed(old, model, tok, template, batch, num_beams=beams, **kw)
                b, t_new = timed(translate, model, tok, template, batch, num_beams=beams, **kw)
                ref = translate(model, tok, template, batch, num_beams=beams, max_new_tokens=args.max_new_tokens,
                                extraction="reference")  # fmt: skip
                cut = sum(template.cut(r) != r.strip() for r in ref)  # rows a marker or newline cuts
                same = sum(x == y for x, y in zip(a, b))
                total, same_total = total + len(batch), same_total + same
                oracle = ""
                if beams == 1:  # greedy: stopping cannot change the text before the first marker
                    want = [template.cut(r) for r in ref]
                    n_old, n_new = (sum(x == w for x, w in zip(h, want)) for h in (a, b))
                    oracle = f"; equal to the oracle: {args.rev} {n_old}, this checkout {n_new}"
                print(f"{template.name:7s} beams {beams} {d}: {same}/{len(batch)} identical, {cut} rows with a "
                      f"marker, {args.rev} {t_old:.2f} s, this checkout {t_new:.2f} s per translate(){oracle}")  # fmt: skip
                for x, y in zip(a, b):
                    if x != y:
                        print(f"    {args.rev} {x!r}\n    this checkout {y!r}")
    print(f"total: {same_total}/{total} identical")
    sys.exit(0 if same_total == total else 1)


if __name__ == "__main__":
    main()
