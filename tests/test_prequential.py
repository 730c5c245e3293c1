"""The prequential evaluator: protocol order, metrics against river, curves and outputs."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from conftest import random_stream
from river import metrics as rm
from river import multioutput, tree

from ihomer.evaluate.prequential import METRIC_KEYS, prequential
from ihomer.learners.baselines import BinaryRelevance, MajorityLabelset, NoOp


class PreviousLabelset:
    """A river-style model that predicts the labelset it learned last.

    Under exact test-then-train, instance i is predicted as instance i-1's labels, which makes
    the protocol order observable in the metrics.
    """

    def __init__(self) -> None:
        self.last: dict[str, bool] = {}

    def learn_one(self, x, y) -> None:
        self.last = dict(y)

    def predict_one(self, x) -> dict[str, bool]:
        return dict(self.last)


def river_reference(stream, predictions) -> dict[str, float]:
    """The metrics river computes for the same (truth, prediction) pairs."""
    ms = {
        "subset_accuracy": rm.multioutput.ExactMatch(),
        "example_f1": rm.multioutput.SampleAverage(rm.F1()),
        "micro_f1": rm.multioutput.MicroAverage(rm.F1()),
        "macro_f1": rm.multioutput.MacroAverage(rm.F1()),
        "micro_precision": rm.multioutput.MicroAverage(rm.Precision()),
        "macro_recall": rm.multioutput.MacroAverage(rm.Recall()),
    }
    names = stream.schema.label_names
    for inst, pred in zip(stream, predictions, strict=True):
        on = set(inst.labels.tolist())
        y = {n: (k in on) for k, n in enumerate(names)}
        p = {n: (k in pred) for k, n in enumerate(names)}
        for m in ms.values():
            m.update(y, p)
    return {k: m.get() for k, m in ms.items()}


@pytest.mark.parametrize("batch_size", [1, 7, 256])
def test_exact_protocol_matches_river_metrics(batch_size: int) -> None:
    stream = random_stream(n=211, seed=3)
    res = prequential(stream, PreviousLabelset(), batch_size=batch_size)
    truths = [set(r.labels.tolist()) for r in stream]
    preds = [set(), *truths[:-1]]
    ref = river_reference(stream, preds)
    for k, v in ref.items():
        assert res.summary[k] == pytest.approx(v, abs=1e-12), k
    assert res.summary["instances"] == 211


def test_batched_protocol_differs_and_is_recorded() -> None:
    stream = random_stream(n=200, seed=4)
    exact = prequential(stream, PreviousLabelset(), batch_size=50)
    batched = prequential(stream, PreviousLabelset(), batch_size=50, batched=True)
    assert batched.summary["protocol"] == "batched"
    assert exact.summary["protocol"] == "prequential"
    # Within a batch the batched protocol has not learned the earlier rows yet: every row of
    # a batch is predicted as the previous batch's last labelset.
    truths = [set(r.labels.tolist()) for r in stream]
    preds = [set() if i < 50 else truths[(i // 50) * 50 - 1] for i in range(200)]
    ref = river_reference(stream, preds)
    assert batched.summary["subset_accuracy"] == pytest.approx(ref["subset_accuracy"])
    assert exact.summary["subset_accuracy"] != batched.summary["subset_accuracy"]


def test_binary_relevance_equals_river_per_output_classifier() -> None:
    stream = random_stream(n=300, seed=5, sparse=False)
    ours = prequential(stream, BinaryRelevance(tree.HoeffdingTreeClassifier(grace_period=50)))
    theirs = prequential(stream, multioutput.PerOutputClassifier(
        tree.HoeffdingTreeClassifier(grace_period=50)))
    for k in METRIC_KEYS:
        assert ours.summary[k] == pytest.approx(theirs.summary[k], abs=1e-12), k


def test_curve_lands_on_exact_instance_counts() -> None:
    stream = random_stream(n=1000, seed=6)
    res = prequential(stream, NoOp(), batch_size=333, curve_points=10, window=100)
    assert [row["instance"] for row in res.curve] == list(range(100, 1001, 100))
    last = res.curve[-1]
    for k in METRIC_KEYS:
        assert last[k] == pytest.approx(res.summary[k])
    # NoOp predicts nothing: nothing predicted means no true positive anywhere.
    assert res.summary["micro_f1"] == 0.0


def test_outputs_are_written(tmp_path: Path) -> None:
    stream = random_stream(n=120, seed=7)
    res = prequential(stream, MajorityLabelset(), learner_name="majority", curve_points=4)
    paths = res.write(tmp_path, plot=True)
    names = sorted(p.name for p in paths)
    assert names == ["curve.csv", "curve.png", "events.csv", "summary.json"]
    summary = json.loads((tmp_path / "summary.json").read_text())
    for key in ("learner", "source", "instances", "seconds", "instances_per_s", "peak_rss_bytes",
                *METRIC_KEYS):
        assert key in summary
    assert summary["learner"] == "majority"
    with (tmp_path / "curve.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert int(rows[-1]["instance"]) == 120
    assert "rolling_micro_f1" in rows[0]
    assert (tmp_path / "curve.png").read_bytes()[:4] == b"\x89PNG"


def test_each_event_kind_is_drawn_in_its_own_colour_and_style_with_a_legend_entry(
        tmp_path: Path, monkeypatch) -> None:
    """Drift (tab:brown) and restructure (tab:red) lines could not be told apart on curve.png."""
    import matplotlib.pyplot as plt

    from ihomer.evaluate.report import write_plot

    res = prequential(random_stream(n=120, seed=7), MajorityLabelset(), curve_points=4)
    kinds = ["restructure", "drift", "handover", "alternate_swap", "something_new"]
    res.events = [{"instance": 10 * (i + 1), "kind": k} for i, k in enumerate(kinds)]
    figures = []
    monkeypatch.setattr(plt, "close", figures.append)  # keep the figure to look at
    write_plot(res, tmp_path / "curve.png")
    ax = figures[0].axes[0]
    lines = {line.get_label(): line for line in ax.get_lines()}
    styles = [(lines[k].get_color(), str(lines[k].get_linestyle())) for k in kinds]
    assert len({c for c, _ in styles}) == len(kinds)  # colours alone tell them apart
    drift, restructure = lines["drift"], lines["restructure"]
    assert drift.get_linestyle() != restructure.get_linestyle()
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert set(kinds) <= set(legend)
