"""Benchmark harness: ours against real peers (MOA, river), side by side in one run.

Each (learner, dataset) pair runs as ``python -m ihomer.cli replay DATASET --learner NAME --out
DIR`` in its own process with a time limit, so a slow or crashing learner (or a JVM) cannot take
the others down, and peak RSS is measured per run. Every learner, ours or a peer, is driven by
the same prequential evaluator and scored by the same metric code, so the numbers compare line
by line. Results: ``results.csv`` / ``results.json`` (every metric, instances/s, wall time, peak
RSS, the learner's parameters, the machine), and ``report.md`` with tables, the published
numbers beside ours (other hardware, labelled so) and PNG plots (see ``bench/report.py``).

Learners are registered names (``ihomer learners``), optionally with parameters for that
learner only: ``NAME:KEY=VALUE:KEY=VALUE`` (``ihomer:mode=homer``, ``moa-isoupt:threshold=0.3``).
The MOA peers need ``pip install ihomer[bench]`` and a JDK 17; without them their runs fail
with that install line as their status and the others go on.

Examples::

    python bench/run.py --profile quick                  # small datasets, ours + peers, minutes
    python bench/run.py --profile full --jobs 2          # every shared dataset: hours
    python bench/run.py --learners river-br-ht,moa-mlht --datasets emotions,yeast --limit 1000
    python bench/report.py bench/results/quick           # rebuild a report from its results
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import os
import platform
import re
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from importlib import metadata
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import report  # bench/ is a folder of scripts, not a package
from paths import ANCHORS, DATASETS, ROOT, read_csv

from ihomer.evaluate.prequential import METRIC_KEYS
from ihomer.learners.registry import DEFAULT_SEED, parse_params

OURS = ["majority", "mlhat", "ihomer", "ihomer:mode=flat"]  # ihomer's default mode is homer
MOA_PEERS = ["moa-isoupt", "moa-mlht", "moa-br-ht"]
RIVER_PEERS = ["river-br-ht", "river-br-hat", "river-br-arf", "river-br-lr", "river-cc",
               "river-isoupt"]
PROFILES: dict[str, dict[str, Any]] = {
    # Small, dense and sparse, few and many labels: the whole line-up in minutes.
    "quick": {"datasets": ["flags", "emotions", "water-quality", "birds"],
              "learners": [*OURS, *MOA_PEERS, "river-br-hat", "river-isoupt"],
              "timeout": 600.0},
    # Every shared dataset and every learner: run by a person on a quiet machine.
    # Every shared dataset and every learner, each with a time budget (MOA's -t): a learner
    # that cannot finish a stream in it is scored on the prefix it reached, marked partial.
    # About 1.5 h with --jobs 1; a larger --budget gives the slow peers longer prefixes.
    "full": {"datasets": None, "learners": OURS + MOA_PEERS + RIVER_PEERS, "budget": 20.0},
    # Our tree and iHOMER on the datasets with published MLHAT numbers (bench/compare.py).
    "anchored": {"datasets": "anchored", "learners": ["mlhat", "ihomer"], "timeout": 3600.0},
    # iHOMER's ablations (issue 4), each one change to the defaults: one tree over all labels,
    # flat mode, random clusters of ODAC's sizes, cold starts, no handover; binary relevance
    # with MOA's Hoeffding trees (river's takes hours on the larger streams).
    "ablation": {"datasets": "anchored",
                 "learners": ["mlhat", "ihomer", "ihomer:mode=flat", "ihomer:partition=random",
                              "ihomer:warm_start=False", "ihomer:handover=False", "moa-br-ht"],
                 "timeout": 3600.0},
}
SUMMARY_KEYS = ("instances", "n_features", "n_labels", "seconds", "learner_seconds",
                "warm_up_seconds",
                "instances_per_s", "peak_rss_bytes", "complete", "stream_instances")
FIELDS = ["learner", "dataset", "status", *SUMMARY_KEYS, "wall_s", *METRIC_KEYS, "params",
          "run_dir", "file"]
CURVE_POINTS = 50  # cumulative micro-F1 points kept per run, to compare runs on a common prefix


def manifest() -> list[dict[str, str]]:
    return read_csv(DATASETS / "MANIFEST.csv")


def own_file(path: str) -> dict[str, str]:
    """A manifest row for a stream of one's own (a path in ``--datasets``), its labels found as
    ``ihomer replay`` finds them (a sibling NAME.xml, else MEKA's ``-C``). It is named by its
    file name, suffixes and all (``medical.parquet``): never a shared dataset's name, whose
    runs and published numbers it would otherwise take."""
    p = Path(path).resolve()
    return {"name": p.name, "file": str(p), "labels": "", "mlhat_anchor": "", "own": "yes"}


def _named_once(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    """``rows``, refusing two streams of one name (files of one name in two folders)."""
    seen: dict[str, str] = {}
    for r in rows:
        if r["name"] in seen and seen[r["name"]] != r["file"]:
            raise SystemExit(f"two streams named {r['name']!r} ({seen[r['name']]} and "
                             f"{r['file']}): their runs and rows would overwrite each other; "
                             "copy or link one under another name")
        seen[r["name"]] = r["file"]
    return rows


def select(names: str | None, profile: str | None) -> list[dict[str, str]]:
    """Manifest rows for ``--datasets`` (names, ``all``, ``arff``, ``anchored``, or paths of
    one's own streams) or a profile."""
    if names is not None and all(Path(w).is_file() for w in names.split(",")):
        return _named_once([own_file(w) for w in names.split(",")])  # no shared folder needed
    rows = manifest()
    if names is None and profile:
        wanted = PROFILES[profile]["datasets"]
        if isinstance(wanted, str):
            return select(wanted, None)
        return rows if wanted is None else [r for r in rows if r["name"] in wanted]
    if names in (None, "all"):
        return rows
    if names == "anchored":
        return [r for r in rows if r["mlhat_anchor"]]
    if names == "arff":
        return [r for r in rows if r["file"].endswith(".arff.gz")]
    wanted = names.split(",")
    own = [own_file(w) for w in wanted if Path(w).is_file()]
    unknown = set(wanted) - {r["name"] for r in rows} - {w for w in wanted if Path(w).is_file()}
    if unknown:
        raise SystemExit(f"unknown datasets: {', '.join(sorted(unknown))} (neither a shared "
                         "dataset's name nor a file)")
    return _named_once([r for r in rows if r["name"] in wanted] + own)


def split_spec(spec: str) -> tuple[str, list[str]]:
    """``"ihomer:mode=homer:n_min=50"`` -> ``("ihomer", ["mode=homer", "n_min=50"])``.

    A ``:`` starts a parameter only where ``KEY=`` follows it, so a value may hold colons of
    its own: ``"ihomer:tree={'grace_period': 50}:mode=flat"`` has two parameters."""
    name, *params = re.split(r":(?=[A-Za-z_]\w*=)", spec)
    if ":" in name:  # the first parameter did not read KEY=VALUE
        name, _, rest = name.partition(":")
        raise ValueError(f"{spec!r}: parameter {rest!r} is not KEY=VALUE")
    return name, params


def split_learners(text: str) -> list[str]:
    """``--learners``: commas separate learners only outside brackets and quotes, so a
    dict value such as ``ihomer:tree={'grace_period': 50, 'tau': 0.1}`` stays one learner.
    Each learner is checked (:func:`split_spec`, :func:`parse_params`) before any run, so a
    typo is a one-line exit rather than a failed row per dataset."""
    specs, depth, quote, part = [], 0, "", []
    for ch in text:
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "," and depth == 0:
            specs.append("".join(part))
            part = []
            continue
        part.append(ch)
    specs.append("".join(part))
    specs = [sp for sp in specs if sp]
    for sp in specs:
        try:
            parse_params(split_spec(sp)[1])
        except ValueError as e:
            raise SystemExit(f"--learners: {e}") from None
    return specs


def run_one(spec: str, ds: dict[str, str], runs: Path, timeout: float, params: list[str],
            limit: int | None, seed: int, budget: float | None = None,
            resume: bool = False) -> dict[str, Any]:
    """Run one pair in a subprocess; return its row (metrics, or the failure as ``status``).

    ``budget`` is the learner's time budget (``replay --max-seconds``): a run that reaches it
    is scored on the prefix it saw, with status ``partial``. ``timeout`` kills the process.
    ``resume`` takes a finished run's outputs from ``runs`` instead of running it again.
    """
    name, own = split_spec(spec)
    run_dir = runs / f"{re.sub(r'[^A-Za-z0-9_.=-]+', '_', spec)}__{ds['name']}"
    cmd = [sys.executable, "-m", "ihomer.cli", "replay", str(DATASETS / ds["file"]),
           "--learner", name, "--out", str(run_dir), "--quiet", "--seed", str(seed)]
    if ds["labels"] and not ds["labels"].startswith("xml:"):  # the reader finds NAME.xml
        cmd += ["--labels", ds["labels"]]
    for p in [*params, *own]:
        cmd += ["--param", p]
    if limit:
        cmd += ["--limit", str(limit)]
    if budget:
        cmd += ["--max-seconds", str(budget)]
    # Relative to the repository when inside it, so a committed results.json names no machine.
    where = run_dir.relative_to(ROOT) if run_dir.is_relative_to(ROOT) else run_dir
    row: dict[str, Any] = {"learner": spec, "dataset": ds["name"], "run_dir": str(where)}
    if ds.get("own"):
        row["file"] = ds["file"]  # the stream of one's own that the name stands for
    if resume and (run_dir / "summary.json").exists():
        saved = run_dir / "row.json"
        if saved.exists():
            return json.loads(saved.read_text())
        row["wall_s"] = None  # run by an older harness that kept no row: process time unknown
        return _scored(row, run_dir)
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        row.update(status=f"timeout>{timeout:.0f}s", wall_s=time.perf_counter() - t0)
        return row
    row["wall_s"] = time.perf_counter() - t0
    if proc.returncode != 0:
        row["status"] = "error: " + failure_reason(proc.returncode, proc.stderr)
        return row
    row = _scored(row, run_dir)
    (run_dir / "row.json").write_text(json.dumps(row) + "\n")  # for --resume
    return row


def failure_reason(returncode: int, stderr: str) -> str:
    """Why a run failed, for its row: the last line it wrote to stderr, else how it ended (a
    process killed by a signal, the kernel's out-of-memory killer's SIGKILL for one, writes
    nothing)."""
    last = [ln for ln in stderr.strip().splitlines() if ln.strip()]
    if last:
        return last[-1].removeprefix("ihomer: error: ")[:200]
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        why = " (out of memory?)" if -returncode == signal.SIGKILL else ""
        return f"killed by {name}{why}, nothing on stderr"
    return f"exit code {returncode}, nothing on stderr"


def _scored(row: dict[str, Any], run_dir: Path) -> dict[str, Any]:
    """``row`` with the metrics, timings and parameters of the finished run in ``run_dir``."""
    summary = json.loads((run_dir / "summary.json").read_text())
    row.update(status="ok" if summary.get("complete", True) else "partial",
               **{k: summary.get(k) for k in (*SUMMARY_KEYS, *METRIC_KEYS)})
    row["params"] = json.dumps(summary.get("params", {}), sort_keys=True, default=str)
    row["curve"] = micro_f1_curve(run_dir / "curve.csv")
    return row


def micro_f1_curve(path: Path) -> list[list[float]]:
    """``[[instances, cumulative micro-F1], ...]``, about ``CURVE_POINTS`` of them: enough to
    read one run's score at the prefix another (partial) run reached."""
    with path.open() as f:
        points = [[int(float(r["instance"])), round(float(r["micro_f1"]), 6)]
                  for r in csv.DictReader(f)]
    step = max(1, len(points) // CURVE_POINTS)
    kept = points[step - 1::step]
    return kept if kept[-1:] == points[-1:] else [*kept, points[-1]]


def _java_version() -> str:
    try:
        proc = subprocess.run(["java", "-version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return "no java"
    return (proc.stderr.splitlines() or ["?"])[0]


def machine() -> str:
    """CPU model, cores, memory and OS, for the report (timings only compare on one machine)."""
    cpu = platform.processor() or platform.machine()
    mem = ""
    try:
        info = Path("/proc/cpuinfo").read_text()
        cpu = next((ln.split(":", 1)[1].strip() for ln in info.splitlines()
                    if ln.startswith("model name")), cpu)
        kib = next(int(ln.split()[1]) for ln in Path("/proc/meminfo").read_text().splitlines()
                   if ln.startswith("MemTotal"))
        mem = f", {kib / 2**20:.0f} GiB RAM"
    except (OSError, StopIteration):
        pass
    return (f"{platform.node()}: {cpu}, {os.cpu_count()} logical cores{mem}, "
            f"{platform.system()} {platform.release()}")


def software() -> str:
    def version(pkg: str) -> str:
        try:
            return metadata.version(pkg)
        except metadata.PackageNotFoundError:
            return "absent"

    rev = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                         capture_output=True, text=True).stdout.strip() or "?"
    pkgs = ", ".join(f"{p} {version(p)}" for p in ("ihomer", "numpy", "numba", "river",
                                                   "capymoa", "jpype1"))
    return f"Python {platform.python_version()}, {pkgs}, {_java_version()}, git {rev}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--profile", choices=sorted(PROFILES), default=None,
                    help="datasets, learners and time limit preset (overridable)")
    ap.add_argument("--learners", default=None,
                    help="comma-separated NAME[:KEY=VALUE...] (a value may be a dict literal) "
                         "(default: the profile's, or river-br-nb)")
    ap.add_argument("--datasets", default=None,
                    help="comma-separated names, 'all', 'arff' or 'anchored' (default: the "
                         "profile's, or all)")
    ap.add_argument("--param", action="append", default=[], help="KEY=VALUE for every learner")
    ap.add_argument("--budget", type=float, default=None,
                    help="learning seconds per run; past it a run is scored on its prefix "
                         "(status partial)")
    ap.add_argument("--timeout", type=float, default=None,
                    help="seconds before a run's process is killed (default: 3 h, or twice "
                         "the budget plus 5 min)")
    ap.add_argument("--jobs", type=int, default=1, help="runs in parallel (1 per core is fair)")
    ap.add_argument("--limit", type=int, default=None, help="instances per run (smoke tests)")
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED,
                    help=f"seed of every learner (default {DEFAULT_SEED}, as ihomer replay)")
    ap.add_argument("--published", default="all",
                    help="published algorithms shown beside ours: 'all', '' or a comma list "
                         "(MLHAT,iSOUPT,MLHT,ARF,KNN,ABALR)")
    ap.add_argument("--out", default=None,
                    help="report folder (default: bench/results/PROFILE, or .../latest)")
    ap.add_argument("--update", action="store_true",
                    help="keep the rows of the report folder's results.json that this run does "
                         "not redo, and write the report over both")
    ap.add_argument("--resume", action="store_true",
                    help="reuse the runs already finished in the runs folder (an interrupted "
                         "profile, or the same runs folder shared by processes run side by "
                         "side) and run only the others")
    ap.add_argument("--merge", action="append", default=[], metavar="DIR",
                    help="also take the rows of DIR/results.json (another folder's runs, e.g. "
                         "of other learners run at the same time); with --learners '' nothing "
                         "is run and the report is only rebuilt over the union")
    ap.add_argument("--runs", default=None,
                    help="folder of the per-run outputs (default: bench/results/tmp/<out name>,"
                         " which git ignores; the report only needs results.json and the PNGs)")
    args = ap.parse_args(argv)

    preset = PROFILES.get(args.profile or "", {})
    out = Path(args.out or ROOT / "bench" / "results" / (args.profile or "latest"))
    runs = Path(args.runs or ROOT / "bench" / "results" / "tmp" / out.name)
    learners = (split_learners(args.learners) if args.learners is not None
                else preset.get("learners", ["river-br-nb"]))
    datasets = select(args.datasets, args.profile)
    out.mkdir(parents=True, exist_ok=True)
    runs.mkdir(parents=True, exist_ok=True)
    budget = args.budget if args.budget is not None else preset.get("budget")
    timeout = args.timeout or preset.get("timeout") or (2 * budget + 300 if budget else 3 * 3600.0)
    pairs = [(lrn, ds) for ds in datasets for lrn in learners]
    print(f"{len(pairs)} runs, {args.jobs} at a time, report in {out}", flush=True)

    def job(pair: tuple[str, dict[str, str]]) -> dict[str, Any]:
        row = run_one(pair[0], pair[1], runs, timeout, args.param, args.limit, args.seed,
                      budget, args.resume)
        extra = (f"{row['instances_per_s']:8.0f} inst/s  micro_f1 {row['micro_f1']:.4f}"
                 if row["status"] in ("ok", "partial") else row["status"])
        if row["status"] == "partial":
            extra += f"  (partial: {row['instances']} of {row['stream_instances']})"
        wall = "      ?" if row["wall_s"] is None else f"{row['wall_s']:7.1f}"
        print(f"  {row['learner']:18s} {row['dataset']:14s} {wall} s  {extra}",
              flush=True)
        return row

    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        rows = list(pool.map(job, pairs))
    # The exit code speaks for this invocation's runs: a failed row kept by --update or
    # --merge is in the report, but does not fail a rerun that went well.
    failed = [r for r in rows if r["status"] not in ("ok", "partial")]
    commands = [" ".join(["python bench/run.py", *(sys.argv[1:] if argv is None else argv)])]
    earlier = [out] if args.update and (out / "results.json").exists() else []
    for folder in [*earlier, *map(Path, args.merge)]:
        old = json.loads((folder / "results.json").read_text())
        redone = {(r["learner"], r["dataset"]) for r in rows}
        kept = [r for r in old["rows"] if (r["learner"], r["dataset"]) not in redone]
        rows = kept + rows
        commands = old["meta"].get("commands", [old["meta"].get("command", "?")]) + commands
    order = {name: i for i, name in enumerate(OURS + MOA_PEERS + RIVER_PEERS)}
    place = {r["name"]: i for i, r in enumerate(manifest())}
    rows.sort(key=lambda r: (place.get(r["dataset"], len(place)),
                             order.get(r["learner"], len(order))))

    with (out / "results.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=FIELDS, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    published = ("all" if args.published == "all"
                 else [a for a in args.published.split(",") if a])
    meta = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "profile": args.profile,
        "machine": machine(),
        "software": software(),
        "commands": commands,
        "limit": args.limit,
        "timeout": timeout,
        "budget": budget,
        "jobs": args.jobs,
        "seed": args.seed,
        "published": published,
        "anchors": str(ANCHORS),
        "anchor_of": {r["name"]: r["mlhat_anchor"] for r in manifest()},
    }
    (out / "results.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    path = report.write(out, rows, meta, report.read_anchors(ANCHORS), meta["anchor_of"],
                        None if published == "all" else set(published))
    print(f"wrote {out / 'results.csv'}, {out / 'results.json'}, {path} and plots")
    for r in failed:
        print(f"failed: {r['learner']} on {r['dataset']}: {r['status']}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
