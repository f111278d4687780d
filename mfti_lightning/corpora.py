"""Corpus readers (streaming, gzip/xz transparent) and the seeded streaming sampler. No torch here.

Readers yield ``(source, target)`` pairs oriented as the requested direction, whatever order the files use.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import random
from pathlib import Path
from typing import Callable, Iterable, Iterator

from mfti_lightning import languages
from mfti_lightning.assets import FLORES101_DIR
from mfti_lightning.errors import DataError

Pair = tuple[str, str]


def open_text(path: str | Path) -> io.TextIOBase:
    """Open a UTF-8 text file, decompressing .gz/.xz/.bz2 transparently. Undecodable bytes raise."""
    path = Path(path)
    opener = {".gz": gzip.open, ".xz": lzma.open, ".bz2": bz2.open}.get(path.suffix)
    if opener is not None:
        return opener(path, "rt", encoding="utf-8", errors="strict", newline="\n")
    return open(path, encoding="utf-8", errors="strict", newline="\n")


def iter_lines(path: str | Path) -> Iterator[str]:
    """Lines without their newline; a decoding error names the file and the line."""
    lineno = 0
    with open_text(path) as f:
        try:
            for lineno, line in enumerate(f, 1):
                yield line.rstrip("\r\n")
        except UnicodeDecodeError as e:
            raise DataError(f"{path}: undecodable bytes (not UTF-8) after line {lineno}: {e}") from None


# ---- FLORES ----------------------------------------------------------------------------------------------
def flores_file(root: str | Path | None, split: str, code: str, layout: str = "flores101") -> Path:
    lang = languages.get(code)
    stem = lang.flores101 if layout == "flores101" else lang.flores200
    if stem is None:
        raise DataError(f"{lang.name} ({code}) is not part of {layout}; use data.flores_layout=flores200.")
    root = Path(root) if root else FLORES101_DIR
    return root / split / f"{stem}.{split}"


def read_flores(root, split: str, code: str, layout: str = "flores101") -> list[str]:
    path = flores_file(root, split, code, layout)
    if not path.exists():
        raise DataError(
            f"FLORES {split} for {code} not found: {path}. Set data.flores_root to a directory laid out as "
            f"<root>/{{dev,devtest}}/<code>.{{dev,devtest}} ({layout} codes)."
        )
    return list(iter_lines(path))


def read_flores_pairs(root, split: str, src: str, tgt: str, layout: str = "flores101") -> list[Pair]:
    s, t = read_flores(root, split, src, layout), read_flores(root, split, tgt, layout)
    if len(s) != len(t):
        raise DataError(f"FLORES {split}: {src} has {len(s)} lines but {tgt} has {len(t)}; files are misaligned.")
    return list(zip(s, t))


# ---- parallel corpora ------------------------------------------------------------------------------------
def _pair_name(src: str, tgt: str) -> str:
    return "-".join(sorted((src, tgt)))


def iter_moses(prefix: str | Path, src: str, tgt: str) -> Iterator[Pair]:
    """Line-aligned ``<prefix>.<src>`` + ``<prefix>.<tgt>`` (optionally .gz/.xz)."""
    ps, pt = _find(prefix, src), _find(prefix, tgt)
    it_s, it_t = iter_lines(ps), iter_lines(pt)
    n = 0
    for n, (a, b) in enumerate(zip(it_s, it_t), 1):
        yield a, b
    extra = [p for p, it in ((ps, it_s), (pt, it_t)) if next(it, None) is not None]
    if extra:
        raise DataError(
            f"Pair files are misaligned: {ps} and {pt} differ in line count ({extra[0]} has more than {n} lines)."
        )


def _find(prefix, lang: str) -> Path:
    base = Path(f"{prefix}.{lang}")
    for cand in (base, *(base.with_name(base.name + ext) for ext in (".gz", ".xz", ".bz2"))):
        if cand.exists():
            return cand
    raise DataError(f"Corpus file not found: {base}[.gz|.xz]")


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
        a, b = parts[1], parts[2]
        yield (b, a) if swap else (a, b)


def iter_corpus(spec, src: str, tgt: str) -> Iterator[Pair]:
    """Pairs for one direction from one corpus spec (a ``data.corpora`` entry)."""
    fmt = spec["format"]
    if fmt == "flores":
        yield from read_flores_pairs(spec.get("root"), spec.get("split", "dev"), src, tgt,
                                     spec.get("layout", "flores101"))
        return
    path = str(spec["path"]).format(pair=_pair_name(src, tgt), src=src, tgt=tgt)
    if fmt == "moses":
        yield from iter_moses(path, src, tgt)
    elif fmt == "wikimatrix":
        yield from iter_wikimatrix(path, src, tgt, float(spec.get("min_score", 0.0)))
    else:
        raise DataError(f"Unknown corpus format {fmt!r}; known: flores, moses, wikimatrix.")


def corpus_available(spec, src: str, tgt: str) -> bool:
    fmt = spec["format"]
    if fmt == "flores":
        return all(flores_file(spec.get("root"), spec.get("split", "dev"), c, spec.get("layout", "flores101"))
                   .exists() for c in (src, tgt))
    path = str(spec["path"]).format(pair=_pair_name(src, tgt), src=src, tgt=tgt)
    if fmt == "moses":
        return all(any(Path(f"{path}.{c}{e}").exists() for e in ("", ".gz", ".xz", ".bz2")) for c in (src, tgt))
    return Path(path).exists()


# ---- filtering and sampling ------------------------------------------------------------------------------
def _n_tokens(text: str, code: str) -> int:
    return len(text) // 3 + 1 if code in ("zh", "ja", "th", "my") else len(text.split())


def make_filter(filters, src: str, tgt: str, exclude: set[str], stats: dict) -> Callable[[Pair], bool]:
    """A predicate over pairs; counts what each rule drops into ``stats``."""
    max_ratio = float(filters.get("max_len_ratio") or 0)
    max_tokens = int(filters.get("max_tokens") or 0)
    dedup = bool(filters.get("dedup", True))
    seen: set[int] = set()

    def keep(pair: Pair) -> bool:
        s, t = pair[0].strip(), pair[1].strip()
        reason = None
        if not s or not t:
            reason = "empty"
        elif max_ratio and max(len(s), len(t)) / max(1, min(len(s), len(t))) > max_ratio:
            reason = "length_ratio"
        elif max_tokens and max(_n_tokens(s, src), _n_tokens(t, tgt)) > max_tokens:
            reason = "too_long"
        elif s in exclude or t in exclude:
            reason = "in_eval_sets"
        elif dedup:
            h = hash((s, t))
            if h in seen:
                reason = "duplicate"
            else:
                seen.add(h)
        if reason:
            stats[reason] = stats.get(reason, 0) + 1
            return False
        return True

    return keep


def reservoir_sample(pairs: Iterable[Pair], n: int, seed: int, keep: Callable[[Pair], bool] | None = None):
    """Uniform sample of ``n`` items in one pass; memory grows with n, not with the corpus (Algorithm R).

    Returns ``(sample, n_seen)``, the sample in corpus order.
    """
    rng = random.Random(seed)
    reservoir: list[tuple[int, Pair]] = []
    seen = 0
    for pair in pairs:
        if keep is not None and not keep(pair):
            continue
        if seen < n:
            reservoir.append((seen, pair))
        else:
            j = rng.randrange(seen + 1)
            if j < n:
                reservoir[j] = (seen, pair)
        seen += 1
    reservoir.sort(key=lambda x: x[0])
    return [p for _, p in reservoir], seen


def direction_seed(seed: int, src: str, tgt: str) -> int:
    """A per-direction seed that is the same on every machine (no ``hash()``, which is salted per process)."""
    import zlib

    return (int(seed) * 1_000_003 + zlib.crc32(f"{src}-{tgt}".encode())) % (2**31)
