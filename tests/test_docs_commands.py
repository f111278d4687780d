"""The docs cannot drift from the code: every ``mfti`` command line shown in README.md and docs/*.md still parses
(tests/docs_commands.py says what that means per command), and so would fail a command line that uses an override,
an option or a command that no longer exists."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import docs_commands
import pytest
from conftest import REPO

COMMANDS = docs_commands.doc_commands()
# command lines that must NOT parse: each documented kind of command with something that does not exist
BROKEN = [
    "mfti train optim.max_stepz=300",  # a key that does not exist
    "mfti train model=xglm-9b",  # a config-group option that does not exist
    "mfti train shots=8",  # a number for a config group
    "mfti eval split=test",  # a value the schema does not allow
    "mfti train -m seed=1,2 optim.global_batch_size=7",  # a sweep whose jobs the launcher would refuse
    "mfti train -m --config-dir sweeps --config-name no_such_sweep",  # a sweep file that does not exist
    "mfti plan shots --no-such-option",
    "mfti prefetch --sweep no_such_sweep",
    "mfti status try --follow",  # an option mfti status does not have
    "mfti report outputs/train/sweeps/try --bootstrap-samples many",  # a number option given a word
    "mfti export <run dir> --outdir x",
    "mfti evaluate model=tiny",  # a command that does not exist
    "mfti analyze <run dir> --lid-languages <languages>",  # a placeholder the table does not know
]


@pytest.fixture(scope="module")
def checked(tmp_path_factory):
    """Every documented command and every BROKEN one, checked in ONE Python process (tests/docs_commands.py)."""
    out = tmp_path_factory.mktemp("docs-outputs")
    env = {**os.environ, "MFTI_OUTPUT_ROOT": str(out)}  # nothing the commands might write lands in the checkout
    done = subprocess.run(
        [sys.executable, str(REPO / "tests" / "docs_commands.py"), json.dumps(BROKEN)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.splitlines()[-1])


def test_the_docs_show_commands_of_every_kind():
    """The extraction finds the commands (an empty list would pass everything below)."""
    names = {docs_commands.argv_of(c.text)[0] for c in COMMANDS if docs_commands.argv_of(c.text)}
    assert {"train", "eval", "prepare", "plan", "status", "report", "score", "export", "analyze", "prefetch"} <= names
    assert any("-m" in docs_commands.argv_of(c.text) for c in COMMANDS)
    pages = {"README.md", *(f"docs/{p}.md" for p in ("configuration", "data", "training", "evaluation", "slurm"))}
    assert pages <= {c.file for c in COMMANDS}


@pytest.mark.timeout(960)
@pytest.mark.parametrize("command", COMMANDS, ids=[c.id for c in COMMANDS])
def test_documented_command_parses(checked, command):
    result = checked["commands"][command.text]
    assert result["error"] is None, f"{command.file}:{command.line}: {command.text}\n{result['error']}"


@pytest.mark.timeout(960)
@pytest.mark.parametrize("text", BROKEN)
def test_a_command_that_does_not_exist_fails(checked, text):
    assert checked["commands"][text]["error"], f"{text} was accepted"


@pytest.mark.timeout(960)
def test_every_command_has_help(checked):
    from mfti_lightning.cli.main import COMMANDS as CLI

    assert checked["help"] == dict.fromkeys(CLI), checked["help"]


@pytest.mark.timeout(960)
def test_checking_the_docs_imports_no_torch(checked):
    """Config commands (--help, --cfg job, plan, status, prefetch --dry-run) must not import torch or Lightning."""
    assert not checked["torch_imported"] and not checked["lightning_imported"]


def test_every_command_named_in_the_docs_exists():
    """``mfti <command>`` / ``mfti-<command>`` in prose too, not only in code blocks."""
    import re

    from mfti_lightning.cli.main import COMMANDS as CLI

    for path in docs_commands.DOC_FILES:
        text = path.read_text(encoding="utf-8")
        named = set(re.findall(r"`mfti[ -]([a-z]+)\b", text))
        assert named <= set(CLI), f"{path.name}: {sorted(named - set(CLI))}"


def test_links_between_pages_resolve():
    """Every relative link of README.md and docs/ names a file that exists, and its #anchor a heading there (GitHub's
    anchors: the heading in lower case, punctuation dropped, spaces as hyphens)."""
    import re

    def anchors(path):
        headings = re.findall(r"(?m)^#+ (.*)$", path.read_text(encoding="utf-8"))
        return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}

    broken = []
    for path in docs_commands.DOC_FILES:
        for target, anchor in re.findall(r"\]\(([^)#\s]*)(?:#([^)\s]+))?\)", path.read_text(encoding="utf-8")):
            if target.startswith(("http://", "https://")):
                continue
            file = (path.parent / target).resolve() if target else path
            if not file.exists() or (anchor and anchor not in anchors(file)):
                broken.append(f"{path.relative_to(REPO)}: ({target}#{anchor or ''})")
    assert not broken, broken
