"""Shell completion: ``eval "$(mfti --completion bash)"`` completes mfti's commands, and after train/eval/prepare
(or their mfti-<command> aliases) Hydra's own completion answers with config groups, options and keys. Run in a
real bash against the installed entry points; each completion asks Hydra in a subprocess, as a shell does."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mfti_lightning.cli.main import bash_completion, main

BIN = Path(sys.executable).parent

# complete "<line>": the line up to the cursor, split as bash splits it once "=" is no word break (Hydra's and our
# script remove it); prints the candidates, one per line
DRIVER = """
eval "$(mfti --completion bash)"
complete_line() {
    COMP_LINE=$1 COMP_POINT=${#1}
    read -ra COMP_WORDS <<< "$1"
    [[ $1 == *" " ]] && COMP_WORDS+=("")
    COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 ))
    COMPREPLY=()
    _mfti_completion 2>/dev/null  # compopt complains outside a real completion
    printf '%s\\n' "${COMPREPLY[@]}"
}
complete_line "$LINE"
"""


def complete(line: str) -> list[str]:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "LINE": line}
    p = subprocess.run(["bash", "-c", DRIVER], capture_output=True, text=True, timeout=120, env=env)
    assert p.returncode == 0, p.stderr
    return [w for w in p.stdout.splitlines() if w]


@pytest.mark.skipif(shutil.which("bash") is None or not (BIN / "mfti").exists(), reason="needs bash and mfti")
@pytest.mark.timeout(600)
def test_bash_completion_of_commands_and_hydra_overrides():
    assert complete("mfti tr") == ["train"]
    assert {"train", "eval", "plan", "status", "report"} <= set(complete("mfti "))
    assert complete("mfti train model=xglm-5") == ["model=xglm-564m"]  # a config group's options
    assert complete("mfti train model=tiny optim.max_s") == ["optim.max_steps="]  # a key of the composed config
    assert complete("mfti-train lang_pairs=pap") == ["lang_pairs=paper13"]  # the alias, straight to Hydra
    assert complete("mfti eval shots=k") == [f"shots=k{k}" for k in (0, 1, 2, 4, 8)]


def test_completion_script_and_its_errors(capsys):
    assert main(["--completion", "bash"]) == 0
    script = capsys.readouterr().out
    assert script.strip() == bash_completion()
    assert "complete -F _mfti_completion mfti mfti-train mfti-eval mfti-prepare" in script
    # Hydra's own install line would complete the mfti-train alias only: under mfti it installs mfti's
    assert main(["train", "--shell-completion", "install=bash"]) == 0
    assert capsys.readouterr().out.strip() == bash_completion()
    assert main(["--completion", "zsh"]) == 2
    assert 'eval "$(mfti --completion bash)"' in capsys.readouterr().err
