"""Prometheus metrics of the service, on their own registry and HTTP endpoint.

A private :class:`~prometheus_client.CollectorRegistry` keeps the service's series apart from
anything else in the process (and lets tests build several services in one interpreter). The
endpoint binds to 127.0.0.1 unless told otherwise: metrics reveal traffic volumes and model
quality, which is nobody else's business by default.

Model-side series (label clusters, restructures, drifts) are read from the learner when it
exposes them, as ``stats()`` keys or ``n_clusters`` / ``n_restructures`` / ``n_drifts``
attributes, and are 0 for learners that have no such notion.
"""

from __future__ import annotations

from typing import Any

from ihomer.connectors.events import REASONS
from ihomer.evaluate.metrics import METRIC_NAMES

try:
    from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
except ModuleNotFoundError:  # pragma: no cover - the kafka extra is not installed
    CollectorRegistry = None  # type: ignore[assignment,misc]

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
MODEL_STATS = ("clusters", "restructures", "drifts")


def model_stat(learner: Any, key: str) -> float:
    """``learner.stats()[key]`` or ``learner.n_<key>`` when the learner has it, else 0."""
    stats = getattr(learner, "stats", None)
    if callable(stats):
        value = stats().get(key)
        if isinstance(value, int | float):
            return float(value)
    value = getattr(learner, f"n_{key}", 0)
    return float(value) if isinstance(value, int | float) else 0.0


#: The service's counters of join state moved with partitions (``ihomer_handover{count}``).
HANDOVER_COUNTS = ("handed_over", "labels_handed_over", "taken_over", "labels_held")


class ServiceMetrics:
    """Every series the service exports, plus the HTTP server that serves them."""

    def __init__(self) -> None:
        if CollectorRegistry is None:
            raise ValueError("the Prometheus endpoint needs prometheus-client: "
                             "pip install 'ihomer[kafka]' (or --metrics-port 0 to disable it)")
        r = self.registry = CollectorRegistry()
        self.events_in = Counter("ihomer_events_in", "Records read from the input topic",
                                 registry=r)
        self.predictions_out = Counter("ihomer_predictions_out", "Predictions sent", registry=r)
        self.learned = Counter("ihomer_events_learned", "Events learned", registry=r)
        self.dead_letters = Counter("ihomer_dead_letters", "Records sent to the dead-letter topic",
                                    ["reason"], registry=r)
        for reason in REASONS:
            self.dead_letters.labels(reason)
        self.labels_missing = Counter("ihomer_labels_never_came",
                                      "Predicted events evicted from the join buffer unlabelled",
                                      registry=r)
        self.ignored_features = Gauge("ihomer_ignored_features",
                                      "Unknown features ignored so far", registry=r)
        self.missing_values = Gauge("ihomer_missing_values",
                                    "Missing (null) feature values read as absent so far",
                                    registry=r)
        self.pending = Gauge("ihomer_join_buffer_events", "Events waiting for their labels",
                             registry=r)
        self.held = Gauge("ihomer_held_labels",
                          "Labels held for an event a partition's previous owner may hand over",
                          registry=r)
        self.handover = Gauge("ihomer_handover", "Join state moved with partitions, so far",
                              ["count"], registry=r)
        for name in HANDOVER_COUNTS:
            self.handover.labels(name)
        self.lag = Gauge("ihomer_consumer_lag", "High watermark minus position",
                         ["topic", "partition"], registry=r)
        self.learn_seconds = Histogram("ihomer_learn_seconds", "Learner call per batch",
                                       buckets=_LATENCY_BUCKETS, registry=r)
        self.predict_seconds = Histogram("ihomer_predict_seconds",
                                         "Predict / test-then-train call per batch",
                                         buckets=_LATENCY_BUCKETS, registry=r)
        self.latency = Histogram("ihomer_prediction_latency_seconds",
                                 "Record polled to prediction sent", buckets=_LATENCY_BUCKETS,
                                 registry=r)
        self.checkpoints = Counter("ihomer_checkpoints", "Checkpoints written", registry=r)
        self.checkpoint_seconds = Histogram("ihomer_checkpoint_seconds",
                                            "Flush + checkpoint + commit", registry=r)
        self.model_version = Gauge("ihomer_model_version", "Events the model has learned",
                                   registry=r)
        self.prequential = Gauge("ihomer_prequential", "Cumulative prequential metrics",
                                 ["metric"], registry=r)
        self.model = Gauge("ihomer_model", "Learner statistics (0 when not exposed)", ["stat"],
                           registry=r)
        for name in METRIC_NAMES:
            self.prequential.labels(name)
        for key in MODEL_STATS:
            self.model.labels(key)
        self._server: Any = None

    def serve(self, host: str, port: int) -> None:
        try:
            self._server, _ = start_http_server(port, addr=host, registry=self.registry)
        except OSError as e:
            raise OSError(e.errno, f"metrics endpoint {host}:{port}: {e.strerror} (choose "
                          "another --metrics-port, or 0 for none)") from None

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def update_model(self, learner: Any, quality: dict[str, float]) -> None:
        for name, value in quality.items():
            self.prequential.labels(name).set(value)
        for key in MODEL_STATS:
            self.model.labels(key).set(model_stat(learner, key))
