"""Batched generation: equal to one-by-one generation, extraction by position, distributed dealing."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from mfti_lightning.assets import FLORES101_DIR
from mfti_lightning.core.template import Template
from mfti_lightning.eval.generation import (
    gather_translations,
    plan_batches,
    token_budget_batches,
    translate,
    translate_share,
)

T1 = Template(name="t1", prefix="Translation: [<srclang>]: <input> [<tgtlang>]:", paper_id=1)


def _prompts(n=6):
    de = (FLORES101_DIR / "devtest" / "deu.devtest").read_text(encoding="utf-8").splitlines()
    # varied lengths, so that batches need left padding
    return [T1.render_prompt(" ".join(de[i].split()[: 3 + 4 * i]), "de", "en") for i in range(n)]


@pytest.fixture(scope="module")
def tiny(tiny_model_dir, tiny_tokenizer):
    from mfti_lightning.model.modeling import load_model

    return load_model(str(tiny_model_dir)), tiny_tokenizer


@pytest.mark.slow
@pytest.mark.parametrize("beams", [1, 4])
def test_batched_equals_one_by_one(tiny, beams):
    model, tok = tiny
    prompts = _prompts()
    batched = translate(model, tok, T1, prompts, num_beams=beams, max_new_tokens=12, batch_tokens=10**6)
    single = [
        translate(model, tok, T1, [p], num_beams=beams, max_new_tokens=12, batch_tokens=10**6)[0] for p in prompts
    ]
    assert len({len(tok(p)["input_ids"]) for p in prompts}) == len(prompts)  # really left-padded
    assert batched == single
    assert any(batched)  # a random tiny model still produces some text


def test_token_budget_batches_and_dealing():
    lengths = [5, 50, 20, 7, 33, 12, 40, 3]
    batches = token_budget_batches(lengths, budget=200, new_tokens=10, beams=1)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    for b in batches:
        assert len(b) == 1 or len(b) * (max(lengths[i] for i in b) + 10) <= 200
    # dealt to 3 ranks: same number of generate calls everywhere, every index exactly once
    per_rank = [plan_batches(lengths, 200, 10, 1, r, 3) for r in range(3)]
    assert len({len(p) for p in per_rank}) == 1
    flat = [i for p in per_rank for b in p for i in b]
    assert sorted(flat) == list(range(len(lengths)))


class _FakeTok:
    eos_token_id, pad_token_id = 2, 1

    def decode(self, ids, skip_special_tokens=True):
        return "".join({5: "Hallo", 6: " Welt", 7: "\n", 8: " Translation: [", 9: " x"}[i] for i in ids)


def test_extraction_stops_at_the_right_token():
    tok = _FakeTok()
    assert T1.extract([5, 6, 2, 9], tok) == "Hallo Welt"  # EOS
    assert T1.extract([5, 6, 1, 1], tok) == "Hallo Welt"  # pad after a finished row
    assert T1.extract([5, 7, 6], tok) == "Hallo"  # newline
    assert T1.extract([5, 6, 8, 9], tok) == "Hallo Welt"  # the model starts a new template turn
    assert T1.extract([9, 5], tok) == "x" + "Hallo"  # nothing to cut


def test_stop_on_text_ends_generation_early(tiny):
    """The stopping criterion sees only the generated part and stops a row at a newline or stop marker."""
    import torch

    from mfti_lightning.eval.generation import StopOnText

    model, tok = tiny
    prompt = tok("Translation: [German]: Hallo [English]:")["input_ids"]
    cont = tok(" Hello Translation: [", add_special_tokens=False)["input_ids"]
    plain = tok(" Hello world", add_special_tokens=False)["input_ids"]
    crit = StopOnText(tok, T1.stop_markers, len(prompt))
    ids = torch.tensor([prompt + cont, prompt + plain[: len(cont)] + [3] * max(0, len(cont) - len(plain))])
    assert crit(ids, None).tolist() == [True, False]


class _GeneratedTextContains:
    """Clean stopping as specified, written plainly (the oracle): a row is done once the whole decoded text
    generated after the prompt contains a newline or a marker. Counts the rows it stopped."""

    def __init__(self, tok, markers, width):
        self.tok, self.markers, self.width, self.fired = tok, ("\n", *markers), width, 0

    def __call__(self, input_ids, scores=None, **kwargs):
        import torch

        texts = self.tok.batch_decode(input_ids[:, self.width :].tolist(), skip_special_tokens=True)
        done = [input_ids.shape[1] > self.width and any(m in t for m in self.markers) for t in texts]
        self.fired += sum(done)
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)


@pytest.mark.parametrize("beams", [1, 4])
def test_stop_on_text_stops_where_the_generated_text_first_contains_a_marker(tiny, beams):
    """StopOnText against the plain oracle, on FLORES
    prompts, greedy and beam: the same generated ids, step for step, and the same hypotheses through
    ``translate``. The markers are pieces of what the tiny model generates unstopped (spanning token boundaries),
    so stopping really fires, on most rows; one more holds ``=``, which no token of the tiny vocabulary holds."""
    import torch
    from transformers import StoppingCriteriaList

    from mfti_lightning.eval.generation import StopOnText

    model, tok = tiny
    prompts = _prompts(8)
    free = translate(model, tok, T1, prompts, num_beams=beams, max_new_tokens=16, extraction="reference")
    markers = (*dict.fromkeys(h[2:6] for h in free[::2] if len(h) >= 6), "a = b")
    probe = Template(name="probe", prefix=T1.prefix, paper_id=1, stop_markers=markers)
    oracle_hyps, fired = [], 0
    for p in prompts:
        ids = torch.tensor([tok(p)["input_ids"]])
        out = {}
        for name, crit in (("ours", StopOnText(tok, markers, ids.shape[1])), ("oracle", None)):
            crit = crit or _GeneratedTextContains(tok, markers, ids.shape[1])
            out[name] = model.generate(
                input_ids=ids, attention_mask=torch.ones_like(ids), num_beams=beams, do_sample=False,
                max_new_tokens=16, early_stopping=beams > 1, pad_token_id=tok.pad_token_id,
                eos_token_id=tok.eos_token_id, stopping_criteria=StoppingCriteriaList([crit]),
            )  # fmt: skip
        fired += crit.fired
        assert torch.equal(out["ours"], out["oracle"]), p
        oracle_hyps.append(probe.extract(out["oracle"][0, ids.shape[1] :].tolist(), tok, "clean"))
    assert fired >= len(prompts) // 2  # the markers really stopped rows
    assert translate(model, tok, probe, prompts, num_beams=beams, max_new_tokens=16, batch_tokens=10**6) == oracle_hyps


def test_a_marker_whose_leading_space_decoding_drops_does_not_stop(tiny):
    """The first generated piece ``▁[`` decodes to ``[`` at the start of the text (the extraction's decoding drops
    the space): a marker `` [Fr`` is not in ``[French]: The``, so nothing may stop there, as the oracle says.
    transformers' StopStringCriteria matches the pieces' strings, space kept, and stops after ``ren``: the
    hypothesis would be ``[Fren`` (what the demo model gave on 13 of 120 greedy rows, benchmarks/RESULTS.md)."""
    import torch
    from transformers import StopStringCriteria

    from mfti_lightning.eval.generation import StopOnText

    _, tok = tiny
    cont = tok("[French]: The", add_special_tokens=False)["input_ids"]
    assert tok.convert_ids_to_tokens(cont)[0].startswith("\u2581") and tok.decode(cont) == "[French]: The"
    marker, oracle = (" [Fr",), _GeneratedTextContains(tok, (" [Fr",), 0)
    prefixes = [torch.tensor([cont[:k]]) for k in range(1, len(cont) + 1)]
    assert [bool(StopOnText(tok, marker, 0)(ids, None)[0]) for ids in prefixes] == [False] * len(cont)
    assert [bool(oracle(ids, None)[0]) for ids in prefixes] == [False] * len(cont)
    assert any(bool(StopStringCriteria(tok, list(marker))(ids, None)[0]) for ids in prefixes)  # why not it
    # and a marker the decoded text does hold stops at the piece that completes it
    assert [bool(StopOnText(tok, ("ch]",), 0)(ids, None)[0]) for ids in prefixes].index(True) == [
        tok.decode(cont[:k]).find("ch]") >= 0 for k in range(1, len(cont) + 1)
    ].index(True)


def test_generate_stop_strings_would_also_stop_on_a_marker_begun_in_the_prompt(tiny):
    """Why StopOnText is not ``generate(stop_strings=..., tokenizer=...)``: transformers matches the stop string
    against the whole sequence, so a prompt ending in the start of a marker (``... Translation``) and a model going on
    with ``: [`` stops there; the template cuts markers in the generated text only and would not cut this,
    so a stop there changes what beam search keeps. StopOnText looks at the generated part only."""
    import torch
    from transformers import StopStringCriteria

    from mfti_lightning.eval.generation import StopOnText

    model, tok = tiny
    full = tok("Translation: [German]: Hallo [English]: Translation: [")["input_ids"]
    prompt, cont = full[:-3], full[-3:]  # the prompt ends in "... Translation", the model goes on with ": ["
    assert tok.decode(prompt, skip_special_tokens=True).endswith("[English]: Translation")
    ids = torch.tensor([full])
    assert StopStringCriteria(tok, ["\n", *T1.stop_markers])(ids, None).tolist() == [True]
    assert StopOnText(tok, T1.stop_markers, len(prompt))(ids, None).tolist() == [False]
    assert T1.cut(tok.decode(cont, skip_special_tokens=True)) == ": ["  # nothing for extraction to cut


@pytest.mark.parametrize("beams", [1, 4])
def test_stop_strings_the_vocabulary_cannot_produce_never_stop(tiny, beams):
    """The custom template ``<input> = [<tgtlang>]:`` has no marker of its own, only a newline, and no token of the
    tiny vocabulary holds a newline (nor ``=``): transformers cannot build StopStringCriteria for it, and no
    decoded text can ever contain it. Clean translation then runs without a stop: the same continuations as
    ``reference``, and extraction has nothing to cut."""
    model, tok = tiny
    vocabulary_text = "".join(tok.batch_decode([[i] for i in range(len(tok))], skip_special_tokens=True))
    assert "\n" not in vocabulary_text and "=" not in vocabulary_text
    custom = Template(name="custom", prefix="<input> = [<tgtlang>]:", lang_names="native")
    assert custom.stop_markers == ()
    prompts = [custom.render_prompt(p.split("]: ", 1)[1].rsplit(" [", 1)[0], "de", "en") for p in _prompts(6)]
    kw = dict(num_beams=beams, max_new_tokens=12, batch_tokens=10**6)
    clean = translate(model, tok, custom, prompts, **kw)
    assert clean == translate(model, tok, custom, prompts, extraction="reference", **kw) and any(clean)


def test_gather_refuses_missing():
    with pytest.raises(RuntimeError, match="not translated"):
        gather_translations({0: "a"}, 2, 1)


_DIST = textwrap.dedent("""
    import os, sys, json, datetime
    import torch.distributed as dist
    sys.path.insert(0, os.environ["REPO"])
    from mfti_lightning.model.modeling import load_model, load_tokenizer
    from mfti_lightning.eval.generation import translate, translate_share
    from mfti_lightning.core.template import Template
    rank, world = int(sys.argv[1]), 2
    dist.init_process_group("gloo", rank=rank, world_size=world, timeout=datetime.timedelta(seconds=60))
    t = Template(name="t1", prefix="Translation: [<srclang>]: <input> [<tgtlang>]:", paper_id=1)
    prompts = json.loads(os.environ["PROMPTS"])
    model, tok = load_model(os.environ["MODEL"]), load_tokenizer(os.environ["MODEL"])
    # a tiny budget: 5 uneven batches over 2 ranks; synced_gpus forces the FSDP code path (lock-step, dummy batch)
    kw = dict(num_beams=1, max_new_tokens=8, batch_tokens=60, rank=rank, world_size=world,
              synced_gpus=bool(int(os.environ["SYNCED"])))
    local = translate_share(model, tok, t, prompts, **kw)
    hyps = translate(model, tok, t, prompts, **kw)  # the same list on every rank
    print("RESULT", json.dumps({"rank": rank, "local": sorted(local), "hyps": hyps}))
    dist.destroy_process_group()
""")


@pytest.mark.slow
@pytest.mark.timeout(180)
@pytest.mark.parametrize("synced", [0, 1])
def test_two_process_generation_translates_each_sentence_once(tiny, tiny_model_dir, tmp_path, synced):
    import json
    import socket

    model, tok = tiny
    prompts = _prompts(5)
    expected = translate(model, tok, T1, prompts, num_beams=1, max_new_tokens=8, batch_tokens=60)
    one_share = translate_share(model, tok, T1, prompts, num_beams=1, max_new_tokens=8, batch_tokens=60)
    assert [one_share[i] for i in range(len(prompts))] == expected  # one process: the share is everything
    script = tmp_path / "dist.py"
    script.write_text(_DIST)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {
        **os.environ,
        "REPO": os.getcwd(),
        "MODEL": str(tiny_model_dir),
        "PROMPTS": json.dumps(prompts),
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(port),
        "SYNCED": str(synced),
        "PYTHONPATH": os.pathsep.join([os.getcwd(), os.environ.get("PYTHONPATH", "")]),
    }
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), str(r)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for r in range(2)
    ]
    outs = []
    try:
        for p in procs:
            outs.append(p.communicate(timeout=150))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    assert all(p.returncode == 0 for p in procs), [o[1][-2000:] for o in outs]
    got = [json.loads(next(ln for ln in o[0].splitlines() if ln.startswith("RESULT"))[len("RESULT ") :]) for o in outs]
    assert [g["rank"] for g in got] == [0, 1]
    assert got[0]["hyps"] == got[1]["hyps"] == expected  # translate(): one list in input order on every rank
    shares = [set(g["local"]) for g in got]  # translate_share(): disjoint parts, together every prompt
    assert shares[0] and shares[1] and not shares[0] & shares[1] and shares[0] | shares[1] == set(range(len(prompts)))
