"""End to end on a real broker: ``ihomer produce`` -> ``ihomer serve`` -> predictions topic.

The service's predictions and prequential metrics must equal an offline ``ihomer replay`` of the
same file with the same learner and seed, exactly: ``--schema-from`` gives the service the label
universe and feature ids the replay uses, and full events go through ``test_then_train_many``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from connectors.kafka_harness import Broker, shared_dataset
from ihomer.learners.registry import make
from ihomer.stream.sources import default_source, open_stream


def produce(broker: Broker, topic: str, source: Path, *extra: str) -> None:
    subprocess.run([sys.executable, "-m", "ihomer.cli", "produce", str(source),
                    "--bootstrap-servers", broker.bootstrap, "--topic", topic, *extra],
                   check=True, timeout=120, capture_output=True)


def replay_summary(source: Path, learner: str, out: Path, *extra: str) -> dict[str, Any]:
    subprocess.run([sys.executable, "-m", "ihomer.cli", "replay", str(source), "--learner",
                    learner, "--seed", "42", "--quiet", "--out", str(out), *extra],
                   check=True, timeout=300, capture_output=True)
    return json.loads((out / "summary.json").read_text())


def offline_predictions(source: Path, learner_name: str) -> list[list[str]]:
    stream = open_stream(source)
    learner = make(learner_name, seed=42).bind(stream.schema)
    pred = learner.test_then_train_many(stream.data)  # type: ignore[attr-defined]
    names = learner.label_vocab.names
    return [sorted(names[j] for j in pred.row(i)) for i in range(len(pred))]


METRICS = ("subset_accuracy", "hamming_loss", "example_precision", "example_recall",
           "example_f1", "micro_precision", "micro_recall", "micro_f1", "macro_precision",
           "macro_recall", "macro_f1")


@pytest.mark.parametrize("learner", ["majority", "river-br-nb", "ihomer"])
def test_service_equals_offline_replay(broker: Broker, start_service: Any, tmp_path: Path,
                                       learner: str) -> None:
    source = shared_dataset("flags.arff.gz")
    topics = broker.topics(1, "e2e")
    produce(broker, topics[0], source)
    n = len(open_stream(source))  # type: ignore[arg-type]
    extra = ["--allow-pickle"] if learner == "river-br-nb" else []  # river models: pickle only
    svc = start_service(broker.bootstrap, topics, "--learner", learner, "--schema-from",
                        str(source), "--checkpoint-dir", str(tmp_path / "ck"), "--idle-exit", "2",
                        *extra)
    assert svc.wait(90) == 0
    stopped = svc.wait_for(lambda r: r["event"] == "stopped", 1)
    assert stopped["learned"] == stopped["predictions"] == n

    out = broker.read(topics[1], n)
    got = [json.loads(r.value) for r in out]
    assert [g["id"] for g in got] == [str(i) for i in range(n)]
    assert [sorted(g["labels"]) for g in got] == offline_predictions(source, learner)
    assert [g["model_version"] for g in got] == list(range(n))
    assert all(g["learned"] and g["latency_ms"] >= 0 for g in got)
    assert all(set(g["scores"]) == set(g["labels"]) for g in got)

    summary = replay_summary(source, learner, tmp_path / "replay")
    assert {k: stopped["metrics"][k] for k in METRICS} == {k: summary[k] for k in METRICS}
    if learner != "river-br-nb":  # checkpointed without pickle, and loaded back as the same model
        from ihomer.connectors.checkpoint import CheckpointStore

        store = CheckpointStore(tmp_path / "ck")
        loaded = store.load_latest()
        store.close()
        assert loaded is not None and loaded.learner is None and loaded.learner_state
        model = make(learner, seed=42).from_state_dict(loaded.learner_state)
        assert model.n_labels == len(open_stream(source).schema.label_names)  # type: ignore[arg-type]


def test_delayed_labels_join_and_expire(broker: Broker, start_service: Any,
                                        tmp_path: Path) -> None:
    source = default_source()
    stream = open_stream(source).head(100)  # type: ignore[attr-defined]
    # Every event's labels come 5 events later: all join with a big enough buffer...
    topics = broker.topics(1, "delay")
    produce(broker, topics[0], source, "--limit", "100", "--delay-labels", "5")
    # The majority learner: one count per labelset shows every joined event in its state.
    svc = start_service(broker.bootstrap, topics, "--learner", "majority", "--schema-from",
                        str(source), "--checkpoint-dir", str(tmp_path / "ck1"), "--idle-exit", "2")
    assert svc.wait(90) == 0
    stopped = svc.wait_for(lambda r: r["event"] == "stopped", 1)
    assert stopped["learned"] == stopped["predictions"] == 100
    assert stopped["labels_never_came"] == 0 and stopped["join_buffer"] == 0
    offline = make("majority").bind(stream.schema)
    offline.learn_many(stream.data)
    from ihomer.connectors.checkpoint import CheckpointStore

    store = CheckpointStore(tmp_path / "ck1")
    loaded = store.load_latest()
    store.close()
    assert loaded is not None
    state = loaded.learner_state
    assert state["labelset_counts"].tolist() == offline.state_dict()["labelset_counts"].tolist()

    # ...and with room for 2 waiting events, 98 are evicted unlabelled and their late labels
    # are dead-lettered; the last two still join.
    topics = broker.topics(1, "delay")
    produce(broker, topics[0], source, "--limit", "100", "--delay-labels", "5")
    svc = start_service(broker.bootstrap, topics, "--schema-from", str(source),
                        "--join-buffer", "2", "--idle-exit", "2")
    assert svc.wait(90) == 0
    stopped = svc.wait_for(lambda r: r["event"] == "stopped", 1)
    assert stopped["predictions"] == 100 and stopped["learned"] == 2
    assert stopped["labels_never_came"] == 98
    assert stopped["dead_letters"]["unknown_event"] == 98
    dlq = broker.read(topics[2], 98)
    assert {dict(r.headers)["ihomer.reason"] for r in dlq} == {b"unknown_event"}


def test_text_events_are_featurized_like_the_replay(broker: Broker, start_service: Any,
                                                    tmp_path: Path) -> None:
    # A raw-text stream: the service hashes the text as the replay does, so a learner that
    # uses the features (mlhat) gives the replay's numbers.
    source = shared_dataset("debtags.jsonl.gz")
    topics = broker.topics(1, "text")
    produce(broker, topics[0], source, "--limit", "300")
    hashing = ["--featurizer-param", "n_features=1024"]
    svc = start_service(broker.bootstrap, topics, "--learner", "mlhat", "--schema-from",
                        str(source), "--checkpoint-dir", str(tmp_path / "ck"), "--idle-exit", "2",
                        *hashing)
    assert svc.wait(120) == 0
    stopped = svc.wait_for(lambda r: r["event"] == "stopped", 1)
    assert stopped["learned"] == stopped["predictions"] == 300
    summary = replay_summary(source, "mlhat", tmp_path / "replay", "--limit", "300", *hashing)
    assert {k: stopped["metrics"][k] for k in METRICS} == {k: summary[k] for k in METRICS}
