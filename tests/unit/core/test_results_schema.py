"""The typed results record (core/results_schema.py): the check that real records pass (tests/integration/test_demo.py
and tests/unit/eval/test_eval_cli.py run it on a demo training run and an mfti-eval run), a record written before
newer keys existed read by the report and status readers, and docs/results.md generated from the module."""

from __future__ import annotations

import dataclasses
import json
import logging
import typing

import pytest
from conftest import REPO

from mfti_lightning.core import results_schema as rs
from mfti_lightning.core.errors import ConfigError
from mfti_lightning.core.keys import SWEPT_NAMES
from mfti_lightning.core.results import read_results, write_results
from mfti_lightning.core.results_schema import RunResults
from mfti_lightning.eval.partitions import partition_directions
from mfti_lightning.launch.status import read_status_fields
from mfti_lightning.track import run_values, runs, table

# what a results.json of schema 1 held before extraction, engine, throughput, directions, partitions, seed and
# config.model.family were written (the earliest records of this project's sweeps)
OLD = {
    "schema": 1,
    "status": "completed",
    "task": "train",
    "run_name": "xglm-564m|demo|t1|k0|n250",
    "run_dir": ".",
    "sweep_name": "sw",
    "swept": {"model": "xglm-564m", "lang_pairs": "demo", "template": "t1_translation_src_tgt", "shots": 0,
              "num_examples": 250},
    "metrics": {"test/bleu/de-en": 3.5, "test/chrf/de-en": 20.25, "test/bleu/avg": 3.5},
    "signatures": {"test/bleu/de-en": "nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.4.0"},
    "config": {"model": {"name": "xglm-564m"}},
    "provenance": {"git_commit": "abc", "git_dirty": False, "packages": {"torch": "2.1.0"}},
    "wall_time_s": 12.5,
}  # fmt: skip


def test_an_older_record_reads_with_defaults(tmp_path):
    write_results(tmp_path / "run", OLD)
    r = RunResults.read(tmp_path / "run")
    assert (r.status, r.completed, r.swept.model, r.swept.seed) == ("completed", True, "xglm-564m", None)
    assert r.run_dir == str((tmp_path / "run").resolve())  # paths come back absolute, as read_results gives them
    assert (r.extraction, r.throughput.params_total, r.directions.train, r.partitions) == (None, None, [], {})
    assert r.reevaluation is None and r.wandb is None and r.training.loss_history == []
    assert r.config_value("model", "family") is None and r.config_value("template", "short") is None
    assert RunResults.read(tmp_path / "none") is None


def test_the_report_and_status_read_an_older_record(tmp_path, caplog):
    write_results(tmp_path / "sw" / "run", OLD)
    (rec,) = runs.collect([tmp_path / "sw"])[0]
    assert run_values.extraction_of(rec) == "unknown"
    assert run_values.params_of(rec) == 564e6  # read off the model name: no throughput recorded
    assert run_values.family_of(rec) == "XGLM"
    assert run_values.short_template(rec) == "t1"
    assert run_values.run_label(rec, {"model"}) == "mFTI xglm-564m"
    rows = table.tidy_rows([rec])
    assert [(r["direction"], r["seed"], r["num_train_directions"], r["partition"]) for r in rows] == [
        ("de-en", None, 0, ""),
        ("avg", None, 0, ""),
    ]
    with caplog.at_level(logging.WARNING):
        done, not_done, _ = runs.load_runs([tmp_path / "sw"])
    assert (len(done), not_done) == (1, [])
    status = read_status_fields(tmp_path / "sw" / "run")
    assert (status.status, status.task, status.error) == ("completed", "train", None)


def test_a_null_section_reads_as_its_default():
    r = RunResults.from_dict({**OLD, "throughput": None, "swept": None, "metrics": None, "reevaluation": None})
    assert (r.throughput, r.swept, r.metrics, r.reevaluation) == (rs.Throughput(), rs.Swept(), {}, None)


def test_problems_name_an_undeclared_key_a_missing_one_and_a_wrong_type():
    provenance = {**OLD["provenance"], "python": "3.11.7", "platform": "Linux", "hostname": "vm",
                  "started_at": "2026-12-04T09:00:00+00:00", "argv": ["mfti-train"], "slurm_job_id": None}  # fmt: skip
    now = {**OLD, "extraction": "clean", "engine": "hf", "swept": {**OLD["swept"], "seed": 1}, "provenance": provenance}
    assert rs.problems(now) == []  # the keys every record has now
    assert rs.problems({**OLD, "provenance": provenance}) == [
        "extraction: missing (every record has it)",
        "engine: missing (every record has it)",
        "swept.seed: missing (every record has it)",
    ]
    bad = {**now, "new_thing": 1, "swept": {**now["swept"], "shots": "8"}, "metrics": {"test/bleu/avg": "3.5"}}
    del bad["wall_time_s"]
    assert rs.problems(bad) == [
        "new_thing: not declared in RunResults (core/results_schema.py)",
        "wall_time_s: missing (every record has it)",
        "swept.shots: '8' is not int",
        "metrics['test/bleu/avg']: '3.5' is not float",
    ]
    assert rs.problems({**now, "rescored": [{"at": "t", "keys": ["a"], "by": "me"}]}) == [
        "rescored[0].by: not declared in Rescore (core/results_schema.py)"
    ]


def test_swept_declares_the_swept_values_of_the_config_schema():
    assert tuple(f.name for f in dataclasses.fields(rs.Swept)) == SWEPT_NAMES


def test_docs_results_md_holds_the_generated_tables():
    doc = (REPO / "docs" / "results.md").read_text(encoding="utf-8")
    assert rs.with_tables(doc) == doc, (
        "docs/results.md differs from core/results_schema.py: run "
        "`python -m mfti_lightning.core.results_schema docs/results.md`"
    )
    assert all(f"| `{f.name}` |" in doc for f in dataclasses.fields(RunResults))


def test_a_record_round_trips_through_write_and_typed_read(tmp_path):
    record = {**OLD, "best_checkpoint": str(tmp_path / "run" / "checkpoints" / "best" / "step000004.ckpt")}
    write_results(tmp_path / "run", record)
    on_disk = json.loads((tmp_path / "run" / "results.json").read_text())
    assert on_disk["best_checkpoint"] == "checkpoints/best/step000004.ckpt"
    assert RunResults.read(tmp_path / "run").best_checkpoint == record["best_checkpoint"]
    assert RunResults.from_dict(read_results(tmp_path / "run")) == RunResults.read(tmp_path / "run")


def test_every_recorded_path_is_a_declared_text_field():
    """core/results.py maps the paths of RUN_PATHS relative/absolute: each is a text key of the record or a section."""
    from mfti_lightning.core.results import RUN_PATHS

    for path in RUN_PATHS:
        cls = RunResults
        for part in path[:-1]:
            hint = typing.get_type_hints(cls)[part]
            cls = next(a for a in (hint, *typing.get_args(hint)) if dataclasses.is_dataclass(a))
        assert typing.get_type_hints(cls)[path[-1]] == str | None, path


def test_an_icl_run_is_split_by_the_training_directions_a_run_directory_records(tmp_path):
    """eval.partitions reads ``directions.train`` of the run named by train_directions=; a record without it (one
    written before directions were) is refused with the fix."""
    write_results(tmp_path / "mfti", {**OLD, "directions": {"train": ["de-en", "en-fr"], "eval": ["de-en"]}})
    assert partition_directions(str(tmp_path / "mfti"), None) == [("de", "en"), ("en", "fr")]
    write_results(tmp_path / "old", OLD)
    with pytest.raises(ConfigError, match="the run directory of a training run"):
        partition_directions(str(tmp_path / "old"), None)
