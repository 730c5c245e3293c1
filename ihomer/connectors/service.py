"""``ihomer serve``: a long-running consumer that predicts and learns from a Kafka topic.

Per polled batch and partition, in record order, the service parses each record (rejects go to
the dead-letter topic), groups consecutive events of one kind into runs and hands each run to
the learner's array face:

* ``full`` events (features and labels): ``test_then_train_many``, the exact prequential
  protocol, so the predictions and metrics equal an offline ``ihomer replay`` of the same stream;
* ``predict`` events (no labels yet): ``predict_many``; the event waits in a bounded *join
  buffer* for its labels, and is evicted (counted as "labels never came") when the buffer is full;
* ``labels`` events (an id and labels): the waiting event is learned with ``learn_many`` and its
  earlier prediction is scored in the prequential metrics.

**Commit protocol.** The learner, the metrics, the join buffer and the offsets they cover (the
next offset of every partition processed) are checkpointed every ``checkpoint_every`` records,
when partitions are revoked, and on SIGTERM/SIGINT. A checkpoint first flushes the producer (so
every prediction and dead letter it covers is in Kafka), then writes the checkpoint durably, and
only then commits the offsets to the consumer group (each held back to the earliest record
kept for later: see :meth:`Service._offsets`). Every partition starts at the group's
committed offset (or at ``auto_offset_reset``); after a crash between a checkpoint and its
commit the service skips the records its reloaded checkpoint already covers, and where
another instance has gone further, it goes on from there. So the model learns every event
exactly once, while predictions and dead letters of the records after the checkpoint are sent
again (at-least-once output).

With several instances in one group, each owns a model trained on the partitions it holds and
its own checkpoint directory; key events by id so that delayed labels meet their event. The
events of a partition still waiting for labels move with it (:meth:`Service.hand_over`).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, TextIO

import numpy as np

from ihomer import __version__
from ihomer.connectors.checkpoint import CheckpointError, CheckpointStore, supports_state
from ihomer.connectors.config import ServiceConfig, unknown_environment
from ihomer.connectors.events import REASONS, Event, EventParser, Rejected
from ihomer.connectors.metrics import HANDOVER_COUNTS, ServiceMetrics, model_stat
from ihomer.evaluate.metrics import MultiLabelMetrics
from ihomer.learners.base import MultiLabelLearner, Predictions
from ihomer.learners.registry import make
from ihomer.stream.base import INDEX_DTYPE, PTR_DTYPE, Batch

DEBUG_PAUSE_ENV = "IHOMER_DEBUG_PAUSE"
_LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40}


class JsonLog:
    """One JSON object per line on stderr: machine-readable, and one line per event."""

    def __init__(self, level: str = "info", out: TextIO | None = None) -> None:
        if level not in _LEVELS:
            raise ValueError(f"log_level must be one of {', '.join(_LEVELS)}, got {level!r}")
        self.level = _LEVELS[level]
        self.out = out or sys.stderr

    def __call__(self, event: str, level: str = "info", **fields: Any) -> None:
        if _LEVELS[level] < self.level:
            return
        line = {"ts": round(time.time(), 3), "level": level, "event": event, **fields}
        self.out.write(json.dumps(line, default=str) + "\n")
        self.out.flush()


def _debug_pauses() -> dict[str, tuple[float, int]]:
    """``IHOMER_DEBUG_PAUSE=stage:seconds[@n],...``: a test hook that sleeps at ``checkpoint``
    (inside the write, before the manifest's rename), ``commit`` (checkpoint durable, offsets
    not yet committed) or ``batch`` (after each polled batch), from the n-th time on (default
    1), so that a test can kill the process at that exact point."""
    out = {}
    for part in filter(None, os.environ.get(DEBUG_PAUSE_ENV, "").split(",")):
        stage, _, rest = part.partition(":")
        seconds, _, nth = rest.partition("@")
        out[stage.strip()] = (float(seconds or 0), int(nth or 1))
    return out


@dataclass
class Record:
    """What the service keeps of a consumed record: enough to dead-letter it or send it again
    (kafka-python's ``ConsumerRecord`` has these fields too)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes


@dataclass
class Pending:
    """A predicted event waiting for its labels; ``raw`` and ``key`` are its message as it
    came, sent again to its partition when the partition moves (see :meth:`Service.hand_over`)."""

    indices: np.ndarray
    values: np.ndarray
    predicted: np.ndarray
    text: str | None
    partition: int
    offset: int
    raw: bytes
    key: bytes | None


def _pack_bytes(items: list[bytes | None]) -> dict[str, np.ndarray]:
    """Byte strings (``None`` allowed) as arrays, for the checkpoint's ``.npz``."""
    ptr = np.zeros(len(items) + 1, dtype=PTR_DTYPE)
    np.cumsum([len(b or b"") for b in items], out=ptr[1:])
    return {"ptr": ptr,
            "data": np.frombuffer(b"".join(b or b"" for b in items), dtype=np.uint8).copy(),
            "present": np.asarray([b is not None for b in items], dtype=bool)}


def _unpack_bytes(s: dict[str, np.ndarray]) -> list[bytes | None]:
    ptr, data = s["ptr"], s["data"].tobytes()
    return [data[ptr[k]: ptr[k + 1]] if s["present"][k] else None
            for k in range(len(s["present"]))]


class JoinBuffer:
    """Predicted events by id, oldest first, at most ``capacity`` of them."""

    def __init__(self, capacity: int) -> None:
        if capacity < 0:
            raise ValueError(f"join_buffer must be >= 0, got {capacity}")
        self.capacity = capacity
        self.rows: OrderedDict[str, Pending] = OrderedDict()

    def __len__(self) -> int:
        return len(self.rows)

    def __contains__(self, event_id: str) -> bool:
        return event_id in self.rows

    def add(self, event_id: str, row: Pending) -> list[str]:
        """Add a row; return the ids evicted to make room (their labels never came). With
        ``capacity`` 0 nothing waits, and nothing is counted as evicted: the service was told
        that no labels follow."""
        if self.capacity == 0:
            return []
        self.rows[event_id] = row
        evicted = []
        while len(self.rows) > self.capacity:
            evicted.append(self.rows.popitem(last=False)[0])
        return evicted

    def pop(self, event_id: str) -> Pending | None:
        return self.rows.pop(event_id, None)

    def take(self, partition: int) -> list[tuple[str, Pending]]:
        """Remove and return the events waiting from ``partition``, oldest first."""
        mine = [eid for eid, row in self.rows.items() if row.partition == partition]
        return [(eid, self.rows.pop(eid)) for eid in mine]

    def state(self) -> dict[str, Any]:
        rows = list(self.rows.values())
        # the rows and their predictions as one CSR batch (predictions in the label columns)
        csr = Batch.from_rows([r.indices for r in rows], [r.values for r in rows],
                              [r.predicted for r in rows])
        return {
            "ids": list(self.rows),
            "indptr": csr.indptr,
            "indices": csr.indices,
            "values": csr.values,
            "pred_indptr": csr.label_indptr,
            "pred_ids": csr.label_ids,
            "texts": [r.text for r in rows],
            "partitions": np.asarray([r.partition for r in rows], dtype=np.int64),
            "offsets": np.asarray([r.offset for r in rows], dtype=np.int64),
            "raw": _pack_bytes([r.raw for r in rows]),
            "keys": _pack_bytes([r.key for r in rows]),
        }

    def load(self, s: dict[str, Any]) -> None:
        ip, pp = s["indptr"], s["pred_indptr"]
        raw, keys = _unpack_bytes(s["raw"]), _unpack_bytes(s["keys"])
        for k, eid in enumerate(s["ids"]):
            self.rows[eid] = Pending(
                s["indices"][ip[k]: ip[k + 1]], s["values"][ip[k]: ip[k + 1]],
                s["pred_ids"][pp[k]: pp[k + 1]], s["texts"][k], int(s["partitions"][k]),
                int(s["offsets"][k]), raw[k] or b"", keys[k])


class HeldLabels:
    """Labels that came for an event not (yet) waiting, while their partition is being taken
    over: the previous owner's waiting events are sent again to the end of the partition, so
    labels read before them meet them only there. Oldest first, at most ``capacity``."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.rows: OrderedDict[str, tuple[list[str], Record]] = OrderedDict()

    def __len__(self) -> int:
        return len(self.rows)

    def __contains__(self, event_id: str) -> bool:
        return event_id in self.rows

    def add(self, event_id: str, names: list[str], rec: Record) -> list[tuple[str, Record]]:
        """Hold the labels of an id not held yet; return ``(id, record)`` of those pushed out
        to make room."""
        assert event_id not in self.rows
        self.rows[event_id] = (names, rec)
        out = []
        while len(self.rows) > self.capacity:
            eid, (_, old) = self.rows.popitem(last=False)
            out.append((eid, old))
        return out

    def pop(self, event_id: str) -> tuple[list[str], Record] | None:
        return self.rows.pop(event_id, None)

    def take(self, topic: str, partition: int) -> list[tuple[str, list[str], Record]]:
        """Remove and return the labels held for ``partition``, oldest first."""
        mine = [eid for eid, (_, r) in self.rows.items()
                if r.topic == topic and r.partition == partition]
        return [(eid, *self.rows.pop(eid)) for eid in mine]

    def state(self) -> dict[str, Any]:
        recs = [r for _, r in self.rows.values()]
        return {"ids": list(self.rows), "labels": [n for n, _ in self.rows.values()],
                "topics": [r.topic for r in recs],
                "partitions": np.asarray([r.partition for r in recs], dtype=np.int64),
                "offsets": np.asarray([r.offset for r in recs], dtype=np.int64),
                "values": _pack_bytes([r.value for r in recs]),
                "keys": _pack_bytes([r.key for r in recs])}

    def load(self, s: dict[str, Any]) -> None:
        values, keys = _unpack_bytes(s["values"]), _unpack_bytes(s["keys"])
        for k, eid in enumerate(s["ids"]):
            self.rows[eid] = (list(s["labels"][k]), Record(
                s["topics"][k], int(s["partitions"][k]), int(s["offsets"][k]), keys[k],
                values[k] or b""))


_NO_LABELS = np.zeros(0, dtype=INDEX_DTYPE)


def _header(rec: Any, name: str) -> bytes | None:
    """The value of a record's header ``name`` (``None`` when absent)."""
    for k, v in getattr(rec, "headers", None) or ():
        if k == name:
            return bytes(v) if v is not None else None
    return None


def _unknown(event_id: str) -> str:
    return (f"labels for event {event_id!r}, which is not waiting for labels (never seen, "
            f"already learned or evicted from the join buffer)")


class Service:
    """The consumer service; :meth:`run` blocks until SIGTERM/SIGINT or ``idle_exit``."""

    def __init__(self, cfg: ServiceConfig, log: JsonLog | None = None) -> None:
        self.cfg = cfg
        self.log = log or JsonLog(cfg.log_level)
        self.pauses = _debug_pauses()
        self._pause_counts: dict[str, int] = {}
        if cfg.checkpoint_every < 1:
            raise ValueError(f"checkpoint_every must be >= 1, got {cfg.checkpoint_every}")
        self.learner: MultiLabelLearner = make(cfg.learner, cfg.params, seed=cfg.seed)
        self.universe = 0
        n_features = None
        schema = None
        if cfg.schema_from:
            from ihomer.stream.sources import open_stream

            schema = open_stream(cfg.schema_from, labels=cfg.labels).schema
        # The replay's policy: a raw-text stream is hashed unless a featurizer is named.
        spec = cfg.featurizer
        if spec is None and schema is not None and schema.text and schema.n_features == 0:
            spec = "hashing"
        self.featurizer = None
        self.featurizer_spec = {"spec": spec, "params": cfg.featurizer_params}
        if spec is not None:
            from ihomer.stream.featurize import make_featurizer

            self.featurizer = make_featurizer(spec, cfg.featurizer_params)
        elif cfg.featurizer_params:
            raise ValueError("featurizer_params given but no featurizer")
        if schema is not None:
            if self.featurizer is not None:
                schema = self.featurizer.schema(schema)
            n_features = schema.n_features
            self.universe = schema.n_labels
        self.quality = MultiLabelMetrics()
        self.join = JoinBuffer(cfg.join_buffer)
        self.held = HeldLabels(cfg.join_buffer)
        #: partitions taken over, and the end of each as first fetched after the assignment:
        #: labels for an event not waiting are held until the service has read that far
        self.takeover_ends: dict[tuple[str, int], int | None] = {}
        self.positions: dict[tuple[str, int], int] = {}
        self.counters: dict[str, Any] = {"events_in": 0, "predictions": 0, "learned": 0,
                                         "labels_never_came": 0, "handed_over": 0,
                                         "labels_handed_over": 0, "taken_over": 0,
                                         "labels_held": 0, "stale_dropped": 0,
                                         "dead_letters": dict.fromkeys(REASONS, 0)}
        self.store: CheckpointStore | None = None
        if cfg.checkpoint_dir:
            if not (cfg.allow_pickle or supports_state(self.learner)):
                # Refuse now rather than at the first checkpoint, after work that would be lost.
                raise CheckpointError(
                    f"learner {cfg.learner!r} has no state_dict/from_state_dict, so it can only "
                    f"be checkpointed with pickle; pass --allow-pickle to accept that")
            self.store = CheckpointStore(cfg.checkpoint_dir, allow_pickle=cfg.allow_pickle,
                                         pause=lambda: self._pause("checkpoint"))
            self._restore()
        else:
            self.log("no_checkpoint_dir", "warning",
                     detail="state will not survive a restart; offsets are committed after each "
                            "flush, so a restart starts a fresh model at the committed offsets")
        if schema is not None:
            self.learner.bind(schema)  # after a restore this checks that the ids still agree
        self.parser = EventParser(
            self.learner.feature_vocab, self.learner.label_vocab, n_features=n_features,
            unknown_features=cfg.unknown_feature_policy(), feature_keys=cfg.feature_keys,
            max_message_bytes=cfg.max_message_bytes, featurizer=self.featurizer is not None,
            max_labels_per_event=cfg.max_labels_per_event)
        self.parser.ignored_features = int(self.counters.get("ignored_features", 0))
        self.parser.missing_values = int(self.counters.get("missing_values", 0))
        self.metrics = ServiceMetrics() if cfg.metrics_port else None
        self._stop = False
        self._failed = False
        self._failed_polls = 0  # polls in a row that found no broker
        self._max_poll_records = 500  # the consumer's (kafka-python's default until run())
        self._send_error: BaseException | None = None
        self._since_checkpoint = 0
        self._handed = False  # state sent away since the last checkpoint (see hand_over)
        #: the offset after the last record this instance handed over to each partition:
        #: should the partition come back, the takeover window reaches past it
        self._handed_to: dict[tuple[str, int], int] = {}
        #: partitions assigned whose committed offset the main loop has not yet compared
        #: with this model's position (:meth:`_after_assignment`)
        self._unreconciled: set[tuple[str, int]] = set()
        # the positions the last checkpoint written (or loaded) covers: a shutdown right after
        # an interval checkpoint has nothing new to write, only offsets to commit
        self._saved_positions: dict[tuple[str, int], int] | None = (
            dict(self.positions) if self.store is not None and self.store.generations() else None)
        self._at: dict[str, Any] | None = None  # the record being handled, for a fatal error
        self._no_assignment_since: float | None = None
        self._wait_logged = 0.0
        self._stalled_since: float | None = None
        self._stall_logged = False
        self._consumer: Any = None
        self._producer: Any = None

    # ------------------------------------------------------------------ state
    def _restore(self) -> None:
        assert self.store is not None
        loaded = self.store.load_latest()
        if loaded is None:
            self.log("checkpoint_none", directory=str(self.store.directory))
            return
        meta = loaded.manifest["meta"]
        for key, mine in (("learner", self.cfg.learner), ("params", self.cfg.params),
                          ("seed", self.cfg.seed), ("featurizer", self.featurizer_spec)):
            if meta.get(key) != json.loads(json.dumps(mine)):  # as JSON: tuples are lists
                raise CheckpointError(
                    f"{loaded.path}: written with {key}={meta.get(key)!r}, but the service runs "
                    f"with {key}={mine!r}; use the same settings or another --checkpoint-dir")
        if loaded.learner is not None:
            if type(loaded.learner) is not type(self.learner):
                raise CheckpointError(
                    f"{loaded.path}: holds a {type(loaded.learner).__name__}, not the "
                    f"{type(self.learner).__name__} of {self.cfg.learner!r}")
            self.learner = loaded.learner
        else:
            assert loaded.learner_state is not None
            self.learner = type(self.learner).from_state_dict(loaded.learner_state)
        st = loaded.state
        self.quality = MultiLabelMetrics.from_state_dict(st["metrics"])
        self.join.load(st["join"])
        self.held.load(st["held"])
        self.counters.update(st["counters"])
        self.universe = max(self.universe, int(st["universe"]))
        self.positions = {(t, int(p)): int(o) for t, parts in meta["offsets"].items()
                          for p, o in parts.items()}
        self.log("checkpoint_loaded", path=str(loaded.path), events_learned=meta["events_learned"],
                 offsets=meta["offsets"])

    def _offsets_json(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for (t, p), o in sorted(self.positions.items()):
            out.setdefault(t, {})[str(p)] = o
        return out

    def checkpoint(self, reason: str, commit: bool = True) -> None:
        """Flush outputs, write a durable checkpoint, then commit the offsets it covers (the
        caller commits them when ``commit`` is false: see :meth:`_listener`)."""
        t0 = time.perf_counter()
        self._producer.flush()
        if self._send_error is not None:
            raise RuntimeError(f"a message could not be sent: {self._send_error}")
        self.counters["ignored_features"] = self.parser.ignored_features
        self.counters["missing_values"] = self.parser.missing_values
        path = None
        unchanged = (self._since_checkpoint == 0 and self._saved_positions == self.positions
                     and not self._handed)
        if self.store is not None and not unchanged:
            meta = {"learner": self.cfg.learner, "params": self.cfg.params, "seed": self.cfg.seed,
                    "featurizer": self.featurizer_spec, "offsets": self._offsets_json(),
                    "events_learned": self.counters["learned"],
                    "input_topic": self.cfg.input_topic, "group_id": self.cfg.group_id}
            state = {"metrics": self.quality.state_dict(), "join": self.join.state(),
                     "held": self.held.state(), "counters": self.counters,
                     "universe": self.universe}
            path = self.store.save(meta, state, self.learner)
            self._saved_positions = dict(self.positions)
            self._pause("commit")
        if commit:
            self._commit()
        self._since_checkpoint = 0
        self._handed = False
        seconds = time.perf_counter() - t0
        if self.metrics is not None:
            self.metrics.checkpoints.inc()
            self.metrics.checkpoint_seconds.observe(seconds)
        self.log("checkpoint", reason=reason, path=str(path) if path else None,
                 events_learned=self.counters["learned"], offsets=self._offsets_json(),
                 seconds=round(seconds, 4))

    def _offsets(self, leaving: Any = ()) -> dict[Any, Any]:
        """The offsets to commit for the partitions held and those ``leaving`` (a cooperative
        revoke's: the consumer's assignment no longer holds them): this model's position, held
        back to the earliest record still kept for later (an event waiting for its labels,
        labels held for their event). Should this instance die without handing them over, the
        partition's next owner reads them again (their events are answered again:
        at-least-once) instead of dead-lettering the labels that come for them. This model
        skips what its own checkpoint covers (:meth:`process`), so it learns nothing twice."""
        from kafka import OffsetAndMetadata, TopicPartition

        kept = self._kept()
        owned = set(self._consumer.assignment()) | set(leaving)
        return {TopicPartition(t, p): OffsetAndMetadata(min(o, kept.get((t, p), o)), "", -1)
                for (t, p), o in self.positions.items() if TopicPartition(t, p) in owned}

    def _kept(self) -> dict[tuple[str, int], int]:
        """The earliest offset of a record kept for later (an event waiting for its labels,
        labels held for their event), by ``(topic, partition)``."""
        kept: dict[tuple[str, int], int] = {}
        records = [((self.cfg.input_topic, r.partition), r.offset) for r in self.join.rows.values()]
        records += [((r.topic, r.partition), r.offset) for _, r in self.held.rows.values()]
        for key, offset in records:
            if offset < kept.get(key, offset + 1):
                kept[key] = offset
        return kept

    def _commit(self) -> None:
        offsets = self._offsets()
        if not offsets:
            return
        try:
            self._consumer.commit(offsets)
        except Exception as e:  # the checkpoint is the truth; the group catches up next time
            self.log("commit_failed", "warning", error=repr(e))

    def _pause(self, stage: str) -> None:
        if stage not in self.pauses:
            return
        seconds, nth = self.pauses[stage]
        self._pause_counts[stage] = self._pause_counts.get(stage, 0) + 1
        if self._pause_counts[stage] >= nth:
            self.log("debug_pause", stage=stage, seconds=seconds,
                     events_learned=self.counters["learned"])
            time.sleep(seconds)

    # ------------------------------------------------------------------ output
    def _on_send_error(self, exc: BaseException) -> None:
        self._send_error = exc

    def _send(self, topic: str, key: bytes | None, value: bytes,
              headers: list[tuple[str, bytes]] | None = None,
              partition: int | None = None) -> Any:
        fut = self._producer.send(topic, key=key, value=value, headers=headers,
                                  partition=partition)
        fut.add_errback(self._on_send_error)
        return fut

    def _dead_letter(self, rec: Any, reason: str, detail: str) -> None:
        self.counters["dead_letters"][reason] += 1
        if self.metrics is not None:
            self.metrics.dead_letters.labels(reason).inc()
        self.log("dead_letter", "debug", reason=reason, detail=detail, partition=rec.partition,
                 offset=rec.offset)
        value = rec.value or b""
        headers = [
            ("ihomer.reason", reason.encode()),
            ("ihomer.error", detail.encode()),
            ("ihomer.source.topic", rec.topic.encode()),
            ("ihomer.source.partition", str(rec.partition).encode()),
            ("ihomer.source.offset", str(rec.offset).encode()),
        ]
        if len(value) > self.cfg.max_message_bytes:
            # An oversized record would be refused by the producer too, which would stop the
            # service; its head goes out, and the source position finds the whole record.
            headers.append(("ihomer.truncated_from", str(len(value)).encode()))
            value = value[: self.cfg.max_message_bytes]
        self._send(self.cfg.dead_letter_topic, rec.key, value, headers)

    def _emit(self, events: list[Event], recs: list[Any], pred: Predictions,
              versions: list[int], learned: bool, t_poll: float) -> None:
        names = self.learner.label_vocab.names
        scores = pred.scores
        ptr, ids = pred.indptr.tolist(), pred.label_ids.tolist()
        sc = scores.tolist() if scores is not None else None
        now = time.perf_counter()
        latency = now - t_poll
        for i, (ev, rec) in enumerate(zip(events, recs, strict=True)):
            a, b = ptr[i], ptr[i + 1]
            labels = [names[j] for j in ids[a:b]]
            out = {
                "id": ev.event_id,
                "labels": labels,
                "scores": dict(zip(labels, sc[a:b] if sc is not None else [1.0] * (b - a),
                                   strict=True)),
                "model_version": versions[i],
                "latency_ms": round(latency * 1000, 3),
                "learned": learned,
                "partition": rec.partition,
                "offset": rec.offset,
            }
            self._send(self.cfg.output_topic, rec.key, json.dumps(out).encode())
        self.counters["predictions"] += len(events)
        if self.metrics is not None:
            self.metrics.predictions_out.inc(len(events))
            for _ in events:
                self.metrics.latency.observe(latency)

    def _score(self, true_ptr: np.ndarray, true_ids: np.ndarray, pred: Predictions) -> None:
        n_labels = max(self.universe, self.learner.n_labels)
        self.quality.update(true_ptr, true_ids, pred.indptr, pred.label_ids, n_labels)

    # ------------------------------------------------------------------ processing
    def process(self, records: list[Any], t_poll: float) -> None:
        """Handle the records of one partition, in offset order. Records below this model's
        own position in the partition (what its checkpoint covers) are skipped: the model has
        learned them, and they come again only when the group's committed offset lags the
        checkpoint (a crash between the two, or a failed commit)."""
        last = records[-1]
        covered = self.positions.get((last.topic, last.partition))
        if covered is not None and records[0].offset < covered:
            fresh = [r for r in records if r.offset >= covered]
            self.log("already_learned", partition=last.partition,
                     records=len(records) - len(fresh), covered=covered)
            records = fresh
            if not records:
                return
        key = (last.topic, last.partition)
        if key in self.takeover_ends and self.takeover_ends[key] is None:
            self._take_partition(key)
        kind: str | None = None
        run: list[tuple[Event, Any]] = []
        for rec in records:
            self._at = {"topic": rec.topic, "partition": rec.partition, "offset": rec.offset}
            handed = _header(rec, "ihomer.handover") == b"event"
            try:
                ev = self.parser.parse(rec.value)
                if handed and ev.kind != "predict":
                    raise Rejected("wrong_type", f"event {ev.event_id!r}: a message with header "
                                                 "'ihomer.handover: event' must carry features "
                                                 "(or text) and no labels")
            except Rejected as r:
                self._dead_letter(rec, r.reason, r.detail)
                continue
            except Exception as e:  # a message the parser did not foresee must
                # not stop the partition for good (each restart would die on it again)
                self._dead_letter(rec, "unreadable", f"the parser failed on it: {e!r}"[:500])
                continue
            ev_kind = "handover" if handed else ev.kind
            if ev_kind != kind and run:
                self._flush(kind, run, t_poll)  # type: ignore[arg-type]
                run = []
            kind = ev_kind
            run.append((ev, rec))
        if run:
            self._flush(kind, run, t_poll)  # type: ignore[arg-type]
        self._at = None
        self.positions[key] = last.offset + 1
        end = self.takeover_ends.get(key)
        if end is not None and last.offset + 1 >= end:
            # caught up with what the previous owner sent: labels still held have no event
            del self.takeover_ends[key]
            for eid, _, held in self.held.take(*key):
                self._dead_letter(held, "unknown_event", _unknown(eid))
        self.counters["events_in"] += len(records)
        self._since_checkpoint += len(records)
        if self.metrics is not None:
            self.metrics.events_in.inc(len(records))

    def _featurize(self, events: list[Event]) -> None:
        """Features from the text of the events that carry one (they replace any given)."""
        if self.featurizer is None:
            return
        texted = [e for e in events if e.text is not None]
        if not texted:
            return
        x = self.featurizer.transform([e.text for e in texted])  # type: ignore[misc]
        ptr = x.indptr.tolist()
        for k, e in enumerate(texted):
            e.indices = x.indices[ptr[k]: ptr[k + 1]]
            e.values = x.values[ptr[k]: ptr[k + 1]]

    def _take_partition(self, key: tuple[str, int]) -> None:
        """With the first records of a partition after it was assigned: find its end, which
        closes the takeover window (left ``None`` when the broker does not answer: labels are
        held meanwhile, and it is asked again with the next records)."""
        from kafka import TopicPartition

        tp = TopicPartition(*key)
        try:
            asked = self._consumer.end_offsets([tp]).get(tp)
        except Exception as e:
            self.log("end_offset_unknown", "warning", partition=key[1], error=repr(e))
            return
        # Tansu 0.6 answers end_offsets with the last batch's base offset + 1, short of the
        # end; the fetch's high watermark is right there, except when it predates this
        # instance's own handover (a partition back to the instance that handed it over),
        # whose records' offsets this instance knows. The largest of the three is the end.
        ends = [asked, self._consumer.highwater(tp), self._handed_to.pop(key, None)]
        known = [int(e) for e in ends if e is not None]
        self.takeover_ends[key] = max(known) if known else None

    def _flush(self, kind: str, run: list[tuple[Event, Any]], t_poll: float) -> None:
        if kind != "labels":
            self._featurize([e for e, _ in run])
        if kind == "full":
            self._test_then_train(run, t_poll)
        elif kind == "predict":
            self._predict(run, t_poll)
        elif kind == "handover":
            self._take_over(run)
        else:
            self._join(run)

    def _timed(self, hist: Any, fn: Any, batch: Batch) -> Any:
        t0 = time.perf_counter()
        out = fn(batch)
        if self.metrics is not None:
            hist.observe(time.perf_counter() - t0)
        return out

    def _test_then_train(self, run: list[tuple[Event, Any]], t_poll: float) -> None:
        events = [e for e, _ in run]
        batch = Batch.from_rows([e.indices for e in events], [e.values for e in events],  # type: ignore[misc]
                                [e.labels for e in events],  # type: ignore[misc]
                                event_ids=[e.event_id for e in events],
                                texts=[e.text for e in events])
        hist = self.metrics.predict_seconds if self.metrics else None
        pred = self._timed(hist, self.learner.test_then_train_many, batch)
        self._score(batch.label_indptr, batch.label_ids, pred)
        base = self.counters["learned"]
        self._emit(events, [r for _, r in run], pred, [base + i for i in range(len(events))],
                   True, t_poll)
        self._learned(len(events))

    def _predict(self, run: list[tuple[Event, Any]], t_poll: float) -> None:
        keep: list[tuple[Event, Any]] = []
        seen: set[str] = set()
        for ev, rec in run:
            if ev.event_id in self.join or ev.event_id in seen:
                self._dead_letter(rec, "duplicate_event",
                                  f"event {ev.event_id!r} is already waiting for its labels")
            else:
                seen.add(ev.event_id)
                keep.append((ev, rec))
        if not keep:
            return
        events = [e for e, _ in keep]
        batch = Batch.from_rows([e.indices for e in events], [e.values for e in events],  # type: ignore[misc]
                                [_NO_LABELS] * len(events), event_ids=[e.event_id for e in events],
                                texts=[e.text for e in events])
        hist = self.metrics.predict_seconds if self.metrics else None
        pred = self._timed(hist, self.learner.predict_many, batch)
        version = self.counters["learned"]
        self._emit(events, [r for _, r in keep], pred, [version] * len(events), False, t_poll)
        self._wait([(ev, rec, pred.row(i).copy()) for i, (ev, rec) in enumerate(keep)])

    def _take_over(self, run: list[tuple[Event, Any]]) -> None:
        """Events another instance predicted and sent back to their partition when it moved
        (:meth:`hand_over`): they wait for their labels here, with that prediction, and are
        not answered again. One already waiting (sent again by an instance that crashed after
        handing it over), or whose prediction header breaks the labels' rules, is
        dead-lettered."""
        rows = []
        seen: set[str] = set()
        for ev, rec in run:
            where = f"event {ev.event_id!r}, header 'ihomer.predicted'"
            try:
                if ev.event_id in self.join or ev.event_id in seen:
                    raise Rejected("duplicate_event", f"event {ev.event_id!r} is already waiting "
                                                      "for its labels (handed over twice?)")
                header = _header(rec, "ihomer.predicted")
                if header is None:
                    raise Rejected("missing_field", f"{where} is missing: a handed-over event "
                                                    "carries the labels it was answered with")
                try:
                    names = json.loads(header)
                except ValueError as e:
                    raise Rejected("malformed_json", f"{where}: {e}") from None
                self.parser.check_label_names(names, where)
            except Rejected as r:
                self._dead_letter(rec, r.reason, r.detail)
                continue
            seen.add(ev.event_id)
            rows.append((ev, rec, self.parser.label_ids(names)))
        self.counters["taken_over"] += len(rows)
        self._wait(rows)

    def _wait(self, rows: list[tuple[Event, Any, np.ndarray]]) -> None:
        """Predicted events join the buffer until their labels come; labels already held for
        one of them are joined now."""
        for ev, rec, predicted in rows:
            evicted = self.join.add(ev.event_id, Pending(
                ev.indices, ev.values, predicted, ev.text, rec.partition,  # type: ignore[arg-type]
                rec.offset, rec.value, rec.key))
            if evicted:
                self.counters["labels_never_came"] += len(evicted)
                if self.metrics is not None:
                    self.metrics.labels_missing.inc(len(evicted))
                self.log("labels_never_came", "debug", ids=evicted)
        found: list[tuple[Event, Any]] = []
        for ev, _, _ in rows:
            got = self.held.pop(ev.event_id)
            if got is not None:
                found.append((Event(ev.event_id, None, None, None, label_names=got[0]), got[1]))
        if found:
            self._join(found)

    def _join(self, run: list[tuple[Event, Any]]) -> None:
        rows: list[tuple[Pending, np.ndarray]] = []
        ids, preds = [], []
        for ev, rec in run:
            p = self.join.pop(ev.event_id)
            if p is None:
                key = (rec.topic, rec.partition)
                end = self.takeover_ends.get(key)
                taking = key in self.takeover_ends and (end is None or rec.offset < end)
                held = ev.event_id in self.held  # labels twice before their event: the 2nd goes
                if taking and not held:  # its event may yet come
                    self.counters["labels_held"] += 1
                    kept = Record(rec.topic, rec.partition, rec.offset, rec.key, rec.value)
                    for eid, out in self.held.add(ev.event_id, ev.label_names or [], kept):
                        self._dead_letter(out, "unknown_event", _unknown(eid))
                else:
                    self._dead_letter(rec, "unknown_event", _unknown(ev.event_id))
                continue
            rows.append((p, self.parser.label_ids(ev.label_names or [])))
            ids.append(ev.event_id)
            preds.append(p.predicted)
        if not rows:
            return
        batch = Batch.from_rows([p.indices for p, _ in rows], [p.values for p, _ in rows],
                                [y for _, y in rows], event_ids=ids,
                                texts=[p.text for p, _ in rows])
        hist = self.metrics.learn_seconds if self.metrics else None
        self._timed(hist, self.learner.learn_many, batch)
        self._score(batch.label_indptr, batch.label_ids, Predictions.from_rows(preds))
        self._learned(len(rows))

    def hand_over(self, parts: Any) -> None:
        """Send the join state of partitions this instance gives up back to them, for their
        next owner: each event waiting for labels goes to the end of its partition as it came
        (key and bytes), headed ``ihomer.handover: event`` with the labels it was answered
        with (``ihomer.predicted``), so the next owner waits for its labels without answering
        it again; held labels go back too (``ihomer.handover: labels``). The next owner holds
        labels it reads before their event until it has read what was in the partition when
        it took it over (:meth:`process`). The caller checkpoints and commits after this."""
        names = self.learner.label_vocab.names
        events = labels = 0
        futures: dict[tuple[str, int], list[Any]] = {}
        for tp in parts:
            self.takeover_ends.pop((tp.topic, tp.partition), None)
            sent = futures.setdefault((tp.topic, tp.partition), [])
            if tp.topic == self.cfg.input_topic:
                mine = self.join.take(tp.partition)
                for _, row in mine:
                    predicted = json.dumps([names[j] for j in row.predicted.tolist()]).encode()
                    sent.append(self._send(tp.topic, row.key, row.raw, [
                        ("ihomer.handover", b"event"), ("ihomer.predicted", predicted),
                        ("ihomer.source.partition", str(row.partition).encode()),
                        ("ihomer.source.offset", str(row.offset).encode())],
                        partition=tp.partition))
                events += len(mine)
            for _, _, rec in self.held.take(tp.topic, tp.partition):
                sent.append(self._send(rec.topic, rec.key, rec.value,
                                       [("ihomer.handover", b"labels")],
                                       partition=rec.partition))
                labels += 1
        if events or labels:
            self._producer.flush()  # the records' offsets, for _take_partition
            for key, sent in futures.items():
                offsets = [f.value.offset for f in sent if f.succeeded()]
                if offsets:
                    self._handed_to[key] = max(offsets) + 1
            self._handed = True
            self.counters["handed_over"] += events
            self.counters["labels_handed_over"] += labels
            self.log("handed_over", partitions=sorted(tp.partition for tp in parts),
                     events=events, labels=labels)

    def _after_assignment(self) -> None:
        """The main loop's part of an assignment (a listener may not block): forget what the
        model keeps of partitions it does not hold, and compare each partition assigned with
        the group's committed offset. Where that is beyond this model's position, another
        instance has read the partition since this model's checkpoint: what the model keeps
        of it is stale (:meth:`drop_stale`), and its position becomes the group's offset.
        Before, an instance restarted on an old checkpoint kept its old position, committed
        it when it read nothing new, and moved the group's offset back: the next owner
        answered and learned all of it again."""
        from kafka import TopicPartition

        mine = {(tp.topic, tp.partition) for tp in self._consumer.assignment()}
        self.drop_stale(set(self._kept()) - mine, "restored from a checkpoint this instance "
                        "wrote before it died, for partitions another instance holds")
        self._unreconciled &= mine
        for key in sorted(self._unreconciled):
            try:
                committed = self._consumer.committed(TopicPartition(*key))
            except Exception as e:  # asked again after the next poll
                self.log("committed_offset_unknown", "warning", partition=key[1],
                         error=repr(e))
                continue
            self._unreconciled.discard(key)
            position = self.positions.get(key)
            if committed is not None and position is not None and committed > position:
                self.drop_stale({key}, f"another instance committed offset {committed} of "
                                       f"this partition, beyond this model's checkpoint "
                                       f"({position})")
                self.positions[key] = committed

    def drop_stale(self, stale: Any, why: str) -> None:
        """Forget the waiting events and held labels of the partitions ``stale`` (a set of
        ``(topic, partition)``). Only a checkpoint restored after this instance died without
        a revoke, or an eviction (:meth:`_lost`), leaves records of partitions that another
        instance reads (a revoke hands them over): that owner reads them again, from the
        commit they held back (:meth:`_offsets`), so kept here they would wait for labels that
        went elsewhere, and be handed over again later."""
        events, held = [], []
        for topic, partition in stale:
            if topic == self.cfg.input_topic:
                events += self.join.take(partition)
            held += self.held.take(topic, partition)
        if events or held:
            self._handed = True
            self.counters["stale_dropped"] += len(events)
            self.log("stale_dropped", "warning", events=len(events), labels=len(held),
                     partitions=sorted(p for _, p in stale), detail=why)

    def _learned(self, n: int) -> None:
        self.counters["learned"] += n
        if self.metrics is not None:
            self.metrics.learned.inc(n)

    # ------------------------------------------------------------------ consumer loop
    def _revoked(self, parts: Any) -> dict[Any, Any]:
        """Partitions leave this instance (a rebalance, or closing): hand their join state
        over, checkpoint, and return the offsets to commit for them."""
        # After a failure the model may hold part of a batch whose offsets were not
        # recorded: checkpointing it would re-learn that part after the restart.
        offsets: dict[Any, Any] = {}
        if parts and not self._failed:
            try:
                self.hand_over(parts)
                if self._since_checkpoint or self._handed:
                    self.checkpoint("revoked", commit=False)
                offsets = self._offsets(parts)
            except Exception as e:  # a failed checkpoint is retried; crash-safe anyway
                self.log("checkpoint_failed", "error", error=repr(e))
        self.log("partitions_revoked", partitions=sorted(tp.partition for tp in parts),
                 holding=self._holding(parts))
        return offsets

    def _holding(self, leaving: Any = ()) -> list[int]:
        """The partitions this instance holds, less those ``leaving`` (for the log: under the
        cooperative assignor a rebalance names only the partitions that move)."""
        return sorted(tp.partition for tp in set(self._consumer.assignment()) - set(leaving))

    def _lost(self, parts: Any) -> None:
        """Partitions taken away without a revoke: the group evicted this instance (it missed
        its session or poll deadline), so their next owner may be reading them already, from
        the commit held back to their earliest waiting event (:meth:`_offsets`). Handed over
        now, each waiting event would reach that owner twice (dead-lettered the second time as
        a duplicate), and labels held here would come after it had closed its takeover window:
        they are dropped instead, and read again there. The model keeps what it learned and
        checkpoints it; nothing is committed (the group refuses an evicted member's commit)."""
        if parts and not self._failed:
            for tp in parts:
                self.takeover_ends.pop((tp.topic, tp.partition), None)
            self.drop_stale({(tp.topic, tp.partition) for tp in parts},
                            "the group evicted this instance: the partitions' next owner reads "
                            "their waiting events again from the last commit")
            try:
                if self._since_checkpoint or self._handed:
                    self.checkpoint("lost", commit=False)
            except Exception as e:
                self.log("checkpoint_failed", "error", error=repr(e))
        self.log("partitions_lost", "warning", partitions=sorted(tp.partition for tp in parts),
                 holding=self._holding(parts))

    def _assigned(self, parts: Any) -> None:
        for tp in parts:  # its end is read with its first records (see process)
            self.takeover_ends[(tp.topic, tp.partition)] = None
        self._unreconciled |= {(tp.topic, tp.partition) for tp in parts}
        covered = {tp.partition: self.positions[(tp.topic, tp.partition)]
                   for tp in parts if (tp.topic, tp.partition) in self.positions}
        self.log("partitions_assigned", partitions=sorted(tp.partition for tp in parts),
                 holding=self._holding(), covered=covered)

    def _listener(self) -> Any:
        """The rebalance listener: a revoke hands the partitions' join state over,
        checkpoints and commits before the partitions move, so their next owner starts where
        this model stopped (:meth:`_revoked`); an eviction drops it (:meth:`_lost`).

        kafka-python 3 calls listeners on its IO loop, where a blocking ``commit`` is refused
        ("Cannot block on net.run() from the IO thread"); so the listener is async and awaits
        ``commit_async``. An assignment only logs and opens the takeover window (see
        :meth:`hand_over`): the consumer starts at the group's committed offset, and
        :meth:`process` skips what this model's checkpoint already covers. Under the
        cooperative assignor the partitions named are only those that move."""
        import kafka

        service = self

        class Listener(kafka.AsyncConsumerRebalanceListener):
            async def on_partitions_revoked(self, parts: Any) -> None:
                offsets = service._revoked(parts)
                if offsets:
                    try:
                        await service._consumer.commit_async(offsets)
                    except Exception as e:
                        service.log("commit_failed", "warning", error=repr(e))

            async def on_partitions_lost(self, parts: Any) -> None:
                service._lost(parts)

            async def on_partitions_assigned(self, parts: Any) -> None:
                service._assigned(parts)

        return Listener()

    def _stop_handler(self, signum: int, frame: Any) -> None:
        self.log("signal", signal=signal.Signals(signum).name)
        self._stop = True

    def _lag(self, tp: Any) -> int | None:
        """High watermark minus this model's position in ``tp``; None while either is unknown
        (no fetch answered yet, or the group's offset still being fetched)."""
        hw = self._consumer.highwater(tp)
        pos = self.positions.get((tp.topic, tp.partition))
        if pos is None:  # not read from yet: the consumer's fetch position, so that a
            try:         # partition waiting its turn shows its whole backlog
                pos = self._consumer.position(tp, timeout_ms=100)
            except Exception:
                pos = None
        return None if hw is None or pos is None else max(0, hw - pos)

    def _backlog(self) -> int | None:
        """Records known to wait in the partitions held (None: not known for one of them)."""
        total = 0
        for tp in self._consumer.assignment():
            lag = self._lag(tp)
            if lag is None:
                return None
            total += lag
        return total

    def _watch(self, now: float, polled: bool) -> bool:
        """Say what an operator cannot otherwise see, and whether the service is idle.

        No partition held: ``waiting_for_assignment`` every 30 s (a group stuck in a
        rebalance says nothing else). Records known to wait that no poll brings for 30 s:
        ``no_progress`` (a broker outage, which kafka-python mostly hides), then
        ``progress_resumed``. Idle means caught up: partitions held, none with records known to
        wait, nothing polled; an outage or a rebalance is not idleness, so ``--idle-exit``
        never ends a run with records unread.
        """
        if not self._consumer.assignment():
            self._stalled_since = None
            if self._no_assignment_since is None:
                self._no_assignment_since = self._wait_logged = now
            elif now - self._wait_logged >= 30:
                self._wait_logged = now
                self.log("waiting_for_assignment", "warning", group_id=self.cfg.group_id,
                         seconds=round(now - self._no_assignment_since))
            return False
        self._no_assignment_since = None
        backlog = None if polled else self._backlog()
        if polled or backlog == 0:
            if self._stall_logged and self._stalled_since is not None:
                self.log("progress_resumed", seconds=round(now - self._stalled_since, 1))
            self._stalled_since, self._stall_logged = None, False
            return not polled
        if self._stalled_since is None:
            self._stalled_since = now
        elif now - self._stalled_since >= 30 and not self._stall_logged:
            self._stall_logged = True
            self.log("no_progress", "warning", seconds=round(now - self._stalled_since, 1),
                     backlog=backlog)
        return False

    def _gauges(self) -> None:
        assert self.metrics is not None
        for tp in self._consumer.assignment():
            lag = self._lag(tp)
            if lag is not None:
                self.metrics.lag.labels(tp.topic, str(tp.partition)).set(lag)
        self.metrics.pending.set(len(self.join))
        self.metrics.held.set(len(self.held))
        for name in HANDOVER_COUNTS:
            self.metrics.handover.labels(name).set(self.counters[name])
        self.metrics.ignored_features.set(self.parser.ignored_features)
        self.metrics.missing_values.set(self.parser.missing_values)
        self.metrics.model_version.set(self.counters["learned"])
        self.metrics.update_model(self.learner, self.quality.get())

    def summary(self) -> dict[str, Any]:
        """Counters, prequential metrics and model statistics, as logged at shutdown."""
        return {**self.counters, "ignored_features": self.parser.ignored_features,
                "missing_values": self.parser.missing_values,
                "join_buffer": len(self.join), "held_labels": len(self.held),
                "metrics": self.quality.get(),
                "model": {k: model_stat(self.learner, k) for k in ("clusters", "restructures",
                                                                   "drifts")}}

    def _poll(self) -> dict[Any, list[Any]]:
        """The consumer's next records; ``{}`` while the broker cannot be reached.

        kafka-python reconnects by itself, but a poll can still raise a retriable error (seen:
        ``KafkaConnectionError`` while a broker restarts). A poll that raises has handed out
        no record, so polling again loses and repeats nothing: the outage is logged once
        (``broker_unavailable``, then ``broker_available`` with the failed polls), and the
        loop keeps polling, stoppable by SIGTERM, as a consumer waiting for its broker would.
        Errors that are not retriable still end the service.
        """
        from kafka.errors import KafkaError

        try:
            # no more records than the next checkpoint is due after, so that
            # --checkpoint-every N holds below the consumer's max_poll_records too
            due = max(1, self.cfg.checkpoint_every - self._since_checkpoint)
            polled = self._consumer.poll(timeout_ms=self.cfg.poll_timeout_ms,
                                         max_records=min(due, self._max_poll_records))
        except KafkaError as e:
            if not e.retriable:
                raise
            if self._failed_polls == 0:
                self.log("broker_unavailable", "warning", error=repr(e))
            self._failed_polls += 1
            time.sleep(min(0.1 * self._failed_polls, 1.0))
            return {}
        if self._failed_polls:
            self.log("broker_available", failed_polls=self._failed_polls)
            self._failed_polls = 0
        return polled

    def run(self) -> int:
        from kafka import KafkaConsumer, KafkaProducer
        from kafka.errors import InconsistentGroupProtocolError, KafkaConfigurationError

        cfg = self.cfg
        if cfg.consumer.get("enable_auto_commit"):
            raise ValueError("consumer option enable_auto_commit must stay off: the service "
                             "commits offsets itself, after each durable checkpoint")
        # The kernels load (the first run after an install: compile, about a minute on two
        # cores) before the consumer joins its group, not inside the first events' latency.
        if getattr(self.learner, "jitted", False):
            self.log("loading_kernels", learner=cfg.learner)
            self.log("kernels_loaded", seconds=round(self.learner.warm_up(), 3))
        consumer_opts = {**cfg.consumer, "enable_auto_commit": False}
        shown = dict(consumer_opts)  # for the log: assignors by name, as they were given
        if "partition_assignment_strategy" in consumer_opts:
            consumer_opts["partition_assignment_strategy"] = _assignors(
                consumer_opts["partition_assignment_strategy"])
        polled = consumer_opts.get("max_poll_records", 500)
        if isinstance(polled, bool) or not isinstance(polled, int) or polled < 1:
            raise ValueError(f"consumer option max_poll_records must be a positive integer, "
                             f"not {polled!r}")
        self._max_poll_records = polled
        try:
            self._producer = KafkaProducer(bootstrap_servers=cfg.bootstrap_servers,
                                           **cfg.producer)
        except (TypeError, ValueError, KafkaConfigurationError) as e:
            raise ValueError(f"producer options {cfg.producer}: {e}") from None
        try:
            self._consumer = KafkaConsumer(bootstrap_servers=cfg.bootstrap_servers,
                                           group_id=cfg.group_id, **consumer_opts)
        except (TypeError, ValueError, KafkaConfigurationError) as e:
            raise ValueError(f"consumer options {cfg.consumer}: {e}") from None
        if self.metrics is not None:
            self.metrics.serve(cfg.metrics_host, cfg.metrics_port)
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._stop_handler)
        self._consumer.subscribe([cfg.input_topic], listener=self._listener())
        unknown = unknown_environment()
        if unknown:
            self.log("unknown_environment", "warning", names=unknown,
                     detail="IHOMER_* variables that name no setting (misspelt?) are ignored")
        self.log("started", version=__version__, learner=cfg.learner, group_id=cfg.group_id,
                 input_topic=cfg.input_topic, output_topic=cfg.output_topic,
                 dead_letter_topic=cfg.dead_letter_topic,
                 bootstrap_servers=cfg.bootstrap_servers, checkpoint_dir=cfg.checkpoint_dir,
                 checkpoint_every=cfg.checkpoint_every,
                 consumer=_shown(shown),
                 producer=_shown(cfg.producer),
                 metrics=f"http://{cfg.metrics_host}:{cfg.metrics_port}/metrics"
                 if self.metrics else None)
        code = 0
        last_record = time.monotonic()
        last_gauges = 0.0
        try:
            while not self._stop:
                polled = self._poll()
                t_poll = time.perf_counter()
                now = time.monotonic()
                if self._send_error is not None:
                    raise RuntimeError(f"a message could not be sent: {self._send_error}")
                if self._unreconciled and self._consumer.assignment():
                    self._after_assignment()
                for records in polled.values():
                    if records:
                        self.process(records, t_poll)
                if polled:
                    self._pause("batch")
                if not self._watch(now, bool(polled)):
                    last_record = now  # idle: caught up on partitions held, nothing polled
                if self._since_checkpoint >= cfg.checkpoint_every:
                    self.checkpoint("interval")
                if self.metrics is not None and now - last_gauges >= 1.0:
                    self._gauges()
                    last_gauges = now
                if cfg.idle_exit is not None and now - last_record >= cfg.idle_exit:
                    self.log("idle_exit", seconds=cfg.idle_exit)
                    break
            self.checkpoint("shutdown")
        except Exception as e:
            self._failed = True
            said: dict[str, Any] = {}
            if isinstance(e, InconsistentGroupProtocolError):  # said bare by kafka-python
                said["detail"] = ("the group's other members name assignors of another kind "
                                  "(eager: range, roundrobin, sticky; cooperative: "
                                  "cooperative-sticky): every instance of a group must set "
                                  "partition_assignment_strategy alike")
            self.log("fatal", "error", error=repr(e), last_record=self._at, **said)
            code = 1
        finally:
            self._consumer.close(autocommit=False)
            self._producer.close(timeout=10)
            if self.metrics is not None:
                self.metrics.close()
            if self.store is not None:
                self.store.close()
        self.log("stopped", code=code, **self.summary())
        return code


#: ``partition_assignment_strategy`` by the names Kafka's clients give the assignors (kafka-python
#: itself takes classes, which a file, the environment or a flag cannot name)
ASSIGNORS = {
    "range": ("kafka.coordinator.assignors.range", "RangePartitionAssignor"),
    "roundrobin": ("kafka.coordinator.assignors.roundrobin", "RoundRobinPartitionAssignor"),
    "sticky": ("kafka.coordinator.assignors.sticky.sticky_assignor", "StickyPartitionAssignor"),
    "cooperative-sticky": ("kafka.coordinator.assignors.cooperative_sticky",
                           "CooperativeStickyAssignor"),
}


def _assignors(value: Any) -> Any:
    """The consumer option ``partition_assignment_strategy`` as kafka-python takes it: names
    (one, a comma-separated string, or a list) become the assignor classes; anything else
    (classes, from Python) passes as it is."""
    import importlib

    names = value.split(",") if isinstance(value, str) else value
    if not isinstance(names, list | tuple) or not all(isinstance(n, str) for n in names):
        return value
    out = []
    for name in (n.strip() for n in names):
        if name not in ASSIGNORS:
            raise ValueError(f"consumer option partition_assignment_strategy: unknown assignor "
                             f"{name!r}; known: {', '.join(ASSIGNORS)}")
        module, cls = ASSIGNORS[name]
        out.append(getattr(importlib.import_module(module), cls))
    return out


def _shown(options: dict[str, Any]) -> dict[str, Any]:
    """Client options for the log, secrets (passwords, keys, tokens) masked: the effective
    settings of every layer, so that a wrong file or environment value shows at start."""
    secret = ("password", "secret", "token", "key")
    return {k: "***" if any(w in k.lower() for w in secret) and not k.endswith("_deserializer")
            else v if isinstance(v, str | int | float | bool | type(None)) else repr(v)
            for k, v in options.items()}
