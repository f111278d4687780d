"""Experiment tracking: the ``logger`` group (wandb | csv | tensorboard | none) and what a W&B run carries.

A W&B run is built for scaling curves: ``group`` = the sweep name, ``job_type`` = train or eval, a readable name
made of the swept values, tags from the config groups, the resolved config without secrets or ``???``, a
deterministic id stored in the run directory (a requeued job continues the same run), and at the end of the job
the summary fields, tables and sample translations read from the final ``results.json`` record
(:func:`log_final`). W&B never fails or hangs a job: without an API key or a reachable server it runs offline,
and a failing online init (an entity or project that does not exist, no permission) falls back to offline.

No torch, Lightning or wandb at module level: the report and the config commands import this module.
"""

from __future__ import annotations

import hashlib
import json
import logging
import netrc
import os
import re
import socket
import sys
import threading
from pathlib import Path
from urllib.parse import urlsplit

from mfti_lightning.core.distributed import FORKING_STRATEGIES, global_rank, srun_started_ranks
from mfti_lightning.core.errors import ConfigError
from mfti_lightning.core.keys import swept_label
from mfti_lightning.core.layout import RUN_ID_FILE
from mfti_lightning.core.metric_key import SPLITS, MetricKey
from mfti_lightning.core.results import atomic_write
from mfti_lightning.core.schema import SWEPT
from mfti_lightning.eval.analysis import CATEGORIES as ERROR_CATEGORIES

log = logging.getLogger("mfti_lightning")

# config keys whose values are never sent anywhere (matched against the last key of a path)
_SECRET_KEY = re.compile(r"(^|[_\-.])(api[_-]?key|apikey|token|secret|passw(or)?d|credentials?)($|[_\-.])", re.I)
# environment variables whose values must never appear in logged config (even inside a longer string)
_SECRET_ENV = re.compile(r"(API_KEY|TOKEN|SECRET|PASSWORD|CREDENTIAL)", re.I)
REDACTED = "<redacted>"
_DEFAULT_BASE_URL = "https://api.wandb.ai"


# ---- run identity ---------------------------------------------------------------------------------------------
def wandb_run_id(run_dir: Path) -> str:
    """Deterministic W&B id for a run directory, stored in it so a resumed job continues the same run."""
    run_dir = Path(run_dir)
    path = run_dir / RUN_ID_FILE
    if path.exists():
        return path.read_text().strip()
    rid = hashlib.sha1(str(run_dir.resolve()).encode()).hexdigest()[:12]
    atomic_write(path, lambda f: f.write(rid + "\n"))
    return rid


def method_of(swept: dict) -> str:
    """``mFTI`` (finetuned), ``ICL`` (no finetuning, k>0 demonstrations) or ``zero-shot`` (neither)."""
    if int(swept.get("num_examples") or 0) > 0:
        return "mFTI"
    return "ICL" if int(swept.get("shots") or 0) > 0 else "zero-shot"


# ---- config hygiene ---------------------------------------------------------------------------------------
def _secret_values() -> list[str]:
    return [v for k, v in os.environ.items() if _SECRET_ENV.search(k) and v and len(v) >= 8]


def redact_secrets(obj, _secrets: list[str] | None = None):
    """A copy of plain data with secret-looking keys and any value holding a secret env value redacted."""
    secrets = _secret_values() if _secrets is None else _secrets
    if isinstance(obj, dict):
        return {
            k: (
                REDACTED
                if _SECRET_KEY.search(str(k)) and obj[k] not in (None, "", "???")
                else redact_secrets(v, secrets)
            )
            for k, v in obj.items()
        }
    if isinstance(obj, (list, tuple)):
        return [redact_secrets(v, secrets) for v in obj]
    if isinstance(obj, str) and any(s in obj for s in secrets):
        out = obj
        for s in secrets:
            out = out.replace(s, REDACTED)
        return out
    return obj


def clean_config(obj):
    """The config for W&B: plain data, secrets redacted, ``???`` (missing mandatory values) dropped."""

    def drop_missing(o):
        if isinstance(o, dict):
            return {k: drop_missing(v) for k, v in o.items() if v != "???"}
        if isinstance(o, list):
            return [drop_missing(v) for v in o if v != "???"]
        return o

    return drop_missing(redact_secrets(obj))


# ---- W&B mode -------------------------------------------------------------------------------------------
def _base_url() -> str:
    return os.environ.get("WANDB_BASE_URL") or _DEFAULT_BASE_URL


def _netrc_has_wandb() -> bool:
    """The netrc file (``NETRC``, else ``~/.netrc``) holds an API key for the W&B server, read as wandb reads it
    (the standard library's :mod:`netrc`): the ``machine`` entry of the server's host[:port] with a password, or of
    the W&B API behind a CoreWeave Forge URL. A missing, unreadable or malformed file holds no key."""
    path = Path(os.environ.get("NETRC") or Path.home() / ".netrc").expanduser()
    try:
        entries = netrc.netrc(str(path))
    except (OSError, netrc.NetrcParseError):
        return False
    url = urlsplit(_base_url())
    machines = {url.netloc}
    if (url.hostname or "").removeprefix("api.") == "forge.coreweave.com":
        machines.add(urlsplit(_DEFAULT_BASE_URL).netloc)
    return any((entries.authenticators(m) or (None, None, None))[2] for m in machines if m)


def has_api_key() -> bool:
    return bool(os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_IDENTITY_TOKEN_FILE")) or _netrc_has_wandb()


def server_reachable(url: str | None = None, timeout: float = 3.0) -> bool:
    """A bounded TCP connect to the W&B server (DNS included: run in a thread and abandoned after ``timeout``)."""
    parts = urlsplit(url or _base_url())
    host, port = parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)
    if not host:
        return False
    ok = []

    def probe():
        try:
            with socket.create_connection((host, port), timeout=timeout):
                ok.append(True)
        except OSError:
            pass

    t = threading.Thread(target=probe, daemon=True)
    t.start()
    t.join(timeout + 0.5)
    return bool(ok)


def wandb_mode(setting: str = "auto", check_timeout: float = 3.0) -> str:
    """online | offline | disabled. ``WANDB_MODE`` wins; ``auto`` and ``online`` fall back to offline without an
    API key or without a reachable server (so a job never fails or hangs for lack of W&B)."""
    return wandb_mode_reason(setting, check_timeout)[0]


def wandb_mode_reason(setting: str = "auto", check_timeout: float = 3.0) -> tuple[str, str]:
    if setting not in ("auto", "online", "offline", "disabled"):
        raise ConfigError(f"logger.mode={setting!r}: use auto, online, offline or disabled.")
    env = os.environ.get("WANDB_MODE")
    if env:
        env = {"dryrun": "offline", "run": "online"}.get(env, env)
        return env, f"WANDB_MODE={env}"
    if setting in ("offline", "disabled"):
        return setting, f"logger.mode={setting}"
    if not has_api_key():
        return "offline", "no W&B API key (WANDB_API_KEY or ~/.netrc); run `wandb login` to go online"
    if check_timeout and not server_reachable(timeout=check_timeout):
        return "offline", f"W&B server {_base_url()} not reachable within {check_timeout:g} s"
    return "online", f"logger.mode={setting}, API key found, server reachable"


# ---- the loggers ----------------------------------------------------------------------------------------
def run_tags(cfg, record: dict) -> list[str]:
    """Tags from the config groups: the swept values (their labels: ``shots:k8``), plus the other groups chosen."""
    tags = [f"{s.name}:{swept_label(cfg, s)}" for s in SWEPT if s.tagged]
    tags += [f"method:{method_of(record.get('swept', {}))}", f"task:{cfg.task_name}"]
    try:
        from hydra.core.hydra_config import HydraConfig

        choices = HydraConfig.get().runtime.choices if HydraConfig.initialized() else {}
    except Exception:
        choices = {}
    for group in ("data", "trainer", "experiment", "debug", "hydra/launcher"):
        value = choices.get(group)
        if value and value not in ("null", "basic"):
            tags.append(f"{group.split('/')[-1]}:{value}")
    return [t[:64] for t in tags]


def wandb_config(record: dict) -> dict:
    cfg = clean_config(record.get("config") or {})
    cfg["swept"] = dict(record.get("swept", {}))
    cfg["swept"]["method"] = method_of(record.get("swept", {}))
    cfg["swept"]["num_train_directions"] = len(record.get("directions", {}).get("train", []))
    return cfg


def check_logger(cfg) -> None:
    """Bad ``logger`` settings fail here, before any model loading."""
    from importlib.util import find_spec

    name = cfg.logger.name
    if name not in ("wandb", "csv", "tensorboard", "none"):
        raise ConfigError(f"logger={name}: unknown; use wandb, csv, tensorboard or none.")
    if name == "tensorboard" and not (find_spec("tensorboard") or find_spec("tensorboardX")):
        raise ConfigError(
            "logger=tensorboard needs the tensorboard package: pip install tensorboard "
            "(or pip install 'mfti-lightning[tensorboard]'), or use logger=csv."
        )
    if name == "wandb":
        wandb_mode_reason(cfg.logger.get("mode", "auto"), 0)  # validates logger.mode, no network


def make_loggers(cfg, run_dir: Path, record: dict) -> list:
    """The Lightning loggers of ``cfg.logger`` (a W&B run is started right away on rank 0: see module doc)."""
    name = cfg.logger.name
    if name == "none":
        return []
    # a re-evaluation (identity.decide_reuse) logs beside the training curves instead of replacing them
    reeval = record.get("reevaluation")
    number = int(Path(reeval["previous_results"]).stem) + 1 if reeval else 0  # previous_results/<number - 1>.json
    if name == "csv":
        from mfti_lightning.track.curves import EVALUATION, CurveLogger

        return [CurveLogger(run_dir, {EVALUATION: number} if reeval else None)]
    version = f"reevaluation-{number - 1}" if reeval else ""
    if name == "tensorboard":
        from pytorch_lightning.loggers import TensorBoardLogger

        return [TensorBoardLogger(save_dir=str(run_dir), name="tensorboard", version=version)]
    if name == "wandb":
        return _wandb_loggers(cfg, Path(run_dir), record)
    raise ConfigError(f"logger={name}: unknown; use wandb, csv, tensorboard or none.")


def _wandb_loggers(cfg, run_dir: Path, record: dict) -> list:
    lc = cfg.logger
    mode, why = wandb_mode_reason(lc.get("mode", "auto"), float(lc.get("network_check_timeout", 3.0) or 0))
    if mode == "disabled":
        log.info("W&B disabled (%s).", why)
        return []
    finish_wandb(True)  # a run left over from a previous job of this process (multirun) must not be reused
    run_id = wandb_run_id(run_dir)
    kwargs = dict(
        project=lc.project, entity=lc.get("entity"), name=cfg.run_name, group=cfg.sweep_name, job_type=cfg.task_name,
        save_dir=str(run_dir), id=run_id, resume="allow", log_model=False, config=wandb_config(record),
        tags=run_tags(cfg, record),
    )  # fmt: skip
    try:
        import wandb

        kwargs["settings"] = wandb.Settings(
            init_timeout=float(lc.get("init_timeout", 60)), silent=True, console=lc.get("console", "auto")
        )
    except Exception as e:
        log.debug("wandb.Settings not used: %s", e)
    logger = _wandb_logger(mode, kwargs)
    if _launches_by_fork_or_spawn(cfg):
        # Lightning runs every rank (rank 0 included) in a forked/spawned child: a run started here could not be
        # used there (wandb raises ForkedError), so the run starts lazily inside rank 0, as Lightning does.
        log.info(
            "W&B run starts inside rank 0 (trainer.strategy=%s); an online init failure is not caught "
            "early with this strategy.",
            cfg.trainer.get("strategy"),
        )
    elif global_rank() == 0:
        logger, mode, why = _start_or_fall_back(logger, mode, why, kwargs, lc, run_dir)
        if logger is None:
            return []
    log.info("W&B %s (%s): project=%s group=%s id=%s", mode, why, lc.project, cfg.sweep_name, run_id)
    record["wandb"] = {
        "mode": mode, "reason": why, "id": run_id, "project": lc.project, "entity": lc.get("entity"),
        "group": cfg.sweep_name, "name": cfg.run_name, "job_type": cfg.task_name,
    }  # fmt: skip
    return [logger]


def _start_or_fall_back(logger, mode: str, why: str, kwargs: dict, lc, run_dir: Path):
    """Start the run now (rank 0); a failed online init continues offline, a failed offline one without W&B.
    Returns ``(logger or None, mode, reason)``."""
    try:
        _start(logger)
        return logger, mode, why
    except Exception as e:
        finish_wandb(False)
        if mode != "online":
            log.warning(
                "W&B could not start even offline (%s: %s); continuing without W&B. The run "
                "directory's results.json has everything.",
                type(e).__name__,
                e,
            )
            return None, mode, why
        log.warning(
            "W&B online init failed: %s: %s. Check that logger.entity=%r and logger.project=%r exist and "
            "that your API key may write there (or set logger.mode=offline). Continuing OFFLINE; upload "
            "later with `wandb sync %s/wandb/offline-run-*`.",
            type(e).__name__,
            str(e).strip()[:500],
            lc.get("entity"),
            lc.project,
            run_dir,
        )
        mode, why = "offline", f"online init failed ({type(e).__name__})"
    _teardown()  # the failed run keeps its id busy in the wandb service until it is torn down
    logger = _wandb_logger(mode, kwargs)
    try:
        _start(logger)
    except Exception as e2:
        finish_wandb(False)
        log.warning("W&B offline init failed too (%s); continuing without W&B.", e2)
        return None, mode, why
    return logger, mode, why


def _launches_by_fork_or_spawn(cfg) -> bool:
    if srun_started_ranks():
        return False  # srun started the ranks; trainer.lightning_cluster_kwargs turns ddp_fork into ddp there
    return str((cfg.get("trainer") or {}).get("strategy", "")) in FORKING_STRATEGIES


def _teardown() -> None:
    wandb = sys.modules.get("wandb")
    try:
        if wandb is not None:
            wandb.teardown()
    except Exception as e:
        log.debug("wandb.teardown failed: %s", e)


_LOGGER_CLASS = None


def _logger_class():
    """WandbLogger that finishes its run at the end of fit when fit ran in a forked/spawned rank-0 process
    (ddp_fork, ddp_spawn): that process exits without atexit hooks, so its records would never be written.
    The job's own process then continues the same run id (resume="allow") for the test scores and summary."""
    global _LOGGER_CLASS
    if _LOGGER_CLASS is None:
        from pytorch_lightning.loggers import WandbLogger
        from pytorch_lightning.utilities import rank_zero_only

        class MFTIWandbLogger(WandbLogger):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, **kwargs)
                self._creator_pid = os.getpid()

            @rank_zero_only
            def finalize(self, status: str) -> None:
                super().finalize(status)
                if os.getpid() != self._creator_pid and self._experiment is not None:
                    self._experiment.finish(exit_code=0 if status == "success" else 1)
                    self._experiment = None

        _LOGGER_CLASS = MFTIWandbLogger
    return _LOGGER_CLASS


# Lightning's WandbLogger has no public way to drop the ``anonymous`` init argument or to end its run from a
# forked rank (finalize): the two private attributes used for that (``_wandb_init``, ``_experiment``) are used
# only here, checked against pytorch-lightning LIGHTNING_CHECKED_WITH; tests/unit/test_library_internals.py fails,
# naming this module, when WandbLogger changes them.
LIGHTNING_CHECKED_WITH = "2.6.6"


def _wandb_logger(mode: str, kwargs: dict):
    logger = _logger_class()(mode=mode, **kwargs)
    logger._wandb_init.pop("anonymous", None)  # Lightning always passes it; wandb 0.31 warns that it is a no-op
    return logger


def _start(logger) -> None:
    run = logger.experiment  # wandb.init happens here, now, not in the middle of fit
    if getattr(run, "define_metric", None) is None:
        return
    run.define_metric("trainer/global_step")
    for pattern in ("train/*", "val/*", "val_init/*", "test/*", "lr-*", "throughput/*"):
        run.define_metric(pattern, step_metric="trainer/global_step")


def finish_wandb(ok: bool, record: dict | None = None, run_dir: Path | None = None) -> None:
    """End this job's W&B run (after :func:`log_final` when a record is given), exit code 1 when it failed."""
    wandb = sys.modules.get("wandb")
    if wandb is None or getattr(wandb, "run", None) is None:
        return
    if record is not None:
        try:
            log_final(record, run_dir)
        except Exception as e:
            log.warning("W&B: logging the final results failed: %s: %s", type(e).__name__, e)
    try:
        wandb.finish(exit_code=0 if ok else 1)
    except Exception as e:
        log.warning("wandb.finish failed: %s", e)


# ---- what a finished run carries: summary fields and tables, from the results record ----------------------------
def summary_fields(record: dict) -> dict:
    """Flat summary fields for one-click scaling plots, read from a results.json record."""
    sw = record.get("swept", {})
    tp = record.get("throughput") or {}
    dirs = record.get("directions", {})
    out = {
        "model": sw.get("model"),
        "lang_pairs": sw.get("lang_pairs"),
        "template": sw.get("template"),
        "shots": sw.get("shots"),
        "num_examples": sw.get("num_examples"),
        "seed": sw.get("seed"),
        "method": method_of(sw),
        "num_train_directions": len(dirs.get("train", [])),
        "num_eval_directions": len(dirs.get("eval", [])),
        "status": record.get("status"),
        "task": record.get("task"),
        "sweep_name": record.get("sweep_name"),
        "wall_time_s": record.get("wall_time_s"),
    }
    for key in ("params_total", "params_trainable"):
        if tp.get(key) is not None:
            out[key] = tp[key]
    for key, value in tp.items():
        if isinstance(value, (int, float, str, bool)) and value is not None:
            out[f"throughput/{key}"] = value
    tr = record.get("training") or {}
    for key in ("steps", "loss_first", "loss_last", "loss_first_10pct", "loss_last_10pct", "train_time_s"):
        if tr.get(key) is not None:
            out[f"training/{key}"] = tr[key]
    if record.get("best_step") is not None:
        out["training/best_step"] = record["best_step"]
    for key, value in (record.get("metrics") or {}).items():
        if (parsed := MetricKey.find(key)) and parsed.is_summary:
            out[key] = value
    prov = record.get("provenance") or {}
    out["git_commit"], out["git_dirty"] = prov.get("git_commit"), prov.get("git_dirty")
    if record.get("error"):
        out["error"] = str(record["error"])[:1000]
    return {k: v for k, v in out.items() if v is not None}


def direction_rows(record: dict) -> list[dict]:
    """One row per (split, direction): every metric of that direction, trained or not, its partition."""
    trained = set(record.get("directions", {}).get("train", []))
    part_of = {d: name for name, ds in (record.get("partitions") or {}).items() for d in ds}
    rows: dict[tuple[str, str], dict] = {}
    for name, value in (record.get("metrics") or {}).items():
        key = MetricKey.find(name)
        if not (key and key.is_direction):
            continue
        split, metric, d = key.split, key.metric, key.scope
        row = rows.setdefault(
            (split, d),
            {
                "split": split,
                "direction": d,
                "src": d.split("-")[0],
                "tgt": d.split("-")[1],
                "trained": d in trained,
                "partition": part_of.get(d, ""),
            },
        )
        row[metric] = value
    return [rows[k] for k in sorted(rows, key=lambda k: (SPLITS.index(k[0]) if k[0] in SPLITS else 9, k[1]))]


def error_rows(record: dict) -> list[dict]:
    """One row per (split, direction) of the error analysis: n and the count of each category."""
    out = []
    for split, by_dir in (record.get("errors") or {}).items():
        for d in sorted(by_dir):
            e = by_dir[d] or {}
            counts = e.get("counts", {})
            cats = list(ERROR_CATEGORIES) + sorted(set(counts) - set(ERROR_CATEGORIES))
            out.append({"split": split, "direction": d, "n": e.get("n", 0), **{c: counts.get(c, 0) for c in cats}})
    return out


def sample_rows(run_dir: Path | None, per_direction: int = 3, limit: int = 500) -> list[dict]:
    """The first translations of each direction from ``<run_dir>/translations/*.jsonl``."""
    if run_dir is None or per_direction <= 0:
        return []
    out = []
    for path in sorted((Path(run_dir) / "translations").glob("*.jsonl")):
        with open(path, encoding="utf-8") as f:
            for i, line in enumerate(f):
                if i >= per_direction or len(out) >= limit:
                    break
                item = json.loads(line)
                out.append(
                    {
                        "direction": path.stem,
                        "source": item.get("source", ""),
                        "reference": item.get("reference", ""),
                        "hypothesis": item.get("hypothesis", ""),
                        "error": item.get("error") or "",
                        "prompt": str(item.get("prompt", ""))[-2000:],
                    }
                )
    return out


def _table(wandb, rows: list[dict]):
    columns = []
    for r in rows:
        columns += [c for c in r if c not in columns]
    return wandb.Table(columns=columns, data=[[r.get(c) for c in columns] for r in rows])


def log_final(record: dict, run_dir: Path | None = None, samples_per_direction: int | None = None) -> None:
    """At the end of a job: summary fields, the per-direction, error-type and sample-translation tables."""
    wandb = sys.modules.get("wandb")
    run = getattr(wandb, "run", None) if wandb else None
    if run is None:
        return
    run_dir = Path(run_dir or record.get("run_dir") or ".")
    if samples_per_direction is None:
        samples_per_direction = int(((record.get("config") or {}).get("logger") or {}).get("log_samples", 3) or 0)
    for key, value in summary_fields(record).items():
        run.summary[key] = value
    tables = {}
    for name, rows in (
        ("directions", direction_rows(record)),
        ("errors", error_rows(record)),
        ("samples", sample_rows(run_dir, samples_per_direction)),
    ):
        if rows:
            tables[f"tables/{name}"] = _table(wandb, rows)
    if tables:
        run.log(tables)
