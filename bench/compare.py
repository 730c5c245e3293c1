"""Compare benchmark results with the published MLHAT numbers, dataset by dataset.

Reads the ``results.csv`` that ``bench/run.py`` writes and, for one learner, puts each anchored
dataset beside the published full-stream prequential result of a published algorithm (MLHAT by
default; their hardware, river implementations): the deltas of every metric, the speed-up over
the published run time, the means over the datasets both have, the datasets where ours wins on
subset accuracy and micro F1, and every dataset where ours is worse by more than ``--tolerance``
in example or micro F1 (the issues ask for an explanation of each). Dataset variants that differ
from the published ones (see MANIFEST notes) are flagged. Only complete full-stream runs (status
``ok`` over every instance of the stream) are compared; the runs left out are counted and named,
with why: a partial run's numbers cover a prefix of the stream, which the published full-stream
numbers say nothing about.

Example::

    python bench/run.py --learners mlhat,ihomer --datasets anchored --out bench/results/anchored
    python bench/compare.py bench/results/anchored/results.csv --learner ihomer
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path
from statistics import mean
from typing import Any

from paths import ANCHORS, ROOT, manifest, read_csv

METRICS = {"subset_accuracy": "subset_acc", "hamming_loss": "hamming",
           "example_f1": "example_f1", "micro_f1": "micro_f1", "macro_f1": "macro_f1"}

#: The published run times are whole seconds, rounded or cut off (the source does not say):
#: a recorded ``t`` is a time from ``t - 0.5`` to ``t + 1`` s, and a ``0`` says only "under
#: a second". A speed-up over such a time is the range it allows, and none over a 0.
RESOLUTION_S = 1.0


def speedup_range(published_s: float, seconds: float) -> tuple[float, float] | None:
    """The (lowest, highest) speed-up over a published time of ``published_s`` whole seconds
    that our ``seconds`` allow, or ``None`` when the published time is below its resolution."""
    if published_s < RESOLUTION_S:
        return None
    ours = max(seconds, 1e-9)
    return (published_s - RESOLUTION_S / 2) / ours, (published_s + RESOLUTION_S) / ours


def speedup_text(published_s: float, seconds: float) -> str:
    """``"105x"`` where the resolution of the published time moves the speed-up by less than
    a tenth, else the range it allows (``"3-13x"``); ``"n/a"`` when it is not computed."""
    span = speedup_range(published_s, seconds)
    if span is None:
        return "n/a"
    low, high = span
    if high < 1.1 * low:
        return f"{published_s / max(seconds, 1e-9):.0f}x"
    return f"{low:.0f}-{high:.0f}x"


def load(results: Path, learner: str,
         published: str) -> tuple[list[dict[str, Any]], dict[str, list[str]]]:
    """The rows of ``learner`` in ``results`` beside their published numbers, and the datasets
    left out, by reason (``partial``, ``failed``, ``unpublished``)."""
    if not results.exists():
        raise SystemExit(f"{results}: not found (bench/run.py writes results.csv in its report "
                         "folder)")
    with results.open() as f:
        every = list(csv.DictReader(f))
    present = sorted({r["learner"] for r in every})
    if learner not in present:
        raise SystemExit(f"{results}: no runs of learner {learner!r}; learners there: "
                         + (", ".join(present) or "none"))
    datasets = {r["name"]: r for r in manifest()}
    anchors = {(r["dataset"], r["algorithm"]): r for r in read_csv(ANCHORS)}
    left_out: dict[str, list[str]] = {"partial": [], "failed": [], "unpublished": []}
    rows = []
    for r in every:
        if r["learner"] != learner:
            continue
        m = datasets.get(r["dataset"])
        if r["status"] == "partial" or (r["status"] == "ok" and _prefix(r, m)):
            left_out["partial"].append(r["dataset"])
            continue
        if r["status"] != "ok":
            left_out["failed"].append(f"{r['dataset']} ({r['status']})")
            continue
        # "Eukaryote (different features)" -> published name "Eukaryote", flagged as a variant.
        anchor = m["mlhat_anchor"].split(" (")[0] if m else ""
        a = anchors.get((anchor, published)) if anchor else None
        if m is None or a is None:
            left_out["unpublished"].append(r["dataset"])
            continue
        row: dict[str, Any] = {"dataset": r["dataset"], "seconds": float(r["seconds"]),
                               "warm_up_s": _warm_up(r),
                               "published_s": float(a["time_s"]),
                               "variant": "different" in m["mlhat_anchor"]}
        for ours_key, pub_key in METRICS.items():
            row[ours_key] = float(r[ours_key])
            row[f"pub_{ours_key}"] = float(a[pub_key])
        rows.append(row)
    return rows, {k: v for k, v in left_out.items() if v}


def _prefix(r: dict[str, str], m: dict[str, str] | None) -> bool:
    """Whether a run marked ``ok`` saw only a prefix of its stream: recorded incomplete, or
    fewer instances than the manifest's (a ``--limit`` run written before ``ihomer replay``
    marked those incomplete)."""
    if r.get("complete") == "False":
        return True
    return bool(m and r.get("instances") and m.get("instances")
                and float(r["instances"]) < float(m["instances"]))


def left_out_lines(left_out: dict[str, list[str]], published: str) -> list[str]:
    """One sentence per reason a run was not compared, naming the datasets."""
    lines = []
    for kind, names in left_out.items():
        runs = "run" if len(names) == 1 else "runs"
        why = {"partial": f"partial {runs} left out: numbers over a prefix of the stream are "
                          "not comparable with full-stream results",
               "failed": f"failed {runs} left out",
               "unpublished": f"{runs} left out: no published {published} result for the "
                              "dataset"}[kind]
        lines.append(f"{len(names)} {why} ({', '.join(names)}).")
    return lines


def _warm_up(r: dict[str, str]) -> float | None:
    """Seconds the run spent loading its kernels before the clock (``warm_up_seconds``), from
    the row or, for results written before the column existed, from the run's summary."""
    if r.get("warm_up_seconds"):
        return float(r["warm_up_seconds"])
    summary = ROOT / r.get("run_dir", "") / "summary.json"
    if r.get("run_dir") and summary.exists():
        value = json.loads(summary.read_text()).get("warm_up_seconds")
        return None if value is None else float(value)
    return None


def report(rows: list[dict[str, Any]], learner: str, published: str, tolerance: float,
           left_out: dict[str, list[str]] | None = None) -> tuple[str, dict[str, Any]]:
    lines = [f"## {learner} vs published {published} (published: their hardware)", "",
             "| dataset | " + " | ".join(f"{k} (pub)" for k in METRICS)
             + " | s | warm-up s | pub s | speed-up |", "|" + "---|" * (len(METRICS) + 5)]
    spans = {r["dataset"]: speedup_range(r["published_s"], r["seconds"]) for r in rows}
    for r in rows:
        cells = [r["dataset"] + (" *" if r["variant"] else "")]
        cells += [f"{r[k]:.4f} ({r[f'pub_{k}']:.4f})" for k in METRICS]
        warm = "" if r["warm_up_s"] is None else f"{r['warm_up_s']:.2f}"
        pub = (f"{r['published_s']:.0f}" if r["published_s"] >= RESOLUTION_S
               else f"<{RESOLUTION_S:g}")
        cells += [f"{r['seconds']:.3f}", warm, pub, speedup_text(r["published_s"], r["seconds"])]
        lines.append("| " + " | ".join(cells) + " |")
    agg: dict[str, Any] = {"learner": learner, "datasets": len(rows)}
    if rows:
        for k in METRICS:
            agg[f"mean_{k}"] = mean(r[k] for r in rows)
            agg[f"pub_mean_{k}"] = mean(r[f"pub_{k}"] for r in rows)
        agg["wins_subset_and_micro"] = [r["dataset"] for r in rows
                                        if r["subset_accuracy"] > r["pub_subset_accuracy"]
                                        and r["micro_f1"] > r["pub_micro_f1"]]
        agg["worse_by_tolerance"] = {
            r["dataset"]: {k: round(r[k] - r[f"pub_{k}"], 4) for k in ("example_f1", "micro_f1")}
            for r in rows if min(r["example_f1"] - r["pub_example_f1"],
                                 r["micro_f1"] - r["pub_micro_f1"]) < -tolerance}
        # the least speed-up the published times allow, over the datasets where one is
        # computed: a time recorded as 0 s (under a second) bounds nothing
        timed = {d: span for d, span in spans.items() if span is not None}
        slowest = min(timed, key=lambda d: timed[d][0]) if timed else None
        agg["min_speedup"] = None if slowest is None else timed[slowest][0]
        agg["min_speedup_dataset"] = slowest
        agg["speedup_not_computed"] = [d for d, span in spans.items() if span is None]
        if slowest is None:
            least = "not computed on any dataset."
        else:
            r = next(r for r in rows if r["dataset"] == slowest)
            least = (f"at least {timed[slowest][0]:.0f}x ({slowest}: "
                     f"{speedup_text(r['published_s'], r['seconds'])}).")
        if agg["speedup_not_computed"]:
            least += (f" Not computed where the published time is recorded as 0 s, under "
                      f"its resolution of {RESOLUTION_S:g} s: "
                      f"{', '.join(agg['speedup_not_computed'])}.")
        lines += ["", "| mean over datasets | " + " | ".join(METRICS) + " |",
                  "|---|" + "---|" * len(METRICS),
                  "| ours | " + " | ".join(f"{agg[f'mean_{k}']:.4f}" for k in METRICS) + " |",
                  f"| published {published} | "
                  + " | ".join(f"{agg[f'pub_mean_{k}']:.4f}" for k in METRICS) + " |", "",
                  f"Wins on both subset accuracy and micro F1: {len(agg['wins_subset_and_micro'])}"
                  f" of {len(rows)} ({', '.join(agg['wins_subset_and_micro'])}).",
                  f"Worse than published by more than {tolerance} in example or micro F1: "
                  + (", ".join(f"{d} {v}" for d, v in agg["worse_by_tolerance"].items())
                     or "none") + ".",
                  f"Smallest speed-up over the published run time: {least}",
                  "`*`: our file is a different variant of the dataset than the published run "
                  "used (see MANIFEST notes). s: the prequential run (learn + predict + "
                  "metrics); warm-up s: loading the jitted kernels before it (numba's cache), "
                  "a start-up cost like an import, not included in s or in the speed-up. "
                  "pub s: whole seconds, rounded or cut off, so a speed-up is the range a "
                  f"published t allows (t - {RESOLUTION_S / 2:g} to t + {RESOLUTION_S:g} s), "
                  "shown as one number where that range is within a tenth."]
    if left_out:
        agg["left_out"] = left_out
        lines += ["", *left_out_lines(left_out, published)]
    return "\n".join(lines) + "\n", agg


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("results", type=Path, help="results.csv written by bench/run.py")
    ap.add_argument("--learner", required=True,
                    help="learner spec as in the results (e.g. ihomer, ihomer:mode=flat)")
    ap.add_argument("--published", default="MLHAT",
                    help="published algorithm to compare with (default: MLHAT)")
    ap.add_argument("--tolerance", type=float, default=0.05,
                    help="example or micro F1 below published by more than this is listed "
                         "(default: 0.05)")
    ap.add_argument("--out", type=Path, default=None, help="write the Markdown here")
    args = ap.parse_args(argv)
    rows, left_out = load(args.results, args.learner, args.published)
    text, agg = report(rows, args.learner, args.published, args.tolerance, left_out)
    print(text)
    print(json.dumps(agg, indent=2))
    if args.out:
        args.out.write_text(text + "\n```json\n" + json.dumps(agg, indent=2) + "\n```\n")
    if not rows:
        print(f"nothing to compare: no complete run of {args.learner!r} on a dataset with a "
              f"published {args.published} result", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
