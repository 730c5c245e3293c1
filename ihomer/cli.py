"""The ``ihomer`` command line.

``ihomer replay [SOURCE]``  prequential run of a learner over a file (default: embedded dataset)
``ihomer convert IN OUT``   benchmark file -> recorded stream (Parquet / Arrow IPC)
``ihomer learners``         the registered learners

The ``replay`` options are a contract other tools rely on (see README): keep them stable.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from ihomer import __version__


def _replay(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from ihomer.evaluate.prequential import METRIC_KEYS, prequential
    from ihomer.evaluate.report import format_table
    from ihomer.learners.registry import make, parse_params
    from ihomer.stream.sources import limit_stream, open_stream

    t0 = time.perf_counter()
    stream = limit_stream(open_stream(args.source, labels=args.labels), args.limit)
    load_s = time.perf_counter() - t0
    learner = make(args.learner, parse_params(args.param), seed=args.seed)
    total = len(stream) if hasattr(stream, "__len__") else None
    bar = tqdm(total=total, unit="inst", disable=args.quiet, dynamic_ncols=True,
               desc=f"{args.learner} on {Path(stream.schema.source).name}", file=sys.stderr)

    def progress(n: int, seconds: float, m: dict[str, float]) -> None:
        bar.update(n - bar.n)
        bar.set_postfix(micro_f1=f"{m['micro_f1']:.4f}", ex_f1=f"{m['example_f1']:.4f}",
                        subset=f"{m['subset_accuracy']:.4f}", refresh=False)

    result = prequential(stream, learner, learner_name=args.learner, batch_size=args.batch_size,
                         window=args.window, batched=args.batched, seed=args.seed,
                         progress=progress, total=total)
    bar.close()
    s = result.summary
    s["load_seconds"] = load_s
    s["labels"] = args.labels
    rows = [{"metric": k, "value": s[k]} for k in METRIC_KEYS]
    rows += [{"metric": "instances", "value": s["instances"]},
             {"metric": "seconds", "value": s["seconds"]},
             {"metric": "instances_per_s", "value": s["instances_per_s"]},
             {"metric": "peak_rss_mib", "value": s["peak_rss_bytes"] / 2**20}]
    print(f"{args.learner} on {s['source']} ({s['n_labels']} labels, {s['n_features']} features)")
    print(format_table(rows, ["metric", "value"]))
    if args.out:
        paths = result.write(args.out, plot=args.plot)
        print("wrote " + ", ".join(str(p) for p in paths))
    return 0


def _convert(args: argparse.Namespace) -> int:
    from ihomer.stream.recorded import write_recorded
    from ihomer.stream.sources import limit_stream, open_stream

    t0 = time.perf_counter()
    stream = limit_stream(open_stream(args.input, labels=args.labels), args.limit)
    t1 = time.perf_counter()
    n = write_recorded(stream, args.output, layout=args.layout)
    t2 = time.perf_counter()
    print(f"{args.output}: {n} instances, {stream.schema.n_features} features, "
          f"{stream.schema.n_labels} labels (read {t1 - t0:.2f} s, write {t2 - t1:.2f} s)")
    return 0


def _learners(args: argparse.Namespace) -> int:
    from ihomer.learners.registry import available

    for name, entry in available().items():
        print(f"{name:12s} {entry.description}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ihomer", description=__doc__.split("\n\n")[0])
    p.add_argument("--version", action="version", version=f"ihomer {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("replay", help="prequential run over a recorded stream or benchmark file")
    r.add_argument("source", nargs="?", default=None,
                   help=".arff[.gz|.bz2], .parquet, .arrow or .jsonl[.gz] (default: embedded "
                        "emotions dataset)")
    r.add_argument("--learner", default=None,
                   help="registered learner name (see `ihomer learners`)")
    r.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                   help="learner parameter (repeatable)")
    r.add_argument("--labels", default=None, metavar="xml:FILE|meka|first:N|last:N|json:FIELD",
                   help="label convention (default: sibling NAME.xml, else the MEKA -C flag)")
    r.add_argument("--limit", type=int, default=None, help="stop after N instances")
    r.add_argument("--seed", type=int, default=42)
    r.add_argument("--out", default=None, metavar="DIR",
                   help="write summary.json, curve.csv, events.csv there")
    r.add_argument("--plot", action="store_true", help="also write DIR/curve.png")
    r.add_argument("--window", type=int, default=1000, help="rolling-metric window (instances)")
    r.add_argument("--batch-size", type=int, default=256)
    r.add_argument("--batched", action="store_true",
                   help="predict_many then learn_many per batch (not exact prequential)")
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    r.set_defaults(func=_replay)

    c = sub.add_parser("convert", help="benchmark file -> recorded stream (Parquet/Arrow)")
    c.add_argument("input")
    c.add_argument("output", help="OUT.parquet or OUT.arrow")
    c.add_argument("--labels", default=None)
    c.add_argument("--layout", choices=["auto", "sparse", "dense"], default="auto")
    c.add_argument("--limit", type=int, default=None)
    c.set_defaults(func=_convert)

    ls = sub.add_parser("learners", help="list the registered learners")
    ls.set_defaults(func=_learners)
    return p


DEFAULT_LEARNER = "br-nb"


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "learner", "") is None:
        args.learner = DEFAULT_LEARNER
    if getattr(args, "plot", False) and not args.out:
        args.out = "ihomer-out"
    try:
        return int(args.func(args))
    except (ValueError, FileNotFoundError) as e:
        # Bad input or a bad option: one clear line, no traceback (see StreamError).
        print(f"ihomer: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
