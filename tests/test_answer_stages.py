"""bench/answer_stages.py: what it reads off a run must not change the run, and its scores are
the textbook ones."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import SHARED

from ihomer.evaluate.metrics import MultiLabelMetrics
from ihomer.learners.hierarchy import IHOMER
from ihomer.learners.mlhat import MLHAT
from ihomer.stream.sources import open_stream

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from answer_stages import label_scores  # noqa: E402


def test_label_scores_by_hand() -> None:
    probs = np.array([[0.9, 0.2], [0.5, 0.0]])  # row 1: label 0 true; row 2: label 1 true
    indptr, ids = np.array([0, 1, 2]), np.array([0, 1])
    log_loss, brier = label_scores(probs, indptr, ids)
    # 0.0 is clipped to the decoder's EPS = 0.02 before the logarithm
    row1 = -math.log(0.9) - math.log(0.8)
    row2 = -math.log(0.5) - math.log(0.02)
    assert log_loss == pytest.approx((row1 + row2) / 2, abs=1e-12)
    assert brier == pytest.approx(((0.01 + 0.04) + (0.25 + 1.0)) / 2, abs=1e-12)


def test_stages_leave_the_run_as_it_is(tmp_path: Path) -> None:
    if not SHARED.exists():
        pytest.skip(f"shared datasets not available at {SHARED}")
    out = tmp_path / "stages.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "answer_stages.py"), "--datasets", "emotions",
         "--out", str(out), "ihomer", "mlhat"],
        capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    got = json.loads(out.read_text())["configs"]
    stream = open_stream(SHARED / "emotions.arff.gz")
    data = stream.data  # type: ignore[attr-defined]
    for name, cls in (("ihomer", IHOMER), ("mlhat", MLHAT)):
        pred = cls().bind(stream.schema).test_then_train_many(data)
        metric = MultiLabelMetrics()
        metric.update(data.label_indptr, data.label_ids, pred.indptr, pred.label_ids,
                      stream.schema.n_labels)
        plain = metric.get()
        row = got[name]["datasets"]["emotions"]
        assert row["final_subset_accuracy"] == plain["subset_accuracy"]
        assert row["final_example_f1"] == plain["example_f1"]
        assert 0.0 < row["brier"] < row["log_loss"]
        for stage in ("threshold", "decoded"):
            assert 0.0 <= row[f"{stage}_subset_accuracy"] <= 1.0


def test_stages_refuse_a_run_without_a_decoder_over_all_labels(tmp_path: Path) -> None:
    if not SHARED.exists():
        pytest.skip(f"shared datasets not available at {SHARED}")
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "answer_stages.py"), "--datasets", "flags",
         "--out", str(tmp_path / "s.json"), 'ihomer:{"decode": "clusters"}'],
        capture_output=True, text=True, timeout=600)
    assert proc.returncode != 0
    assert "does not decode over all labels exactly once" in proc.stderr
