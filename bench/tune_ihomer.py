"""Parameter grid for the defaults of ``ihomer`` and ``mlhat`` on the anchored shared datasets.

Every configuration runs the exact prequential protocol (``test_then_train_many`` over the whole
stream, every instance predicted before it is learned) on each dataset with a published MLHAT
row, and is scored with the project's metrics (river's conventions). The means over the
datasets are what the defaults in ``ihomer/learners/hierarchy.py`` and
``ihomer/learners/mlhat/tree.py`` were chosen by; every configuration's numbers are in
``bench/results/tuning.json`` and the account of what was measured, and why, in ``bench/TUNING.md``.

A configuration is ``LEARNER``, ``LEARNER:{python dict of constructor arguments}`` (the form
``tuning.json`` is keyed by) or ``bench/run.py``'s ``LEARNER:KEY=VALUE:KEY=VALUE``::

    python bench/tune_ihomer.py --update 'ihomer' 'ihomer:{"cluster_delta": 0.9}' 'mlhat'
    python bench/tune_ihomer.py --out /tmp/t.json --datasets medical,enron 'ihomer:{"n_min": 50}'
    python bench/tune_ihomer.py --out /tmp/t.json --datasets yeast ihomer:mode=flat:n_min=50

Every learner is built with ``--seed`` (default: ``ihomer replay``'s) unless its configuration
sets ``seed``, so a configuration reproduces under ``ihomer replay``; the seed is recorded with
each configuration (those in ``tuning.json`` without one predate that and ran with the
learners' own default, 0). Datasets are read once and reused by every configuration.
Timing is not the point here (``bench/run.py`` measures speed); the seconds printed are the sum
of the learners' runs.
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
from run import select, split_spec

from ihomer.evaluate.metrics import MultiLabelMetrics
from ihomer.learners.base import MultiLabelLearner
from ihomer.learners.registry import DEFAULT_SEED, make, parse_params
from ihomer.stream.base import Stream
from ihomer.stream.sources import open_stream

LEARNERS = ("ihomer", "mlhat")
MEANS = ("example_f1", "micro_f1", "subset_accuracy")
SYNTAX = """configurations:
  LEARNER                        ihomer or mlhat with its defaults
  LEARNER:{DICT LITERAL}         e.g. 'ihomer:{"mode": "flat", "n_min": 50}' (tuning.json's keys)
  LEARNER:KEY=VALUE[:KEY=VALUE]  as bench/run.py, e.g. ihomer:mode=flat:n_min=50 or
                                 'ihomer:tree={"grace_period": 50}:mode=flat'
  (values are Python literals, else strings; a configuration's own seed overrides --seed)"""


def parse_config(text: str) -> tuple[str, dict[str, Any]]:
    """``(learner, constructor arguments)`` of one configuration, in either syntax, or a
    one-line exit naming what does not parse."""
    name, _, rest = text.partition(":")
    if name not in LEARNERS:
        raise SystemExit(f"{text!r}: learner must be one of {', '.join(LEARNERS)}")
    if rest.lstrip().startswith("{"):
        try:
            params = ast.literal_eval(rest)
        except (ValueError, SyntaxError):
            raise SystemExit(f"{text!r}: {rest!r} is not a Python dict literal") from None
        if not isinstance(params, dict):
            raise SystemExit(f"{text!r}: parameters must be a dict literal")
        return name, params
    try:
        return name, parse_params(split_spec(text)[1])
    except ValueError as e:
        raise SystemExit(f"{text!r}: {e}") from None


def build(text: str, name: str, params: dict[str, Any], seed: int) -> MultiLabelLearner:
    """The learner of one configuration; a bad key or value is a one-line exit naming it, so
    a grid fails before its first run rather than hours into it."""
    try:
        return make(name, params, seed=seed)
    except (TypeError, ValueError) as e:
        raise SystemExit(f"{text!r}: {e}") from None


def open_row(row: dict[str, str]) -> Stream:
    """The stream of a manifest row (``bench/run.py``'s ``select``), or a one-line exit saying
    why it cannot be read. Its labels: the manifest's convention, or for an ``xml:`` one or a
    file of one's own what the reader finds (a sibling ``NAME.xml``, else MEKA's ``-C``)."""
    lab = row["labels"]
    try:
        return open_stream(DATASETS / row["file"],
                           labels=None if not lab or lab.startswith("xml:") else lab)
    except (OSError, ValueError) as e:
        raise SystemExit(str(e)) from None


def anchored() -> list[dict[str, str]]:
    """Manifest rows of every shared dataset with a published MLHAT row, whose file is the
    variant the published run used or a documented stand-in (as bench/compare.py)."""
    rows = manifest()
    names = {r["dataset"] for r in read_csv(ANCHORS) if r.get("algorithm") == "MLHAT"}
    return [r for r in rows if r["mlhat_anchor"] and r["mlhat_anchor"].split(" (")[0] in names]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=SYNTAX,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("configs", nargs="+", metavar="CONFIG",
                    help="LEARNER, LEARNER:{DICT LITERAL} or LEARNER:KEY=VALUE[:KEY=VALUE...] "
                         "(see below)")
    ap.add_argument("--datasets",
                    help="comma-separated shared dataset names or files of one's own "
                         "(default, or 'anchored': the shared datasets with a published MLHAT "
                         "row)")
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED,
                    help="seed of every learner whose configuration sets none (default: "
                         f"{DEFAULT_SEED}, as ihomer replay and bench/run.py)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "tuning.json"),
                    help="JSON written (default: bench/results/tuning.json, the committed grid)")
    ap.add_argument("--update", action="store_true",
                    help="keep the configurations already in --out that this run does not redo")
    ap.add_argument("--replace", action="store_true",
                    help="write --out with only this run's configurations (without --update or "
                         "--replace an existing --out is refused, so that a grid is not lost)")
    args = ap.parse_args(argv)
    configs = [(c, *parse_config(c)) for c in args.configs]
    seeds = {text: params.get("seed", args.seed) for text, _, params in configs}
    for text, name, params in configs:
        build(text, name, params, seeds[text])
    if Path(args.out).exists() and not (args.update or args.replace):
        raise SystemExit(f"{args.out} exists: add --update to add to it, --replace to overwrite "
                         "it, or --out elsewhere")
    sets = anchored() if args.datasets in (None, "anchored") else select(args.datasets, None)
    streams = {r["name"]: open_row(r) for r in sets}
    out_path = Path(args.out)
    results: dict[str, Any] = {}
    if args.update and out_path.exists():
        results = json.loads(out_path.read_text())["configs"]
    for text, name, params in configs:
        per: dict[str, dict[str, float]] = {}
        seconds = 0.0
        for ds, stream in streams.items():
            model = build(text, name, params, seeds[text]).bind(stream.schema)
            t0 = time.perf_counter()
            pred = model.test_then_train_many(stream.data)  # type: ignore[attr-defined]
            seconds += time.perf_counter() - t0
            metric = MultiLabelMetrics()
            data = stream.data  # type: ignore[attr-defined]
            metric.update(data.label_indptr, data.label_ids, pred.indptr, pred.label_ids,
                          stream.schema.n_labels)
            per[ds] = {k: v for k, v in metric.get().items() if k in MEANS}
        mean = {k: float(np.mean([p[k] for p in per.values()])) for k in MEANS}
        results[text] = {"learner": name, "params": params, "seed": seeds[text], "mean": mean,
                         "datasets": per, "seconds": seconds}
        print(f"{text:64s} " + "  ".join(f"{k} {mean[k]:.4f}" for k in MEANS)
              + f"  {seconds:5.1f}s", flush=True)
    out_path.write_text(json.dumps({"datasets": list(streams), "configs": results},
                                   indent=1) + "\n")


if __name__ == "__main__":
    main()
