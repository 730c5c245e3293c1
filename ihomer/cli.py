"""The ``ihomer`` command line.

``ihomer replay [SOURCE]``  prequential run of a learner over a file (default: embedded dataset)
``ihomer convert IN OUT``   benchmark file -> recorded stream (Parquet / Arrow IPC), optionally
                           with the features of a text stream computed once (``--featurizer``)
``ihomer learners [NAME]``  the registered learners, or one's parameters
``ihomer serve``            the Kafka consumer service (predict, learn, checkpoint)
``ihomer produce [FILE]``   publish a file to a topic as service events

The ``replay`` options are a contract other tools rely on (see README): keep them stable.
"""

from __future__ import annotations

import argparse
import shlex
import signal
import sys
import textwrap
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ihomer import __version__
from ihomer.learners.registry import DEFAULT_SEED

if TYPE_CHECKING:
    from ihomer.stream.base import Stream
    from ihomer.stream.featurize import Featurizer


def _replay(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from ihomer.evaluate.prequential import METRIC_KEYS, prequential
    from ihomer.evaluate.report import format_table
    from ihomer.learners.registry import make, parse_params
    from ihomer.stream.base import stream_length
    from ihomer.stream.sources import limit_stream, open_stream

    if args.out:
        _check_out_dir(Path(args.out))  # before the run, not after hours of it
    t0 = time.perf_counter()
    whole = open_stream(args.source, labels=args.labels)
    stream = limit_stream(whole, args.limit)
    stream, featurizer = _featurize(stream, args)
    load_s = time.perf_counter() - t0
    learner = make(args.learner, parse_params(args.param), seed=args.seed)
    total = stream_length(stream)
    schema = stream.schema
    found = f" from {schema.labels_from}" if schema.labels_from else ""
    # first, as the README promises: which rule chose the labels is worth reading before a
    # long run, not after it
    print(f"{args.learner} on {schema.source} ({schema.n_labels} labels{found}, "
          f"{schema.n_features} features)", flush=True)
    desc = f"{args.learner} on {Path(schema.source).name}"
    # the evaluator loads (the first run after an install: compiles) the kernels before its
    # clock starts; the bar says so, and its rate starts with the first instances
    bar = tqdm(total=total, unit="inst", disable=args.quiet, dynamic_ncols=True, smoothing=0,
               desc=f"{desc} (loading kernels)", file=sys.stderr)

    started = False

    def progress(n: int, seconds: float, m: dict[str, float]) -> None:
        nonlocal started
        if not started:
            started = True
            bar.reset(total=total)
            bar.set_description_str(desc, refresh=False)
        # the metrics first: update() redraws, and would show the previous batch's
        bar.set_postfix(micro_f1=f"{m['micro_f1']:.4f}", ex_f1=f"{m['example_f1']:.4f}",
                        subset=f"{m['subset_accuracy']:.4f}", refresh=False)
        bar.update(n - bar.n)

    signals: list[int] = []

    def on_signal(signum: int, frame: object) -> None:
        if signals:  # a second one: give up at once
            raise KeyboardInterrupt
        signals.append(signum)
        bar.write(f"ihomer: {signal.Signals(signum).name}: stopping after the instances under "
                  "way, keeping the metrics so far (again to quit at once)", file=sys.stderr)

    answers = None
    if args.predictions:
        from ihomer.evaluate.report import AnswerWriter

        answers = AnswerWriter(Path(args.out) / "predictions.jsonl",
                               lambda: learner.label_vocab.names)
    handlers = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        result = prequential(stream, learner, learner_name=args.learner,
                             batch_size=args.batch_size, window=args.window,
                             batched=args.batched, seed=args.seed, progress=progress,
                             total=total, max_seconds=args.max_seconds,
                             should_stop=lambda: bool(signals),
                             on_answers=None if answers is None else answers.write)
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
        bar.close()
        if answers is not None:
            answers.close()
    s = result.summary
    if s["instances"] == 0 and not signals:
        raise ValueError(f"{s['source']}: the stream has no instances, so there is nothing to "
                         "measure")
    s["load_seconds"] = load_s
    s["labels"] = args.labels
    s["command"] = " ".join(["ihomer", *map(shlex.quote, args.argv)])
    if featurizer is not None:
        s["featurizer"] = {"spec": featurizer.spec, **featurizer.params(),
                           "seconds": getattr(stream, "seconds", 0.0),
                           "queue_depth": args.featurizer_queue}
    rows = [{"metric": k, "value": s[k]} for k in METRIC_KEYS]
    rows += [{"metric": "instances", "value": s["instances"]},
             {"metric": "seconds", "value": s["seconds"]},
             {"metric": "instances_per_s", "value": s["instances_per_s"]},
             {"metric": "peak_rss_mib", "value": s["peak_rss_bytes"] / 2**20}]
    if not s["complete"]:
        if s["stopped"] == "budget":
            why = f"time budget of {args.max_seconds:g} s reached"
        elif s["stopped"] == "limit" and s["limit"] == args.limit:
            why = f"--limit {args.limit} reached"
        elif s["stopped"] == "limit":  # the stream's own cut: a recording of a prefix
            why = f"the stream is a prefix, its source's first {s['limit']} instances"
        else:
            why = f"stopped by {signal.Signals(signals[0]).name}"
        print(f"{why}: metrics over the first {s['instances']} of "
              f"{s['stream_instances'] or '?'} instances")
    print(format_table(rows, ["metric", "value"]))
    if args.out:
        paths = result.write(args.out, plot=args.plot)
        if answers is not None:
            paths.append(answers.path)
        else:  # an earlier run's answers must not pass for this run's
            (Path(args.out) / "predictions.jsonl").unlink(missing_ok=True)
        print("wrote " + ", ".join(str(p) for p in paths))
    return 128 + signals[0] if signals else 0


def _check_out_dir(out: Path, what: str | None = None) -> None:
    """Make ``out`` and write a probe file there, so that a path that cannot hold the results
    (a file in the way, a read-only disk, no permission) fails before the run, in one line
    naming ``what`` (default: ``--out DIR``)."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".ihomer-probe"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise ValueError(f"{what or f'--out {out}'}: cannot write the results there "
                         f"({e.strerror or e})") from None


def _convert(args: argparse.Namespace) -> int:
    from ihomer.stream.recorded import write_recorded
    from ihomer.stream.sources import limit_stream, open_stream

    # before reading the input, which can take minutes: a folder that cannot be made or
    # written (as replay's --out, it is made when missing)
    _check_out_dir(Path(args.output).absolute().parent, args.output)
    t0 = time.perf_counter()
    stream = limit_stream(open_stream(args.input, labels=args.labels), args.limit)
    # Only an explicit --featurizer stores features: by default a text stream keeps its raw
    # text, and the replay featurizes it.
    featurizer = None
    if args.featurizer is not None:
        stream, featurizer = _featurize(stream, args)
    layout = args.layout
    if layout == "auto" and featurizer is not None:
        layout = "sparse" if featurizer.sparse else "dense"
    t1 = time.perf_counter()
    n = write_recorded(stream, args.output, layout=layout)
    t2 = time.perf_counter()
    schema = stream.schema
    prefix = "" if schema.limit is None else \
        f" (a prefix: the first of {schema.whole_instances or '?'} in the stream it was cut from)"
    print(f"{args.output}: {n} instances{prefix}, {schema.n_features} features, "
          f"{schema.n_labels} labels (read {t1 - t0:.2f} s, write {t2 - t1:.2f} s)")
    return 0


def _at_least(minimum: int) -> Callable[[str], int]:
    """An argparse type: an integer no smaller than ``minimum``."""
    def parse(text: str) -> int:
        try:
            n = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if n < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, not {n}")
        return n
    return parse


def _positive_seconds(text: str) -> float:
    """An argparse type: a number of seconds above 0."""
    try:
        x = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not x > 0:
        raise argparse.ArgumentTypeError(f"must be above 0, not {text}")
    return x


def _featurize(stream: Stream, args: argparse.Namespace) -> tuple[Stream, Featurizer | None]:
    """The stream with the features ``--featurizer`` asks for (see ``featurize_stream``)."""
    from ihomer.learners.registry import parse_params
    from ihomer.stream.featurize import featurize_stream

    return featurize_stream(stream, args.featurizer, parse_params(args.featurizer_param),
                            device=args.device, queue_depth=args.featurizer_queue)


def _add_labels_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--labels", default=None, metavar="xml:FILE|meka|first:N|last:N|json:FIELD",
                   help="label convention (default: sibling NAME.xml, else the MEKA -C flag; "
                        "a spec that disagrees with the sibling NAME.xml is refused: name "
                        "another label set as xml:FILE)")


def _add_featurizer_options(p: argparse.ArgumentParser,
                            default: str = "hashing for raw-text streams; features stored in "
                                           "a recorded stream are used as they are") -> None:
    p.add_argument("--featurizer", default=None, metavar="hashing|embedding[:MODEL]",
                   help=f"how text events become features (default: {default})")
    p.add_argument("--featurizer-param", action="append", default=[], metavar="KEY=VALUE",
                   help="featurizer parameter, e.g. n_features=65536, ngrams=1, batch_size=128 "
                        "(repeatable)")
    p.add_argument("--device", default="auto", metavar="auto|cpu|cuda",
                   help="where the embedding model runs (auto: CUDA GPU if present)")
    p.add_argument("--featurizer-queue", type=_at_least(0), default=4, metavar="N",
                   help="batches featurized ahead of the learner in a worker thread "
                        "(default 4; 0: featurize inline)")


def _learners(args: argparse.Namespace) -> int:
    from ihomer.learners.registry import available, parameters

    if args.name is None:
        for name, entry in available().items():
            print(f"{name:12s} {entry.description}")
        return 0
    rows = parameters(args.name)
    print(f"{args.name}: {available()[args.name].description}")
    if not rows:
        print("no parameters")
        return 0
    print("parameters (ihomer replay --learner NAME --param KEY=VALUE, values as Python "
          "literals):")
    lines = []
    for key, default, text in rows:
        if key == "seed":  # replay, bench and serve pass their own
            lines.append((key, f"set by --seed (default {DEFAULT_SEED}). {text}".strip()))
        else:
            lines.append((f"{key}={default}", text or "-"))
    width = min(max(len(head) for head, _ in lines), 32)
    for head, text in lines:
        lead = f"  {head:{width}s}  "
        print(textwrap.fill(text, 100, initial_indent=lead, subsequent_indent=" " * len(lead)))
    return 0


def _service_flags(args: argparse.Namespace, tables: Sequence[str]) -> dict[str, object]:
    """The settings the user gave on the command line (the subparsers suppress defaults)."""
    from ihomer.learners.registry import parse_params

    flags = {k: v for k, v in vars(args).items() if k not in ("func", "command", "config")}
    for table in tables:
        if table in flags:
            flags[table] = parse_params(flags[table])
    return flags


def _serve(args: argparse.Namespace) -> int:
    from ihomer.connectors.checkpoint import CheckpointError
    from ihomer.connectors.config import load_config
    from ihomer.connectors.service import Service

    cfg = load_config(_service_flags(args, ("consumer", "producer", "params",
                                            "featurizer_params")),
                      getattr(args, "config", None))
    from kafka.errors import KafkaError

    try:
        return Service(cfg).run()
    except (CheckpointError, KafkaError, OSError) as e:
        # A refused checkpoint, unreachable brokers, a busy metrics port: one line.
        print(f"ihomer: error: {e}", file=sys.stderr)
        return 2


def _produce(args: argparse.Namespace) -> int:
    from ihomer.connectors.config import load_config
    from ihomer.connectors.producer import publish
    from ihomer.stream.sources import limit_stream, open_stream

    flags = _service_flags(args, ("producer",))
    source = flags.pop("source", None)
    options = {k: flags.pop(k) for k in ("labels", "limit", "features", "delay_labels",
                                         "no_labels") if k in flags}
    if options.get("no_labels") and options.get("delay_labels"):
        raise ValueError("--no-labels sends no labels, so there are none to --delay-labels")
    cfg = load_config(flags, getattr(args, "config", None))
    stream = limit_stream(open_stream(source, labels=options.get("labels")),  # type: ignore[arg-type]
                          options.get("limit"))  # type: ignore[arg-type]
    from kafka.errors import KafkaError

    try:
        n, seconds = publish(stream, cfg.input_topic, cfg.bootstrap_servers, cfg.producer,
                             features=options.get("features", "auto"),
                             labels=not options.get("no_labels", False),
                             delay_labels=options.get("delay_labels", 0))
    except KafkaError as e:  # unreachable brokers, a refused message: one line, as serve
        print(f"ihomer: error: {e}", file=sys.stderr)
        return 2
    print(f"{cfg.input_topic}: published {n} messages from {stream.schema.source} in "
          f"{seconds:.2f} s ({n / max(seconds, 1e-9):.0f} msg/s)")
    return 0


def _kafka_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", metavar="FILE.toml",
                   help="settings file (flags > IHOMER_* environment > file > defaults)")
    p.add_argument("--bootstrap-servers", metavar="HOST:PORT[,...]",
                   help="Kafka brokers (default 127.0.0.1:9092)")
    p.add_argument("--producer-option", dest="producer", action="append", metavar="KEY=VALUE",
                   help="kafka-python KafkaProducer setting (repeatable)")


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
    _add_labels_option(r)
    r.add_argument("--limit", type=_at_least(1), default=None, help="stop after N instances")
    r.add_argument("--max-seconds", type=_positive_seconds, default=None, metavar="S",
                   help="time budget of the learner (as MOA's -t): stop after S seconds of "
                        "learning and report the metrics over the instances seen so far")
    r.add_argument("--seed", type=int, default=DEFAULT_SEED,
                   help=f"seed of the learner (default {DEFAULT_SEED})")
    r.add_argument("--out", default=None, metavar="DIR",
                   help="write summary.json, curve.csv, events.csv there (replacing those of "
                        "an earlier run; checked before the run). Ctrl-C or SIGTERM ends the "
                        "run early and still writes them, over the instances finished")
    r.add_argument("--plot", action="store_true",
                   help="also write DIR/curve.png (without --out, DIR is ./ihomer-out)")
    r.add_argument("--predictions", action="store_true",
                   help="also write DIR/predictions.jsonl: each instance's true and predicted "
                        "labels (and scores), one JSON line each, as MOA's -o does (without "
                        "--out, DIR is ./ihomer-out)")
    r.add_argument("--window", type=_at_least(1), default=1000, metavar="N",
                   help="instances the rolling metrics of curve.csv cover (default 1000)")
    r.add_argument("--batch-size", type=_at_least(1), default=256, metavar="N",
                   help="instances read and handed to the learner at once (default 256); "
                        "without --batched each is still predicted before it is learned")
    r.add_argument("--batched", action="store_true",
                   help="predict_many then learn_many per batch (not exact prequential)")
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_featurizer_options(r)
    r.set_defaults(func=_replay)

    c = sub.add_parser("convert", help="benchmark file -> recorded stream (Parquet/Arrow)")
    c.add_argument("input", help="as for replay: .arff[.gz|.bz2], .jsonl[.gz], or a "
                                 "recording (.parquet, .arrow) to re-record")
    c.add_argument("output", help="OUT.parquet or OUT.arrow")
    _add_labels_option(c)
    c.add_argument("--layout", choices=["auto", "sparse", "dense"], default="auto",
                   help="how features are stored: sparse (feature_indices, feature_values) or "
                        "dense (features, one value per feature); auto (default): sparse when "
                        "the input is sparse or text, with --featurizer the featurizer's")
    c.add_argument("--limit", type=_at_least(1), default=None, metavar="N",
                   help="record only the first N instances")
    _add_featurizer_options(c, default="none: a text stream keeps its raw text, and a replay "
                                       "of the recording featurizes it")
    c.set_defaults(func=_convert)

    ls = sub.add_parser("learners", help="list the registered learners, or one's parameters")
    ls.add_argument("name", nargs="?", default=None,
                    help="a learner: show its parameters, their defaults and what they do")
    ls.set_defaults(func=_learners)

    # serve/produce suppress defaults so that only the flags given override env and file.
    sv = sub.add_parser("serve", argument_default=argparse.SUPPRESS,
                        help="Kafka consumer service: predict, learn, checkpoint (see README)")
    _kafka_common(sv)
    sv.add_argument("--input-topic", help="events to read (default ihomer-events)")
    sv.add_argument("--output-topic", help="predictions (default ihomer-predictions)")
    sv.add_argument("--dead-letter-topic", help="rejected records (default ihomer-dead-letters)")
    sv.add_argument("--group-id", help="consumer group (default ihomer)")
    sv.add_argument("--consumer-option", dest="consumer", action="append", metavar="KEY=VALUE",
                    help="kafka-python KafkaConsumer setting, e.g. session_timeout_ms=10000")
    sv.add_argument("--learner", help="registered learner name (default ihomer)")
    sv.add_argument("--param", dest="params", action="append", metavar="KEY=VALUE",
                    help="learner parameter (repeatable)")
    sv.add_argument("--seed", type=int, help=f"learner seed (default {DEFAULT_SEED})")
    sv.add_argument("--schema-from", metavar="FILE",
                    help="bind the learner to this file's features and labels (as replay does)")
    sv.add_argument("--labels", help="label convention of --schema-from (as in replay)")
    sv.add_argument("--featurizer", metavar="hashing|embedding[:MODEL]",
                    help="features from the events' text (default: hashing when --schema-from "
                         "is a raw-text stream, else none)")
    sv.add_argument("--featurizer-param", dest="featurizer_params", action="append",
                    metavar="KEY=VALUE", help="featurizer parameter (repeatable)")
    sv.add_argument("--checkpoint-dir", metavar="DIR", help="where state is checkpointed")
    sv.add_argument("--checkpoint-every", type=int, metavar="N",
                    help="checkpoint every N records (default 10000)")
    sv.add_argument("--allow-pickle", action="store_const", const=True,
                    help="allow pickled learners in checkpoints (they can run code when loaded)")
    sv.add_argument("--join-buffer", type=int, metavar="N",
                    help="events that may wait for delayed labels (default 100000)")
    sv.add_argument("--unknown-features", choices=["add", "ignore", "reject"],
                    help="a feature not in the vocabulary (default: add without "
                         "--schema-from, reject with it)")
    sv.add_argument("--feature-keys", choices=["auto", "index", "name"],
                    help="how keys of a features object are read (default auto)")
    sv.add_argument("--max-message-bytes", type=int,
                    help="larger records are dead-lettered (default 1000000)")
    sv.add_argument("--max-labels-per-event", type=int,
                    help="events with more distinct labels are dead-lettered (default 1000: the "
                         "label clustering's cost grows with its square)")
    sv.add_argument("--metrics-host", help="Prometheus endpoint address (default 127.0.0.1)")
    sv.add_argument("--metrics-port", type=int, help="Prometheus port (default 9464, 0: off)")
    sv.add_argument("--poll-timeout-ms", type=int,
                    help="how long one poll waits for records (default 500)")
    sv.add_argument("--idle-exit", type=float, metavar="SECONDS",
                    help="checkpoint and exit after this long without records")
    sv.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    sv.set_defaults(func=_serve)

    pr = sub.add_parser("produce", argument_default=argparse.SUPPRESS,
                        help="publish a file to a topic as service events (replay tool)")
    pr.add_argument("source", nargs="?",
                    help="as for replay (default: the embedded dataset)")
    _kafka_common(pr)
    pr.add_argument("--topic", dest="input_topic", help="default: the service's input topic")
    pr.add_argument("--labels", help="label convention (as in replay)")
    pr.add_argument("--limit", type=_at_least(1), help="publish the first N instances")
    pr.add_argument("--features", choices=["auto", "dense", "sparse", "named"],
                    help="feature layout in the messages (default: the stream's)")
    pr.add_argument("--no-labels", action="store_const", const=True,
                    help="send features only (the service predicts)")
    pr.add_argument("--delay-labels", type=int, metavar="N",
                    help="send each event's labels as a separate message N events later")
    pr.set_defaults(func=_produce)
    return p


DEFAULT_LEARNER = "ihomer"


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "replay":  # serve and produce read every attribute as a setting
        args.argv = list(sys.argv[1:] if argv is None else argv)
    if getattr(args, "learner", "") is None:
        args.learner = DEFAULT_LEARNER
    if (getattr(args, "plot", False) or getattr(args, "predictions", False)) and not args.out:
        args.out = "ihomer-out"
    shown = warnings.formatwarning
    warnings.formatwarning = _one_line  # a warning reads like an error: no source line
    try:
        return int(args.func(args))
    except (ValueError, FileNotFoundError) as e:
        # Bad input or a bad option: one clear line, no traceback (see StreamError).
        print(f"ihomer: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # a disk, a permission: also one line
        print(f"ihomer: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("ihomer: interrupted", file=sys.stderr)
        return 130
    finally:
        warnings.formatwarning = shown


def _one_line(message: Warning | str, category: type[Warning], filename: str, lineno: int,
              line: str | None = None) -> str:
    return f"ihomer: warning: {message}\n"


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
