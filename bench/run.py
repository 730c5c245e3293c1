"""Benchmark harness: prequential runs of (learner, dataset) pairs, one process each.

Each pair runs as ``python -m ihomer.cli replay DATASET --learner NAME --out DIR`` in its own
process with a time limit, so a slow or crashing learner cannot take the others down and peak
RSS is measured per run. Results are collected from each run's ``summary.json`` into
``results.csv``, ``results.json`` and a Markdown report with the published full-stream numbers
(``shared/anchors/published_prequential.csv``, other hardware, clearly labelled) beside ours.

Examples::

    python bench/run.py --profile quick                      # a few small datasets, minutes
    python bench/run.py --learners br-nb --datasets all      # every shared file
    python bench/run.py --learners mlhat --datasets anchored --jobs 2
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
DATASETS = SHARED / "datasets"
ANCHORS = SHARED / "anchors" / "published_prequential.csv"
METRICS = ("subset_accuracy", "hamming_loss", "example_f1", "micro_f1", "macro_f1")
ANCHOR_COLUMNS = {"subset_accuracy": "subset_acc", "hamming_loss": "hamming",
                  "example_f1": "example_f1", "micro_f1": "micro_f1", "macro_f1": "macro_f1"}
PROFILES = {
    "quick": ["flags", "emotions", "water-quality", "birds"],
    "full": None,  # every dataset in the manifest
}


def manifest() -> list[dict[str, str]]:
    with (DATASETS / "MANIFEST.csv").open() as f:
        return list(csv.DictReader(f))


def anchors() -> dict[tuple[str, str], dict[str, str]]:
    """``{(anchor dataset name, algorithm): row}`` of the published results."""
    if not ANCHORS.exists():
        return {}
    with ANCHORS.open() as f:
        return {(r["dataset"], r["algorithm"]): r for r in csv.DictReader(f)}


def select(names: str | None, profile: str | None) -> list[dict[str, str]]:
    rows = manifest()
    if profile:
        wanted = PROFILES[profile]
        return rows if wanted is None else [r for r in rows if r["name"] in wanted]
    if names in (None, "all"):
        return rows
    if names == "anchored":
        return [r for r in rows if r["mlhat_anchor"]]
    if names == "arff":
        return [r for r in rows if r["file"].endswith(".arff.gz")]
    wanted = names.split(",")
    unknown = set(wanted) - {r["name"] for r in rows}
    if unknown:
        raise SystemExit(f"unknown datasets: {', '.join(sorted(unknown))}")
    return [r for r in rows if r["name"] in wanted]


def run_one(learner: str, ds: dict[str, str], out: Path, timeout: float, params: list[str],
            limit: int | None) -> dict[str, Any]:
    """Run one pair in a subprocess; return its summary (or the failure)."""
    run_dir = out / "runs" / f"{learner}__{ds['name']}"
    cmd = [sys.executable, "-m", "ihomer.cli", "replay", str(DATASETS / ds["file"]),
           "--learner", learner, "--out", str(run_dir), "--quiet"]
    labels = ds["labels"]
    if not labels.startswith("xml:"):
        cmd += ["--labels", labels]
    for p in params:
        cmd += ["--param", p]
    if limit:
        cmd += ["--limit", str(limit)]
    t0 = time.perf_counter()
    row: dict[str, Any] = {"learner": learner, "dataset": ds["name"]}
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        row.update(status=f"timeout>{timeout:.0f}s", wall_s=time.perf_counter() - t0)
        return row
    row["wall_s"] = time.perf_counter() - t0
    if proc.returncode != 0:
        row["status"] = "error: " + (proc.stderr.strip().splitlines() or ["?"])[-1][:200]
        return row
    summary = json.loads((run_dir / "summary.json").read_text())
    row.update(status="ok", **{k: summary[k] for k in (*METRICS, "instances", "seconds",
                                                        "instances_per_s", "peak_rss_bytes")})
    row["params"] = json.dumps(summary.get("params", {}), sort_keys=True)
    return row


def markdown(rows: list[dict[str, Any]], published: str | None) -> str:
    anch = anchors()
    names = {r["name"]: r for r in manifest()}
    lines = [
        "| dataset | learner | status | inst | inst/s | s | peak MiB | "
        + " | ".join(METRICS) + (f" | published {published} " + " / ".join(
            ANCHOR_COLUMNS[m] for m in METRICS) + f" | published {published} s" if published
            else "") + " |",
        "|" + "---|" * (7 + len(METRICS) + (2 if published else 0)),
    ]
    for r in rows:
        cells = [r["dataset"], r["learner"], r["status"]]
        if r["status"] == "ok":
            cells += [str(r["instances"]), f"{r['instances_per_s']:.0f}", f"{r['seconds']:.1f}",
                      f"{r['peak_rss_bytes'] / 2**20:.0f}"] + [f"{r[m]:.4f}" for m in METRICS]
        else:
            cells += [""] * (4 + len(METRICS))
        if published:
            a = anch.get((names[r["dataset"]]["mlhat_anchor"], published))
            cells += [" / ".join(a[ANCHOR_COLUMNS[m]] for m in METRICS) if a else "",
                      a["time_s"] if a else ""]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--learners", default="br-nb", help="comma-separated registered names")
    ap.add_argument("--datasets", default=None,
                    help="comma-separated names, 'all', 'arff' or 'anchored' (default: all)")
    ap.add_argument("--profile", choices=sorted(PROFILES), default=None)
    ap.add_argument("--param", action="append", default=[], help="KEY=VALUE for every learner")
    ap.add_argument("--timeout", type=float, default=3600.0, help="seconds per run")
    ap.add_argument("--jobs", type=int, default=1, help="runs in parallel (1 per core is fair)")
    ap.add_argument("--limit", type=int, default=None, help="instances per run (smoke tests)")
    ap.add_argument("--published", default="MLHAT",
                    help="published algorithm shown beside ours ('' for none)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "latest"))
    args = ap.parse_args(argv)

    if not DATASETS.exists():
        raise SystemExit(f"shared datasets not found at {DATASETS}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    datasets = select(args.datasets, args.profile)
    pairs = [(lrn, ds) for lrn in args.learners.split(",") for ds in datasets]
    print(f"{len(pairs)} runs, {args.jobs} at a time, results in {out}", flush=True)
    rows: list[dict[str, Any]] = []

    def job(pair: tuple[str, dict[str, str]]) -> dict[str, Any]:
        row = run_one(pair[0], pair[1], out, args.timeout, args.param, args.limit)
        extra = (f"{row['instances_per_s']:8.0f} inst/s  micro_f1 {row['micro_f1']:.4f}"
                 if row["status"] == "ok" else "")
        print(f"  {row['learner']:10s} {row['dataset']:15s} {row['status']:8s} {extra}",
              flush=True)
        return row

    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        rows = list(pool.map(job, pairs))
    fields = ["learner", "dataset", "status", "instances", "seconds", "wall_s", "instances_per_s",
              "peak_rss_bytes", *METRICS, "params"]
    with (out / "results.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    meta = {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.node()} {platform.machine()}, {os.cpu_count()} cores",
        "python": platform.python_version(),
        "command": " ".join([Path(sys.argv[0]).name, *(argv or sys.argv[1:])]),
    }
    (out / "results.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    report = [f"# Prequential benchmark ({meta['date']})", "",
              f"Machine: {meta['machine']}, Python {meta['python']}. Command: `{meta['command']}`.",
              "Published numbers are the MLHAT authors' full-stream runs on their hardware.", "",
              markdown(rows, args.published or None), ""]
    (out / "report.md").write_text("\n".join(report))
    print(markdown(rows, args.published or None))
    return 0 if all(r["status"] == "ok" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
