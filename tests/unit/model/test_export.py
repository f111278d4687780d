"""mfti-export: a checkpoint -> HF directory that loads with from_pretrained and generates what the in-memory
model generated (also with LoRA, merged on export)."""

from __future__ import annotations

import pytest
from test_module import fit_tiny


def _generate(model, tok):
    return [
        model.generate(
            **tok(["English: Hello world.\nGerman:", "Chinese: 你好\nEnglish:"][i : i + 1], return_tensors="pt"),
            max_new_tokens=8,
            do_sample=False,
            pad_token_id=tok.pad_token_id,
        ).tolist()
        for i in range(2)
    ]


@pytest.mark.slow
@pytest.mark.timeout(180)
@pytest.mark.parametrize("peft", [None, "lora"])
def test_export_round_trip(cfg_factory, tmp_path, peft):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from mfti_lightning.cli.export import main
    from mfti_lightning.core.template import Template

    over = [
        "num_examples.n=16",
        "optim.global_batch_size=8",
        "optim.micro_batch_size=8",
        "checkpoint.every_n_steps=2",
        "progress.mode=none",
        "model.attn_implementation=sdpa",
    ]
    if peft:
        over += ["model.peft=lora", "model.lora.r=4"]
    cfg = cfg_factory(*over)
    module, trainer, _ = fit_tiny(cfg, tmp_path, max_steps=2)
    model = module.model
    if peft:
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        assert 0 < trainable < 0.1 * sum(p.numel() for p in model.parameters())
        assert any("lora_B" in n and p.abs().sum() > 0 for n, p in model.named_parameters())  # it trained
    model.eval()
    expected = _generate(model, module.tokenizer)

    ckpt = tmp_path / "checkpoints" / "periodic" / "step000002.ckpt"
    assert main([str(ckpt), "--out", str(tmp_path / "hf"), "--tokenizer", str(module.hparams.model_path)]) == 0
    hf = AutoModelForCausalLM.from_pretrained(tmp_path / "hf")
    tok = AutoTokenizer.from_pretrained(tmp_path / "hf")
    assert not any("lora" in k for k in hf.state_dict())
    assert _generate(hf, tok) == expected
    assert Template.load(tmp_path / "hf").to_dict() == module.template.to_dict()


def test_export_of_missing_checkpoint(tmp_path, capsys):
    from mfti_lightning.cli.export import main

    assert main([str(tmp_path)]) == 2
    assert "No checkpoint" in capsys.readouterr().err
