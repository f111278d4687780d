"""The one template object: training text, evaluation prompts, k-shot prompts and extraction all go through it.

A template is a prefix with placeholders ``<srclang>``, ``<tgtlang>`` (language names from the language registry:
English as in the paper, native or codes, ``lang_names``) and ``<input>`` (the source sentence). As in the paper's
code:

- a training example is ``prefix + " " + target`` followed by the tokenizer's EOS token;
- an evaluation prompt is the prefix;
- a k-shot prompt is k rendered examples (without EOS) and the test prefix, joined by ``shot_separator``.

It is saved as ``template.json`` next to every checkpoint and exported model, and loaded back from there, so the
model is always queried with the text it was trained on.

Besides the paper's six files, ``template=custom 'template.prefix=...'`` takes any prefix from the command line,
with the same checks; its name is derived from its text (:func:`text_id`, the ``${mfti_template_id:...}``
resolver), so two different texts never share a run name, a run directory or a W&B name.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from mfti_lightning.core import languages
from mfti_lightning.core.errors import ConfigError
from mfti_lightning.core.layout import TEMPLATE_FILE
from mfti_lightning.core.results import write_json_atomic

PLACEHOLDERS = ("<srclang>", "<tgtlang>", "<input>")
_PLACEHOLDER_RE = re.compile(r"<[a-z_]+>")


@dataclass(frozen=True)
class Template:
    name: str  # e.g. "t1_translation_src_tgt"
    prefix: str  # e.g. "Translation: [<srclang>]: <input> [<tgtlang>]:"
    paper_id: int | None = None  # number in the paper / the reference code's --template-str
    short: str = ""  # short label for run names and plots ("t1")
    shot_separator: str = " "  # between k-shot demonstrations and before the test prefix
    target_separator: str = " "  # between the prefix and the target
    stop_markers: tuple[str, ...] = field(default=())  # text that starts a new template turn; derived if empty
    lang_names: str = "english"  # <srclang>/<tgtlang>: english (paper) | native | code (languages.name)

    def __post_init__(self):
        if not str(self.prefix).strip():
            raise ConfigError(
                f"Template {self.name!r} has an empty prefix. Give it on the command line, e.g. "
                "template=custom \"template.prefix='<input> = [<tgtlang>]:'\" (quote values with brackets)."
            )
        if "<input>" not in self.prefix:
            raise ConfigError(
                f"Template {self.name!r} has no '<input>' placeholder: {self.prefix!r}. "
                "Put '<input>' where the source sentence goes, e.g. 'Translation: <input> [<tgtlang>]:'."
            )
        unknown = sorted(set(_PLACEHOLDER_RE.findall(self.prefix)) - set(PLACEHOLDERS))
        if unknown:
            raise ConfigError(
                f"Template {self.name!r} uses unknown placeholder(s) {unknown}; known: {list(PLACEHOLDERS)}."
            )
        if self.lang_names not in languages.NAME_STYLES:
            raise ConfigError(
                f"template.lang_names={self.lang_names!r}: use one of {', '.join(languages.NAME_STYLES)}."
            )
        if not self.stop_markers:
            object.__setattr__(self, "stop_markers", _derive_stop_markers(self.prefix))
        if not self.short:
            object.__setattr__(self, "short", f"t{self.paper_id}" if self.paper_id else self.name)

    # ---- rendering ---------------------------------------------------------------------------------
    def render_prefix(self, source: str, src_lang: str, tgt_lang: str) -> str:
        """The evaluation prompt for one sentence (what the model is given)."""
        out = self.prefix.replace("<srclang>", languages.name(src_lang, self.lang_names))
        out = out.replace("<tgtlang>", languages.name(tgt_lang, self.lang_names))
        return out.replace("<input>", source.strip())

    def render_example(self, source: str, target: str, src_lang: str, tgt_lang: str) -> str:
        """A full training example without EOS (the tokenizer appends EOS)."""
        return self.render_prefix(source, src_lang, tgt_lang) + self.target_separator + target.strip()

    def render_prompt(self, source: str, src_lang: str, tgt_lang: str, shots: Sequence[tuple[str, str]] = ()) -> str:
        """A k-shot prompt: k rendered demonstrations, then the test prefix."""
        demos = [self.render_example(s, t, src_lang, tgt_lang) for s, t in shots]
        return self.shot_separator.join(demos + [self.render_prefix(source, src_lang, tgt_lang)])

    # ---- extraction --------------------------------------------------------------------------------
    def extract(self, generated_ids: Sequence[int], tokenizer, extraction: str = "clean") -> str:
        """The translation in the ids generated *after* the prompt (positions, not string replacement).

        Both modes stop at the first EOS or pad id. ``reference`` (the reference code's protocol) keeps the whole
        continuation up to there; ``clean`` also cuts at the first newline and where the model starts another
        template turn (e.g. ``Translation: [`` for template 1), see :meth:`cut`.
        """
        stop_ids = {tokenizer.eos_token_id, tokenizer.pad_token_id} - {None}
        ids = []
        for i in generated_ids:
            i = int(i)
            if i in stop_ids:
                break
            ids.append(i)
        text = tokenizer.decode(ids, skip_special_tokens=True)
        return text.strip() if extraction == "reference" else self.cut(text)

    def cut(self, text: str) -> str:
        text = text.split("\n", 1)[0]
        cut_at = len(text)
        for marker in self.stop_markers:
            pos = text.find(marker)
            if pos >= 0:
                cut_at = min(cut_at, pos)
        return text[:cut_at].strip()

    # ---- persistence -------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        d = asdict(self)
        d["stop_markers"] = list(self.stop_markers)
        return d

    @classmethod
    def from_dict(cls, d) -> Template:
        d = dict(d)
        d["stop_markers"] = tuple(d.get("stop_markers") or ())
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in d.items() if k in known})

    def save(self, directory: str | Path) -> Path:
        return write_json_atomic(Path(directory) / TEMPLATE_FILE, self.to_dict())

    @classmethod
    def load(cls, directory: str | Path) -> Template:
        return cls.from_dict(json.loads((Path(directory) / TEMPLATE_FILE).read_text(encoding="utf-8")))


def _derive_stop_markers(prefix: str) -> tuple[str, ...]:
    """Literal pieces of the prefix that signal a new turn: text before the first placeholder, and any
    literal chunk of at least 4 non-space characters (e.g. ``Translation:``, ``Translate from [``)."""
    chunks = [c.strip() for c in _PLACEHOLDER_RE.split(prefix)]
    markers = [c for c in chunks if len(c.replace(" ", "")) >= 4 and c not in {"]:", "[", "'"}]
    return tuple(dict.fromkeys(markers))


def text_id(prefix, shot_separator=" ", target_separator=" ", lang_names="english") -> str:
    """A stable short name for a template's text (``c`` + 8 hex digits of its SHA-256): the name of
    ``template=custom``, resolved in the config as ``${mfti_template_id:${.prefix},...}``."""
    blob = json.dumps([str(prefix), str(shot_separator), str(target_separator), str(lang_names)], ensure_ascii=False)
    return "c" + hashlib.sha256(blob.encode()).hexdigest()[:8]


def from_config(cfg) -> Template:
    """Build the template from its config group node (``cfg.template``)."""
    d = {k: cfg[k] for k in cfg.keys()} if hasattr(cfg, "keys") else dict(cfg)
    d = {k: (list(v) if k == "stop_markers" and v is not None else v) for k, v in d.items()}
    return Template.from_dict(d)
