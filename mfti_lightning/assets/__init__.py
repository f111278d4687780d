"""Data shipped with the package (FLORES-101 dev/devtest for the paper's 13 languages)."""

from pathlib import Path

ASSETS_DIR = Path(__file__).resolve().parent
FLORES101_DIR = ASSETS_DIR / "flores101"
