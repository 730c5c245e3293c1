"""Baselines: hand-computed majority labelset, river face of the learners, growing labels."""

from __future__ import annotations

import numpy as np
from conftest import random_stream
from river import naive_bayes

from ihomer.learners.baselines import BinaryRelevance, MajorityLabelset, NoOp
from ihomer.learners.registry import available, make, parse_params


def test_majority_labelset_by_hand() -> None:
    m = MajorityLabelset()
    seq = [["a"], ["b", "c"], ["b", "c"], ["a"], ["a"], []]
    expected = [set(), {"a"}, {"a"}, {"b", "c"}, {"b", "c"}, {"a"}]
    for y, want in zip(seq, expected, strict=True):
        got = {k for k, v in m.predict_one({}).items() if v}
        assert got == want
        m.learn_one({}, y)


def test_majority_batch_equals_one_by_one() -> None:
    stream = random_stream(n=150, seed=1)
    a, b = MajorityLabelset().bind(stream.schema), MajorityLabelset().bind(stream.schema)
    batch = stream.data
    fast = a.test_then_train_many(batch)
    for i, inst in enumerate(stream):
        one = batch.slice(i, i + 1)
        p = b.predict_many(one)
        b.learn_many(one)
        np.testing.assert_array_equal(p.row(0), fast.row(i))
        assert inst is not None


def test_labels_may_grow_and_absent_labels_are_kept() -> None:
    br = BinaryRelevance(naive_bayes.GaussianNB())
    br.learn_one({"x": 1.0}, {"a": True, "b": False})
    assert set(br.predict_one({"x": 1.0})) == {"a", "b"}
    br.learn_one({"x": 2.0}, ["c"])
    assert set(br.predict_one({"x": 1.0})) == {"a", "b", "c"}
    proba = br.predict_proba_one({"x": 1.0})
    assert set(proba["a"]) == {False, True}
    assert abs(proba["a"][True] + proba["a"][False] - 1) < 1e-12


def test_noop_predicts_nothing() -> None:
    stream = random_stream(n=20)
    p = NoOp().bind(stream.schema).test_then_train_many(stream.data)
    assert len(p) == 20 and len(p.label_ids) == 0


def test_registry_builds_every_learner_and_rejects_unknown_parameters() -> None:
    names = set(available())
    assert {"noop", "majority", "river-br-ht", "river-br-nb", "river-br-lr", "river-cc"} <= names
    stream = random_stream(n=30)
    for name in names:
        learner = make(name, seed=1).bind(stream.schema)
        assert len(learner.test_then_train_many(stream.data)) == 30
    try:
        make("majority", {"nope": 1})
    except ValueError as e:
        assert "nope" in str(e)
    else:  # pragma: no cover
        raise AssertionError("unknown parameter accepted")


def test_parse_params() -> None:
    assert parse_params(["a=1", "b=0.5", "c=flat", "d=True", "e=[1, 2]"]) == {
        "a": 1, "b": 0.5, "c": "flat", "d": True, "e": [1, 2]}
    assert parse_params(["no_change=false", "x=TRUE", "y=False"]) == {
        "no_change": False, "x": True, "y": False}
