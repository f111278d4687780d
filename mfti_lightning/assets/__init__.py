"""Data shipped with the package (FLORES-101 dev/devtest for the paper's 13 languages, language similarities, the
measured throughput): found next to this module in a checkout and in an installed wheel alike."""

from pathlib import Path

ASSETS_DIR = Path(__file__).resolve().parent
FLORES101_DIR = ASSETS_DIR / "flores101"
# measured throughput for mfti-plan's GPU-hour estimates, written by benchmarks/gpu_all.py on a GPU (absent until
# someone measures; then committed, and shipped in the wheel as package data)
THROUGHPUT_FILE = ASSETS_DIR / "throughput.json"
