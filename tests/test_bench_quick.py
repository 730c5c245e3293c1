"""Smoke test of the benchmark harness: the quick profile, cut short, with a MOA peer.

Runs ``bench/run.py --profile quick`` exactly as a person would (one process per run, time
limit, report) on the first instances of each quick dataset with one of our baselines and one
MOA peer, and checks the report files exist and the numbers are sane. Needs the shared
datasets and the bench extra (capymoa + a JDK); skipped without them.
"""

from __future__ import annotations

import csv
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import SHARED

ROOT = Path(__file__).resolve().parents[1]
LEARNERS = ["river-br-nb", "moa-br-ht"]
LIMIT = 120


def test_quick_profile_smoke(tmp_path: Path) -> None:
    if not SHARED.exists():
        pytest.skip(f"shared datasets not available at {SHARED}")
    pytest.importorskip("jpype", reason="needs the bench extra (capymoa, jpype)")
    pytest.importorskip("capymoa", reason="needs the bench extra (capymoa)")
    out = tmp_path / "quick"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--profile", "quick",
         "--learners", ",".join(LEARNERS), "--limit", str(LIMIT), "--jobs", "2",
         "--timeout", "100", "--out", str(out), "--runs", str(tmp_path / "runs")],
        capture_output=True, text=True, timeout=170)
    assert proc.returncode == 0, proc.stdout + proc.stderr

    for name in ("results.csv", "results.json", "report.md", "throughput.png",
                 "quality_vs_speed.png"):
        assert (out / name).stat().st_size > 0, name
    data = json.loads((out / "results.json").read_text())
    rows = data["rows"]
    with (ROOT.parent / "shared" / "datasets" / "MANIFEST.csv").open() as f:
        size = {r["name"]: int(r["instances"]) for r in csv.DictReader(f)}
    datasets = {r["dataset"] for r in rows}
    assert len(rows) == len(LEARNERS) * len(datasets) and len(datasets) >= 3
    for r in rows:
        # a run cut short by --limit is a prefix, not the stream: partial, never "ok"
        assert r["status"] == ("partial" if size[r["dataset"]] > LIMIT else "ok"), r
        assert r["instances"] == min(LIMIT, size[r["dataset"]])
        assert r["instances_per_s"] > 0 and r["peak_rss_bytes"] > 2**20
        assert r["wall_s"] >= r["seconds"] > 0
        for k in ("subset_accuracy", "hamming_loss", "example_f1", "micro_precision",
                  "micro_recall", "micro_f1", "macro_f1"):
            assert 0.0 <= r[k] <= 1.0 and math.isfinite(r[k]), (r["learner"], k, r[k])
        assert (out / f"curve_{r['dataset']}.png").exists()
    flags = {r["learner"]: r for r in rows if r["dataset"] == "flags"}
    # flags: 7 labels, 3.4 per instance; anything that learns at all beats 0.3 micro-F1.
    assert all(r["micro_f1"] > 0.3 for r in flags.values()), flags
    params = json.loads(flags["moa-br-ht"]["params"])
    assert params["moa_class"].endswith("BasicMultiLabelClassifier")
    assert "trees.HoeffdingTree" in params["options"]
    with (out / "results.csv").open() as f:
        assert len(list(csv.DictReader(f))) == len(rows)

    text = (out / "report.md").read_text()
    assert "*published MLHAT*" in text and "other hardware" in text
    assert "moa-br-ht" in text and data["meta"]["machine"] in text
    for png in ("throughput.png", "quality_vs_speed.png", "curve_flags.png"):
        assert f"({png})" in text
