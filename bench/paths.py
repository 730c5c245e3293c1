"""Where the bench scripts find things: the repository, and the shared benchmark streams and
published results. These live outside the repository (they are not shipped): by default in
the ``shared`` folder beside it, or wherever ``IHOMER_SHARED`` points (a folder holding
``datasets/`` with its ``MANIFEST.csv``, and ``anchors/``)."""

from __future__ import annotations

import csv
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("IHOMER_SHARED") or ROOT.parent / "shared")
DATASETS = SHARED / "datasets"
ANCHORS = SHARED / "anchors" / "published_prequential.csv"


def read_csv(path: Path) -> list[dict[str, str]]:
    """The rows of one of the shared CSV files, or a one-line exit saying where it was looked
    for and how to point the scripts elsewhere."""
    if not path.exists():
        raise SystemExit(f"{path}: not found (the shared datasets and published results are "
                         f"looked for in {SHARED}; set IHOMER_SHARED to the folder that holds "
                         "datasets/ and anchors/)")
    with path.open() as f:
        return list(csv.DictReader(f))


def manifest() -> list[dict[str, str]]:
    """The rows of the shared datasets' ``MANIFEST.csv``."""
    return read_csv(DATASETS / "MANIFEST.csv")
