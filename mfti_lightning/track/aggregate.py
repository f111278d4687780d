"""What ``mfti-report`` says about a sweep beyond its per-run rows: seed groups, mFTI vs its ICL baseline
(the difference of group means with a Welch interval over seeds, and sacrebleu's paired bootstrap per direction
and matched seed), the direction maps, and the summary that opens report.md. No torch here.

Pairs compared: every mFTI seed group with the ICL group of the same model and template (the one with the most
shots when several; the zero-shot group when there is no ICL group). Runs are matched by seed; when the two
groups share no seed they are matched in seed order, and the note says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from mfti_lightning.core.identity import changed, identity, matches
from mfti_lightning.core.metric_key import AVG, MetricKey
from mfti_lightning.core.results_schema import RunResults
from mfti_lightning.track.run_values import method_of
from mfti_lightning.track.significance import compare_runs
from mfti_lightning.track.stat_figures import PARTITION_MARKS, direction_map
from mfti_lightning.track.stats import Interval, SeedGroup, seed_groups, welch


def _method(g: SeedGroup) -> str:
    return method_of(RunResults.of(g.first).swept)


def _seed(rec: dict):
    return RunResults.of(rec).swept.seed


def _same_setting(a: SeedGroup, b: SeedGroup) -> bool:
    ra, rb = RunResults.of(a.first), RunResults.of(b.first)
    same = ra.swept.model == rb.swept.model and ra.swept.template == rb.swept.template
    return same and ra.task == rb.task


def method_pairs(groups: list[SeedGroup]) -> list[tuple[SeedGroup, SeedGroup]]:
    """``[(mFTI group, its baseline group)]`` (see the module doc)."""
    pairs = []
    for g in groups:
        if _method(g) != "mFTI":
            continue
        cands = [b for b in groups if _method(b) == "ICL" and _same_setting(g, b)]
        cands = cands or [b for b in groups if _method(b) == "zero-shot" and _same_setting(g, b)]
        if cands:
            pairs.append((g, max(cands, key=lambda b: int(RunResults.of(b.first).swept.shots or 0))))
    return pairs


def matched_runs(system: SeedGroup, baseline: SeedGroup) -> tuple[list[tuple[dict, dict]], str]:
    """Runs of the two groups matched by seed (or in seed order when they share none), and a note."""
    by_seed = {_seed(r): r for r in baseline.records}
    common = [(r, by_seed[_seed(r)]) for r in system.records if _seed(r) in by_seed]
    if common:
        return common, ""
    pairs = list(zip(system.records, baseline.records))
    return pairs, f"{system.label} and {baseline.label} share no seed: runs matched in seed order"


def evaluation_differences(system: SeedGroup, baseline: SeedGroup) -> list[str]:
    """The evaluation settings (beams, tokens, test sets, tokenizer...) in which a pair's runs differ, other than
    the shots that make the baseline ICL: a difference here is a confound of the comparison."""
    a, b = (identity(RunResults.of(g.first).config)["evaluation"] for g in (system, baseline))
    return [
        f"{system.label} vs {baseline.label} differ in {k}: {x!r} vs {y!r}"
        for k, x, y in changed(a, b)
        if not matches(k, ("shots",))
    ]


def _directions(rec: dict, split: str, metric: str) -> list[str]:
    keys = [MetricKey.find(k) for k in RunResults.of(rec).metrics]
    return sorted(k.scope for k in keys if k and k.split == split and k.metric == metric and k.is_direction)


def significance(pairs, metrics: list[str], split: str, n_samples: int, seed: int) -> tuple[list[dict], list[str]]:
    """sacrebleu's paired bootstrap per direction, metric and matched seed, for every pair."""
    rows, notes = [], []
    for system, baseline in pairs:
        matched, note = matched_runs(system, baseline)
        notes += [note] if note else []
        for sys_rec, base_rec in matched:
            dirs = sorted(set(_directions(sys_rec, split, metrics[0])) & set(_directions(base_rec, split, metrics[0])))
            found, why = compare_runs(base_rec["_dir"], sys_rec["_dir"], dirs, metrics, split, n_samples, seed)
            notes += [f"{system.label} vs {baseline.label}: {w}" for w in why]
            head = {
                "system": system.label, "baseline": baseline.label,
                "seed": _seed(sys_rec), "baseline_seed": _seed(base_rec),
            }  # fmt: skip
            rows += [{**head, **r} for r in found]
    return rows, notes


def significance_summary(rows: list[dict]) -> list[dict]:
    """Per (pair, metric): directions compared, and in how many the system / the baseline is significantly
    better in every matched seed."""
    by: dict[tuple, dict[str, list]] = {}
    for r in rows:
        by.setdefault((r["system"], r["baseline"], r["metric"]), {}).setdefault(r["direction"], []).append(r)
    out = []
    for (system, baseline, metric), dirs in by.items():
        seeds = max(len(v) for v in dirs.values())
        count = {w: sum(1 for v in dirs.values() if all(x["better"] == w for x in v)) for w in ("system", "baseline")}
        out.append(
            {
                "system": system,
                "baseline": baseline,
                "metric": metric,
                "directions": len(dirs),
                "matched_seeds": seeds,
                "system_better": count["system"],
                "baseline_better": count["baseline"],
                "neither": len(dirs) - count["system"] - count["baseline"],
            }
        )
    return out


def direction_table(rows: list[dict]) -> list[dict]:
    """report.md's compact form of the significance rows: one row per (pair, direction), per metric the
    difference, its interval and p per matched seed (``;`` between seeds)."""
    out: dict[tuple, dict] = {}
    for r in rows:
        row = out.setdefault((r["system"], r["baseline"], r["direction"]), {"pair": f"{r['system']} vs {r['baseline']}",
                                                                             "direction": r["direction"]})  # fmt: skip
        cell = f"{r['diff']:+.2f} [{r['diff_low']:+.2f}, {r['diff_high']:+.2f}] p={r['p_value']:.3f}"
        cell += {"system": " ▲", "baseline": " ▼"}.get(r["better"] or "", "")
        key = f"{r['metric']} (seed {r['seed']})" if r["seed"] == r["baseline_seed"] else f"{r['metric']}"
        row[key] = f"{row[key]}; {cell}" if key in row else cell
    return list(out.values())


@dataclass
class Aggregate:
    groups: list[SeedGroup]
    pairs: list[tuple[SeedGroup, SeedGroup]]
    significance: list[dict] = field(default_factory=list)
    summary: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    maps: dict[str, dict] = field(default_factory=dict)
    best: SeedGroup | None = None
    best_value: Interval | None = None
    headline: tuple[SeedGroup, SeedGroup, Interval] | None = None


def _per_direction_mean(g: SeedGroup, split: str, metric: str) -> dict[str, float]:
    out = {}
    for d in _directions(g.first, split, metric):
        iv = g.interval(str(MetricKey(split, metric, d)))
        if iv is not None:
            out[d] = iv.mean
    return out


def _marks(rec: dict) -> tuple[dict[str, str], set[str]]:
    r = RunResults.of(rec)
    marks = {d: PARTITION_MARKS[p] for p, ds in r.partitions.items() for d in ds if p in PARTITION_MARKS}
    return marks, set(r.directions.train)


def draw_maps(agg: Aggregate, out: Path, split: str, metric: str) -> None:
    """``direction_map.png`` (the best configuration, mean over seeds) and ``direction_map_diff.png`` (the
    headline mFTI group minus its baseline, significant cells starred)."""
    if agg.best is not None and (vals := _per_direction_mean(agg.best, split, metric)):
        marks, trained = _marks(agg.best.first)
        title = f"{split} {metric}: {agg.best.label} (mean over {len(agg.best.records)} seed(s))"
        agg.maps["direction_map"] = direction_map(out / "direction_map.png", vals, title, metric, marks, trained)
    if agg.headline is None:
        return
    system, baseline, _ = agg.headline
    a, b = _per_direction_mean(system, split, metric), _per_direction_mean(baseline, split, metric)
    diff = {d: a[d] - b[d] for d in a if d in b}
    if not diff:
        return
    marks, trained = _marks(system.first)
    sig = [r for r in agg.significance if r["system"] == system.label and r["metric"] == metric]
    for d in diff:
        rs = [r for r in sig if r["direction"] == d]
        if rs and all(r["better"] is not None and r["better"] == rs[0]["better"] for r in rs):
            marks[d] = marks.get(d, "") + "*"
    title = f"{split} {metric}: {system.label} minus {baseline.label}"
    agg.maps["direction_map_diff"] = direction_map(
        out / "direction_map_diff.png", diff, title, f"{metric} difference", marks, trained, diverging=True
    )


def aggregate(records: list[dict], out: Path, split: str, metric: str, n_samples: int, seed: int) -> Aggregate:
    """Seed groups, pairs, significance, the best configuration, the headline difference and the maps."""
    groups = seed_groups(records)
    agg = Aggregate(groups, method_pairs(groups))
    key = str(MetricKey(split, metric, AVG))
    scored = [(g, g.interval(key)) for g in groups if g.interval(key) is not None]
    if scored:
        agg.best, agg.best_value = max(scored, key=lambda t: t[1].mean)
    metrics = [metric] + (["chrf"] if metric != "chrf" else [])
    agg.notes = [n for system, baseline in agg.pairs for n in evaluation_differences(system, baseline)]
    if n_samples > 0:
        agg.significance, notes = significance(agg.pairs, metrics, split, n_samples, seed)
        agg.notes += notes
    agg.summary = significance_summary(agg.significance)
    if agg.pairs:
        system, baseline = max(
            agg.pairs, key=lambda p: (p[0].interval(key) or Interval(-1e9, None, None, None, 0)).mean
        )
        diff = welch(system.values(key), baseline.values(key))
        if diff is not None:
            agg.headline = (system, baseline, diff)
    draw_maps(agg, out, split, metric)
    return agg


def _fmt_iv(iv: Interval | None) -> str:
    if iv is None:
        return "n/a"
    if iv.low is None:
        return f"{iv.mean:.2f} (n={iv.n}: no interval)"
    return f"{iv.mean:.2f} [95% CI {iv.low:.2f}, {iv.high:.2f}] (n={iv.n})"


def summary_section(agg: Aggregate, split: str, metric: str) -> list[str]:
    """The opening of report.md: best configuration, mFTI - ICL with its interval, significant directions."""
    md = ["## Summary\n"]
    if agg.best is not None:
        md.append(
            f"- **Best configuration** by {split} {metric} (avg): `{agg.best.label}`: {_fmt_iv(agg.best_value)} "
            f"over seeds {', '.join(str(s) for s in agg.best.seeds)}.\n"
        )
    if agg.headline is not None:
        system, baseline, diff = agg.headline
        md.append(
            f"- **{_method(system)} - {_method(baseline)}** ({system.label} minus {baseline.label}, {split} {metric} "
            f"avg): {_fmt_iv(diff)}; Welch t-interval over seeds.\n"
        )
    else:
        md.append("- mFTI - ICL: no mFTI group with an ICL or zero-shot group of the same model and template.\n")
    for s in agg.summary:
        md.append(
            f"- Paired bootstrap ({s['metric']}, {s['matched_seeds']} matched seed(s)): {s['system']} significantly "
            f"better in **{s['system_better']}** of {s['directions']} directions, {s['baseline']} in "
            f"**{s['baseline_better']}**, neither in {s['neither']} (p < 0.05 in every matched seed).\n"
        )
    return md + [f"- Note: {n}\n" for n in agg.notes] + ["\n"]
