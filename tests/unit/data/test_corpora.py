"""Corpus readers on small real files (tests/data), plain and compressed, and their errors."""

from __future__ import annotations

import bz2
import gzip
import lzma
import shutil
from pathlib import Path

import pytest

from mfti_lightning.core.errors import DataError
from mfti_lightning.data import corpora

DATA = Path(__file__).resolve().parents[2] / "data"  # tests/data


def _lines(path):
    return Path(path).read_text(encoding="utf-8").splitlines()


def _compress(src: Path, dst_dir: Path, ext: str) -> Path:
    opener = {".gz": gzip.open, ".xz": lzma.open, ".bz2": bz2.open}[ext]
    dst = dst_dir / (src.name + ext)
    with open(src, "rb") as f, opener(dst, "wb") as g:
        shutil.copyfileobj(f, g)
    return dst


@pytest.mark.parametrize("ext", ["", ".gz", ".xz", ".bz2"])
def test_moses_pair_files_both_orientations(ext, tmp_path):
    prefix = DATA / "tatoeba" / "tatoeba.en-sw"
    if ext:
        for lang in ("en", "sw"):
            _compress(Path(f"{prefix}.{lang}"), tmp_path, ext)
        prefix = tmp_path / "tatoeba.en-sw"
    sw, en = _lines(DATA / "tatoeba/tatoeba.en-sw.sw"), _lines(DATA / "tatoeba/tatoeba.en-sw.en")
    assert list(corpora.iter_moses(prefix, "sw", "en")) == list(zip(sw, en))
    assert list(corpora.iter_moses(prefix, "en", "sw")) == list(zip(en, sw))
    assert len(sw) == 387


@pytest.mark.parametrize("ext", ["", ".gz", ".xz"])
def test_wikimatrix_threshold_and_orientation(ext, tmp_path):
    path = DATA / "wikimatrix" / "WikiMatrix.ca-en.tsv"
    rows = [line.split("\t") for line in _lines(path)]
    if ext:
        path = _compress(path, tmp_path, ext)
    all_pairs = list(corpora.iter_wikimatrix(path, "ca", "en"))
    assert all_pairs == [(r[1], r[2]) for r in rows] and len(all_pairs) == 200
    kept = list(corpora.iter_wikimatrix(path, "en", "ca", min_score=1.1))
    assert kept == [(r[2], r[1]) for r in rows if float(r[0]) >= 1.1]
    assert 0 < len(kept) < 200


def test_corpus_spec_with_pair_placeholder(tmp_path):
    spec = {"format": "wikimatrix", "path": str(DATA / "wikimatrix" / "WikiMatrix.{pair}.tsv"), "min_score": 1.0}
    assert corpora.corpus_available(spec, "en", "ca") and not corpora.corpus_available(spec, "en", "de")
    assert len(list(corpora.iter_corpus(spec, "en", "ca"))) == 200
    moses = {"format": "moses", "path": str(DATA / "newstest" / "newstest2014.{pair}")}
    pairs = list(corpora.iter_corpus(moses, "en", "de"))
    assert pairs[0] == (
        _lines(DATA / "newstest/newstest2014.de-en.en")[0],
        _lines(DATA / "newstest/newstest2014.de-en.de")[0],
    )


def test_flores101_shipped_and_flores200_layout():
    pairs = corpora.read_flores_pairs(None, "dev", "de", "en")
    assert len(pairs) == 997
    f200 = corpora.read_flores_pairs(DATA / "flores200", "dev", "de", "en", layout="flores200")
    assert f200 == pairs[:20]
    assert (
        corpora.read_flores(DATA / "flores200", "devtest", "fr", "flores200")
        == corpora.read_flores(None, "devtest", "fr")[:20]
    )
    with pytest.raises(DataError, match="flores_root"):
        corpora.read_flores(DATA / "flores200", "dev", "zh", "flores200")  # not in the slice
    with pytest.raises(DataError, match="not part of flores101"):
        corpora.read_flores(None, "dev", "eu")


def test_hf_offline_names_the_fix(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    spec = {"format": "hf", "name": "gsarti/flores_101", "split": "dev"}
    assert corpora.corpus_available(spec, "de", "en")
    with pytest.raises(DataError) as e:
        list(corpora.iter_corpus(spec, "de", "en"))
    msg = str(e.value)
    assert "HF_HUB_OFFLINE" in msg and "format: flores" in msg and "gsarti/flores_101" in msg


def test_hf_without_datasets_package_names_the_extra(monkeypatch):
    import builtins

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    real_import = builtins.__import__

    def no_datasets(name, *a, **k):
        if name == "datasets":
            raise ImportError("No module named 'datasets'")
        return real_import(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_datasets)
    with pytest.raises(DataError, match=r"mfti-lightning\[datasets\]"):
        corpora.read_hf_flores("openlanguagedata/flores_plus", "dev", "de")


# ---- bad input ----------------------------------------------------------------------------------------
def test_misaligned_pair_files_name_both_files(tmp_path):
    src = _lines(DATA / "tatoeba/tatoeba.en-sw.sw")
    (tmp_path / "c.sw").write_text("\n".join(src) + "\n", encoding="utf-8")
    (tmp_path / "c.en").write_text("\n".join(_lines(DATA / "tatoeba/tatoeba.en-sw.en")[:380]) + "\n", encoding="utf-8")
    with pytest.raises(DataError) as e:
        list(corpora.iter_moses(tmp_path / "c", "sw", "en"))
    msg = str(e.value)
    assert "misaligned" in msg and "c.en ends after line 380" in msg and "c.sw" in msg and "387" in msg


@pytest.mark.parametrize("longer", ["de", "en"])
@pytest.mark.parametrize("last_newline", [True, False])
def test_misaligned_either_file_longer(tmp_path, longer, last_newline):
    """3 lines against 2, whichever file is longer (zip() used to drop the extra line of the first file)."""
    end = "\n" if last_newline else ""
    three, two = "eins\nzwei\ndrei" + end, "one\ntwo" + end
    (tmp_path / "c.de").write_text(three if longer == "de" else two, encoding="utf-8")
    (tmp_path / "c.en").write_text(three if longer == "en" else two, encoding="utf-8")
    shorter = "en" if longer == "de" else "de"
    for src, tgt in (("de", "en"), ("en", "de")):
        with pytest.raises(DataError) as e:
            list(corpora.iter_moses(tmp_path / "c", src, tgt))
        msg = str(e.value)
        assert f"c.{shorter} ends after line 2 (2 lines)" in msg and f"c.{longer} has 3 lines" in msg, msg


def test_aligned_files_without_final_newline(tmp_path):
    (tmp_path / "c.de").write_text("eins\nzwei", encoding="utf-8")
    (tmp_path / "c.en").write_text("one\ntwo\n", encoding="utf-8")
    assert list(corpora.iter_moses(tmp_path / "c", "de", "en")) == [("eins", "one"), ("zwei", "two")]


def test_wikimatrix_row_with_extra_columns(tmp_path):
    p = tmp_path / "w.tsv"
    p.write_text("1.1\ta\tb\n1.2\ta\tb\textra\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"w.tsv:2: expected score<TAB>src<TAB>tgt, got 4 field"):
        list(corpora.iter_wikimatrix(p, "de", "en"))


@pytest.mark.parametrize("ext", ["", ".gz"])
def test_undecodable_bytes_name_file_and_line(ext, tmp_path):
    lines = [line.encode() for line in _lines(DATA / "tatoeba/tatoeba.en-sw.en")[:10]]
    lines[6] = "Café au lait".encode("latin-1")
    raw = b"\n".join(lines) + b"\n"
    path = tmp_path / f"bad.en{ext}"
    path.write_bytes(gzip.compress(raw) if ext else raw)
    with pytest.raises(DataError, match=rf"bad.en{ext}:7: undecodable bytes .*UTF-8"):
        list(corpora.iter_lines(path))


def test_wikimatrix_bad_lines(tmp_path):
    p = tmp_path / "w.tsv"
    p.write_text("1.1\ta\tb\n1.2\tonly two\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"w.tsv:2: expected score"):
        list(corpora.iter_wikimatrix(p, "de", "en"))
    p.write_text("high\ta\tb\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"w.tsv:1: score 'high'"):
        list(corpora.iter_wikimatrix(p, "de", "en"))


def test_missing_file_and_unknown_format(tmp_path):
    with pytest.raises(DataError, match="not found"):
        list(corpora.iter_moses(tmp_path / "nothing", "de", "en"))
    from mfti_lightning.core.errors import ConfigError

    with pytest.raises(ConfigError, match="known formats"):
        list(corpora.iter_corpus({"format": "csv"}, "de", "en"))
    with pytest.raises(ConfigError, match="path is required"):
        list(corpora.iter_corpus({"format": "moses", "path": None}, "de", "en"))
