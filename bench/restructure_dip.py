"""Does iHOMER's accuracy dip when the label partition is restructured?

For every restructure event at instance ``t`` this compares the micro F1 of the ``window``
instances before ``t`` with the ``window`` instances from ``t`` on, all from one exact
prequential run (every instance predicted before it is learned). The issue's goal: the "after"
window is never more than 0.02 below the "before" window; the worst case is reported per dataset,
beside the change a single MLHAT (which never restructures) shows over the same two windows.

Example::

    python bench/restructure_dip.py enron yeast bibtex --window 500
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np

from ihomer.learners.hierarchy import IHOMER
from ihomer.learners.mlhat import MLHAT
from ihomer.learners.registry import parse_params
from ihomer.stream.sources import open_stream

ROOT = Path(__file__).resolve().parents[1]
DATASETS = ROOT.parent / "shared" / "datasets"


def per_instance_counts(truth_ptr: np.ndarray, truth: np.ndarray, pred_ptr: np.ndarray,
                        pred: np.ndarray) -> np.ndarray:
    """``(n, 3)`` true positives, false positives, false negatives of each instance."""
    n = len(truth_ptr) - 1
    out = np.zeros((n, 3), np.int64)
    for i in range(n):
        t = set(truth[truth_ptr[i]:truth_ptr[i + 1]].tolist())
        p = set(pred[pred_ptr[i]:pred_ptr[i + 1]].tolist())
        out[i] = (len(t & p), len(p - t), len(t - p))
    return out


def micro_f1(c: np.ndarray) -> float:
    tp, fp, fn = c.sum(axis=0)
    return float(2 * tp / (2 * tp + fp + fn)) if tp else 0.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("datasets", nargs="+")
    ap.add_argument("--window", type=int, default=500)
    ap.add_argument("--param", action="append", default=[], help="IHOMER KEY=VALUE")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "restructure_dip.json"))
    args = ap.parse_args()
    w = args.window
    with (DATASETS / "MANIFEST.csv").open() as f:
        labels = {r["name"]: r["labels"] for r in csv.DictReader(f)}
    results = {}
    for name in args.datasets:
        spec = labels.get(name, "")
        stream = open_stream(DATASETS / f"{name}.arff.gz",
                             labels=None if spec.startswith("xml:") else spec)
        model = IHOMER(**parse_params(args.param)).bind(stream.schema)
        pred = model.test_then_train_many(stream.data)  # type: ignore[attr-defined]
        counts = per_instance_counts(stream.data.label_indptr, stream.data.label_ids,  # type: ignore[attr-defined]
                                     pred.indptr, pred.label_ids)
        points = sorted({e["instance"] + 1 for e in model.events if e["kind"] == "restructure"})
        # The same windows under one MLHAT over all labels (which never restructures): how much
        # of a drop is the stream itself rather than the restructure.
        ref_model = MLHAT().bind(stream.schema)
        ref_pred = ref_model.test_then_train_many(stream.data)  # type: ignore[attr-defined]
        ref = per_instance_counts(stream.data.label_indptr, stream.data.label_ids,  # type: ignore[attr-defined]
                                  ref_pred.indptr, ref_pred.label_ids)
        dips = []
        for t in points:
            if t - w < 0 or t + w > len(counts):
                continue
            before, after = micro_f1(counts[t - w:t]), micro_f1(counts[t:t + w])
            ref_drop = micro_f1(ref[t - w:t]) - micro_f1(ref[t:t + w])
            dips.append({"instance": t, "before": before, "after": after,
                         "drop": before - after, "mlhat_drop": ref_drop,
                         "excess": (before - after) - ref_drop})
        worst = max(dips, key=lambda d: d["drop"]) if dips else None
        results[name] = {"restructures": len(points), "measured": len(dips), "worst": worst,
                         "over_0.02": sum(1 for d in dips if d["drop"] > 0.02),
                         "excess_over_0.02": sum(1 for d in dips if d["excess"] > 0.02)}
        print(f"{name:15s} restructures {len(points):4d} measured {len(dips):4d}  worst drop "
              + (f"{worst['drop']:+.4f} at {worst['instance']} (mlhat there "
                 f"{worst['mlhat_drop']:+.4f})" if worst else "-")
              + f"  drops > 0.02: {results[name]['over_0.02']}, beyond mlhat's: "
              + f"{results[name]['excess_over_0.02']}", flush=True)
    Path(args.out).write_text(json.dumps({"window": w, "datasets": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
