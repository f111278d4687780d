"""``mfti-prepare``: sample, filter and render the training data of a config, without any model.

Runs over the same ``train`` config as ``mfti-train`` (every group and override applies) and writes
``<run dir>/prepared/train.jsonl`` (one object per example: ``src_lang``, ``tgt_lang``, ``source``, ``target``,
``prompt``, ``text``) and ``report.json``, prints per-direction counts and what the filters dropped, and fills the
prepared-data cache (``data.cache_dir``) that ``mfti-train`` reads, so a sweep reads each corpus once:

    mfti-prepare data=wikimatrix lang_pairs=paper13 num_examples=n1000
    mfti-prepare 'lang_pairs.train=[de-en,en-fr]' num_examples.n=100

Only hydra/omegaconf are imported at module level (torch-free, fast ``--help``).
"""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from mfti_lightning.cli.exits import report_errors
from mfti_lightning.core import schema, validation
from mfti_lightning.core.config import conf_dir
from mfti_lightning.core.results import write_json_atomic


def prepare(cfg: DictConfig) -> Path:
    from mfti_lightning.core.results import write_jsonl_atomic
    from mfti_lightning.core.template import from_config
    from mfti_lightning.data.prepare import check_directions, check_languages, load_or_prepare

    check_languages(cfg)
    check_directions(cfg, evaluates=False)
    template = from_config(cfg.template)
    examples, report = load_or_prepare(cfg, template)
    out = Path(cfg.paths.output_dir) / "prepared"
    out.mkdir(parents=True, exist_ok=True)
    write_jsonl_atomic(out / "train.jsonl", examples)
    write_json_atomic(out / "report.json", report)
    template.save(out)
    print(format_report(report, out), flush=True)
    return out


def format_report(report: dict, out: Path) -> str:
    rules = ["empty", "length_ratio", "too_long", "in_eval_sets", "duplicate"]
    head = f"{'direction':<10} {'sampled':>8} {'available':>10} " + " ".join(f"{r:>12}" for r in rules)
    lines = [head]
    for d, r in report.get("directions", {}).items():
        dropped = r.get("dropped", {})
        lines.append(
            f"{d:<10} {r['sampled']:>8} {r['available']:>10} " + " ".join(f"{dropped.get(k, 0):>12}" for k in rules)
        )
    cache = report.get("cache")
    lines.append(
        f"total: {report.get('total', 0)} examples ({report.get('requested_per_direction')} requested per "
        "direction)" + (f"; cache {'hit' if cache['hit'] else 'written'}: {cache['path']}" if cache else "")
    )
    if report.get("fewer_than_requested"):
        lines.append(f"fewer than requested (num_examples.allow_fewer=true): {report['fewer_than_requested']}")
    lines.append(f"wrote {out / 'train.jsonl'}")
    return "\n".join(lines)


schema.register()  # before Hydra composes: conf/train.yaml's defaults list starts with the typed schema


@hydra.main(version_base="1.3", config_path=str(conf_dir()), config_name="train")
def _main(cfg: DictConfig) -> None:
    report_errors("mfti-prepare", prepare, cfg)


def main() -> None:
    # prepared data gets its own run directories (outputs/prepare/...), not the training runs'
    validation.exit_on_bad_group_override(sys.argv[1:], "mfti-prepare")
    if not any(a.startswith("task_name=") for a in sys.argv[1:]):
        sys.argv.insert(1, "task_name=prepare")
    _main()


if __name__ == "__main__":
    main()
