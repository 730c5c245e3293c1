"""The benchmark report: Markdown tables beside the published numbers, and PNG plots.

Kept apart from ``run.py`` so a report can be rebuilt from a ``results.json`` (and the runs'
``curve.csv`` files) without running anything again::

    python bench/report.py bench/results/full

Plots (matplotlib, headless):

* ``curve_<dataset>.png``: rolling and cumulative micro-F1 over the stream, one line per learner,
  read from each run's ``curve.csv`` (so a dip after a drift or a restructure is visible);
* ``throughput.png``: instances per second, one bar per (dataset, learner), log scale;
* ``quality_vs_speed.png``: micro-F1 against instances per second, one point per run.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from paths import ANCHORS, ROOT

SHOWN = ("subset_accuracy", "hamming_loss", "example_f1", "micro_f1", "macro_f1")
ANCHOR_COLUMNS = {"subset_accuracy": "subset_acc", "hamming_loss": "hamming",
                  "example_f1": "example_f1", "micro_f1": "micro_f1", "macro_f1": "macro_f1"}
QUALITY, QUALITY_LABEL = "micro_f1", "micro-F1"


def read_anchors(path: Path) -> dict[str, list[dict[str, str]]]:
    """``{anchor dataset name: [published rows]}`` from ``published_prequential.csv``."""
    if not path.exists():
        return {}
    out: dict[str, list[dict[str, str]]] = {}
    with path.open() as f:
        for r in csv.DictReader(f):
            out.setdefault(r["dataset"], []).append(r)
    return out


def _table(header: list[str], body: Iterable[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
            *("| " + " | ".join(cells) + " |" for cells in body)]


def _short(status: str) -> str:
    """A failure's status cut to fit a table cell (the full text is in the failures table)."""
    head = status.split(";")[0]
    return head if len(head) <= 70 else head[:67] + "..."


SCORED = ("ok", "partial")  # partial: stopped by its time budget or --limit, scored on its prefix
MARK = "†"  # marks a partial run's numbers in the tables


def _ok(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The runs that have metrics: finished, or stopped by the time budget (partial)."""
    return [r for r in rows if r.get("status") in SCORED]


def _fmt(r: dict[str, Any], key: str, fmt: str) -> str:
    return format(r[key], fmt) + (MARK if r["status"] == "partial" else "")


def _wall(r: dict[str, Any]) -> str:
    """The whole process's seconds; blank for a run collected by ``--resume`` from an older
    harness, which kept none."""
    return "" if r.get("wall_s") is None else f"{r['wall_s']:.1f}"


def at_prefix(r: dict[str, Any], n: int) -> float | None:
    """Cumulative micro-F1 of run ``r`` after about ``n`` instances, from its kept curve
    (the last point at or before ``n``); ``None`` when the run has no point that early."""
    before = [f1 for i, f1 in r.get("curve") or [] if i <= n]
    return before[-1] if before else None


def ratios(rows: list[dict[str, Any]], datasets: list[str], ours: str,
           peers: list[str]) -> list[str]:
    """``ours / peer`` per dataset, in instances/s and in micro-F1. When the peer stopped at
    its budget, micro-F1 is compared on the prefix it reached (ours read off our curve there),
    so a partial peer is neither flattered nor penalised by the harder or easier tail."""
    cell = {(r["dataset"], r["learner"]): r for r in _ok(rows)}
    header = ["dataset"]
    for p in peers:
        header += [f"inst/s {ours}/{p}", f"micro-F1 {ours}/{p}"]
    body, speed, quality = [], {p: [] for p in peers}, {p: [] for p in peers}
    for ds in datasets:
        mine = cell.get((ds, ours))
        line = [ds]
        for p in peers:
            theirs = cell.get((ds, p))
            if mine is None or theirs is None:
                line += ["", ""]
                continue
            s = mine["instances_per_s"] / theirs["instances_per_s"]
            if theirs["status"] == "partial":
                ours_f1, mark = at_prefix(mine, theirs["instances"]), MARK
            else:
                ours_f1, mark = mine["micro_f1"], ""
            speed[p].append(s)
            line.append(f"{s:.1f}")
            if not ours_f1 or theirs["micro_f1"] <= 0:  # no ratio of or to zero
                mine_txt = "n/a" if ours_f1 is None else f"{ours_f1:.3f}"  # prefix before our
                line.append(f"{mine_txt} vs {theirs['micro_f1']:.3f}{mark}")  # first curve point
            else:
                q = ours_f1 / theirs["micro_f1"]
                quality[p].append(q)
                line.append(f"{q:.2f}{mark}")
        body.append(line)
    foot = ["**geometric mean**"]
    for p in peers:
        foot += [f"**{_gmean(speed[p]):.1f}**" if speed[p] else "",
                 f"**{_gmean(quality[p]):.2f}**" if quality[p] else ""]
    return _table(header, [*body, foot])


def _gmean(xs: list[float]) -> float:
    return math.exp(sum(math.log(x) for x in xs) / len(xs))


def _pivot(rows: list[dict[str, Any]], datasets: list[str], learners: list[str], key: str,
           fmt: str) -> list[str]:
    cell = {(r["dataset"], r["learner"]): r for r in rows}

    def show(ds: str, lrn: str) -> str:
        r = cell.get((ds, lrn))
        if r is None:
            return ""
        return _fmt(r, key, fmt) if r["status"] in SCORED else r["status"].split(":")[0]

    return _table(["dataset", *learners], ([ds, *(show(ds, lrn) for lrn in learners)]
                                           for ds in datasets))


def _limit_text(limit: int | None) -> str:
    if not limit:
        return ""
    return (f"Instances per run: at most {limit} (`--limit`); a run cut short by it is scored on "
            f"that prefix and marked {MARK} (status partial), and is no full-stream result. ")


def markdown(rows: list[dict[str, Any]], meta: dict[str, Any], anchors: dict[str, list[dict]],
             anchor_of: dict[str, str], published: set[str] | None, plots: dict[str, str]) -> str:
    """The whole report; ``published`` limits the published algorithms shown (None: all)."""
    datasets = list(dict.fromkeys(r["dataset"] for r in rows))
    learners = list(dict.fromkeys(r["learner"] for r in rows))
    commands = meta.get("commands") or [meta["command"]]
    budget = (f"Time budget per run: {meta['budget']:.0f} s of learning (as MOA's "
              f"EvaluatePrequential -t); a run that reaches it is scored on the prefix it saw "
              f"and marked {MARK} (status partial, instances N/M). "
              if meta.get("budget") else "")
    if len(commands) > 1:  # --update, --merge: the settings in meta are the last command's
        budget = ("Each command ran with its own settings (`--budget`, `--timeout`, `--jobs`, "
                  "else its profile's) and its own software version; the software above and "
                  f"the settings here are the last command's. {budget}")
    lines = [
        f"# Prequential benchmark: {meta.get('profile') or 'custom'} ({meta['date']})", "",
        f"* Machine: {meta['machine']}",
        f"* Software: {meta['software']}",
        *(f"* Command: `{c}`" for c in commands),
        f"* Protocol: prequential (test-then-train) from the first instance, every learner "
        f"driven by ihomer's evaluator and scored by the same metric code (river's "
        f"definitions); MOA peers run in the JVM through capymoa's bridge. "
        f"{_limit_text(meta.get('limit'))}"
        f"{budget}Process time limit per run: {meta['timeout']:.0f} s; {meta['jobs']} run(s) at a "
        f"time.",
        "* inst/s and s are the evaluator's own timing (reading excluded); wall s is the whole "
        "process (start-up, JVM, reading); peak MiB is the process's peak RSS (JVM included).",
        "* **Published** rows are the MLHAT authors' full-stream runs (river implementations) "
        "on **their hardware**: compare their quality, not their time.", "",
        f"## {QUALITY_LABEL} by dataset and learner", "",
        *_pivot(rows, datasets, learners, QUALITY, ".4f"), "",
        "## Instances per second", "",
        *_pivot(rows, datasets, learners, "instances_per_s", ".0f"), "",
    ]
    ref = next((lrn for lrn in ("ihomer", "ihomer:mode=homer") if lrn in learners), None)
    peers = [p for p in ("moa-isoupt", "river-br-ht") if p in learners]
    if ref and peers:
        lines += [f"## {ref} against the peers, dataset by dataset", "",
                  f"Ratios {ref}/peer (above 1: {ref} faster, or more accurate). {MARK}: the "
                  f"peer stopped at its budget, so both micro-F1 values are over the instances "
                  f"the peer reached ({ref}'s read off its curve at that point).", "",
                  *ratios(rows, datasets, ref, peers), ""]
    for name in ("throughput", "quality_vs_speed"):
        if name in plots:
            lines += [f"![{name}]({plots[name]})", ""]
    lines += ["## Per dataset", ""]
    header = ["learner", "status", "inst", "inst/s", "s", "wall s", "peak MiB",
              *(ANCHOR_COLUMNS[m] for m in SHOWN)]
    for ds in datasets:
        body = []
        for r in (r for r in rows if r["dataset"] == ds):
            if r["status"] in SCORED:
                inst = str(r["instances"]) + ("" if r["status"] == "ok"
                                              else f"/{r.get('stream_instances') or '?'}")
                body.append([r["learner"], r["status"], inst,
                             f"{r['instances_per_s']:.0f}", f"{r['seconds']:.1f}",
                             _wall(r), f"{r['peak_rss_bytes'] / 2**20:.0f}",
                             *(_fmt(r, m, ".4f") for m in SHOWN)])
            else:
                body.append([r["learner"], _short(r["status"]), "", "", "",
                             _wall(r), "", *([""] * len(SHOWN))])
        for a in anchors.get(anchor_of.get(ds, ""), []):
            if published is None or a["algorithm"] in published:
                body.append([f"*published {a['algorithm']}*", "other hardware", "full",
                             "", a["time_s"], "", "", *(a[ANCHOR_COLUMNS[m]] for m in SHOWN)])
        lines += [f"### {ds}", "", *_table(header, body), ""]
        if ds in plots:
            lines += [f"![{ds}]({plots[ds]})", ""]
    failed = [r for r in rows if r["status"] not in SCORED]
    if failed:
        lines += ["## Runs that did not finish", "",
                  *_table(["learner", "dataset", "status"],
                          ([r["learner"], r["dataset"], r["status"]] for r in failed)), ""]
    lines += ["All metrics of every run (precision and recall too) are in `results.csv` and "
              "`results.json`, with each learner's parameters.", ""]
    return "\n".join(lines)


def _read_curve(path: Path) -> list[dict[str, float]]:
    if not path.exists():
        return []
    with path.open() as f:
        return [{k: float(v) for k, v in r.items()} for r in csv.DictReader(f)]


def plot(rows: list[dict[str, Any]], out: Path) -> dict[str, str]:
    """Write the PNGs into ``out``; returns ``{dataset or plot name: file name}``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written: dict[str, str] = {}
    ok = _ok(rows)
    learners = list(dict.fromkeys(r["learner"] for r in rows))
    cycle = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    markers = "osD^v<>ph*"
    style = {lrn: (cycle[i % len(cycle)], markers[(i // len(cycle)) % len(markers)])
             for i, lrn in enumerate(learners)}

    kept = []
    for ds in dict.fromkeys(r["dataset"] for r in ok):
        name = f"curve_{ds}.png"
        runs = [r for r in ok if r["dataset"] == ds]
        curves = [_read_curve(ROOT / r["run_dir"] / "curve.csv") for r in runs]  # ROOT / abs = abs
        if not all(curves) and (out / name).exists():
            # the runs' folders (bench/results/tmp/, not committed) are not here: a plot
            # redrawn now would lose the missing runs' lines, so the one there is kept
            kept.append(name)
            written[ds] = name
            continue
        fig, axes = plt.subplots(1, 2, figsize=(12, 4.2), sharey=True)
        for r, curve in zip(runs, curves, strict=True):
            if not curve:
                continue
            x = [c["instance"] for c in curve]
            colour, _ = style[r["learner"]]
            axes[0].plot(x, [c[f"rolling_{QUALITY}"] for c in curve], color=colour,
                         label=r["learner"])
            axes[1].plot(x, [c[QUALITY] for c in curve], color=colour, label=r["learner"])
        axes[0].set_title(f"{ds}: rolling {QUALITY_LABEL}")
        axes[1].set_title(f"{ds}: cumulative {QUALITY_LABEL}")
        for ax in axes:
            ax.set_xlabel("instances")
            ax.grid(alpha=0.3)
        axes[1].legend(fontsize=8, loc="best")
        fig.tight_layout()
        fig.savefig(out / name, dpi=100)
        plt.close(fig)
        written[ds] = name

    if kept:
        print(f"kept {len(kept)} curve plots as they were ({', '.join(kept[:3])}, ...): their "
              "runs' curve.csv files are not here (the runs folder is not committed)",
              file=sys.stderr)
    if ok:
        datasets = list(dict.fromkeys(r["dataset"] for r in ok))
        ran = list(dict.fromkeys(r["learner"] for r in ok))
        width = 0.8 / len(ran)
        fig, ax = plt.subplots(figsize=(max(8.0, 0.35 * len(datasets) * len(ran)), 4.5))
        for k, lrn in enumerate(ran):
            xs, ys = [], []
            for i, ds in enumerate(datasets):
                r = next((r for r in ok if r["dataset"] == ds and r["learner"] == lrn), None)
                if r is not None and r["instances_per_s"] > 0:
                    xs.append(i + (k - (len(ran) - 1) / 2) * width)
                    ys.append(r["instances_per_s"])
            ax.bar(xs, ys, width=width, color=style[lrn][0], label=lrn)
        ax.set_xticks(range(len(datasets)), datasets, rotation=30, ha="right")
        ax.set_yscale("log")
        ax.set_ylabel("instances / s (log)")
        ax.set_title("Throughput (prequential, evaluator timing)")
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=8, ncol=2)
        fig.tight_layout()
        fig.savefig(out / "throughput.png", dpi=100)
        plt.close(fig)
        written["throughput"] = "throughput.png"

        # Left: every run, labelled with its dataset. Right: one point per learner over the
        # datasets every plotted learner finished (mean quality, geometric-mean speed), so a
        # learner is not flattered by having run only on easy or small datasets.
        fig, axes = plt.subplots(1, 2, figsize=(13, 5.5))
        common = [ds for ds in datasets
                  if all(any(r["dataset"] == ds and r["learner"] == lrn for r in ok)
                         for lrn in ran)]
        for lrn in ran:
            mine = [r for r in ok if r["learner"] == lrn and r["instances_per_s"] > 0]
            colour, marker = style[lrn]
            axes[0].scatter([r["instances_per_s"] for r in mine], [r[QUALITY] for r in mine],
                            color=colour, marker=marker, label=lrn, alpha=0.8)
            for r in mine:
                axes[0].annotate(r["dataset"], (r["instances_per_s"], r[QUALITY]), fontsize=6,
                                 alpha=0.7, xytext=(3, 2), textcoords="offset points")
            both = [r for r in mine if r["dataset"] in common]
            if both:
                speed = math.exp(sum(math.log(r["instances_per_s"]) for r in both) / len(both))
                quality = sum(r[QUALITY] for r in both) / len(both)
                axes[1].scatter([speed], [quality], color=colour, marker=marker, s=60, label=lrn)
                axes[1].annotate(lrn, (speed, quality), fontsize=8, xytext=(4, 3),
                                 textcoords="offset points")
        axes[0].set_title("Quality vs speed, one point per run")
        axes[1].set_title(f"Per learner, over the {len(common)} datasets all finished")
        axes[1].set_xlabel("geometric mean instances / s (log)")
        axes[1].set_ylabel(f"mean {QUALITY_LABEL}")
        axes[0].set_xlabel("instances / s (log)")
        axes[0].set_ylabel(QUALITY_LABEL)
        for ax in axes:
            ax.set_xscale("log")
            ax.grid(alpha=0.3)
        axes[0].legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(out / "quality_vs_speed.png", dpi=100)
        plt.close(fig)
        written["quality_vs_speed"] = "quality_vs_speed.png"
    return written


def write(out: Path, rows: list[dict[str, Any]], meta: dict[str, Any],
          anchors: dict[str, list[dict]], anchor_of: dict[str, str],
          published: set[str] | None) -> Path:
    """Plots plus ``report.md`` in ``out``; returns the report's path."""
    plots = plot(rows, out)
    path = out / "report.md"
    path.write_text(markdown(rows, meta, anchors, anchor_of, published, plots))
    return path


def main(argv: list[str] | None = None) -> int:
    """Rebuild the report of an earlier run from its ``results.json``."""
    ap = argparse.ArgumentParser(description="Rebuild a benchmark report (report.md and the "
                                 "plots) from its results.json, without running anything.")
    ap.add_argument("folder", nargs="?", default="bench/results/latest",
                    help="a report folder written by bench/run.py")
    out = Path(ap.parse_args(argv).folder)
    if not (out / "results.json").exists():
        raise SystemExit(f"{out / 'results.json'}: not found (bench/run.py writes it in its "
                         "report folder)")
    data = json.loads((out / "results.json").read_text())
    meta = data["meta"]
    # the published numbers where the run read them, else where this checkout finds them
    recorded = Path(meta["anchors"])
    anchors = read_anchors(recorded if recorded.exists() else ANCHORS)
    published = None if meta["published"] == "all" else set(filter(None, meta["published"]))
    print(write(out, data["rows"], meta, anchors, meta["anchor_of"], published))
    return 0


if __name__ == "__main__":
    sys.exit(main())
