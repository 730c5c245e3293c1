"""Text featurizers: embeddings per second, and what they buy on debtags.

Measures

1. throughput: texts per second of the hashing featurizer and of the embedding model on the CPU
   (and on a CUDA GPU when PyTorch sees one) for a few model batch sizes, on the first
   ``--texts`` debtags descriptions, after a warm-up batch (model load and JIT excluded);
2. quality: prequential replays of debtags (first ``--limit`` instances, all by default) with a
   learner (``--learner``, default ``mlhat``) over hashed features and over embeddings, next to
   the majority-labelset baseline. The embedding replay featurizes in the worker thread, as
   ``ihomer replay --featurizer embedding`` does, so its wall time shows what is left of the
   model's cost once it overlaps the learner;
3. overlap: the embedding replay of the first ``--overlap`` instances with the featurizer
   inline and in the worker thread.

Writes ``bench/results/embeddings.json``. Needs the ``text`` extra for the embedding parts
(skipped with a note without it). Example::

    python bench/embeddings.py --limit 5000 --texts 2000
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

from paths import DATASETS, ROOT

from ihomer.evaluate.prequential import METRIC_KEYS, prequential
from ihomer.learners.registry import make
from ihomer.stream.featurize import featurize_stream, make_featurizer
from ihomer.stream.sources import limit_stream, open_stream

DEBTAGS = DATASETS / "debtags.jsonl.gz"


def throughput(featurizer: Any, texts: list[str], chunk: int) -> float:
    """Texts per second, fed ``chunk`` texts per call as a featurized stream would."""
    featurizer.transform(texts[:chunk])  # warm-up: JIT, lazy CUDA/cuDNN initialisation
    t0 = time.perf_counter()
    for start in range(0, len(texts), chunk):
        featurizer.transform(texts[start: start + chunk])
    return len(texts) / (time.perf_counter() - t0)


def quality(source: Path, limit: int | None, learner: str, spec: str | None,
            params: dict[str, Any], device: str, seed: int, queue_depth: int = 4
            ) -> dict[str, Any]:
    stream = limit_stream(open_stream(source), limit)
    featurizer = None
    if spec is not None:
        stream, featurizer = featurize_stream(stream, spec, params, device=device,
                                              queue_depth=queue_depth)
    t0 = time.perf_counter()
    result = prequential(stream, make(learner, seed=seed), learner_name=learner, seed=seed)
    s = result.summary
    out = {k: s[k] for k in ("instances", "n_features", *METRIC_KEYS)}
    out["seconds"] = time.perf_counter() - t0
    out["featurizer_seconds"] = getattr(stream, "seconds", 0.0)
    out["learner_seconds"] = s["learner_seconds"]
    out["featurizer"] = None if featurizer is None else {"spec": featurizer.spec,
                                                         **featurizer.params()}
    print(f"  {learner} + {spec or 'none'} (queue {queue_depth}): micro_f1 "
          f"{out['micro_f1']:.4f}  example_f1 {out['example_f1']:.4f}  "
          f"subset {out['subset_accuracy']:.4f}  "
          f"({out['seconds']:.1f} s, featurizer {out['featurizer_seconds']:.1f} s)", flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--source", default=str(DEBTAGS))
    ap.add_argument("--limit", type=int, default=None, help="instances replayed (default: all)")
    ap.add_argument("--texts", type=int, default=2000, help="texts timed for throughput")
    ap.add_argument("--batch-sizes", default="16,64,256", help="model batch sizes timed")
    ap.add_argument("--learner", default="mlhat")
    ap.add_argument("--model", default="embedding", help="embedding spec: embedding[:MODEL]")
    ap.add_argument("--overlap", type=int, default=2000,
                    help="instances of the inline-vs-worker-thread comparison (0: skip)")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "embeddings.json"))
    args = ap.parse_args()

    texts = [t or "" for t in open_stream(args.source).data.texts[: args.texts]]  # type: ignore[attr-defined]
    res: dict[str, Any] = {
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "source": args.source, "limit": args.limit, "learner": args.learner,
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "cores": os.cpu_count(), "load_average": os.getloadavg()[0],
        "python": platform.python_version(),
    }
    hashing = make_featurizer("hashing")
    res["throughput"] = {"hashing_cpu_texts_per_s": throughput(hashing, texts, 256)}
    print(f"hashing: {res['throughput']['hashing_cpu_texts_per_s']:,.0f} texts/s", flush=True)

    devices: list[str] = []
    try:
        import torch

        devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
        res["torch"] = torch.__version__
    except ImportError:
        res["embedding"] = "skipped: the text extra is not installed"
        print(res["embedding"])
    for device in devices:
        t0 = time.perf_counter()
        f = make_featurizer(args.model, device=device)
        res[f"model_load_s_{device}"] = time.perf_counter() - t0
        res["model"] = f.params()["model"]
        res[f"torch_threads_{device}"] = f.params()["threads"]
        for bs in (int(b) for b in args.batch_sizes.split(",")):
            f.batch_size = bs
            rate = throughput(f, texts, max(bs, 256))
            res["throughput"][f"embedding_{device}_batch{bs}_texts_per_s"] = rate
            print(f"embedding on {device}, batch {bs}: {rate:,.1f} texts/s", flush=True)

    print(f"quality on {Path(args.source).name}, first {args.limit or 'all'} instances:")
    runs = {"majority": quality(Path(args.source), args.limit, "majority", None, {}, "cpu",
                                args.seed),
            "hashing": quality(Path(args.source), args.limit, args.learner, "hashing", {}, "cpu",
                               args.seed)}
    if devices:
        runs["embedding"] = quality(Path(args.source), args.limit, args.learner, args.model,
                                    {}, devices[-1], args.seed)
    res["quality"] = runs
    if devices and args.overlap:
        # The same embedding replay with the featurizer inline (queue 0) and in the worker
        # thread (queue 4): the difference is the model time hidden behind the learner.
        print(f"overlap, first {args.overlap} instances:")
        res["overlap"] = {
            f"queue_{q}_seconds": quality(Path(args.source), args.overlap, args.learner,
                                          args.model, {}, devices[-1], args.seed, q)["seconds"]
            for q in (0, 4)}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2, sort_keys=True) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
