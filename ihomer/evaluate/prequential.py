"""Prequential (test-then-train) evaluation, MOA's interleaved protocol.

Every instance is first predicted by the model as it stands and then learned, from the very
first instance on: no warm-up window is excluded, so the numbers are comparable with the
published full-stream results in ``shared/anchors``.

The loop hands the learner whole CSR batches through ``test_then_train_many``, which keeps the
exact per-instance order (predict row *i*, learn row *i*, then row *i+1*) while letting jitted
learners run the loop without returning to Python. ``batched=True`` instead calls
``predict_many`` on a whole batch and then ``learn_many`` on it: faster for some learners, but
the protocol then differs (row *i+1* is predicted before row *i* is learned), so it is off by
default and recorded in the summary.

Timing: ``seconds`` runs from the first instance to the last and covers prediction, learning
and the metric updates. Loading the jitted kernels (numba's cache; the metric kernels and the
learner's own, see ``MultiLabelLearner.warm_up``) happens before the clock starts, as a JVM
start or an import would, and is reported as ``warm_up_seconds``.

Outputs: a summary (metrics, instances/s, peak memory, parameters), a time series of cumulative
and rolling metrics, and the learner's events (restructures, drifts) with their instance index.
"""

from __future__ import annotations

import json
import platform
import resource
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from ihomer import __version__
from ihomer.evaluate.metrics import MultiLabelMetrics, RollingMultiLabelMetrics
from ihomer.learners.adapters import as_learner
from ihomer.learners.base import MultiLabelLearner, Predictions, RowError
from ihomer.stream.base import Batch, Stream, stream_length

METRIC_KEYS = (
    "subset_accuracy", "hamming_loss",
    "example_precision", "example_recall", "example_f1",
    "micro_precision", "micro_recall", "micro_f1",
    "macro_precision", "macro_recall", "macro_f1",
)


def peak_rss_bytes() -> int:
    """Peak resident set size of this process (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


@dataclass
class Result:
    """What one prequential run produced."""

    summary: dict[str, Any]
    curve: list[dict[str, float]]
    events: list[dict[str, Any]] = field(default_factory=list)

    def write(self, out_dir: str | Path, plot: bool = False) -> list[Path]:
        """Write ``summary.json``, ``curve.csv``, ``events.csv`` (and ``curve.png``)."""
        from ihomer.evaluate.report import write_curve_csv, write_events_csv, write_plot

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        paths = [out / "summary.json", out / "curve.csv", out / "events.csv"]
        paths[0].write_text(json.dumps(self.summary, indent=2, sort_keys=True) + "\n")
        write_curve_csv(self.curve, paths[1])
        write_events_csv(self.events, paths[2])
        if plot:
            paths.append(write_plot(self, out / "curve.png"))
        else:  # an earlier run's plot must not pass for this run's
            (out / "curve.png").unlink(missing_ok=True)
        return paths


ProgressCallback = Callable[[int, float, dict[str, float]], None]


def prequential(
    stream: Stream,
    learner: Any,
    *,
    learner_name: str | None = None,
    batch_size: int = 256,
    window: int = 1000,
    curve_points: int = 200,
    batched: bool = False,
    seed: int | None = None,
    progress: ProgressCallback | None = None,
    total: int | None = None,
    max_seconds: float | None = None,
    should_stop: Callable[[], bool] | None = None,
    on_answers: Callable[[int, Batch, Predictions], None] | None = None,
) -> Result:
    """Run ``learner`` prequentially over ``stream``.

    Parameters
    ----------
    learner
        An ihomer learner, or any object with river's ``learn_one``/``predict_one``.
    batch_size
        Rows handed to the learner per call (does not change results unless ``batched``).
    window
        Size of the sliding window of the rolling metrics.
    curve_points
        About how many points the time series gets (one every ``total / curve_points`` rows).
    batched
        Use ``predict_many`` then ``learn_many`` per batch (not exact prequential; see module).
    progress
        Called after each batch with ``(instances, seconds, current metrics)``.
    total
        Number of instances, when known, to space the curve points (default: ``len(stream)``).
    max_seconds
        Time budget, as MOA's ``EvaluatePrequential -t``: stop once the learner has used this
        many seconds and report the metrics over the instances seen so far (``summary
        ["complete"]`` is then false). Chunks are sized from the measured rate so that a slow
        learner overshoots the budget by about a tenth at most; cutting a batch never changes
        results in exact mode.
    should_stop
        Asked before each part of a batch is handed over; once it says True the run ends
        there, as when the budget runs out (``summary["stopped"]`` says which). The CLI
        passes a flag its SIGINT and SIGTERM handlers set, so that Ctrl-C keeps the metrics
        of every instance finished.
    on_answers
        Called with ``(index of the part's first instance, the part, the learner's answers
        to it)`` as each part is scored: per-instance output for significance tests or checks
        of the metrics (what ``ihomer replay --predictions`` writes), as MOA's
        ``EvaluatePrequential -o`` does.
    """
    model: MultiLabelLearner = as_learner(learner)
    schema = stream.schema
    model.bind(schema)
    if total is None:
        total = stream_length(stream)
    every = max(1, (total or 100_000) // max(1, curve_points))
    cumulative = MultiLabelMetrics()
    rolling = RollingMultiLabelMetrics(window)
    _warm_up_metric_kernels()
    warm_up_seconds = model.warm_up()  # kernel loading: a start-up cost, reported apart
    curve: list[dict[str, float]] = []
    n = 0
    learn_seconds = 0.0
    stopped: str | None = None
    started = datetime.now(UTC).isoformat(timespec="seconds")
    t0 = time.perf_counter()
    if progress is not None:
        progress(0, 0.0, cumulative.get())  # the clock starts
    for batch in stream.batches(batch_size):
        start = 0
        while start < len(batch):
            if max_seconds is not None and learn_seconds >= max_seconds:
                stopped = "budget"
            elif should_stop is not None and should_stop():
                stopped = "interrupted"
            if stopped:
                break
            # Exact mode cuts the batch at curve points so the series lands on exact instance
            # counts (cutting cannot change its results); batched mode must keep its batches.
            stop = len(batch) if batched else min(len(batch), start + every - (n % every))
            if max_seconds is not None and not batched:
                stop = min(stop, start + _budget_chunk(n, learn_seconds, max_seconds))
            part = batch.slice(start, stop) if (start, stop) != (0, len(batch)) else batch
            t1 = time.perf_counter()
            try:
                if batched:
                    pred = model.predict_many(part)
                    model.learn_many(part)
                else:
                    pred = model.test_then_train_many(part)
            except RowError as e:  # named by its place in the part: name the stream's record
                raise e.in_stream(n, schema.source) from None
            learn_seconds += time.perf_counter() - t1
            n_labels = max(schema.n_labels, model.n_labels)
            cumulative.update(part.label_indptr, part.label_ids, pred.indptr, pred.label_ids,
                              n_labels)
            rolling.update(part.label_indptr, part.label_ids, pred.indptr, pred.label_ids,
                           n_labels)
            if on_answers is not None:
                on_answers(n, part, pred)
            crossed = (n + len(part)) // every > n // every
            n += len(part)
            start = stop
            if crossed:
                curve.append(_curve_row(n, time.perf_counter() - t0, cumulative, rolling))
        if progress is not None:
            progress(n, time.perf_counter() - t0, cumulative.get())
        if stopped:
            break
    if stopped is None and schema.limit is not None and n >= schema.limit:
        # the first instances of a longer stream (--limit, or a recording made with convert
        # --limit): a prefix's numbers must not pass for a full-stream run (bench/compare.py
        # sets full runs against published ones)
        stopped = "limit"
    complete = stopped is None
    seconds = time.perf_counter() - t0
    if not curve or curve[-1]["instance"] != n:
        curve.append(_curve_row(n, seconds, cumulative, rolling))
    events = [dict(e) for e in getattr(model, "events", [])]
    metrics = cumulative.get()
    summary: dict[str, Any] = {
        "learner": learner_name or type(getattr(model, "model", model)).__name__,
        "source": schema.source,
        "labels_from": schema.labels_from,
        "instances": n,
        "complete": complete,
        # None, "budget" (max_seconds), "interrupted" (should_stop) or "limit" (the stream is
        # a prefix: Schema.limit)
        "stopped": stopped,
        "stream_instances": n if complete else
        schema.whole_instances if stopped == "limit" else total,
        "limit": schema.limit,
        "max_seconds": max_seconds,
        "n_features": schema.n_features,
        "n_labels": max(schema.n_labels, model.n_labels),
        "seconds": seconds,
        "learner_seconds": learn_seconds,
        "warm_up_seconds": warm_up_seconds,
        "instances_per_s": n / seconds if seconds > 0 else 0.0,
        "peak_rss_bytes": peak_rss_bytes(),
        **{k: metrics[k] for k in METRIC_KEYS},
        "params": model.params(),
        "seed": seed,
        "protocol": "batched" if batched else "prequential",
        "batch_size": batch_size,
        "window": window,
        "events": len(events),
        "missing_values": getattr(model, "n_missing", 0),  # read as absent (learners.base)
        "ihomer_version": __version__,
        "started": started,
        "python": platform.python_version(),
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
    }
    model_summary = getattr(model, "summary", None)  # size, drift and memory figures
    if callable(model_summary):
        summary["model"] = model_summary()
    return Result(summary=summary, curve=curve, events=events)


def _budget_chunk(n: int, used: float, budget: float) -> int:
    """Instances to hand over next under a time budget: a tenth of what the measured rate
    says is left (at least one), so the budget is overshot by little even for a learner that
    takes seconds per instance."""
    if n == 0 or used <= 0.0:
        return 1
    return max(1, int(n / used * (budget - used) / 10))


def _warm_up_metric_kernels() -> None:
    """Load the jitted metric kernels before the clock starts: their first call reads numba's
    cache (or compiles), a cost of the harness that must not be charged to the learner."""
    one = np.array([0, 1], dtype=np.int64)
    ids = np.array([0], dtype=np.int32)
    for m in (MultiLabelMetrics(), RollingMultiLabelMetrics(2)):
        m.update(one, ids, one, ids, 1)
        m.get()


def _curve_row(n: int, seconds: float, cumulative: MultiLabelMetrics,
               rolling: RollingMultiLabelMetrics) -> dict[str, float]:
    row: dict[str, float] = {"instance": n, "seconds": round(seconds, 6)}
    c, r = cumulative.get(), rolling.get()
    for k in METRIC_KEYS:
        row[k] = c[k]
    for k in METRIC_KEYS:
        row[f"rolling_{k}"] = r[k]
    return row
