"""Where a learner's answer is won or lost: its probabilities, and each stage of its answer.

``ihomer`` and ``mlhat`` answer in three stages, and this script scores each of them in the
exact prequential protocol (``test_then_train_many`` over the whole stream) on the anchored
shared datasets:

1. the per-label probabilities the decoder over all labels chooses from (``mlhat``: its
   leaves' mixture; ``ihomer``: P(cluster) P(label | cluster); both with the neighbours' vote
   mixed in), scored by proper scoring rules summed over the labels (log loss with the
   probabilities clipped to the decoder's own ``[EPS, 1 - EPS]``, and Brier);
2. ``threshold``: the answer the decoder is handed as its first rival (``mlhat``: its
   tree's threshold answer; ``ihomer``: the union of the answers of the clusters the meta
   tree switched on); ``decoded``: what the decoder gives (that answer, the most likely seen
   set, or the expected-F1 set, as rated);
3. ``final``: after the recent instances' rival answers (``no_change``).

The probabilities are read where the decoder receives them (its ``decode`` is wrapped for
the run), so a configuration must decode over all labels exactly once per row (not
``decode="clusters"`` or ``"threshold"``, and not with decoders inside ``ihomer``'s trees).
Answers are scored by the project's metrics (river's conventions).

Example::

    python bench/answer_stages.py --out /tmp/stages.json ihomer mlhat
    python bench/answer_stages.py --datasets ohsumed,medical 'ihomer:{"vote_weight": 0.0}'
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
from run import select
from tune_ihomer import ROOT, anchored, build, open_row, parse_config

from ihomer.evaluate.metrics import MultiLabelMetrics
from ihomer.learners import decoding
from ihomer.learners.base import Predictions
from ihomer.learners.registry import DEFAULT_SEED

STAGES = ("threshold", "decoded", "final")


def label_scores(probs: np.ndarray, indptr: np.ndarray, ids: np.ndarray) -> tuple[float, float]:
    """Mean over the rows of the summed per-label log loss (probabilities clipped to the
    decoder's ``[EPS, 1 - EPS]``) and of the summed Brier score, against the CSR truth."""
    truth = np.zeros(probs.shape, np.bool_)
    rows = np.repeat(np.arange(len(probs)), np.diff(indptr))
    truth[rows, ids] = True
    p = np.clip(probs, decoding.EPS, 1.0 - decoding.EPS)
    log_loss = -np.where(truth, np.log(p), np.log(1.0 - p)).sum(axis=1).mean()
    brier = ((probs - truth) ** 2).sum(axis=1).mean()
    return float(log_loss), float(brier)


def run(name: str, params: dict[str, Any], stream: Any) -> dict[str, float]:
    """One prequential run, with the decoder's inputs and outputs captured on the way."""
    n_labels = stream.schema.n_labels
    probs: list[np.ndarray] = []
    handed: list[Predictions] = []
    decoded: list[Predictions] = []
    original = decoding.SeenLabelsets.decode

    def capture(self: decoding.SeenLabelsets, scores: np.ndarray, threshold: Predictions,
                avail: np.ndarray | None = None, truth: Any = None,
                rated: np.ndarray | None = None) -> Predictions:
        out = original(self, scores, threshold, avail, truth, rated)
        if truth is not None:  # rows being learned (each exactly once, in stream order)
            block = np.zeros((len(scores), n_labels))
            block[:, : scores.shape[1]] = scores
            probs.append(block)
            handed.append(threshold)
            decoded.append(out)
        return out

    decoding.SeenLabelsets.decode = capture  # type: ignore[method-assign]
    try:
        model = build(name, name, params, params.get("seed", DEFAULT_SEED)).bind(stream.schema)
        final = model.test_then_train_many(stream.data)
    finally:
        decoding.SeenLabelsets.decode = original  # type: ignore[method-assign]
    data = stream.data
    captured = sum(len(p) for p in probs)
    if captured != len(data):
        raise SystemExit(f"{name} {params}: label-set decoders were handed {captured} rows "
                         f"for {len(data)} learned ones; this configuration does not decode "
                         "over all labels exactly once per row (no decoder over all labels, or "
                         "more decoders inside the trees)")
    out: dict[str, float] = {}
    out["log_loss"], out["brier"] = label_scores(np.concatenate(probs), data.label_indptr,
                                                 data.label_ids)
    for stage, pred in zip(STAGES, (Predictions.concat(handed), Predictions.concat(decoded),
                                    final), strict=True):
        metric = MultiLabelMetrics()
        metric.update(data.label_indptr, data.label_ids, pred.indptr, pred.label_ids, n_labels)
        got = metric.get()
        out[f"{stage}_subset_accuracy"] = got["subset_accuracy"]
        out[f"{stage}_example_f1"] = got["example_f1"]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("configs", nargs="+", help="LEARNER or LEARNER:{dict}, as tune_ihomer.py")
    ap.add_argument("--datasets", help="comma-separated names (default: the anchored ones)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "answer_stages.json"))
    args = ap.parse_args()
    configs = [(c, *parse_config(c)) for c in args.configs]
    rows = select(args.datasets, None) if args.datasets else anchored()
    names = [row["name"] for row in rows]
    results: dict[str, Any] = {}
    for text, name, params in configs:
        per: dict[str, dict[str, float]] = {}
        for row in rows:
            ds = row["name"]
            per[ds] = run(name, params, open_row(row))
            r = per[ds]
            print(f"{text:24s} {ds:15s} log loss {r['log_loss']:7.3f}  Brier {r['brier']:.4f}  "
                  + "  ".join(f"{s} {r[f'{s}_subset_accuracy']:.4f}/{r[f'{s}_example_f1']:.4f}"
                              for s in STAGES), flush=True)
        keys = next(iter(per.values())).keys()
        mean = {k: float(np.mean([p[k] for p in per.values()])) for k in keys}
        results[text] = {"learner": name, "params": params, "mean": mean, "datasets": per}
        print(f"{text:24s} {'MEAN':15s} " + "  ".join(f"{k} {v:.4f}" for k, v in mean.items()),
              flush=True)
    if len(configs) > 1:
        a, b = (results[c[0]]["datasets"] for c in configs[:2])
        better = sum(a[d]["log_loss"] < b[d]["log_loss"] for d in names)
        print(f"{configs[0][0]} has the lower log loss on {better} of {len(names)} datasets "
              f"against {configs[1][0]}")
    Path(args.out).write_text(json.dumps({"datasets": names, "configs": results}, indent=1)
                              + "\n")


if __name__ == "__main__":
    main()
