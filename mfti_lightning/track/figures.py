"""The report's figures: each one's numbers computed (:mod:`~mfti_lightning.track.figure_data`,
:mod:`~mfti_lightning.track.comparison_data`), then drawn (:mod:`~mfti_lightning.track.figure_drawing`) to
``<out_dir>/<name>.png``; a figure without data is skipped with the reason, never faked."""

from __future__ import annotations

from pathlib import Path

from mfti_lightning.core.results_schema import RunResults
from mfti_lightning.track import comparison_data as cd
from mfti_lightning.track import figure_drawing as draw
from mfti_lightning.track.figure_data import FigureData, Line, Scope, line_data
from mfti_lightning.track.language_axes import load_similarity, pretraining_tokens
from mfti_lightning.track.run_values import family_of, method_of, params_of


def _mfti(r: dict) -> bool:
    return method_of(RunResults.of(r).swept) == "mFTI"


def _icl(r: dict) -> bool:
    return method_of(RunResults.of(r).swept) == "ICL"


LINES = (
    Line("bleu_vs_model_size", "Model size", "parameters", params_of, logx=True, colour_by=family_of),
    Line("bleu_vs_num_examples", "Training examples per direction", "examples per direction",
         lambda r: RunResults.of(r).swept.num_examples, select=_mfti, logx=True, reference=_icl),
    Line("bleu_vs_lang_pairs", "Number of training directions", "training directions",
         lambda r: len(RunResults.of(r).directions.train) or None, select=_mfti, reference=_icl),
    Line("bleu_vs_shots", "In-context demonstrations", "shots", lambda r: RunResults.of(r).swept.shots),
)  # fmt: skip


class Figures:
    """Computes and draws each figure; keeps what was plotted (``drawn``, with each PNG's ``path``), what was
    skipped and why, the per-language correlations, the fitted trends and the runs of each series (``used``)."""

    def __init__(
        self, out_dir: Path, records: list[dict], metric: str, split: str = "test", similarity: str | None = None
    ):
        self.out, self.records, self.metric, self.split = out_dir, records, metric, split
        self.similarity = similarity
        self.scope = Scope(records, metric, split)
        self.drawn: dict[str, dict] = {}
        self.skipped: dict[str, str] = {}
        self.correlations: list[dict] = []
        self.trends: list[dict] = []  # least-squares slopes per series and direction (stats.fit_line)
        self.used: dict[str, list[list[dict]]] = {}  # per figure, the runs of each series (averaged or joined)

    def add(self, name: str, result: FigureData | str, drawer) -> dict | None:
        """Record a computed figure and draw it with ``drawer``, or record why it is skipped (``result`` a str)."""
        if isinstance(result, str):
            self.skipped[name] = result
            return None
        if result.used is not None:
            self.used[name] = result.used
        self.trends += result.trends
        self.correlations += result.correlations
        fig = drawer(result, self.split, self.metric)
        path = self.out / f"{name}.png"
        draw.save(fig, path)
        result.data["path"] = str(path)
        self.drawn[name] = result.data
        return result.data

    def all(self) -> None:
        s = self.scope
        for line in LINES:
            self.add(line.name, line_data(s, line), draw.draw_line)
        self.add("template_comparison", cd.templates_data(s), draw.draw_templates)
        self.add("template_space", cd.template_space_data(s), draw.draw_template_space)
        self.add("partitions", cd.partitions_data(s), draw.draw_partitions)
        self.add("pivot", cd.pivot_data(s), draw.draw_bars)
        self.add("data_quality", cd.data_quality_data(s), draw.draw_data_quality)
        self.add("error_types", cd.errors_data(s), draw.draw_errors)
        name = "per_language_vs_pretraining_tokens"
        tokens = pretraining_tokens()
        data = cd.per_language_data(s, name, tokens, "XGLM pretraining tokens (CC100-XL)", logx=True)
        self.add(name, data, draw.draw_per_language)
        sim, source = load_similarity(self.similarity)
        name = "per_language_vs_similarity"
        data = cd.per_language_data(s, name, sim, f"{source.split(' (')[0]} (URIEL)", logx=False, exclude=("en",))
        self.add(name, data, draw.draw_per_language)
