"""Parse, convert and replay throughput of the stream layer (default: imdb, 120,919 instances).

Measures, on one core:

1. ARFF parse time (gzip text -> CSR arrays);
2. conversion time to Parquet and to Arrow IPC, and the file sizes;
3. replay read throughput: iterating the recorded stream's CSR batches alone;
4. the full prequential harness with the ``noop`` learner on the Parquet and Arrow files
   (reading + protocol + all cumulative and rolling metrics): the floor under every learner.

Writes ``bench/results/throughput.json``. Example: ``python bench/throughput.py imdb``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

from paths import DATASETS, ROOT

from ihomer.evaluate.prequential import peak_rss_bytes, prequential
from ihomer.learners.baselines import NoOp
from ihomer.stream.recorded import RecordedStream, write_recorded
from ihomer.stream.sources import open_stream


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dataset", nargs="?", default="imdb")
    ap.add_argument("--labels", default=None)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "throughput.json"))
    args = ap.parse_args()
    src = DATASETS / f"{args.dataset}.arff.gz"
    res: dict[str, object] = {"dataset": args.dataset, "machine": platform.machine(),
                              "cores": os.cpu_count(), "python": platform.python_version()}
    t0 = time.perf_counter()
    stream = open_stream(src, labels=args.labels)
    res["parse_s"] = time.perf_counter() - t0
    n = len(stream)  # type: ignore[arg-type]
    res["instances"] = n
    # Compile (or load from cache) the jitted metric kernels before anything is timed.
    prequential(stream.head(100), NoOp())  # type: ignore[attr-defined]
    with tempfile.TemporaryDirectory() as tmp:
        for suffix in (".parquet", ".arrow"):
            path = Path(tmp) / f"s{suffix}"
            t0 = time.perf_counter()
            write_recorded(stream, path)
            key = suffix[1:]
            res[f"convert_{key}_s"] = time.perf_counter() - t0
            res[f"{key}_bytes"] = path.stat().st_size
            rec = RecordedStream(path)
            t0 = time.perf_counter()
            rows = sum(len(b) for b in rec.batches(4096))
            dt = time.perf_counter() - t0
            assert rows == n
            res[f"read_{key}_instances_per_s"] = n / dt
            result = prequential(RecordedStream(path), NoOp(), batch_size=4096)
            res[f"replay_noop_{key}_instances_per_s"] = result.summary["instances_per_s"]
    res["peak_rss_bytes"] = peak_rss_bytes()
    for k, v in res.items():
        print(f"{k:36s} {v:,.3f}" if isinstance(v, float) else f"{k:36s} {v}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2) + "\n")


if __name__ == "__main__":
    main()
