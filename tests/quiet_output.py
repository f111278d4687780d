"""What a run may print as a warning (issue 22, "quiet runs"): the project's own warnings, each with the reason it
is there. Any other warning line is unexplained and fails the test that reads the output: a Python warning
(``...Warning: ...``), Lightning's warnings (``<file>.py:<line>: <message>``, Lightning drops the category), a
WARNING/ERROR log record, a ``wandb: WARNING`` line.

Third-party noise is silenced where the project triggers it (train/trainer.py ``quiet_lightning``,
train/checkpoint_callbacks.py ``expect_earlier_checkpoints``), never here: this list only explains the project's own.
"""

from __future__ import annotations

import re

# (pattern matched at the start of a warning line, why a user sees it)
EXPLAINED = [
    (
        r"\[[^]]+\]\[mfti_lightning\.eval\.metrics\]\[WARNING\] - spBLEU unavailable: ",
        "no flores101 SentencePiece model (the tests' empty SACREBLEU dir: an offline node): the scores are 13a BLEU, "
        "not the paper's spBLEU, and the message names the fix (mfti-prefetch)",
    ),
    (
        r"\[[^]]+\]\[mfti_lightning\]\[WARNING\] - .+: took over the lease of a process that is gone ",
        "a run resumed after its process died says which process held the run directory and since when",
    ),
]
# the project's warnings that a process prints at most once (one line per run, not per direction or validation)
ONCE = ("spBLEU unavailable",)

WARNING_LINE = re.compile(r"WARNING|Warning|\]\[(ERROR|CRITICAL)\]|^\S+\.py:\d+: ")


def warning_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if WARNING_LINE.search(line)]


def unexplained(output: str) -> list[str]:
    return [line for line in warning_lines(output) if not any(re.match(p, line) for p, _ in EXPLAINED)]


def assert_quiet(output: str, what: str = "the run") -> None:
    """Every warning line of ``output`` (one process's stdout and stderr) is one of :data:`EXPLAINED`, and the
    :data:`ONCE` ones appear at most once."""
    unknown = unexplained(output)
    assert not unknown, f"{what} printed warnings no one explained (silence them at the source or explain them in " + (
        "tests/quiet_output.py):\n" + "\n".join(unknown)
    )
    for text in ONCE:
        lines = [line for line in warning_lines(output) if text in line]
        assert len(lines) <= 1, f"{what} printed {text!r} {len(lines)} times:\n" + "\n".join(lines)
