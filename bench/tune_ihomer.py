"""Parameter grid for the defaults of ``ihomer`` and ``mlhat`` on the anchored shared datasets.

Every configuration runs the exact prequential protocol (``test_then_train_many`` over the whole
stream, every instance predicted before it is learned) on each dataset with a published MLHAT
row, and is scored with the project's metrics (river's conventions). The means over the
datasets are what the defaults in ``ihomer/learners/hierarchy.py`` and
``ihomer/learners/mlhat/tree.py`` were chosen by; every configuration's numbers are in
``bench/results/tuning.json`` and the account of what was measured, and why, in ``bench/TUNING.md``.

A configuration is ``LEARNER`` or ``LEARNER:{python dict of constructor arguments}``::

    python bench/tune_ihomer.py --update 'ihomer' 'ihomer:{"cluster_delta": 0.9}' 'mlhat'
    python bench/tune_ihomer.py --out /tmp/t.json --datasets medical,enron 'ihomer:{"n_min": 50}'

Datasets are read once and reused by every configuration. Timing is not the point here
(``bench/run.py`` measures speed); the seconds printed are the sum of the learners' runs.
"""

from __future__ import annotations

import argparse
import ast
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
from paths import ANCHORS, DATASETS, ROOT, manifest, read_csv

from ihomer.evaluate.metrics import MultiLabelMetrics
from ihomer.learners.hierarchy import IHOMER
from ihomer.learners.mlhat import MLHAT
from ihomer.stream.sources import open_stream

LEARNERS = {"ihomer": IHOMER, "mlhat": MLHAT}
MEANS = ("example_f1", "micro_f1", "subset_accuracy")


def parse_config(text: str) -> tuple[str, dict[str, Any]]:
    name, _, rest = text.partition(":")
    if name not in LEARNERS:
        raise SystemExit(f"{text!r}: learner must be one of {sorted(LEARNERS)}")
    params = ast.literal_eval(rest) if rest else {}
    if not isinstance(params, dict):
        raise SystemExit(f"{text!r}: parameters must be a dict literal")
    return name, params


def anchored() -> list[tuple[str, str]]:
    """(name, label convention) of every shared dataset with a published MLHAT row, whose
    file is the variant the published run used or a documented stand-in (as bench/compare.py)."""
    rows = manifest()
    names = {r["dataset"] for r in read_csv(ANCHORS) if r.get("algorithm") == "MLHAT"}
    return [(r["name"], r["labels"]) for r in rows
            if r["mlhat_anchor"] and r["mlhat_anchor"].split(" (")[0] in names]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("configs", nargs="+")
    ap.add_argument("--datasets", help="comma-separated names (default: the anchored ones)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "tuning.json"))
    ap.add_argument("--update", action="store_true",
                    help="keep the configurations already in --out that this run does not redo")
    ap.add_argument("--replace", action="store_true",
                    help="write --out with only this run's configurations (without --update or "
                         "--replace an existing --out is refused, so that a grid is not lost)")
    args = ap.parse_args()
    configs = [(c, *parse_config(c)) for c in args.configs]
    if Path(args.out).exists() and not (args.update or args.replace):
        raise SystemExit(f"{args.out} exists: add --update to add to it, --replace to overwrite "
                         "it, or --out elsewhere")
    sets = anchored()
    if args.datasets:
        wanted = args.datasets.split(",")
        conv = {r["name"]: r["labels"] for r in manifest()}
        sets = [(n, conv[n]) for n in wanted]
    streams = {n: open_stream(DATASETS / f"{n}.arff.gz",
                              labels=None if lab.startswith("xml:") else lab)
               for n, lab in sets}
    out_path = Path(args.out)
    results: dict[str, Any] = {}
    if args.update and out_path.exists():
        results = json.loads(out_path.read_text())["configs"]
    for text, name, params in configs:
        per: dict[str, dict[str, float]] = {}
        seconds = 0.0
        for ds, stream in streams.items():
            model = LEARNERS[name](**params).bind(stream.schema)
            t0 = time.perf_counter()
            pred = model.test_then_train_many(stream.data)  # type: ignore[attr-defined]
            seconds += time.perf_counter() - t0
            metric = MultiLabelMetrics()
            data = stream.data  # type: ignore[attr-defined]
            metric.update(data.label_indptr, data.label_ids, pred.indptr, pred.label_ids,
                          stream.schema.n_labels)
            per[ds] = {k: v for k, v in metric.get().items() if k in MEANS}
        mean = {k: float(np.mean([p[k] for p in per.values()])) for k in MEANS}
        results[text] = {"learner": name, "params": params, "mean": mean,
                         "datasets": per, "seconds": seconds}
        print(f"{text:64s} " + "  ".join(f"{k} {mean[k]:.4f}" for k in MEANS)
              + f"  {seconds:5.1f}s", flush=True)
    out_path.write_text(json.dumps({"datasets": list(streams), "configs": results},
                                   indent=1) + "\n")


if __name__ == "__main__":
    main()
