"""Faults around checkpoints lose nothing and change nothing (issue 19, items 1, 2, 3 and 10), on the tiny model:

- a run SIGKILLed before and after a validation, in the middle of a checkpoint write and during the export, then
  resumed, ends as the uninterrupted run (tests/resume_runs.assert_same_run);
- a damaged checkpoint is set aside with a warning naming it and an older one is used; a damaged best checkpoint
  that cannot be recomputed is one clear error naming the file and the fix, before the data and the model load;
- a checkpoint write never passes through $TMPDIR (a 2 MiB one does not stop it); a full disk names the
  checkpoint's path and leaves no partial file (real, small tmpfs filesystems);
- a crafted checkpoint whose pickle runs a command is refused by mfti-eval, mfti-export and resume, and the command
  never runs (it does with the explicit trust option, which shows the file really is malicious).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import run_cli
from resume_runs import assert_same_run, finish, run_dir, start, train


@pytest.fixture(scope="module")
def baseline(tmp_path_factory):
    """The uninterrupted run (started once; the tests that need it wait for it)."""
    cwd = tmp_path_factory.mktemp("baseline")
    proc = start(cwd)
    state = {}

    def get() -> Path:
        if "run" not in state:
            rc, out = finish(proc, 500)
            assert rc == 0, out[-4000:]
            state["run"] = run_dir(cwd)
        return state["run"]

    yield get
    if proc.poll() is None:
        proc.kill()


def copy_run(run: Path, cwd: Path) -> Path:
    """The run directory under another working directory. Its checkpoints still name the old path (a moved run);
    results.json is made to name the new one, as if the run had been made there."""
    dest = cwd / "outputs/train/runs" / run.name
    shutil.copytree(run, dest)
    results = dest / "results.json"
    results.write_text(results.read_text().replace(str(run), str(dest)))
    return dest


def interrupted(run: Path) -> Path:
    """Make a completed run look killed after training: no results.json, no export."""
    (run / "results.json").unlink()
    shutil.rmtree(run / "hf")
    return run


# ---- item 1: SIGKILL anywhere, then resume -------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_killed_anywhere_then_resumed_ends_as_the_uninterrupted_run(tmp_path, baseline):
    cwd = tmp_path / "killed"
    steps = [
        # (kill point, what the run directory holds after the kill)
        ("before_val:4", {"periodic": ["step000002.ckpt"], "best": []}),
        # validated and the best checkpoint written; the periodic one of step 4 comes after it: not yet
        ("after_val:4", {"periodic": ["step000002.ckpt"], "best": ["step000004.ckpt"]}),
        ("mid_write:6", {"periodic": ["step000002.ckpt"], "best": ["step000004.ckpt"]}),
        ("export", None),
    ]
    for kill, expected in steps:
        rc, out = train(cwd, kill=kill)
        assert rc == -9, f"{kill}: {out[-3000:]}"
        run = run_dir(cwd)
        assert not (run / "results.json").exists()
        if expected:
            for kind, names in expected.items():
                found = sorted(p.name for p in (run / "checkpoints" / kind).glob("step*.ckpt"))
                assert found == names, (kill, kind, found)
        if kill.startswith("mid_write"):
            (partial,) = (run / "checkpoints/periodic").glob(".step000006.ckpt.*.partial")
        if kill == "export":
            assert (run / ".hf.partial").is_dir() and not (run / "hf").exists()
    rc, out = train(cwd)
    assert rc == 0, out[-4000:]
    run = run_dir(cwd)
    assert f"Removed {run / '.hf.partial'}, left by a write that was killed." in out
    assert not partial.exists() and not list(run.glob(".*.partial"))
    log = "".join(p.read_text() for p in sorted(cwd.glob("out-*.txt")))
    assert f"Removed {partial}, left by a write that was killed." in log
    # launch 2 resumed from step 2 (step 4's periodic checkpoint waits for its validation), launches 3 and 4 from
    # the best checkpoint of step 4 (written after that validation), the last one from step 8
    ckdir = run / "checkpoints"
    resumed = [(cwd / f"out-{i}.txt").read_text().partition("Resuming from ")[2].split("\n")[0] for i in range(5)]
    assert resumed == [
        "",
        f"{ckdir}/periodic/step000002.ckpt",
        f"{ckdir}/best/step000004.ckpt",
        f"{ckdir}/best/step000004.ckpt",
        f"{ckdir}/periodic/step000008.ckpt",
    ]
    assert_same_run(baseline(), run)


# ---- item 2: damaged checkpoints -----------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.timeout(900)
def test_damaged_checkpoints_are_set_aside_and_the_run_resumes_from_an_older_one(tmp_path, baseline):
    cwd = tmp_path / "damaged"
    run = interrupted(copy_run(baseline(), cwd))
    periodic8 = run / "checkpoints/periodic/step000008.ckpt"
    best8 = run / "checkpoints/best/step000008.ckpt"
    intact = periodic8.read_bytes()
    os.truncate(periodic8, 100)  # the issue's `truncate -s 100`
    best8.write_bytes(b"")  # zero bytes; newer than step 6, so resuming recomputes it
    leftover = run / "checkpoints/periodic/step000008.ckpt.tmp"  # the earlier writer's temporary file
    leftover.write_bytes(intact[:1000])
    rc, out = train(cwd)
    assert rc == 0, out[-4000:]
    damaged = run / "checkpoints/damaged"
    assert sorted(p.name for p in damaged.iterdir()) == ["best-step000008.ckpt", "periodic-step000008.ckpt"]
    assert (damaged / "periodic-step000008.ckpt").stat().st_size == 100  # kept as it was, never deleted
    assert (
        f"{periodic8}: damaged checkpoint (100 bytes, not a complete torch.save zip archive: File is not a zip "
        f"file; truncated or overwritten?). Moved it to {damaged / 'periodic-step000008.ckpt'}; resuming from an "
        "older checkpoint instead." in out
    )
    assert (
        f"{best8}: damaged checkpoint (empty file, 0 bytes). Moved it to {damaged / 'best-step000008.ckpt'}; its step "
        "is validated again after resuming." in out
    )
    assert f"Resuming from {run / 'checkpoints/periodic/step000006.ckpt'}" in out
    assert not leftover.exists()
    assert_same_run(baseline(), run)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_damaged_best_checkpoint_is_one_clear_error_before_anything_loads(tmp_path, baseline):
    # resuming: the best checkpoint (step 8) is older than nothing left to resume from (periodic step 8)
    cwd = tmp_path / "best"
    run = interrupted(copy_run(baseline(), cwd))
    best8 = run / "checkpoints/best/step000008.ckpt"
    best8.write_bytes(b"")
    rc, out = train(cwd)
    assert rc == 2
    assert (
        f"mfti-train: error: {best8}: damaged checkpoint (empty file, 0 bytes). It is the best checkpoint so far and "
        f"no remaining checkpoint can recompute it: restore it from a backup, or move {best8.parent} and "
        f"{run / 'checkpoints/periodic'} away to train this run again from the start." in out
    )
    assert "Loading weights" not in out and "Restoring states" not in out  # before the model and the trainer
    assert best8.exists()  # the user decides

    # re-evaluating a completed run (an evaluation setting changed): the same, with the exported model as the fix
    cwd = tmp_path / "reeval"
    run = copy_run(baseline(), cwd)
    best8 = run / "checkpoints/best/step000008.ckpt"
    best8.write_bytes(b"")
    rc, out = train(cwd, ["eval.num_beams=2"])
    assert rc == 2
    assert (
        f"mfti-train: error: {best8}: damaged checkpoint (empty file, 0 bytes). Re-evaluating this completed run "
        f"needs its best checkpoint. Evaluate the exported model instead (mfti-eval ckpt_path={run / 'hf'} ...), "
        f"restore the file from a backup, or delete {run} to train again." in out
    )
    assert "Loading weights" not in out


# ---- item 3: writes beside the target, a full disk ----------------------------------------------------------
@pytest.fixture
def tmpfs(tmp_path):
    """Mounts real small filesystems (tmpfs): ``tmpfs(name, size)`` -> the mount point."""
    mounted = []

    def mount(name: str, size: str) -> Path:
        mnt = tmp_path / name
        mnt.mkdir()
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mnt)], capture_output=True)
        if r.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here (needs root): {r.stderr.decode().strip()}")
        mounted.append(mnt)
        return mnt

    yield mount
    for mnt in mounted:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_full_disk_names_the_checkpoint_and_nothing_goes_through_tmpdir(tmp_path, tmpfs):
    # the run directory has room for one tiny checkpoint (11 MB), not two; $TMPDIR for none
    run = tmpfs("small", "16m") / "run"
    tmpdir = tmpfs("tmpdir", "2m")
    env_tmp = os.environ.get("TMPDIR")
    os.environ["TMPDIR"] = str(tmpdir)  # inherited by the subprocess
    try:
        rc, out = finish(start(tmp_path / "cwd", [f"hydra.run.dir={run}"]))
    finally:
        os.environ.pop("TMPDIR") if env_tmp is None else os.environ.update(TMPDIR=env_tmp)
    assert rc == 2
    found = re.search(
        r"mfti-train: error: Could not write the checkpoint (\S+): No space left on device \((\d+) MiB free there\)\. "
        r"Free space on that filesystem \(or lower checkpoint.keep\) and run the same command again: training resumes "
        r"from the newest complete checkpoint\.",
        out,
    )
    assert found, out[-3000:]
    assert Path(found.group(1)).parent.parent == run / "checkpoints" and int(found.group(2)) < 16
    assert [p.name for p in (run / "checkpoints/periodic").iterdir()] == ["step000002.ckpt"]  # complete, kept
    assert not list(run.rglob("*.partial"))  # the failed write removed its partial file


# ---- item 10: a crafted checkpoint runs nothing ---------------------------------------------------------------
CRAFT = """
import os, sys, torch
class Payload:
    def __reduce__(self):
        return (os.system, ("touch " + sys.argv[2],))
torch.save({"state_dict": {}, "hyper_parameters": {}, "x": Payload()}, sys.argv[1])
"""


def crafted(path: Path, marker: Path) -> Path:
    subprocess.run([sys.executable, "-c", CRAFT, str(path), str(marker)], check=True, timeout=120)
    assert path.exists() and not marker.exists()
    return path


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_crafted_checkpoint_is_refused_and_runs_nothing(tmp_path, baseline):
    marker = tmp_path / "pwned"
    bad = crafted(tmp_path / "model.ckpt", marker)
    risk = (
        "holds pickled objects beyond tensors and plain containers (posix.system): loading it could run arbitrary code."
    )

    r = run_cli(["mfti_lightning.cli.export", str(bad), "--out", str(tmp_path / "out")], tmp_path, timeout=300)
    assert r.returncode == 2 and f"mfti-export: error: {bad} {risk}" in r.stderr, r.stderr[-3000:]
    assert "--trust-checkpoint" in r.stderr and not marker.exists()

    r = run_cli(["mfti_lightning.cli.eval", f"ckpt_path={bad}", "logger=none", "lang_pairs.test_size=2"], tmp_path)
    assert r.returncode != 0 and f"mfti-eval: error: {bad} {risk}" in r.stderr
    assert "trust_checkpoint=true" in r.stdout + r.stderr and not marker.exists()

    # resume: the crafted file as the newest periodic checkpoint of an interrupted run
    cwd = tmp_path / "resume"
    run = interrupted(copy_run(baseline(), cwd))
    planted = run / "checkpoints/periodic/step000010.ckpt"
    shutil.copy(bad, planted)
    rc, out = train(cwd)
    assert rc == 2 and f"mfti-train: error: {planted} {risk}" in out, out[-3000:]
    assert not marker.exists() and planted.exists()

    # the option that trusts a file does load it: the file really runs its command (the check above is real)
    r = run_cli(["mfti_lightning.cli.export", str(bad), "--out", str(tmp_path / "out"), "--trust-checkpoint"], tmp_path)
    assert marker.exists(), r.stderr[-3000:]


def test_sharded_checkpoints_are_checked_without_unpickling(tmp_path):
    """A torch.distributed.checkpoint folder (as FSDP/FSDP2 write them): intact passes; a crafted index or byte
    item is refused without running; a shard cut short is damaged."""
    import pickle
    import warnings

    import torch
    import torch.distributed.checkpoint as dcp

    from mfti_lightning.core.errors import CheckpointError, UntrustedCheckpointError
    from mfti_lightning.model.checkpoint_check import check_checkpoint
    from mfti_lightning.model.checkpoint_files import load_checkpoint

    def sharded(name: str, extra=None) -> Path:
        path = tmp_path / name
        state = {"state_dict": {"model.w": torch.randn(4, 3)}, "optimizer_0": {"param_groups": [{"lr": 1e-3}]}}
        state.update(extra or {})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "torch.distributed is disabled ... a single process"
            dcp.save(state, checkpoint_id=path)
        torch.save({"global_step": 3, "hyper_parameters": {}}, path / "meta.pt")
        return path

    good = sharded("good.ckpt")
    check_checkpoint(good)
    ckpt = load_checkpoint(good)
    assert ckpt["global_step"] == 3 and ckpt["state_dict"]["model.w"].shape == (4, 3)
    assert not list(tmp_path.glob(".consolidate-*"))

    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    bad_item = sharded("bad_item.ckpt", {"extra": Payload()})
    assert not marker.exists()  # dcp.save pickled it; nothing ran
    with pytest.raises(UntrustedCheckpointError, match=r"\(item extra\) holds pickled objects .*posix.system"):
        load_checkpoint(bad_item)
    bad_index = sharded("bad_index.ckpt")
    metadata = pickle.loads((bad_index / ".metadata").read_bytes())
    metadata.planner_data = Payload()
    (bad_index / ".metadata").write_bytes(pickle.dumps(metadata))
    with pytest.raises(UntrustedCheckpointError, match=r"names posix.system besides torch.distributed.checkpoint"):
        check_checkpoint(bad_index)
    assert not marker.exists()

    short = sharded("short.ckpt")
    (shard,) = short.glob("*.distcp")
    os.truncate(shard, shard.stat().st_size // 2)
    with pytest.raises(CheckpointError, match="damaged checkpoint shard"):
        check_checkpoint(short)


def test_the_best_checkpoint_state_follows_a_moved_run_dir(tmp_path):
    """A run directory moved (or copied) elsewhere resumes with its best checkpoint in the new place; the state
    keeps the key of a plain ModelCheckpoint, so checkpoints written before BestCheckpoint existed still restore."""
    import torch
    from pytorch_lightning.callbacks import ModelCheckpoint

    from mfti_lightning.train.checkpoint_callbacks import BestCheckpoint

    old, new = tmp_path / "old/checkpoints/best", tmp_path / "new/checkpoints/best"
    saved = BestCheckpoint(old, "val/chrf/avg")
    saved.best_model_path = str(old / "step000004.ckpt")
    saved.best_model_score = torch.tensor(3.0)
    saved.best_k_models = {saved.best_model_path: saved.best_model_score}
    saved.kth_best_model_path = saved.best_model_path
    restored = BestCheckpoint(new, "val/chrf/avg")
    restored.load_state_dict(saved.state_dict())
    assert restored.best_model_path == str(new / "step000004.ckpt")
    assert restored.best_k_models == {str(new / "step000004.ckpt"): torch.tensor(3.0)}
    assert restored.best_model_score == 3.0 and restored.kth_best_model_path == str(new / "step000004.ckpt")
    assert restored.state_key == ModelCheckpoint(new, monitor="val/chrf/avg", mode="max").state_key


def test_damage_is_found_without_loading(tmp_path):
    import torch

    from mfti_lightning.model.checkpoint_check import damage

    good = tmp_path / "good.ckpt"
    torch.save({"state_dict": {"w": torch.randn(64, 64)}}, good)
    assert damage(good) is None
    data = good.read_bytes()
    cut = tmp_path / "cut.ckpt"
    cut.write_bytes(data[: len(data) - 200])  # the central directory is gone
    assert "not a complete torch.save zip archive" in damage(cut)
    flipped = bytearray(data)
    flipped[100] ^= 0xFF  # inside data.pkl: its CRC no longer matches
    (tmp_path / "flipped.ckpt").write_bytes(bytes(flipped))
    assert "Bad CRC-32" in damage(tmp_path / "flipped.ckpt")
    (tmp_path / "empty.ckpt").write_bytes(b"")
    assert damage(tmp_path / "empty.ckpt") == "empty file, 0 bytes"
    assert damage(tmp_path / "gone.ckpt") == "the file is missing"
