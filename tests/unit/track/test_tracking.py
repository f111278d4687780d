"""Tracking: W&B mode decisions, config hygiene, summary fields, real offline W&B runs read back from their files,
multirun grouping, resume, secrets, the online-init fallback, and plain progress lines."""

from __future__ import annotations

import http.server
import json
import logging
import socket
import threading
from pathlib import Path

import pytest
from conftest import compose, run_cli
from wandb_records import read_run, run_files

from mfti_lightning.core.errors import ConfigError
from mfti_lightning.eval.analysis import CATEGORIES as ERROR_CATEGORIES
from mfti_lightning.track import loggers, redact, run_summary, run_values, wandb_mode

FAST = ["lang_pairs.val_size=2", "lang_pairs.test_size=2", "eval.max_new_tokens=4", "logger=wandb"]
TRAIN_FAST = [
    "optim.max_steps=4",
    "eval.val_every_n_steps=2",
    "num_examples.n=32",
    "trainer.log_every_n_steps=1",
    "eval.score_before_training=true",
    "progress.mode=plain",
    "progress.every_n_steps=2",
]
FAKE_KEY = "f4k3" * 10  # 40 characters, the length of a real W&B key


# ---- mode decisions (no network) ------------------------------------------------------------------------
@pytest.fixture
def no_wandb_env(monkeypatch, tmp_path):
    for var in ("WANDB_MODE", "WANDB_API_KEY", "WANDB_IDENTITY_TOKEN_FILE", "WANDB_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    return monkeypatch


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_wandb_mode_env_wins(no_wandb_env):
    no_wandb_env.setenv("WANDB_MODE", "offline")
    no_wandb_env.setenv("WANDB_API_KEY", FAKE_KEY)
    assert wandb_mode.wandb_mode("online") == "offline"
    no_wandb_env.setenv("WANDB_MODE", "disabled")
    assert wandb_mode.wandb_mode("auto") == "disabled"


def test_wandb_mode_without_key_is_offline(no_wandb_env):
    mode, why = wandb_mode.wandb_mode_reason("auto")
    assert mode == "offline" and "API key" in why
    assert wandb_mode.wandb_mode("online") == "offline"  # an explicit online without a key never fails the job
    assert wandb_mode.wandb_mode("offline") == "offline"
    with pytest.raises(ConfigError, match="logger.mode"):
        wandb_mode.wandb_mode("sometimes")


def test_wandb_mode_with_key_but_no_server_is_offline(no_wandb_env):
    no_wandb_env.setenv("WANDB_API_KEY", FAKE_KEY)
    no_wandb_env.setenv("WANDB_BASE_URL", f"http://127.0.0.1:{_free_port()}")  # nothing listens there
    mode, why = wandb_mode.wandb_mode_reason("auto", check_timeout=2)
    assert mode == "offline" and "not reachable" in why


def test_wandb_mode_with_key_and_server_is_online(no_wandb_env):
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen()
        no_wandb_env.setenv("WANDB_API_KEY", FAKE_KEY)
        no_wandb_env.setenv("WANDB_BASE_URL", f"http://127.0.0.1:{srv.getsockname()[1]}")
        assert wandb_mode.wandb_mode("auto", check_timeout=2) == "online"


def test_netrc_key_counts(no_wandb_env, tmp_path):
    netrc = tmp_path / "netrc"
    netrc.write_text(f"machine api.wandb.ai\n  login user\n  password {FAKE_KEY}\n")
    no_wandb_env.setenv("NETRC", str(netrc))
    assert wandb_mode.has_api_key()


@pytest.mark.parametrize(
    "text",
    [
        "# machine api.wandb.ai login user password abc\n",  # a comment that names the host
        "machine api.wandb.ai.example.org login user password abc\n",  # another host that contains the name
        "machine api.wandb.ai login user\n",  # an entry without a key
        "machine example.org login user password abc\nmachine",  # malformed: no key rather than a traceback
    ],
)
def test_netrc_without_a_key_for_the_server_is_no_key(no_wandb_env, tmp_path, text):
    """netrc parsed by the standard library (as wandb reads it), not searched for the host name as a substring."""
    (tmp_path / "netrc").write_text(text)
    no_wandb_env.setenv("NETRC", str(tmp_path / "netrc"))
    assert not wandb_mode.has_api_key()
    assert wandb_mode.wandb_mode_reason("auto")[0] == "offline"


def test_netrc_key_of_a_self_hosted_server_counts(no_wandb_env, tmp_path):
    (tmp_path / "netrc").write_text(f"machine 127.0.0.1:8080 login user password {FAKE_KEY}\n")
    no_wandb_env.setenv("NETRC", str(tmp_path / "netrc"))
    assert not wandb_mode.has_api_key()  # the key is for another server than the default one
    no_wandb_env.setenv("WANDB_BASE_URL", "http://127.0.0.1:8080")
    assert wandb_mode.has_api_key()


# ---- config hygiene and record-derived fields -----------------------------------------------------------------
def test_clean_config_drops_missing_and_redacts_secrets(monkeypatch):
    monkeypatch.setenv("WANDB_API_KEY", FAKE_KEY)
    cfg = {
        "logger": {"api_key": "abc12345678", "project": "p", "entity": "???"},
        "hf_token": "hf_secret_value",
        "model": {"tokenizer_lines_per_language": 400, "name": "tiny"},
        "note": f"key={FAKE_KEY} inline",
        "list": ["???", 1],
        "eval": {"max_new_tokens": 4},
    }
    out = redact.clean_config(cfg)
    assert out["logger"] == {"api_key": redact.REDACTED, "project": "p"}
    assert out["hf_token"] == redact.REDACTED and out["note"] == f"key={redact.REDACTED} inline"
    assert out["model"] == {"tokenizer_lines_per_language": 400, "name": "tiny"} and out["list"] == [1]
    assert out["eval"] == {"max_new_tokens": 4}
    assert FAKE_KEY not in json.dumps(out)


def hand_record() -> dict:
    """A results.json record with every field other issues add (errors, partitions, throughput)."""
    m = {
        "test/bleu/de-en": 20.0,
        "test/bleu/en-de": 10.0,
        "test/bleu/avg": 15.0,
        "test/chrf/de-en": 50.0,
        "test/chrf/en-de": 40.0,
        "test/chrf/avg": 45.0,
        "val/bleu/avg": 12.0,
        "val/bleu/de-en": 12.0,
        "test/bleu/partition/seen": 20.0,
        "test/bleu/partition/reversed": 10.0,
        "test/rate_off_target/de-en": 0.0,
        "test/rate_off_target/en-de": 0.5,
        "test/rate_off_target/avg": 0.25,
    }
    return {
        "schema": 1,
        "status": "completed",
        "task": "train",
        "run_name": "xglm-564m|custom|t1|k0|n100",
        "sweep_name": "sw",
        "swept": {
            "model": "xglm-564m",
            "lang_pairs": "custom",
            "template": "t1_translation_src_tgt",
            "shots": 0,
            "num_examples": 100,
            "seed": 1,
        },
        "directions": {"train": ["de-en"], "eval": ["de-en", "en-de"]},
        "metrics": m,
        "partitions": {"seen": ["de-en"], "reversed": ["en-de"]},
        "errors": {
            "test": {
                "de-en": {"n": 2, "counts": {"other": 2}},
                "en-de": {"n": 2, "counts": {"off_target": 1, "other": 1}},
            }
        },
        "throughput": {
            "tokens_per_s": 1000.0,
            "samples_per_s": 10.0,
            "mfu": 0.31,
            "padding_efficiency": 0.9,
            "peak_memory_gb": 12.5,
            "params_total": 564_000_000,
            "params_trainable": 564_000_000,
            "device": "NVIDIA H100",
            "world_size": 8,
        },
        "training": {"steps": 100, "loss_first": 3.0, "loss_last": 1.0},
        "provenance": {"git_commit": "abc", "git_dirty": False},
        "wall_time_s": 12.0,
    }


def test_summary_fields_from_record():
    s = run_summary.summary_fields(hand_record())
    assert s["model"] == "xglm-564m" and s["params_total"] == 564_000_000 and s["num_examples"] == 100
    assert s["num_train_directions"] == 1 and s["num_eval_directions"] == 2 and s["shots"] == 0
    assert s["method"] == "mFTI" and s["template"] == "t1_translation_src_tgt"
    assert s["test/bleu/avg"] == 15.0 and s["test/chrf/avg"] == 45.0 and s["val/bleu/avg"] == 12.0
    assert s["test/bleu/partition/seen"] == 20.0 and s["test/rate_off_target/avg"] == 0.25
    assert s["throughput/mfu"] == 0.31 and s["throughput/tokens_per_s"] == 1000.0
    assert s["throughput/device"] == "NVIDIA H100" and s["training/steps"] == 100
    assert "test/bleu/de-en" not in s  # per-direction numbers go to the table, not the summary


def test_direction_and_error_rows():
    rows = run_summary.direction_rows(hand_record())
    test = {r["direction"]: r for r in rows if r["split"] == "test"}
    assert set(test) == {"de-en", "en-de"}
    assert test["en-de"] == {
        "split": "test",
        "direction": "en-de",
        "src": "en",
        "tgt": "de",
        "trained": False,
        "partition": "reversed",
        "bleu": 10.0,
        "chrf": 40.0,
        "rate_off_target": 0.5,
    }
    assert test["de-en"]["trained"] and test["de-en"]["partition"] == "seen"
    errs = {r["direction"]: r for r in run_summary.error_rows(hand_record())}
    assert errs["en-de"]["off_target"] == 1 and errs["en-de"]["other"] == 1 and errs["en-de"]["n"] == 2
    assert list(errs["de-en"])[3:] == list(ERROR_CATEGORIES)


def test_method_of():
    assert run_values.method_of({"num_examples": 0, "shots": 8}) == "ICL"
    assert run_values.method_of({"num_examples": 0, "shots": 0}) == "zero-shot"
    assert run_values.method_of({"num_examples": 1000, "shots": 0}) == "mFTI"


def test_rank_zero_from_env(monkeypatch):
    from mfti_lightning.core.distributed import global_rank

    for var in ("RANK", "LOCAL_RANK", "SLURM_PROCID", "SLURM_NTASKS", "JSM_NAMESPACE_RANK"):
        monkeypatch.delenv(var, raising=False)
    assert global_rank() == 0
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert global_rank() != 0
    monkeypatch.setenv("RANK", "0")
    assert global_rank() == 0
    monkeypatch.delenv("RANK")
    monkeypatch.delenv("LOCAL_RANK")
    monkeypatch.setenv("SLURM_PROCID", "3")
    monkeypatch.setenv("SLURM_NTASKS", "1")  # one task: not a rank
    assert global_rank() == 0
    monkeypatch.setenv("SLURM_NTASKS", "8")
    assert global_rank() != 0


def test_check_logger(cfg_factory):
    loggers.check_logger(cfg_factory("logger=csv"))
    with pytest.raises(ConfigError, match="logger.mode"):
        loggers.check_logger(cfg_factory("logger.mode=sometimes"))
    loggers.check_logger(cfg_factory("logger=tensorboard"))  # installed by the test command ([test] extra)


def test_tensorboard_logger_writes_events(cfg_factory, tmp_path):
    (logger,) = loggers.make_loggers(cfg_factory("logger=tensorboard"), tmp_path, {})
    logger.log_metrics({"val/chrf/avg": 1.5}, step=1)
    logger.finalize("success")
    assert list((tmp_path / "tensorboard").rglob("events.out.tfevents.*"))


def test_tensorboard_missing_names_the_install(cfg_factory, monkeypatch):
    cfg = cfg_factory("logger=tensorboard")
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name in ("tensorboard", "tensorboardX") else real(name, *a),
    )
    with pytest.raises(ConfigError, match="pip install tensorboard"):
        loggers.check_logger(cfg)


def test_progress_mode_follows_the_terminal():
    from mfti_lightning.train.progress import choose_mode

    class Stream:
        def __init__(self, tty):
            self.tty = tty

        def isatty(self):
            return self.tty

    assert choose_mode("auto", Stream(True)) == "rich"
    assert choose_mode("auto", Stream(False)) == "plain"
    assert choose_mode("plain", Stream(True)) == "plain"
    with pytest.raises(ConfigError):
        choose_mode("fancy")


def test_progress_callbacks(cfg_factory, monkeypatch):
    from pytorch_lightning.callbacks import RichProgressBar

    from mfti_lightning.train.progress import PlainProgress, progress_callbacks

    cfg = cfg_factory()
    monkeypatch.setattr("sys.stdout.isatty", lambda: True, raising=False)
    assert isinstance(progress_callbacks(cfg)[0], RichProgressBar)
    monkeypatch.setattr("sys.stdout.isatty", lambda: False, raising=False)
    (bar,) = progress_callbacks(cfg)
    assert isinstance(bar, PlainProgress) and bar.is_enabled and bar.every_n_steps == 50
    (bar,) = progress_callbacks(cfg_factory("progress.mode=none"))
    assert isinstance(bar, PlainProgress) and not bar.is_enabled  # replaces tqdm, prints nothing


# ---- real runs ---------------------------------------------------------------------------------------------
class _Collect(logging.Handler):
    def __init__(self):
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record):
        self.lines.append(record.getMessage())


def _train(overrides, run_dir):
    from mfti_lightning.tasks.train import train

    handler = _Collect()
    lg = logging.getLogger("mfti_lightning")
    old = lg.level
    lg.setLevel(logging.INFO)
    lg.addHandler(handler)
    try:
        train(compose(overrides, run_dir))
    finally:
        lg.removeHandler(handler)
        lg.setLevel(old)
    return handler.lines


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_model_dir):
    run_dir = tmp_path_factory.mktemp("trk") / "run"
    lines = _train([*FAST, *TRAIN_FAST, "sweep_name=trk-sweep"], run_dir)
    return run_dir, lines


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_offline_run_has_curves_summary_config_tables(trained):
    run_dir, _ = trained
    files = run_files(run_dir)
    assert len(files) == 1
    r = read_run(files[0])
    res = json.loads((run_dir / "results.json").read_text())
    # identity
    assert r.run_id == (run_dir / "wandb_run_id.txt").read_text().strip() == res["wandb"]["id"]
    assert r.name == "tiny|demo|t1|k0|n32" and r.group == "trk-sweep" and r.job_type == "train"
    assert {"model:tiny", "num_examples:n32", "shots:k0", "method:mFTI", "template:t1"} <= set(r.tags)
    assert r.exit_code == 0
    # curves against the trainer step
    losses = r.series("train/loss")
    assert [s for s, _ in losses] == [0, 1, 2, 3] and all(v > 0 for _, v in losses)
    assert r.metrics_defined["train/*"] == "trainer/global_step" == r.metrics_defined["val/*"]
    assert len(r.series("val/chrf/avg")) == 2 and r.series("val_init/chrf/avg")
    assert r.series("test/chrf/avg")[0][1] == pytest.approx(res["metrics"]["test/chrf/avg"])
    # summary fields for scaling plots
    s = r.summary
    assert (s["model"], s["num_examples"], s["shots"], s["num_train_directions"], s["method"]) == (
        "tiny",
        32,
        0,
        3,
        "mFTI",
    )
    assert s["template"] == "t1_translation_src_tgt" and s["status"] == "completed"
    assert s["test/chrf/avg"] == pytest.approx(res["metrics"]["test/chrf/avg"])
    assert s["training/steps"] == 4 and s["git_commit"] == res["provenance"]["git_commit"]
    # config: the resolved config as plain data, no ??? anywhere
    assert r.config["model"]["name"] == "tiny" and r.config["optim"]["max_steps"] == 4
    assert r.config["swept"]["num_examples"] == 32 and r.config["swept"]["num_train_directions"] == 3
    assert "???" not in json.dumps(r.config)
    # tables: per-direction and sample translations, as table files of the run
    assert s["tables/directions/_type"] == "table-file" and s["tables/samples/_type"] == "table-file"
    table = json.loads((files[0].parent / "files" / s["tables/directions/path"]).read_text())
    test_rows = [row for row in table["data"] if row[0] == "test"]
    assert sorted(row[1] for row in test_rows) == ["de-en", "en-fr", "zh-en"]
    samples = json.loads((files[0].parent / "files" / s["tables/samples/path"]).read_text())
    assert len(samples["data"]) == 6 and "hypothesis" in samples["columns"]  # 2 sentences x 3 directions


@pytest.mark.slow
def test_run_dir_is_self_contained(trained):
    run_dir, _ = trained
    res = json.loads((run_dir / "results.json").read_text())
    assert res["config"]["model"]["name"] == "tiny" and res["config"]["optim"]["max_steps"] == 4
    prov = res["provenance"]
    assert prov["git_commit"] and isinstance(prov["git_dirty"], bool)
    assert prov["packages"]["torch"] and prov["packages"]["wandb"] and prov["packages"]["pytorch-lightning"]
    assert json.loads((run_dir / "template.json").read_text())["name"] == "t1_translation_src_tgt"


@pytest.mark.slow
def test_every_metric_key_of_a_real_run_round_trips(trained):
    """Every key a real run writes (results.json, its validation history, the per-step files) parses into a
    MetricKey and formats back to the same text: the keys on disk are exactly what the type describes."""
    from mfti_lightning.core.metric_key import MetricKey

    run_dir, _ = trained
    res = json.loads((run_dir / "results.json").read_text())
    keys = set(res["metrics"]) | set(res["signatures"])
    keys |= {k for step in res["validation_history"].values() for k in step}
    keys |= {k for f in (run_dir / "val").glob("step*.json") for k in json.loads(f.read_text())["metrics"]}
    assert {"val_init/chrf/avg", "val/chrf/avg", "test/chrf/de-en", "test/chrf/avg"} <= keys
    assert {str(MetricKey.parse(k)) for k in keys} == keys
    assert res["selection"]["metric"] in keys  # the checkpoint choice names one of them


@pytest.mark.slow
def test_plain_progress_lines(trained):
    _, lines = trained
    progress = [ln for ln in lines if ln.startswith(("step ", "validation", "training"))]
    assert any(ln.startswith("step 2/4 (50%) | loss ") for ln in progress), progress
    assert any(ln.startswith("step 4/4 (100%)") and "steps/s" in ln for ln in progress), progress
    assert any(ln.startswith("validation at step 2 done") and "chrf" in ln for ln in progress), progress
    assert not any("\r" in ln for ln in lines)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_resumed_job_continues_its_run(trained):
    """A requeued job (killed after its last checkpoint) resumes the checkpoint and the same W&B run id."""
    run_dir, _ = trained
    res_path = run_dir / "results.json"
    res = json.loads(res_path.read_text())
    res["status"] = "failed"  # what a killed job leaves (tasks/job.py writes 'failed' or nothing)
    res_path.write_text(json.dumps(res))
    first = read_run(run_files(run_dir)[0])
    import torch

    from mfti_lightning.model.checkpoint_files import newest_checkpoint

    ckpt_step = torch.load(newest_checkpoint(run_dir), map_location="cpu", weights_only=False)["global_step"]
    assert 0 < ckpt_step <= 4
    lines = _train([*FAST, *TRAIN_FAST, "optim.max_steps=6", "sweep_name=trk-sweep"], run_dir)
    assert any("Resuming" in ln for ln in lines)
    files = run_files(run_dir)
    assert len(files) == 2
    second = read_run(files[1])
    assert second.run_id == first.run_id and second.group == first.group and second.exit_code == 0
    steps = [s for s, _ in second.series("train/loss")]
    assert steps == list(range(ckpt_step, 6)), steps  # continues from the checkpoint, not from 0
    assert json.loads(res_path.read_text())["status"] == "completed"


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_api_key_never_written(tmp_path, monkeypatch, tiny_model_dir):
    monkeypatch.setenv("WANDB_API_KEY", FAKE_KEY)
    monkeypatch.setenv("WANDB_MODE", "offline")
    run_dir = tmp_path / "run"
    # even a config that interpolates the key (a user's local.yaml) must not leak it
    _train([*FAST, "num_examples=n0", "+logger.api_key=${oc.env:WANDB_API_KEY}"], run_dir)
    res = json.loads((run_dir / "results.json").read_text())
    assert res["status"] == "completed" and res["config"]["logger"]["api_key"] == redact.REDACTED
    files = [p for p in run_dir.rglob("*") if p.is_file()]
    assert any(p.suffix == ".wandb" for p in files)
    leaks = [str(p) for p in files if FAKE_KEY.encode() in p.read_bytes()]
    assert not leaks, leaks
    assert read_run(run_files(run_dir)[0]).config["logger"]["api_key"] == redact.REDACTED


class _RejectingWandbServer(http.server.BaseHTTPRequestHandler):
    """A W&B server that knows no entity: every GraphQL call answers 404 'entity not found'."""

    def _answer(self):
        n = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(n)
        self.send_response(404)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(json.dumps({"errors": [{"message": "entity no-such-team not found"}]}).encode())

    do_GET = do_POST = do_PUT = _answer

    def log_message(self, *args):
        pass


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_unknown_entity_online_falls_back_offline(tmp_path, monkeypatch, tiny_model_dir):
    import wandb

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _RejectingWandbServer)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("WANDB_API_KEY", FAKE_KEY)
    monkeypatch.setenv("WANDB_BASE_URL", f"http://127.0.0.1:{srv.server_port}")
    wandb.teardown()  # the wandb singleton caches settings from earlier tests
    try:
        run_dir = tmp_path / "run"
        lines = _train(
            [*FAST, "num_examples=n0", "logger.mode=online", "logger.entity=no-such-team", "logger.init_timeout=30"],
            run_dir,
        )
    finally:
        srv.shutdown()
        wandb.teardown()
    res = json.loads((run_dir / "results.json").read_text())
    assert res["status"] == "completed" and res["wandb"]["mode"] == "offline"
    msg = next(ln for ln in lines if "W&B online init failed" in ln)
    assert "logger.entity='no-such-team'" in msg and "Continuing OFFLINE" in msg and "not found" in msg
    assert read_run(run_files(run_dir)[0]).exit_code == 0


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_multirun_jobs_are_runs_of_one_group(tmp_path):
    p = run_cli(
        ["mfti_lightning.cli.train", "-m", *FAST, "num_examples=n0", "shots=k0,k1", "sweep_name=grp-test"],
        cwd=tmp_path,
        timeout=380,
        env={"MFTI_OUTPUT_ROOT": str(tmp_path / "out")},
    )
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    jobs = sorted((tmp_path / "out" / "train" / "sweeps" / "grp-test").glob("tiny_*"))
    assert len(jobs) == 2
    runs = [read_run(run_files(j)[0]) for j in jobs]
    assert [r.group for r in runs] == ["grp-test", "grp-test"]
    assert len({r.run_id for r in runs}) == 2 and {r.name for r in runs} == {"tiny|demo|t1|k0|n0", "tiny|demo|t1|k1|n0"}
    assert all(r.exit_code == 0 and r.job_type == "train" for r in runs)
    assert {r.summary["method"] for r in runs} == {"zero-shot", "ICL"}
    for j in jobs:  # everything needed without W&B
        assert (j / ".hydra" / "config.yaml").exists() and (j / "template.json").exists()
        assert json.loads((j / "results.json").read_text())["status"] == "completed"
        assert len(run_files(j)) == 1  # one run per job: the second job did not reuse the first job's run
    # the report over the sweep directory made by real jobs
    from mfti_lightning.track.report import make_report

    rep = make_report([jobs[0].parent], tmp_path / "report")
    assert rep["num_runs"] == 2 and len(rep["rows"]) == 2 * 4  # 3 directions + avg per run
    assert set(rep["figures"]["bleu_vs_shots"]["series"]) == {"ICL", "zero-shot"}
    assert Path(rep["figures"]["bleu_vs_shots"]["path"]).stat().st_size > 0


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_eval_job_is_an_eval_run_with_error_table(tmp_path, tiny_model_dir):
    """mfti-eval jobs share the frame: job_type eval, and the error-analysis table from a real error analysis."""
    from mfti_lightning.tasks.evaluate import evaluate_task

    run_dir = tmp_path / "run"
    evaluate_task(
        compose(
            ["logger=wandb", "lang_pairs.test_size=3", "eval.max_new_tokens=6", "sweep_name=eval-sweep"],
            run_dir,
            config_name="eval",
        )
    )
    res = json.loads((run_dir / "results.json").read_text())
    r = read_run(run_files(run_dir)[0])
    assert r.job_type == "eval" and r.group == "eval-sweep" and r.exit_code == 0
    assert r.summary["task"] == "eval" and r.summary["test/chrf/avg"] == pytest.approx(res["metrics"]["test/chrf/avg"])
    table = json.loads((run_files(run_dir)[0].parent / "files" / r.summary["tables/errors/path"]).read_text())
    assert table["columns"][:3] == ["split", "direction", "n"] and len(table["data"]) == len(res["errors"]["test"])
    assert sum(row[2] for row in table["data"]) == 3 * len(res["errors"]["test"])


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_ddp_fork_keeps_training_curves(tmp_path):
    """Under ddp_fork rank 0 trains in a forked child that exits without atexit hooks: its part of the run must
    be finished there (curves written), and the job process continues the same run id for the test scores."""
    p = run_cli(
        [
            "mfti_lightning.cli.train",
            *FAST,
            *TRAIN_FAST,
            "trainer=ddp_cpu",
            "optim.global_batch_size=16",
            "optim.micro_batch_size=8",
            f"hydra.run.dir={tmp_path / 'run'}",
        ],
        cwd=tmp_path,
        timeout=380,
    )
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    files = run_files(tmp_path / "run")
    assert len(files) == 2  # the rank-0 child's part, then the job process's part
    fit, final = read_run(files[0]), read_run(files[1])
    assert fit.run_id == final.run_id and fit.exit_code == 0 == final.exit_code
    assert [s for s, _ in fit.series("train/loss")] == [0, 1, 2, 3] and len(fit.series("val/chrf/avg")) == 2
    assert final.series("test/chrf/avg") and final.summary["method"] == "mFTI"
