"""``mfti-report <sweep dir or run dirs>...``: the paper's tables and figures from run directories alone.

Collects every run's ``results.json`` (a run directory, or any directory above run directories), writes one tidy
table (``table.csv`` and ``table.md``: one row per run and direction, the swept values as columns), a summary
(``report.md``: the paper's claims tested on the runs (track/claims.py), runs, failed or incomplete runs, config
differences, correlations, figures and skipped figures),
and PNG figures drawn with matplotlib (Agg):

- BLEU vs model size (mFTI and ICL lines, coloured by model family when there are several), vs number of examples (log x), vs number of training directions,
  vs shots; the template comparison; the template design space (templates with a ``template.factor``, ordered by
  score with 95 % intervals over seeds, named by the factor they change); seen/unseen partition bars (mFTI and ICL
  runs side by side); pivot alignment (English-centric vs all-direction training on the non-English directions);
  corpus quality (WikiMatrix threshold, misaligned fraction); error-type stacked bars;
- per-language BLEU against XGLM pretraining tokens (``languages.py``) and against similarity to English
  (``assets/lang_similarity.json``, URIEL via lang2vec), with Pearson and Spearman correlations.

A figure whose data is absent is skipped with a note, never faked. Runs scored with different ``eval.extraction``
modes are never averaged into one series: labels carry the mode and report.md warns. Runs that failed or never finished are listed,
not dropped silently. Works offline: W&B is not needed. No torch here.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import re
from collections import defaultdict
from pathlib import Path

from mfti_lightning.assets import ASSETS_DIR
from mfti_lightning.core.config import flatten
from mfti_lightning.core.families import FAMILIES
from mfti_lightning.core.fields import IGNORED
from mfti_lightning.core.keys import SWEPT_NAMES, role_of, swept_group, varies_with
from mfti_lightning.core.languages import LANGUAGES
from mfti_lightning.core.metric_key import AVG, MetricKey
from mfti_lightning.core.results import RESULTS_FILE
from mfti_lightning.eval.analysis import CATEGORIES as ERROR_CATEGORIES
from mfti_lightning.eval.partitions import PARTITIONS
from mfti_lightning.track.aggregate import aggregate, direction_table, summary_section
from mfti_lightning.track.claims import claims_markdown, test_claims
from mfti_lightning.track.stat_figures import draw_fit, errorbar_series
from mfti_lightning.track.stats import correlation, fit_line, grouped_rows, interval, metrics_by_direction
from mfti_lightning.track.tracking import method_of

log = logging.getLogger("mfti_lightning.track.report")

SWEPT = SWEPT_NAMES  # core/schema.py's SWEPT: the report's columns
_SKIP_DIRS = {"wandb", "checkpoints", ".submitit", "tokenizer", "translations", "val", "eval_state", ".hydra"}
SIMILARITY_FILE = ASSETS_DIR / "lang_similarity.json"


# ---- collecting runs ----------------------------------------------------------------------------------------
def _walk(root: Path, found: list[Path], jobs: list[Path], depth: int = 0) -> None:
    if (root / RESULTS_FILE).is_file():
        found.append(root)
        return
    if (root / ".hydra").is_dir() or (root / "wandb_run_id.txt").exists():
        jobs.append(root)  # a job directory without results.json: never started properly, or killed early
        return
    if depth > 6:
        return
    for child in sorted(p for p in root.iterdir() if p.is_dir() and p.name not in _SKIP_DIRS):
        _walk(child, found, jobs, depth + 1)


def collect(paths: list[str | Path]) -> tuple[list[dict], list[str]]:
    """The results records under ``paths`` (each with ``_dir``), and one problem line per path or job directory
    without a readable results.json."""
    records, problems, seen = [], [], set()
    for p in map(Path, paths):
        if not p.exists():
            problems.append(f"{p}: does not exist")
            continue
        if not p.is_dir():
            p = p.parent if p.name == RESULTS_FILE else p
        found, jobs = [], []
        _walk(p, found, jobs)
        for job in jobs:
            problems.append(f"{job}: no {RESULTS_FILE} (the job never started, or died before writing it)")
        if not found and not jobs:
            problems.append(f"{p}: no {RESULTS_FILE} in it or below it (is this a run or sweep directory?)")
        for d in found:
            if d.resolve() in seen:
                continue
            seen.add(d.resolve())
            try:
                rec = json.loads((d / RESULTS_FILE).read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError) as e:
                problems.append(f"{d / RESULTS_FILE}: unreadable ({e})")
                continue
            rec["_dir"] = str(d)
            records.append(rec)
    return records, problems


# ---- per-run values -----------------------------------------------------------------------------------------
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([mb])(\d*)$", re.I)  # 564m, 1.7b, and BLOOM's 1b7 / 7b1


def params_of(rec: dict) -> float | None:
    """Parameter count: measured (``throughput.params_total``), else read off the model name (xglm-564m,
    qwen2.5-1.5b, bloom-7b1)."""
    tp = rec.get("throughput") or {}
    if tp.get("params_total"):
        return float(tp["params_total"])
    m = _SIZE.search(str(rec.get("swept", {}).get("model", "")))
    if m:
        number = float(f"{m.group(1)}.{m.group(3)}" if m.group(3) and "." not in m.group(1) else m.group(1))
        return number * (1e6 if m.group(2).lower() == "m" else 1e9)
    return None


def bleu_metric(records: list[dict], split: str = "test", choice: str = "auto") -> str:
    if choice != "auto":
        return choice
    return "spbleu" if any(str(MetricKey(split, "spbleu", AVG)) in r.get("metrics", {}) for r in records) else "bleu"


def family_of(rec: dict) -> str:
    """The model family's label (core/families.py); runs from before families existed were all XGLM."""
    name = ((rec.get("config") or {}).get("model") or {}).get("family") or "xglm"
    return FAMILIES[name].label if name in FAMILIES else str(name)


def template_factor(rec: dict) -> str:
    """What a template of sweeps/template_space.yaml varies (``template.factor``), "" for the others."""
    return str(((rec.get("config") or {}).get("template") or {}).get("factor") or "")


def _short_template(rec: dict) -> str:
    t = ((rec.get("config") or {}).get("template") or {}).get("short")
    return t or str(rec.get("swept", {}).get("template", "?")).split("_")[0]


def run_label(rec: dict, vary: set[str], x_key: str = "") -> str:
    """``mFTI``/``ICL k8``/``zero-shot`` plus the swept values that differ among the runs of a figure (never the
    figure's x variable ``x_key``)."""
    sw = rec.get("swept", {})
    method = method_of(sw)
    parts = [method]
    if x_key != "shots" and (method == "ICL" or (method == "mFTI" and int(sw.get("shots") or 0) > 0)):
        parts.append(f"k{sw.get('shots')}")
    if method == "mFTI" and "num_examples" in vary:
        parts.append(f"n{sw.get('num_examples')}")
    if "model" in vary:
        parts.append(str(sw.get("model")))
    if "lang_pairs" in vary:
        parts.append(str(sw.get("lang_pairs")))
    if "template" in vary:
        parts.append(_short_template(rec))
    if "extraction" in vary:  # never one series over two extraction modes (eval.extraction)
        parts.append(f"[extraction {extraction_of(rec)}]")
    return " ".join(parts)


def extraction_of(rec: dict) -> str:
    """The run's ``eval.extraction`` as results.json records it (``unknown`` for files written before it was)."""
    return str(rec.get("extraction") or "unknown")


def _varying(records: list[dict], exclude: tuple[str, ...]) -> set[str]:
    vary = {
        k
        for k in SWEPT
        if k not in exclude and k != "seed" and len({json.dumps(r.get("swept", {}).get(k)) for r in records}) > 1
    }
    return vary | ({"extraction"} if len({extraction_of(r) for r in records}) > 1 else set())


# ---- the tidy table ------------------------------------------------------------------------------------------
def tidy_rows(records: list[dict], split: str = "test") -> list[dict]:
    """One row per (run, direction) plus one ``avg`` row per run; swept values and metrics as columns."""
    rows = []
    for rec in records:
        sw = rec.get("swept", {})
        trained = set(rec.get("directions", {}).get("train", []))
        part_of = {d: n for n, ds in (rec.get("partitions") or {}).items() for d in ds}
        by_dir = metrics_by_direction(rec, split)
        base = {
            "run": rec.get("run_name"),
            "status": rec.get("status"),
            "method": method_of(sw),
            **{k: sw.get(k) for k in SWEPT},
            "params": params_of(rec),
            "num_train_directions": len(rec.get("directions", {}).get("train", [])),
            "sweep": rec.get("sweep_name"),
            "run_dir": rec.get("_dir"),
        }
        for d in sorted(by_dir, key=lambda d: (d == "avg", d)):
            row = dict(
                base,
                direction=d,
                src=d.split("-")[0] if d != "avg" else "",
                tgt=d.split("-")[1] if d != "avg" else "",
                trained=(d in trained) if d != "avg" else "",
                partition=part_of.get(d, ""),
            )
            row.update({f"{split}/{k}": v for k, v in sorted(by_dir[d].items())})
            rows.append(row)
    return rows


def _columns(rows: list[dict]) -> list[str]:
    cols: list[str] = []
    for r in rows:
        cols += [c for c in r if c not in cols]
    return cols


def write_csv(rows: list[dict], path: Path) -> None:
    cols = _columns(rows)
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=cols)
        w.writeheader()
        for r in rows:
            w.writerow({c: r.get(c, "") for c in cols})


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}" if abs(v) >= 1e5 else f"{v:.2f}"
    return "" if v is None else str(v).replace("|", "\\|")


def markdown_table(rows: list[dict], cols: list[str] | None = None) -> str:
    if not rows:
        return "_(none)_\n"
    cols = cols or _columns(rows)
    out = ["| " + " | ".join(c.replace("|", "\\|") for c in cols) + " |", "|" + "---|" * len(cols)]
    out += ["| " + " | ".join(_fmt(r.get(c)) for c in cols) + " |" for r in rows]
    return "\n".join(out) + "\n"


# ---- config differences ------------------------------------------------------------------------------------
def config_differences(records: list[dict]) -> dict[str, dict[str, list[str]]]:
    """Non-swept config values that differ between runs: ``{key: {value: [run names]}}``. Left out: the keys of
    the swept groups, keys that never change a result (role ``ignored``), and keys that the options of a swept
    group set (``varies_with``: each model preset its learning rate)."""
    flat = [(r.get("run_name") or r.get("_dir"), flatten(r.get("config") or {})) for r in records]
    keys = sorted({k for _, f in flat for k in f})
    diffs = {}
    for k in keys:
        if swept_group(k) or role_of(k) == IGNORED or varies_with(k):
            continue
        values = defaultdict(list)
        for name, f in flat:
            values[json.dumps(f.get(k, "<absent>"), default=str)].append(str(name))
        if len(values) > 1:
            diffs[k] = dict(values)
    return diffs


def load_similarity(kind: str | None = None) -> tuple[dict[str, float], str]:
    doc = json.loads(SIMILARITY_FILE.read_text(encoding="utf-8"))
    kind = kind or doc.get("default", "syntactic")
    values = {c: row[kind] for c, row in doc["languages"].items() if row.get(kind) is not None}
    return values, f"{kind} similarity to English ({doc['source']})"


# ---- figures ---------------------------------------------------------------------------------------------
class Figures:
    """Draws each figure to ``out_dir/<name>.png``; returns and keeps the data plotted (tests check it)."""

    def __init__(
        self, out_dir: Path, records: list[dict], metric: str, split: str = "test", similarity: str | None = None
    ):
        self.out, self.records, self.metric, self.split = out_dir, records, metric, split
        self.similarity = similarity
        self.drawn: dict[str, dict] = {}
        self.skipped: dict[str, str] = {}
        self.correlations: list[dict] = []
        self.trends: list[dict] = []  # least-squares slopes per series and direction (stats.fit_line)
        self.used: dict[str, list[list[dict]]] = {}  # per figure, the runs of each series (averaged or joined)

    def _avg(self, rec: dict) -> float | None:
        return rec.get("metrics", {}).get(str(MetricKey(self.split, self.metric, AVG)))

    def _save(self, fig, name: str, data: dict) -> None:
        import matplotlib.pyplot as plt

        path = self.out / f"{name}.png"
        for ax in fig.axes:
            handles, labels = ax.get_legend_handles_labels()
            if len(labels) > 4:  # crowded: legend to the right of the axes, figure widened to hold it
                ax.legend(handles, labels, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
                fig.set_size_inches(fig.get_size_inches()[0] + 4.5, fig.get_size_inches()[1])
        fig.tight_layout()
        fig.savefig(path, dpi=110, bbox_inches="tight")
        plt.close(fig)
        data["path"] = str(path)
        self.drawn[name] = data

    @staticmethod
    def _plt():
        import matplotlib

        matplotlib.use("Agg", force=True)
        import matplotlib.pyplot as plt

        return plt

    def line(
        self,
        name: str,
        title: str,
        xlabel: str,
        xfn,
        select=lambda r: True,
        logx: bool = False,
        reference=None,
        colour_by=None,
    ) -> dict | None:
        """Mean over seeds of the average score per (series, x); series labelled by method and varying values.
        ``colour_by(rec)``: a group (the model family) that splits the series and picks their colour when runs
        of two or more groups are drawn; the method then picks the line style (mFTI solid, ICL dashed)."""
        pts = [(r, xfn(r), self._avg(r)) for r in self.records if select(r)]
        pts = [(r, x, y) for r, x, y in pts if x is not None and y is not None and (not logx or x > 0)]
        xs = {x for _, x, _ in pts}
        if len(xs) < 2:
            self.skipped[name] = (
                f"needs runs at 2 or more values of {xlabel} with {self.split}/{self.metric}/avg; found {len(xs)}"
            )
            return None
        x_key = name_key.get(name, "")
        vary = _varying([r for r, _, _ in pts], exclude=(x_key,))
        acc: dict[str, dict[float, list[float]]] = defaultdict(lambda: defaultdict(list))
        groups = sorted({colour_by(r) for r, _, _ in pts}) if colour_by else []
        group_of: dict[str, str] = {}
        runs_of: dict[str, list[tuple[dict, float]]] = defaultdict(list)
        for r, x, y in pts:
            lab = run_label(r, vary, x_key)
            if len(groups) > 1:
                lab = f"{lab} {colour_by(r)}"
                group_of[lab] = colour_by(r)
            acc[lab][x].append(y)
            runs_of[lab].append((r, x))
        self.used[name] = [[r for r, _ in runs] for runs in runs_of.values()]
        series = {lab: sorted((x, sum(v) / len(v)) for x, v in d.items()) for lab, d in sorted(acc.items())}
        refs = {}
        if reference:
            racc = defaultdict(list)
            for r in self.records:
                if reference(r) and self._avg(r) is not None:
                    racc[run_label(r, _varying([r for r in self.records if reference(r)], ()))].append(self._avg(r))
            refs = {lab: sum(v) / len(v) for lab, v in racc.items()}
        plt = self._plt()
        fig, ax = plt.subplots(figsize=(6.4, 4.4))
        palette = plt.get_cmap("tab10")
        intervals = {}
        for lab in series:  # mean over seeds with its 95% t-interval; a fitted trend on the scaling axes
            style = {}
            if lab in group_of:
                style = {"color": palette(groups.index(group_of[lab]) % 10), "linestyle": "--" if "ICL" in lab else "-"}
            intervals[lab] = [(x, iv.low, iv.high, iv.n) for x, iv in errorbar_series(ax, lab, acc[lab], **style)]
            if name in FITTED:
                fit = self._trends(name, lab, runs_of[lab], logx)
                if fit is not None:
                    draw_fit(ax, fit, [x for _, x in runs_of[lab]], logx, ax.lines[-1].get_color())
        for lab, y in refs.items():
            ax.axhline(y, linestyle="--", color="grey", linewidth=1)
            riv = interval(racc[lab])  # the baseline's 95% interval over seeds as a band
            if riv is not None and riv.low is not None:
                ax.axhspan(riv.low, riv.high, color="grey", alpha=0.12)
                intervals[f"reference: {lab}"] = [(None, riv.low, riv.high, riv.n)]
            ax.annotate(
                f"{lab} ({y:.1f})", (0.01, y), xycoords=("axes fraction", "data"), fontsize=8, va="bottom", color="grey"
            )
        if logx:
            ax.set_xscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(f"{self.split} {self.metric} (avg over directions)")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        data = {
            "series": series,
            "reference": refs,
            "intervals": intervals,
            **({"groups": group_of} if group_of else {}),
        }
        self._save(fig, name, data)
        return data

    def _trends(self, name: str, label: str, runs: list[tuple[dict, float]], logx: bool):
        """Least squares of the score on (log10) x over every run of a series, per direction and for the
        average; the slopes go to ``self.trends`` (trends.csv), the average's fit is returned to be drawn."""
        per_dir: dict[str, list[tuple[float, float]]] = defaultdict(list)
        for r, x in runs:
            for d, m in metrics_by_direction(r, self.split).items():
                if self.metric in m:
                    per_dir[d].append((math.log10(x) if logx else x, m[self.metric]))
        avg_fit = None
        for d in sorted(per_dir, key=lambda d: (d != "avg", d)):
            fit = fit_line([x for x, _ in per_dir[d]], [y for _, y in per_dir[d]])
            if fit is None:
                continue
            avg_fit = fit if d == "avg" else avg_fit
            self.trends.append(
                {"figure": name, "series": label, "direction": d, "x": ("log10 " if logx else "") + FITTED[name],
                 "n_runs": fit.n, "slope": fit.slope, "slope_ci_low": fit.slope_low, "slope_ci_high": fit.slope_high,
                 "intercept": fit.intercept, "r2": fit.r2}
            )  # fmt: skip
        return avg_fit

    def templates(self) -> dict | None:
        name = "template_comparison"
        by: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
        recs = [r for r in self.records if self._avg(r) is not None]
        temps = sorted({_short_template(r) for r in recs})
        if len(temps) < 2:
            self.skipped[name] = f"needs runs with 2 or more templates; found {len(temps)}"
            return None
        vary = _varying(recs, exclude=("template",))
        for r in recs:
            by[run_label(r, vary)][_short_template(r)].append(self._avg(r))
        self.used[name] = [[r for r in recs if run_label(r, vary) == lab] for lab in by]
        series = {lab: {t: sum(v) / len(v) for t, v in d.items()} for lab, d in sorted(by.items())}
        plt = self._plt()
        fig, ax = plt.subplots(figsize=(6.4, 4.4))
        width = 0.8 / max(1, len(series))
        for i, (lab, d) in enumerate(series.items()):
            ivs = [interval(by[lab][t]) for t in d]  # error bars: 95% t-interval over seeds
            yerr = [[iv.mean - iv.low if iv.low is not None else 0 for iv in ivs] for _ in (0, 1)]
            ns = "/".join(str(iv.n) for iv in ivs)
            ax.bar([temps.index(t) + i * width for t in d], list(d.values()), width=width, label=f"{lab} (n={ns})",
                   yerr=yerr, capsize=4)  # fmt: skip
        ax.set_xticks([i + 0.4 - width / 2 for i in range(len(temps))], temps)
        ax.set_ylabel(f"{self.split} {self.metric} (avg)")
        ax.set_title("Template comparison")
        ax.legend(fontsize=8)
        data = {"series": series}
        self._save(fig, name, data)
        return data

    def template_space(self) -> dict | None:
        """Templates of the design space (runs whose template names a ``factor``) ordered by mean score, with
        95 % t intervals over seeds, each labelled with the factor it changes and coloured by that factor."""
        name = "template_space"
        recs = [r for r in self.records if self._avg(r) is not None and template_factor(r)]
        by: dict[tuple[str, str], list[float]] = defaultdict(list)
        vary = _varying(recs, exclude=("template", "seed"))
        for r in recs:
            by[(run_label(r, vary), _short_template(r))].append(self._avg(r))
        if len({t for _, t in by}) < 2:
            self.skipped[name] = f"needs runs of 2 or more templates with a template.factor; found {len(by)}"
            return None
        factor = {_short_template(r): template_factor(r) for r in recs}
        ivs = {key: interval(v) for key, v in by.items()}  # mean and 95% t-interval over seeds (half 0 for one)
        rows = sorted(((lab, t, iv.mean, iv.half or 0.0, iv.n) for (lab, t), iv in ivs.items()), key=lambda x: x[2])
        kinds = sorted({factor[t].split(":")[0] for _, t, *_ in rows})
        plt = self._plt()
        fig, ax = plt.subplots(figsize=(7.5, 0.35 * len(rows) + 1.5))
        palette = plt.get_cmap("tab10")
        many = len({lab for lab, *_ in rows}) > 1
        for i, (_, t, mean, half, n) in enumerate(rows):
            colour = palette(kinds.index(factor[t].split(":")[0]) % 10)
            ax.barh(i, mean, xerr=half if n > 1 else None, color=colour, capsize=3)
        ax.set_yticks(
            range(len(rows)), [f"{f'{lab} ' if many else ''}{t}: {factor[t]} (n={n})" for lab, t, _, _, n in rows]
        )
        ax.set_xlabel(f"{self.split} {self.metric} (avg over directions; mean and 95% interval over seeds)")
        ax.set_title("Template design space, ordered by score")
        ax.grid(alpha=0.3, axis="x")
        order = [{"label": lab, "template": t, "factor": factor[t], "mean": m, "interval": h, "n": n}
                 for lab, t, m, h, n in rows]  # fmt: skip
        data = {"order": order}
        self._save(fig, name, data)
        return data

    def partitions(self) -> dict | None:
        name = "partitions"
        series = {}
        vary = _varying(self.records, exclude=())
        for r in self.records:
            m = r.get("metrics", {})
            keys = {p: str(MetricKey.partition(self.split, self.metric, p)) for p in PARTITIONS}
            vals = {p: m[k] for p, k in keys.items() if k in m}
            if vals:
                label = run_label(r, vary)
                series[label if label not in series else f"{label} ({r.get('run_name')})"] = vals
        if not series:
            self.skipped[name] = (
                f"no run has {self.split}/{self.metric}/partition/* metrics (needs training "
                "directions and an evaluation beyond them)"
            )
            return None
        parts = [p for p in PARTITIONS if any(p in v for v in series.values())]
        plt = self._plt()
        fig, ax = plt.subplots(figsize=(7.2, 4.4))
        width = 0.8 / len(series)
        for i, (lab, d) in enumerate(series.items()):
            ax.bar([parts.index(p) + i * width for p in d], list(d.values()), width=width, label=lab)
        ax.set_xticks([i + 0.4 - width / 2 for i in range(len(parts))], parts, rotation=20)
        ax.set_ylabel(f"{self.split} {self.metric}")
        ax.set_title("Seen and unseen directions")
        ax.legend(fontsize=8)
        data = {"series": series}
        self._save(fig, name, data)
        return data

    def errors(self) -> dict | None:
        name = "error_types"
        recs = [r for r in self.records if (r.get("errors") or {}).get(self.split)]
        if not recs:
            self.skipped[name] = f"no run has an error analysis for {self.split} (results.json 'errors')"
            return None
        vary = _varying(recs, exclude=())
        series = {}
        for r in recs:
            counts, n = defaultdict(int), 0
            for e in r["errors"][self.split].values():
                n += int(e.get("n", 0))
                for c, k in (e.get("counts") or {}).items():
                    counts[c] += int(k)
            label = run_label(r, vary)
            if label in series:
                label = f"{label} ({r.get('run_name')})"
            series[label] = {c: counts.get(c, 0) / n if n else 0.0 for c in ERROR_CATEGORIES}
        plt = self._plt()
        fig, ax = plt.subplots(figsize=(7.2, 4.4))
        labels = list(series)
        bottom = [0.0] * len(labels)
        for c in ERROR_CATEGORIES:
            vals = [series[lab][c] for lab in labels]
            ax.bar(range(len(labels)), vals, bottom=bottom, label=c)
            bottom = [b + v for b, v in zip(bottom, vals)]
        ax.set_xticks(range(len(labels)), labels, rotation=20, ha="right", fontsize=8)
        ax.set_ylabel("fraction of translations")
        ax.set_title(f"Error types ({self.split})")
        ax.legend(fontsize=7)
        data = {"series": series}
        self._save(fig, name, data)
        return data

    def per_language(
        self, name: str, xvalues: dict[str, float], xlabel: str, logx: bool, exclude: tuple[str, ...] = ()
    ) -> dict | None:
        """Per-language score (mean over directions into / out of the language) against a language property."""
        recs = [r for r in self.records if r.get("status") == "completed"]
        vary = _varying(recs, exclude=())
        acc: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
        for r in recs:
            lab = run_label(r, vary)
            per: dict[tuple[str, str], list[float]] = defaultdict(list)
            for d, v in self._direction_scores(r).items():
                s, t = d.split("-")
                per[("into", t)].append(v)
                per[("from", s)].append(v)
            for (side, lang), vals in per.items():
                acc[f"{lab} | {side} language"][lang].append(sum(vals) / len(vals))
        series = {}
        for lab, d in sorted(acc.items()):
            pts = sorted(
                (xvalues[lang], sum(v) / len(v), lang)
                for lang, v in d.items()
                if lang in xvalues and lang not in exclude
            )
            if len(pts) >= 3:
                series[lab] = pts
        if not series:
            self.skipped[name] = (
                f"needs per-direction {self.split}/{self.metric} scores for 3 or more languages with a known {xlabel}"
            )
            return None
        plt = self._plt()
        fig, ax = plt.subplots(figsize=(7.0, 4.8))
        corr = {}
        for lab, pts in series.items():
            xs = [math.log10(x) if logx else x for x, _, _ in pts]
            ys = [y for _, y, _ in pts]
            r = correlation(xs, ys)
            c = {
                "series": lab,
                "figure": name,
                "n": r.n,
                "pearson": r.pearson,
                "spearman": r.spearman,
                "x": ("log10 " if logx else "") + xlabel,
            }
            corr[lab] = c
            self.correlations.append(c)
            ax.scatter(
                [x for x, _, _ in pts], ys, label=f"{lab} (r={_fmt_corr(c['pearson'])}, ρ={_fmt_corr(c['spearman'])})"
            )
            for x, y, lang in pts:
                ax.annotate(lang, (x, y), fontsize=7, xytext=(2, 2), textcoords="offset points")
        if logx:
            ax.set_xscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(f"{self.split} {self.metric} (mean over the language's directions)")
        ax.set_title(f"Per-language {self.metric}")
        ax.legend(fontsize=7)
        data = {"series": series, "correlations": corr}
        self._save(fig, name, data)
        return data

    def _direction_scores(self, rec: dict) -> dict[str, float]:
        """``{direction: score}`` of the figure's split and metric (no ``avg``)."""
        by_dir = metrics_by_direction(rec, self.split)
        return {d: m[self.metric] for d, m in by_dir.items() if d != "avg" and self.metric in m}

    def pivot(self) -> dict | None:
        """sweeps/pivot.yaml: English-centric training against all-direction training, scored on the non-English
        directions (zero-shot for the English-centric model) and, for context, the English-centric ones."""
        name = "pivot"
        recs = [r for r in self.records if method_of(r.get("swept", {})) == "mFTI"]
        vary = _varying(recs, exclude=())
        acc: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
        kinds = set()
        for r in recs:
            train = r.get("directions", {}).get("train", [])
            scores = self._direction_scores(r)
            non_en = [v for d, v in scores.items() if "en" not in d.split("-")]
            en = [v for d, v in scores.items() if "en" in d.split("-")]
            if not train or not non_en:
                continue
            kind = "English-centric" if all("en" in d.split("-") for d in train) else "all-direction"
            kinds.add(kind)
            label = f"{kind} training: {run_label(r, vary)}"  # seeds of one setting: averaged
            acc[label]["non-English directions"].append(sum(non_en) / len(non_en))
            if en:
                acc[label]["English-centric directions"].append(sum(en) / len(en))
        if kinds != {"English-centric", "all-direction"}:
            self.skipped[name] = (
                "needs an mFTI run trained English-centric and one trained with non-English directions, both "
                f"scored on non-English directions; found {sorted(kinds) or 'none'}"
            )
            return None
        series = {lab: {g: sum(v) / len(v) for g, v in d.items()} for lab, d in sorted(acc.items())}
        return self._bars(name, series, "Pivot alignment: English-centric vs all-direction training")

    def data_quality(self) -> dict | None:
        """sweeps/data_quality.yaml: score against the WikiMatrix margin threshold and the misaligned fraction."""
        name = "data_quality"
        pts = []
        for r in self.records:
            cfg_data = (r.get("config") or {}).get("data") or {}
            thr = next(
                (c.get("min_score") for c in cfg_data.get("corpora") or [] if c.get("format") == "wikimatrix"), None
            )
            noise = float((cfg_data.get("noise") or {}).get("misaligned") or 0.0)
            if method_of(r.get("swept", {})) == "mFTI" and self._avg(r) is not None:
                pts.append((thr, noise, self._avg(r)))
        thresholds = sorted({t for t, _, _ in pts if t is not None})
        noises = sorted({n for _, n, _ in pts})
        if len(thresholds) < 2 and len(noises) < 2:
            self.skipped[name] = (
                "needs mFTI runs at 2 or more WikiMatrix min_score thresholds or data.noise.misaligned fractions; "
                f"found thresholds {thresholds}, fractions {noises}"
            )
            return None
        by_thr, by_noise = defaultdict(lambda: defaultdict(list)), defaultdict(lambda: defaultdict(list))
        for t, n, y in pts:
            by_noise[f"min_score {t}"][n].append(y)
            if t is not None:
                by_thr[f"misaligned {n:g}"][t].append(y)
        mean = lambda d: {lab: sorted((x, sum(v) / len(v)) for x, v in xs.items()) for lab, xs in d.items()}  # noqa: E731
        data = {"by_threshold": mean(by_thr), "by_noise": mean(by_noise)}
        plt = self._plt()
        fig, axes = plt.subplots(1, 2, figsize=(10.0, 4.2))
        for ax, (key, xlabel) in zip(axes, (("by_threshold", "WikiMatrix margin score threshold"),
                                            ("by_noise", "fraction of misaligned targets"))):  # fmt: skip
            for lab, s in sorted(data[key].items()):
                ax.plot([x for x, _ in s], [y for _, y in s], marker="o", label=lab)
            ax.set_xlabel(xlabel)
            ax.set_ylabel(f"{self.split} {self.metric} (avg)")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
        fig.suptitle("Corpus quality")
        self._save(fig, name, data)
        return data

    def _bars(self, name: str, series: dict[str, dict[str, float]], title: str) -> dict:
        groups = list(dict.fromkeys(g for d in series.values() for g in d))
        plt = self._plt()
        fig, ax = plt.subplots(figsize=(7.2, 4.4))
        width = 0.8 / max(1, len(series))
        for i, (lab, d) in enumerate(series.items()):
            ax.bar([groups.index(g) + i * width for g in d], list(d.values()), width=width, label=lab)
        ax.set_xticks([i + 0.4 - width / 2 for i in range(len(groups))], groups)
        ax.set_ylabel(f"{self.split} {self.metric} (mean over directions)")
        ax.set_title(title)
        ax.legend(fontsize=7)
        data = {"series": series}
        self._save(fig, name, data)
        return data

    def all(self) -> None:
        mfti = lambda r: method_of(r.get("swept", {})) == "mFTI"  # noqa: E731
        icl = lambda r: method_of(r.get("swept", {})) == "ICL"  # noqa: E731
        self.line("bleu_vs_model_size", "Model size", "parameters", params_of, logx=True, colour_by=family_of)
        self.line(
            "bleu_vs_num_examples",
            "Training examples per direction",
            "examples per direction",
            lambda r: r.get("swept", {}).get("num_examples"),
            select=mfti,
            logx=True,
            reference=icl,
        )
        self.line(
            "bleu_vs_lang_pairs",
            "Number of training directions",
            "training directions",
            lambda r: len(r.get("directions", {}).get("train", [])) or None,
            select=mfti,
            reference=icl,
        )
        self.line("bleu_vs_shots", "In-context demonstrations", "shots", lambda r: r.get("swept", {}).get("shots"))
        self.templates()
        self.template_space()
        self.partitions()
        self.pivot()
        self.data_quality()
        self.errors()
        tokens = {c: float(lang.cc100xl_tokens) for c, lang in LANGUAGES.items() if lang.cc100xl_tokens}
        self.per_language("per_language_vs_pretraining_tokens", tokens, "XGLM pretraining tokens (CC100-XL)", logx=True)
        sim, source = load_similarity(self.similarity)
        self.per_language(
            "per_language_vs_similarity", sim, f"{source.split(' (')[0]} (URIEL)", logx=False, exclude=("en",)
        )


FITTED = {"bleu_vs_model_size": "parameters", "bleu_vs_num_examples": "examples per direction"}
name_key = {
    "bleu_vs_model_size": "model",
    "bleu_vs_num_examples": "num_examples",
    "bleu_vs_lang_pairs": "lang_pairs",
    "bleu_vs_shots": "shots",
}


def _fmt_corr(v) -> str:
    return "n/a" if v is None else f"{v:.2f}"


# ---- the report ------------------------------------------------------------------------------------------
def extraction_note(records: list[dict]) -> str:
    """A warning line for report.md when the runs were scored with different ``eval.extraction`` modes."""
    modes = defaultdict(int)
    for r in records:
        modes[extraction_of(r)] += 1
    if len(modes) < 2:
        return f"Extraction: {next(iter(modes), 'none')} (every run).\n\n"
    counts = ", ".join(f"{m}: {n} run(s)" for m, n in sorted(modes.items()))
    return (
        f"**Warning: the runs use different extraction modes ({counts}).** Their scores are not comparable; every "
        "figure labels each series with its extraction (`[extraction ...]`) instead of mixing them.\n\n"
    )


def summary_markdown(
    rows, failed_rows, problems, diffs, figs, metric, split, similarity, n_done, extra=None
) -> list[str]:
    """report.md: the summary (best configuration, mFTI - ICL, significant directions), the seed groups, the
    paired significance, the trends and the figures first; then the runs' averages, failed runs, directories
    without results, non-swept differences of runs compared in one figure, and correlations."""
    extra = extra or {}
    summary_rows = [row for row in rows if row["direction"] == "avg"]
    cols = ["run", "method", *SWEPT, "params", "num_train_directions"] + sorted(
        {c for r in summary_rows for c in r if c.startswith(f"{split}/")}
    )
    md = [
        "# mfti-report\n",
        f"Metric: **{split} {metric}** (averages over directions). Runs: {n_done} completed, "
        f"{len(failed_rows)} failed or incomplete, {len(problems)} directories without a results.json.\n",
        extraction_note(figs.records),
    ]
    md += extra.get("head", [])
    md += [
        "## Runs\n",
        markdown_table(summary_rows, cols),
        "\n## Failed or incomplete runs\n",
        markdown_table(failed_rows) if failed_rows else "_(none)_\n",
        "\n## Directories without results.json\n",
        "".join(f"- {p}\n" for p in problems) or "_(none)_\n",
        "\n## Config values that differ between runs compared in one figure (not swept)\n",
    ]
    md += [
        f"- {fig}: `{k}`: " + "; ".join(f"`{v}` in {', '.join(n)}" for v, n in vals.items()) + "\n"
        for fig, fd in (extra.get("figure_differences") or {"all runs": diffs} if diffs else {}).items()
        for k, vals in fd.items()
    ] or ["_(none)_\n"]
    md += [
        "\n## Correlations (per-language scores)\n",
        markdown_table(
            [{k: c[k] for k in ("figure", "series", "x", "n", "pearson", "spearman")} for c in figs.correlations]
        )
        if figs.correlations
        else "_(none)_\n",
        f"\nSimilarity to English: {load_similarity(similarity)[1]}; pretraining tokens: XGLM model card "
        "(CC100-XL), from mfti_lightning/core/languages.py.\n",
        "\n## Figures\n",
    ]
    md += [f"- {n}: ![{n}]({Path(d['path']).name})\n" for n, d in figs.drawn.items()]
    md += ["\n## Figures skipped (no data)\n"] + [f"- {n}: {why}\n" for n, why in figs.skipped.items()]
    return md


def _group_base(rec: dict) -> dict:
    sw = rec.get("swept", {})
    return {"method": method_of(sw), **{k: sw.get(k) for k in SWEPT if k != "seed"}, "params": params_of(rec)}


def statistics_markdown(agg, grouped, figs, metric: str, split: str) -> list[str]:
    """The sections that follow the summary: seed groups, paired significance, trends, direction maps."""
    metrics = [metric] + (["chrf"] if metric != "chrf" else [])
    stat_cols = [f"{split}/{m}{s}" for m in metrics for s in ("", "_std", "_ci_low", "_ci_high")]
    avg_rows = [r for r in grouped if r["direction"] == "avg"]
    base = ["group", "method", *(k for k in SWEPT if k != "seed"), "n_seeds", "seeds"]
    md = [
        "## Runs grouped over seeds\n",
        "Mean over the seeds of each group (runs that differ only in `seed`), sample standard deviation and "
        "95% t-interval of the mean; per direction in table_grouped.csv.\n\n",
        markdown_table(avg_rows, base + [c for c in stat_cols if any(c in r for r in avg_rows)]),
        "\n## Paired significance per direction (sacrebleu paired bootstrap)\n",
    ]
    if agg.significance:
        md += [
            markdown_table(agg.summary),
            "\n`diff` = system - baseline; 95% interval from the bootstrap resamples; p-value from "
            f"sacrebleu.significance (signature {agg.significance[0]['signature']}); also in significance.csv.\n\n",
            markdown_table(direction_table(agg.significance)),
            "\n▲: the system (first of the pair) significantly better (p < 0.05), ▼: the baseline. The interval is "
            "the percentile interval of the resampled differences, the p-value sacrebleu's test: two conventions that "
            "can disagree near the threshold; identical outputs are never counted (sacrebleu then prints p = 0.001).\n",
        ]
    else:
        md.append("_(no mFTI group with an ICL or zero-shot group of the same model and template)_\n")
    md += ["\n## Fitted trends (least squares on log10 x, 95% interval of the slope)\n"]
    trend_avg = [t for t in figs.trends if t["direction"] == "avg"]
    md.append(markdown_table(trend_avg) + "\nPer direction: trends.csv.\n" if trend_avg else "_(none)_\n")
    md += ["\n## Direction maps\n"] + [f"- {n}: ![{n}]({Path(d['path']).name})\n" for n, d in agg.maps.items()]
    return md + (["_(none)_\n"] if not agg.maps else []) + ["\n"]


def figure_differences(figs) -> dict[str, dict]:
    """Non-swept config differences among the runs that one series of a figure averages or joins into a line
    (not among unrelated runs, nor between series, whose labels name what differs)."""
    out: dict[str, dict] = {}
    for name, series in figs.used.items():
        for runs in series if name in figs.drawn else []:
            for k, values in config_differences(runs).items():
                for v, names in values.items():
                    merged = out.setdefault(name, {}).setdefault(k, {}).setdefault(v, [])
                    merged += [n for n in names if n not in merged]
    return out


def warn_differences(fig_diffs: dict[str, dict]) -> dict[str, dict[str, list[str]]]:
    """Log each figure's non-swept differences; returns them merged over figures ``{key: {value: [runs]}}``."""
    diffs: dict[str, dict[str, list[str]]] = {}
    for name, d in fig_diffs.items():
        for k, values in d.items():
            log.warning(
                "%s compares runs that differ in the non-swept config value %s: %s",
                name,
                k,
                "; ".join(f"{v} in {', '.join(names)}" for v, names in values.items()),
            )
            for v, names in values.items():
                merged = diffs.setdefault(k, {}).setdefault(v, [])
                merged += [n for n in names if n not in merged]
    return diffs


def load_runs(paths) -> tuple[list[dict], list[dict], list[str]]:
    """Completed runs, the other runs, and the problems found (all logged); SystemExit when there is nothing."""
    records, problems = collect(paths)
    for p in problems:
        log.warning("%s", p)
    if not records:
        raise SystemExit(
            "mfti-report: no results.json found.\n  "
            + "\n  ".join(problems)
            + "\nGive run directories (with results.json) or the sweep directories above them."
        )
    done = [r for r in records if r.get("status") == "completed"]
    not_done = [r for r in records if r.get("status") != "completed"]
    for r in not_done:
        log.warning("%s: status %s%s", r["_dir"], r.get("status"), f" ({r['error']})" if r.get("error") else "")
    if len({extraction_of(r) for r in done}) > 1:
        log.warning("%s", extraction_note(done).strip().replace("**", ""))
    return done, not_done, problems


def make_report(
    paths: list[str | Path],
    out_dir: str | Path,
    metric: str = "auto",
    split: str = "test",
    similarity: str | None = None,
    bootstrap_samples: int = 1000,
    bootstrap_seed: int = 12345,
) -> dict:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    done, not_done, problems = load_runs(paths)
    metric = bleu_metric(done, split, metric)
    rows = tidy_rows(done, split)
    write_csv(rows, out / "table.csv")
    (out / "table.md").write_text(markdown_table(rows), encoding="utf-8")
    figs = Figures(out, done, metric, split, similarity)
    figs.all()
    fig_diffs = figure_differences(figs)
    diffs = warn_differences(fig_diffs)
    agg = aggregate(done, out, split, metric, bootstrap_samples, bootstrap_seed)
    grouped = grouped_rows(agg.groups, split, _group_base)
    write_csv(grouped, out / "table_grouped.csv")
    (out / "table_grouped.md").write_text(markdown_table(grouped), encoding="utf-8")
    for name, table in (("significance", agg.significance), ("trends", figs.trends)):
        if table:
            write_csv(table, out / f"{name}.csv")
    failed_rows = [
        {"run": r.get("run_name"), "status": r.get("status"), "error": (r.get("error") or "")[:200], "run_dir": r["_dir"]}
        for r in not_done
    ]  # fmt: skip
    claims = test_claims(rows, metric, split, load_similarity(similarity)[0], agg.groups)
    head = summary_section(agg, split, metric) + statistics_markdown(agg, grouped, figs, metric, split)
    extra = {"head": claims_markdown(claims, metric, split) + head, "figure_differences": fig_diffs}
    md = summary_markdown(rows, failed_rows, problems, diffs, figs, metric, split, similarity, len(done), extra)
    (out / "report.md").write_text("".join(md), encoding="utf-8")
    return {
        "out_dir": str(out),
        "metric": metric,
        "rows": rows,
        "claims": [c.row() for c in claims],
        "grouped_rows": grouped,
        "groups": agg.groups,
        "significance": agg.significance,
        "significance_summary": agg.summary,
        "headline": agg.headline,
        "best": agg.best,
        "maps": agg.maps,
        "trends": figs.trends,
        "failed": failed_rows,
        "problems": problems,
        "config_differences": diffs,
        "figure_differences": fig_diffs,
        "figures": figs.drawn,
        "skipped": figs.skipped,
        "correlations": figs.correlations,
        "num_runs": len(done),
        "records": done,
    }
