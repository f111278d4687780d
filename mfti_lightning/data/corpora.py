"""Corpus readers (streaming, gzip/xz/bz2 transparent). No torch here; the sampler is :mod:`.sampling`.

Readers yield ``(source, target)`` pairs oriented as the requested direction, whatever order the files use.
Formats (``data.corpora[*].format``):

- ``moses``: line-aligned ``<path>.<src>`` + ``<path>.<tgt>`` as OPUS/Moses downloads ship them;
- ``wikimatrix``: ``score<TAB>sent_a<TAB>sent_b`` with a LASER margin threshold (``min_score``), a/b in the
  order of the pair name in the file name (OPUS names pairs alphabetically: ``WikiMatrix.de-en.tsv.gz``);
- ``flores``: a FLORES-101 or FLORES-200 directory (``<root>/{dev,devtest}/<code>.{dev,devtest}``);
- ``hf``: a FLORES-style dataset on the Hugging Face hub (``gsarti/flores_101``, ``openlanguagedata/flores_plus``),
  read with the optional ``datasets`` package and only when the hub is reachable.

In every path, ``{pair}`` is replaced by the two codes in alphabetical order (``de-en``), ``{src}``/``{tgt}`` by
the direction's codes.
"""

from __future__ import annotations

import bz2
import gzip
import io
import logging
import lzma
from collections.abc import Iterator
from pathlib import Path

from mfti_lightning.assets import FLORES101_DIR
from mfti_lightning.core import languages
from mfti_lightning.core.choices import CORPUS_FORMATS as FORMATS
from mfti_lightning.core.config import hub_offline
from mfti_lightning.core.errors import ConfigError, DataError

log = logging.getLogger(__name__)

Pair = tuple[str, str]
COMPRESSED = (".gz", ".xz", ".bz2")


def open_binary(path: str | Path) -> io.BufferedIOBase:
    """Open a file for reading bytes, decompressing .gz/.xz/.bz2 transparently."""
    path = Path(path)
    opener = {".gz": gzip.open, ".xz": lzma.open, ".bz2": bz2.open}.get(path.suffix)
    if opener is not None:
        return opener(path, "rb")
    return open(path, "rb", buffering=1 << 20)


def iter_lines(path: str | Path) -> Iterator[str]:
    """Lines without their line ending. Undecodable bytes raise a DataError naming the file and the line.

    Decodes in large chunks (fast path); on a decoding error the file is re-scanned in binary to report the
    exact line number."""
    with io.TextIOWrapper(open_binary(path), encoding="utf-8", errors="strict", newline="\n") as f:
        try:
            for line in f:
                yield line.rstrip("\r\n")
        except UnicodeDecodeError:
            pass
        else:
            return
    _raise_decode_error(path)


def _raise_decode_error(path) -> None:
    with open_binary(path) as f:
        for lineno, raw in enumerate(f, 1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise DataError(
                    f"{path}:{lineno}: undecodable bytes (not UTF-8) at byte {e.start} of the line: "
                    f"{raw[max(0, e.start - 10) : e.end + 10]!r}. Re-encode the file as UTF-8 (e.g. iconv -f <enc> "
                    "-t utf-8) or drop the line."
                ) from None
    raise DataError(f"{path}: undecodable bytes (not UTF-8). Re-encode the file as UTF-8.")


def fill(template: str, src: str, tgt: str) -> str:
    return str(template).format(pair=pair_name(src, tgt), src=src, tgt=tgt)


def pair_name(src: str, tgt: str) -> str:
    return "-".join(sorted((src, tgt)))


# ---- FLORES ----------------------------------------------------------------------------------------------
def flores_file(root: str | Path | None, split: str, code: str, layout: str = "flores101") -> Path:
    if layout not in ("flores101", "flores200"):
        raise ConfigError(f"data.flores_layout={layout!r}: use flores101 or flores200.")
    lang = languages.get(code)
    stem = lang.flores101 if layout == "flores101" else lang.flores200
    if stem is None:
        raise DataError(
            f"{lang.name} ({code}) is not part of {layout}; use data.flores_layout=flores200 and a "
            "FLORES-200 copy (data.flores_root)."
        )
    root = Path(root) if root else FLORES101_DIR
    if not root.is_dir():
        raise DataError(
            f"FLORES root {root} is not a directory; set data.flores_root to a FLORES-101/200 copy "
            "laid out as <root>/{dev,devtest}/<code>.{dev,devtest}."
        )
    return root / split / f"{stem}.{split}"


def read_flores(root, split: str, code: str, layout: str = "flores101") -> list[str]:
    if split not in ("dev", "devtest"):
        raise ConfigError(f"FLORES split {split!r}: use dev or devtest.")
    path = flores_file(root, split, code, layout)
    if not path.exists():
        raise DataError(
            f"FLORES {split} for {code} not found: {path}. Set data.flores_root to a directory laid out as "
            f"<root>/{{dev,devtest}}/<code>.{{dev,devtest}} ({layout} codes) and data.flores_layout to match."
        )
    lines = list(iter_lines(path))
    warn_blank_lines(path, lines)
    return lines


_WARNED_BLANK: set[Path] = set()  # a file read for several sets (test, k-shot pool, exclusions) is named once


def warn_blank_lines(path: Path, lines: list[str]) -> None:
    """A blank line in a FLORES file is a missing sentence (line i is sentence i in every language) that would be
    translated and scored, or shown as a demonstration, as an empty one: warn once per file, naming the lines."""
    blank = [str(i) for i, line in enumerate(lines, 1) if not line.strip()]
    if blank and path not in _WARNED_BLANK:
        _WARNED_BLANK.add(path)
        where = ", ".join(blank[:10]) + (f" and {len(blank) - 10} more" if len(blank) > 10 else "")
        log.warning(
            "%s: blank line %s. FLORES line i is sentence i in every language, so it would be evaluated as an "
            "empty sentence; restore the file from a FLORES release (data.flores_root is the copy in use).",
            path,
            where,
        )


def read_flores_pairs(root, split: str, src: str, tgt: str, layout: str = "flores101") -> list[Pair]:
    s, t = read_flores(root, split, src, layout), read_flores(root, split, tgt, layout)
    if len(s) != len(t):
        raise DataError(
            f"FLORES {split}: {flores_file(root, split, src, layout)} has {len(s)} lines but "
            f"{flores_file(root, split, tgt, layout)} has {len(t)}; the files are misaligned."
        )
    return list(zip(s, t))


# ---- parallel corpora ------------------------------------------------------------------------------------
def find_with_compression(base: str | Path) -> Path | None:
    base = Path(base)
    for cand in (base, *(base.with_name(base.name + ext) for ext in COMPRESSED)):
        if cand.exists():
            return cand
    return None


def _find(prefix, lang: str) -> Path:
    found = find_with_compression(f"{prefix}.{lang}")
    if found is None:
        raise DataError(f"Corpus file not found: {prefix}.{lang}[.gz|.xz|.bz2]")
    return found


def iter_moses(prefix: str | Path, src: str, tgt: str) -> Iterator[Pair]:
    """Line-aligned ``<prefix>.<src>`` + ``<prefix>.<tgt>`` (optionally .gz/.xz/.bz2), streamed.

    Files whose line counts differ are a DataError naming both files and both counts, raised when the shorter one
    ends (whichever of the two it is), before the caller can use the pairs read so far."""
    ps, pt = _find(prefix, src), _find(prefix, tgt)
    it_s, it_t = iter_lines(ps), iter_lines(pt)
    n = 0
    while True:  # not zip(): it would drop a line of the first file without telling when that one is longer
        s, t = next(it_s, None), next(it_t, None)
        if s is None or t is None:
            break
        n += 1
        yield s, t
    if s is None and t is None:
        return
    longer, shorter, rest = (ps, pt, it_s) if s is not None else (pt, ps, it_t)
    m = n + 1 + sum(1 for _ in rest)  # streamed: counts lines as iter_lines reads them (a last line without \n too)
    raise DataError(
        f"Pair files are misaligned: {shorter} ends after line {n} ({n} lines) but {longer} has {m} lines. "
        "Line i of one file must translate line i of the other; re-export the pair (a line dropped in the middle "
        "pairs every later sentence with the wrong translation)."
    )


def iter_wikimatrix(path: str | Path, src: str, tgt: str, min_score: float = 0.0) -> Iterator[Pair]:
    """WikiMatrix TSV ``score<TAB>sent_a<TAB>sent_b`` where a/b follow the file's pair name (e.g. de-en)."""
    first, _ = sorted((src, tgt))
    swap = src != first
    for lineno, line in enumerate(iter_lines(path), 1):
        parts = line.split("\t")
        if len(parts) != 3:
            raise DataError(f"{path}:{lineno}: expected score<TAB>src<TAB>tgt, got {len(parts)} field(s)")
        try:
            score = float(parts[0])
        except ValueError:
            raise DataError(f"{path}:{lineno}: score {parts[0]!r} is not a number") from None
        if score < min_score:
            continue
        yield (parts[2], parts[1]) if swap else (parts[1], parts[2])


# ---- Hugging Face datasets (optional) --------------------------------------------------------------------
HF_LAYOUTS = {
    # dataset id -> (registry field giving the config name, text column)
    "gsarti/flores_101": ("flores101", "sentence"),
    "openlanguagedata/flores_plus": ("flores200", "text"),
}


def _hf_fix(name: str) -> str:
    return (
        f"Download the data once on a machine with internet access and point data.corpora at the files "
        f"instead (format: flores with root: <dir> for FLORES copies, or moses/wikimatrix), or run where "
        f"huggingface.co is reachable. ({name})"
    )


def read_hf_flores(name: str, split: str, code: str, layout: str | None = None) -> list[str]:
    """One language of a FLORES-style hub dataset (one config per language)."""
    field, column = HF_LAYOUTS.get(name, (layout or "flores200", "text"))
    if layout:
        field = layout
    stem = getattr(languages.get(code), field)
    if stem is None:
        raise DataError(f"{languages.name(code)} ({code}) has no {field} code; it is not in {name}.")
    if hub_offline(datasets=True):
        raise DataError(
            f"data.corpora: format hf ({name}) needs the Hugging Face hub, but HF_HUB_OFFLINE / "
            "HF_DATASETS_OFFLINE is set. " + _hf_fix(name)
        )
    try:
        import datasets
    except ImportError:
        raise DataError(
            f"data.corpora: format hf ({name}) needs the optional 'datasets' package: "
            "pip install 'mfti-lightning[datasets]'. " + _hf_fix(name)
        ) from None
    try:
        ds = datasets.load_dataset(name, stem, split=split)
    except Exception as e:  # connection errors, gated datasets, unknown configs
        raise DataError(
            f"data.corpora: could not load {name} config {stem!r} split {split!r} from the hub "
            f"({type(e).__name__}: {e}). " + _hf_fix(name)
        ) from None
    return [str(x) for x in ds[column]]


def iter_hf(spec, src: str, tgt: str) -> Iterator[Pair]:
    name, split, layout = spec["name"], spec.get("split", "dev"), spec.get("layout")
    s, t = read_hf_flores(name, split, src, layout), read_hf_flores(name, split, tgt, layout)
    if len(s) != len(t):
        raise DataError(f"{name} {split}: {src} has {len(s)} rows but {tgt} has {len(t)}.")
    yield from zip(s, t)


# ---- corpus specs ----------------------------------------------------------------------------------------
def check_spec(spec, index: int = 0) -> None:
    fmt = spec.get("format")
    where = f"data.corpora.{index}"
    if fmt not in FORMATS:
        raise ConfigError(f"{where}.format={fmt!r}: known formats are {', '.join(FORMATS)}.")
    if fmt in ("moses", "wikimatrix") and not spec.get("path"):
        raise ConfigError(
            f"{where}.path is required for format {fmt}, e.g. {where}.path=/data/WikiMatrix.{{pair}}.tsv.gz"
        )
    if fmt == "hf" and not spec.get("name"):
        raise ConfigError(f"{where}.name is required for format hf, e.g. {where}.name=gsarti/flores_101")


def iter_corpus(spec, src: str, tgt: str) -> Iterator[Pair]:
    """Pairs for one direction from one corpus spec (a ``data.corpora`` entry)."""
    check_spec(spec)
    fmt = spec["format"]
    if fmt == "flores":
        yield from read_flores_pairs(
            spec.get("root"), spec.get("split", "dev"), src, tgt, spec.get("layout") or "flores101"
        )
    elif fmt == "hf":
        yield from iter_hf(spec, src, tgt)
    elif fmt == "moses":
        yield from iter_moses(fill(spec["path"], src, tgt), src, tgt)
    else:
        yield from iter_wikimatrix(fill(spec["path"], src, tgt), src, tgt, float(spec.get("min_score") or 0.0))


def corpus_files(spec, src: str, tgt: str) -> list[Path] | None:
    """The files a spec reads for a direction, or None when it has none for this pair."""
    fmt = spec["format"]
    if fmt == "flores":
        try:
            files = [
                flores_file(spec.get("root"), spec.get("split", "dev"), c, spec.get("layout") or "flores101")
                for c in (src, tgt)
            ]
        except DataError:
            return None
        return files if all(f.exists() for f in files) else None
    if fmt == "hf":
        return []
    path = fill(spec["path"], src, tgt)
    if fmt == "moses":
        files = [find_with_compression(f"{path}.{c}") for c in (src, tgt)]
        return files if all(files) else None
    return [Path(path)] if Path(path).exists() else None


def corpus_available(spec, src: str, tgt: str) -> bool:
    if spec["format"] == "hf":
        field = spec.get("layout") or HF_LAYOUTS.get(spec.get("name"), ("flores200", ""))[0]
        return all(getattr(languages.get(c), field, None) for c in (src, tgt))
    return corpus_files(spec, src, tgt) is not None


def describe_spec(spec, src: str, tgt: str) -> str:
    fmt = spec.get("format")
    if fmt == "flores":
        return f"flores:{spec.get('root') or 'shipped FLORES-101'}/{spec.get('split', 'dev')}"
    if fmt == "hf":
        return f"hf:{spec.get('name')}/{spec.get('split', 'dev')}"
    return f"{fmt}:{fill(spec.get('path'), src, tgt)}" + (".{%s,%s}" % (src, tgt) if fmt == "moses" else "")
