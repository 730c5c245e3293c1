"""``ihomer produce``: publish a recorded stream, ARFF or JSON-lines file to a topic.

This is the replay tool for end-to-end runs: every instance becomes one message of the service's
event contract (see :mod:`ihomer.connectors.events`), keyed by its event id, in stream order.
Features keep the stream's layout (a dense list for dense streams, ``{index: value}`` for sparse
ones, or ``{name: value}`` on request), so a service bound to the same file's schema sees
exactly the rows an offline ``ihomer replay`` sees. Floats are written with ``repr`` precision,
which JSON reads back bit for bit.

``delay_labels=N`` sends each event without labels and its labels as a separate message N events
later, to exercise the service's delayed-label join.
"""

from __future__ import annotations

import json
import time
from collections import deque
from collections.abc import Iterator
from typing import Any

from ihomer.stream.base import Stream

FEATURE_FORMS = ("auto", "dense", "sparse", "named")


def event_messages(stream: Stream, features: str = "auto", labels: bool = True,
                   delay_labels: int = 0) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(key, message)`` for every instance of ``stream`` (and its delayed labels)."""
    if features not in FEATURE_FORMS:
        raise ValueError(f"features must be one of {FEATURE_FORMS}, got {features!r}")
    schema = stream.schema
    if features == "auto":
        features = "sparse" if schema.sparse else "dense"
    if delay_labels < 0:
        raise ValueError(f"delay_labels must be >= 0, got {delay_labels}")
    fnames = schema.feature_names
    lnames = schema.label_names
    n_features = schema.n_features
    waiting: deque[tuple[str, list[str]]] = deque()
    n = 0
    for batch in stream.batches(4096):
        ptr, idx, val = batch.indptr.tolist(), batch.indices.tolist(), batch.values.tolist()
        lptr, lids = batch.label_indptr.tolist(), batch.label_ids.tolist()
        for i in range(len(batch)):
            eid = batch.event_ids[i] if batch.event_ids is not None else str(n)
            n += 1
            a, b = ptr[i], ptr[i + 1]
            msg: dict[str, Any] = {"id": eid}
            if schema.text and batch.texts is not None:
                msg["text"] = batch.texts[i]
            if not schema.text or a != b:
                # a missing value (NaN, an ARFF '?') is a null in a dense row and left out of
                # an object: the service reads both as absent, as a replay does
                if features == "dense":
                    row: list[float | None] = [0.0] * max(n_features,
                                                          idx[b - 1] + 1 if b > a else 0)
                    for j, v in zip(idx[a:b], val[a:b], strict=True):
                        row[j] = None if v != v else v
                    msg["features"] = row
                else:
                    keys = [str(j) for j in idx[a:b]] if features == "sparse" else [
                        fnames[j] for j in idx[a:b]]
                    msg["features"] = {k: v for k, v in zip(keys, val[a:b], strict=True)
                                       if v == v}
            names = [lnames[j] for j in lids[lptr[i]: lptr[i + 1]]]
            if labels and delay_labels == 0:
                msg["labels"] = names
            yield eid, msg
            if labels and delay_labels:
                waiting.append((eid, names))
                if len(waiting) > delay_labels:
                    lid, lnm = waiting.popleft()
                    yield lid, {"id": lid, "labels": lnm}
    while waiting:
        lid, lnm = waiting.popleft()
        yield lid, {"id": lid, "labels": lnm}


def publish(stream: Stream, topic: str, bootstrap_servers: str,
            producer_options: dict[str, Any] | None = None, **kwargs: Any) -> tuple[int, float]:
    """Send :func:`event_messages` to ``topic``; return ``(messages, seconds)``.

    Returns only when every message is acknowledged (the producer is flushed), so a caller may
    start a consumer that expects them all.
    """
    from kafka import KafkaProducer

    opts = {"acks": "all", "linger_ms": 20, "batch_size": 262144, **(producer_options or {})}
    producer = KafkaProducer(bootstrap_servers=bootstrap_servers, **opts)
    errors: list[BaseException] = []
    t0 = time.perf_counter()
    n = 0
    try:
        for key, msg in event_messages(stream, **kwargs):
            producer.send(topic, key=key.encode(), value=json.dumps(msg).encode()) \
                .add_errback(errors.append)
            n += 1
        producer.flush()
    finally:
        producer.close(timeout=10)
    if errors:
        raise RuntimeError(f"{len(errors)} of {n} messages were not delivered to {topic!r}: "
                           f"{errors[0]!r}")
    return n, time.perf_counter() - t0
