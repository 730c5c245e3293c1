"""Tests of the multi-label Hoeffding adaptive tree (ihomer.learners.mlhat)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ihomer.learners.mlhat import MLHAT
from ihomer.learners.mlhat import kernels as K
from ihomer.learners.mlhat.state import (
    C_RLIMIT,
    C_ROOT,
    C_RUSED,
    C_SEEN,
    LF_SW,
    LV_ERR,
    LV_SLAB,
    N_MODELS,
    ND_LEAF,
    P_DELTA,
    P_FADE,
    RF_CNT,
    RF_MAX,
    RF_MIN,
    RF_SQ,
    RF_SUM,
    RV_LSQ,
    RV_LSUM,
    empty_state,
    row_bytes,
)
from ihomer.stream.base import Batch, Schema


# ----------------------------------------------------------------------------- helpers
def make_batch(rows: list[dict[int, float]], labels: list[list[int]]) -> Batch:
    indptr = [0]
    ind: list[int] = []
    val: list[float] = []
    for r in rows:
        for f in sorted(r):
            ind.append(f)
            val.append(r[f])
        indptr.append(len(ind))
    lptr = [0]
    lid: list[int] = []
    for y in labels:
        lid.extend(sorted(y))
        lptr.append(len(lid))
    return Batch(np.array(indptr), np.array(ind), np.array(val), np.array(lptr), np.array(lid))


def dense_stream(n: int, n_features: int = 6, n_labels: int = 3, seed: int = 0,
                 concept: int = 0) -> Batch:
    """Numeric rows. Every label follows the sign of feature ``concept`` (a clear root split),
    flipped when another feature, one per label, exceeds 1 (work for deeper splits)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, n_features))
    other = x[:, [(concept + 1 + j) % n_features for j in range(n_labels)]] > 1.0
    y = (x[:, [concept]] > 0) != other
    rows = [{f: float(v) for f, v in enumerate(r)} for r in x]
    return make_batch(rows, [list(np.flatnonzero(r)) for r in y])


def sparse_stream(n: int, n_features: int, n_labels: int, nnz: int = 5, seed: int = 0) -> Batch:
    """Binary sparse rows. Every label follows the presence of feature 0, flipped when feature
    ``1 + label`` is present."""
    rng = np.random.default_rng(seed)
    rows, labels = [], []
    for _ in range(n):
        feats = set(rng.choice(np.arange(1, n_features), size=nnz, replace=False).tolist())
        if rng.random() < 0.5:
            feats.add(0)
        rows.append(dict.fromkeys(sorted(feats), 1.0))
        labels.append([j for j in range(n_labels) if (0 in feats) != (1 + j in feats)])
    return make_batch(rows, labels)


def run(model: MLHAT, data: Batch, chunk: int = 500) -> list[tuple[int, ...]]:
    out: list[tuple[int, ...]] = []
    for s in range(0, len(data), chunk):
        p = model.test_then_train_many(data.slice(s, s + chunk))
        out.extend(tuple(p.row(i).tolist()) for i in range(len(p)))
    return out


def leaf_of_root(model: MLHAT) -> int:
    s = model._state
    return int(s.nd_i[s.ctr[0], ND_LEAF])


def h2(p: float) -> float:
    return 0.0 if p in (0.0, 1.0) else -(p * math.log2(p) + (1 - p) * math.log2(1 - p))


# ----------------------------------------------------------------------------- hand-computed
def test_entropy_and_hoeffding_bound_by_hand() -> None:
    assert K.entropy2(0.5) == pytest.approx(1.0)
    assert K.entropy2(0.25) == pytest.approx(0.8112781244591328)
    assert K.entropy2(0.0) == 0.0 and K.entropy2(1.0) == 0.0
    # R = 1, delta = 1e-7, n = 200: sqrt(ln(1e7) / 400)
    assert K.hoeffding_bound(1.0, 1e-7, 200.0) == pytest.approx(0.200737, abs=1e-6)
    assert K.hoeffding_bound(2.0, 0.05, 50.0) == pytest.approx(2 * math.sqrt(math.log(20) / 100))
    assert K.normal_cdf(0.0) == 0.5
    assert K.normal_cdf(1.96) == pytest.approx(0.9750021, abs=1e-6)


def test_merit_of_a_tiny_binary_split() -> None:
    # 4 instances, 2 labels. Feature 0 present in rows 0, 1; label 0 exactly there;
    # label 1 in rows 0 and 2.
    data = make_batch([{0: 1.0}, {0: 1.0, 1: 1.0}, {1: 1.0}, {}], [[0, 1], [0], [1], []])
    m = MLHAT(grace_period=10**6)
    m.learn_many(data)
    s = m._state
    lf = leaf_of_root(m)
    r = K.ht_find(s, (lf << 32) | 0)
    # parent: p0 = 1/2, p1 = 1/2 -> H = 2 bits; children {0,1} / {2,3}: label 0 pure,
    # label 1 half/half on both sides -> H = 1 bit: merit 1.
    assert K.split_merit_binary(s, lf, r, 2) == pytest.approx(1.0)
    r1 = K.ht_find(s, (lf << 32) | 1)
    # feature 1 present in rows 1, 2: label 0 halves on both sides, label 1 halves too
    assert K.split_merit_binary(s, lf, r1, 2) == pytest.approx(0.0)


def test_numeric_merit_matches_gaussian_hand_computation() -> None:
    rng = np.random.default_rng(3)
    x = np.concatenate([rng.normal(-2, 1, 100), rng.normal(2, 1, 100)])
    y = [[0]] * 100 + [[]] * 100
    data = make_batch([{0: float(v)} for v in x], y)
    m = MLHAT(grace_period=10**6)
    m.learn_many(data)
    s = m._state
    lf = leaf_of_root(m)
    r = K.ht_find(s, (lf << 32) | 0)
    mom = np.zeros((4, 1))
    tb = np.zeros(1)
    merit = K.split_merit_numeric(s, lf, r, 1, 1, mom, tb)  # one threshold: the midpoint
    t = (x.min() + x.max()) / 2
    assert tb[0] == pytest.approx(t)
    from statistics import NormalDist

    a = 100 * NormalDist(x[:100].mean(), x[:100].std()).cdf(t)
    b = 100 * NormalDist(x[100:].mean(), x[100:].std()).cdf(t)
    left = a + b
    expected = 1.0 - left / 200 * h2(a / left) - (200 - left) / 200 * h2((100 - a) / (200 - left))
    assert merit == pytest.approx(expected, rel=1e-9)
    assert merit > 0.8  # the two classes are well separated


# ----------------------------------------------------------------------------- properties
@settings(max_examples=25, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.dictionaries(st.integers(0, 7), st.sampled_from([1.0, 2.5, -1.0, 0.5]),
                            max_size=5),
            st.sets(st.integers(0, 3)),
        ),
        min_size=1,
        max_size=40,
    )
)
def test_leaf_statistics_equal_brute_force(rows: list[tuple[dict[int, float], set[int]]]) -> None:
    data = make_batch([r for r, _ in rows], [sorted(y) for _, y in rows])
    m = MLHAT(grace_period=10**6)
    m.learn_many(data)
    s = m._state
    lf = leaf_of_root(m)
    n_labels = m.n_labels
    assert s.lf_f[lf, LF_SW] == len(rows)
    for lab in range(n_labels):
        assert s.lf_lv[lf, LV_SLAB, lab] == sum(lab in y for _, y in rows)
    for f in range(8):
        r = K.ht_find(s, (lf << 32) | f)
        vals = np.array([x.get(f, 0.0) for x, _ in rows])
        if not np.any(vals != 0):
            assert r == -1
            continue
        assert s.rw_f[r, RF_CNT] == np.count_nonzero(vals)
        assert s.rw_f[r, RF_SUM] == pytest.approx(vals.sum())
        assert s.rw_f[r, RF_SQ] == pytest.approx((vals**2).sum())
        assert s.rw_f[r, RF_MIN] == vals[vals != 0].min()
        assert s.rw_f[r, RF_MAX] == vals[vals != 0].max()
        for lab in range(n_labels):
            on = np.array([lab in y for _, y in rows])
            assert s.rw_lv[r, RV_LSUM, lab] == pytest.approx(vals[on].sum())
            assert s.rw_lv[r, RV_LSQ, lab] == pytest.approx((vals[on] ** 2).sum())
        assert s.g_bin[f] == int(np.all(np.isin(vals, [0.0, 1.0])))


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.integers(0, 60)), max_size=300))
def test_hash_table_matches_a_dict(ops: list[tuple[bool, int]]) -> None:
    s = empty_state(4, 64, 1, 1, 0)
    ref: dict[int, int] = {}
    for insert, k in ops:
        key = (k % 7) << 32 | k  # a few leaves, colliding home slots
        if insert and key not in ref and len(ref) < 64:
            K.ht_insert(s, key, k)
            ref[key] = k
        elif not insert and key in ref:
            K.ht_delete(s, key)
            del ref[key]
        for q in range(61):
            qk = (q % 7) << 32 | q
            assert K.ht_find(s, qk) == ref.get(qk, -1)


def test_gaussian_moments_match_numpy() -> None:
    rng = np.random.default_rng(5)
    x = rng.gamma(2.0, 1.5, 500)
    x[rng.random(500) < 0.3] = 0.0  # implied zeros must count
    on = rng.random(500) < 0.4
    data = make_batch([{0: float(v)} if v else {} for v in x],
                      [[0] if o else [] for o in on])
    m = MLHAT(grace_period=10**6)
    m.learn_many(data)
    s = m._state
    lf = leaf_of_root(m)
    mom = np.zeros((4, 1))
    K._label_moments(s, lf, K.ht_find(s, (lf << 32) | 0), 1, mom)
    assert mom[0, 0] == pytest.approx(x[on].mean())
    assert mom[1, 0] == pytest.approx(x[on].std())
    assert mom[2, 0] == pytest.approx(x[~on].mean())
    assert mom[3, 0] == pytest.approx(x[~on].std())


def test_poisson_sampler_has_mean_and_variance_one() -> None:
    rng = np.array([88172645463325252], dtype=np.uint64)
    draws = np.array([K.poisson1(rng) for _ in range(20000)])
    assert draws.mean() == pytest.approx(1.0, abs=0.03)
    assert draws.var() == pytest.approx(1.0, abs=0.05)


# ----------------------------------------------------------------------------- behaviour
def test_learns_grows_and_beats_chance() -> None:
    data = dense_stream(4000, seed=1)
    m = MLHAT(grace_period=100, delta=1e-3)
    preds = run(m, data)
    truth = [tuple(data.row(i).labels.tolist()) for i in range(len(data))]
    acc = np.mean([p == t for p, t in zip(preds[-1000:], truth[-1000:], strict=True)])
    assert acc > 0.8
    assert m.n_nodes >= 3 and m.depth >= 1
    assert sum(m.leaf_models.values()) == m.n_leaves
    text = m.render()
    assert "split" in text and "leaf" in text


def labelset(scores: np.ndarray, empty_rate: float, nonempty: bool = True) -> list[int]:
    """The rule of ``emit_labelset``, written out: every label at 0.5 or more; when there is
    none, the top label if its score beats the rate of empty label sets learned."""
    on = np.flatnonzero(scores >= 0.5).tolist()
    if not on and nonempty and scores.max(initial=0.0) > empty_rate:
        return [int(np.argmax(scores))]
    return on


def test_nonempty_rule() -> None:
    """No empty label set in the stream: no empty prediction once a label has any score; with
    the rule off, exactly the 0.5 threshold; with mostly empty sets, empty predictions stay."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(800, 4))
    y = rng.random((800, 5)) < 0.3 + 0.1 * (x[:, :1] > 0)  # no label likely enough for 0.5
    keep = y.any(axis=1)
    full = make_batch([{f: float(v) for f, v in enumerate(r)} for r in x[keep]],
                      [list(np.flatnonzero(r)) for r in y[keep]])
    on = MLHAT(grace_period=100, decode="threshold", no_change=False)
    off = MLHAT(grace_period=100, nonempty=False, decode="threshold", no_change=False)
    on.learn_many(full)
    off.learn_many(full)
    probe = full.slice(0, 300)
    scores_on, scores_off = on.predict_proba_many(probe), off.predict_proba_many(probe)
    np.testing.assert_array_equal(scores_on, scores_off)  # the rule only changes the decision
    pred_on, pred_off = on.predict_many(probe), off.predict_many(probe)
    for i in range(300):
        assert pred_off.row(i).tolist() == np.flatnonzero(scores_off[i] >= 0.5).tolist()
        assert pred_on.row(i).tolist() == labelset(scores_on[i], 0.0)
        assert len(pred_on.row(i)) >= 1 or scores_on[i].max() == 0.0
    assert any(len(pred_off.row(i)) == 0 for i in range(300))  # the rule had work to do
    rare = rng.random((800, 5)) < 0.05  # three label sets in four are empty
    mostly_empty = MLHAT(grace_period=100, decode="threshold", no_change=False)
    mostly_empty.learn_many(make_batch([{f: float(v) for f, v in enumerate(r)} for r in x],
                                       [list(np.flatnonzero(r)) for r in rare]))
    pred = mostly_empty.predict_many(probe)
    assert all(len(pred.row(i)) == 0 for i in range(300))


def test_scores_agree_with_predictions() -> None:
    data = dense_stream(1500, seed=2)
    m = MLHAT(grace_period=100, decode="threshold")
    m.learn_many(data)
    probe = data.slice(0, 200)
    scores = m.predict_proba_many(probe)
    pred = m.predict_many(probe)
    assert scores.shape == (200, 3)
    assert np.all((scores >= 0) & (scores <= 1))
    empty_rate = np.mean(np.diff(data.label_indptr) == 0)
    for i in range(200):
        assert pred.row(i).tolist() == labelset(scores[i], empty_rate)
    # test_then_train predicts each row with the model before learning it
    m2 = MLHAT(grace_period=100, decode="threshold")
    m2.learn_many(data)
    p = m2.test_then_train_many(probe)
    assert [p.row(i).tolist() for i in range(5)] == [pred.row(i).tolist() for i in range(5)]


def test_test_then_train_is_predict_then_learn_row_by_row() -> None:
    data = sparse_stream(400, 30, 4, seed=12)
    a = MLHAT(grace_period=50, delta=1e-2)
    b = MLHAT(grace_period=50, delta=1e-2)
    fast = a.test_then_train_many(data)
    for i in range(len(data)):
        row = data.slice(i, i + 1)
        p = b.predict_many(row)
        assert p.row(0).tolist() == fast.row(i).tolist()
        np.testing.assert_allclose(p.scores, fast.scores[fast.indptr[i]: fast.indptr[i + 1]])
        b.learn_many(row)
    assert a.n_nodes == b.n_nodes > 1


@pytest.mark.parametrize("decode", ["threshold", "seen", "f1"])
def test_learn_mask_learns_only_the_flagged_rows_and_scores_every_row(decode: str) -> None:
    """``test_then_train_scored(batch, learn)`` (a hierarchy's tree that learns only the rows
    routed to it) answers and scores every row as the tree learning the flagged rows one by
    one and only predicting the others would, and ends in the same state."""
    data = sparse_stream(1500, 30, 4, seed=5)
    flags = np.random.default_rng(6).random(len(data)) < 0.4
    a = MLHAT(grace_period=50, delta=1e-2, decode=decode, no_change=False)
    b = MLHAT(grace_period=50, delta=1e-2, decode=decode, no_change=False)
    fast, dense = a.test_then_train_scored(data, flags)
    assert len(fast) == len(data) and dense.shape == (len(data), 4)
    for i in range(len(data)):
        row = data.slice(i, i + 1)
        p, d = b.test_then_train_scored(row) if flags[i] else b.predict_scored(row)
        assert p.row(0).tolist() == fast.row(i).tolist(), i
        np.testing.assert_allclose(d[0], dense[i], rtol=0, atol=0)
    assert a.n_nodes == b.n_nodes > 1
    np.testing.assert_array_equal(a._state.ctr, b._state.ctr)
    assert a._state.ctr[C_SEEN] == np.count_nonzero(flags)
    with pytest.raises(ValueError, match="no_change=False"):
        MLHAT().test_then_train_scored(data, flags)
    with pytest.raises(ValueError, match="3 flags for 1500 rows"):
        MLHAT(no_change=False).test_then_train_scored(data, flags[:3])


def test_same_seed_same_predictions_with_bagging() -> None:
    data = sparse_stream(3000, 50, 4, seed=3)
    a = run(MLHAT(poisson=True, seed=11, grace_period=50), data, chunk=700)
    b = run(MLHAT(poisson=True, seed=11, grace_period=50), data, chunk=300)
    c = run(MLHAT(poisson=True, seed=12, grace_period=50), data, chunk=700)
    assert a == b
    assert a != c


def test_label_set_grows_while_learning() -> None:
    m = MLHAT(grace_period=50)
    rng = np.random.default_rng(4)
    for i in range(600):
        x = {"a": float(rng.normal()), "b": float(rng.normal())}
        y = {"pos"} if x["a"] > 0 else set()
        if i >= 300 and x["b"] > 0:
            y.add("late")  # a label that appears mid-stream
        m.learn_one(x, y)
    assert m.n_labels == 2 and m.label_vocab.names == ["pos", "late"]
    proba = m.predict_proba_one({"a": 1.0, "b": 2.0})
    assert set(proba) == {"pos", "late"}
    assert proba["pos"][True] > 0.5 and proba["late"][True] > 0.5
    assert m.predict_one({"a": -1.0, "b": -2.0}) == {"pos": False, "late": False}


@pytest.mark.parametrize("decode", ["threshold", "f1"])
def test_labels_arriving_late_start_absent_as_if_declared(decode: str) -> None:
    """With ``new_labels="absent"`` a tree that meets its labels in the stream learns exactly
    what a tree bound to all of them from the start does; ``"blank"`` does not."""
    data = dense_stream(1500, n_features=6, n_labels=4, seed=9)
    schema = Schema(tuple(f"f{j}" for j in range(6)), tuple(f"y{j}" for j in range(4)),
                    sparse=False, source="late")
    # labels 2 and 3 occur only from instance 700 on
    ids, ptr = [], [0]
    for i in range(len(data)):
        ids += [j for j in data.row(i).labels.tolist() if i >= 700 or j < 2]
        ptr.append(len(ids))
    data = Batch(data.indptr, data.indices, data.values, np.array(ptr), np.array(ids))
    params = {"grace_period": 100, "decode": decode, "no_change": False}
    bound = MLHAT(**params).bind(schema)
    late = MLHAT(**params)
    blank = MLHAT(**params, new_labels="blank")
    for m in (late, blank):  # the features declared, the labels not
        m.feature_vocab.extend(schema.feature_names)
    got = {id(m): run(m, data, chunk=50) for m in (bound, late, blank)}
    assert late.n_labels == 4 and late.label_vocab.names[2:] == ["l2", "l3"]
    probe = dense_stream(200, n_features=6, n_labels=4, seed=10)
    want = bound.predict_proba_many(probe)
    np.testing.assert_allclose(late.predict_proba_many(probe), want, atol=1e-12)
    assert got[id(late)][700:] == got[id(bound)][700:]
    assert np.abs(blank.predict_proba_many(probe) - want).max() > 0.01
    # a checkpoint keeps the never-present column; old checkpoints have none
    again = MLHAT.from_state_dict(late.state_dict())
    np.testing.assert_allclose(again.predict_proba_many(probe), want, atol=1e-12)
    assert again._never and not MLHAT.from_state_dict(blank.state_dict())._never
    # should a kernel name the never-present column, the answer drops it
    ans = bound._answers(np.array([0, 2, 3, 3]), np.array([1, 4, 0]), np.array([0.9, 0.6, 0.7]))
    assert [ans.row(i).tolist() for i in range(3)] == [[1], [0], []]
    with pytest.raises(ValueError, match="new_labels"):
        MLHAT(new_labels="zero")


def test_projection_keeps_structure_and_the_selected_labels() -> None:
    data = dense_stream(3000, n_features=6, n_labels=5, seed=6)
    m = MLHAT(grace_period=100, delta=1e-3)
    m.learn_many(data)
    assert m.n_nodes >= 3
    sel = [3, 1]
    p = m.project(sel)
    assert p.n_labels == 2 and p.label_vocab.names == [m.label_vocab.names[i] for i in sel]
    # Its own copy of the feature names, unless it is handed a vocabulary to share.
    assert p.feature_vocab is not m.feature_vocab
    assert p.feature_vocab.names == m.feature_vocab.names
    assert m.project(sel, feature_vocab=m.feature_vocab).feature_vocab is m.feature_vocab
    a, b = m._state, p._state
    for f in ("nd_i", "nd_f"):
        assert np.array_equal(getattr(a, f), getattr(b, f))
    assert p.render().count("split") == m.render().count("split")
    probe = data.slice(0, 100)
    sc_a = np.zeros((N_MODELS, 5))
    sc_b = np.zeros((N_MODELS, 2))
    for i in range(len(probe)):
        r = probe.row(i)
        n = K.route(a, a.ctr[0], r.indices, r.values, 0, len(r.indices))
        lf = int(a.nd_i[n, ND_LEAF])
        K.leaf_scores_all(a, m._prm, lf, r.indices, r.values, 0, len(r.indices), 5, sc_a)
        K.leaf_scores_all(b, p._prm, lf, r.indices, r.values, 0, len(r.indices), 2, sc_b)
        np.testing.assert_allclose(sc_b[1:], sc_a[1:, sel])  # naive Bayes, logistic models
    # the projection keeps learning on its own labels
    sub = make_batch([{f: float(v) for f, v in zip(r.indices, r.values, strict=True)}
                      for r in data.slice(0, 300)],
                      [[sel.index(j) for j in r.labels if j in sel] for r in data.slice(0, 300)])
    p.learn_many(sub)
    assert p.predict_proba_many(sub).shape == (300, 2)


def test_alternate_subtree_replaces_a_drifted_one() -> None:
    a = dense_stream(6000, n_features=6, n_labels=3, seed=7, concept=0)
    b = dense_stream(12000, n_features=6, n_labels=3, seed=8, concept=3)
    m = MLHAT(grace_period=100, delta=1e-3)
    run(m, a)
    preds = run(m, b)
    alt = m.alternates
    assert alt["created"] >= 1
    assert alt["swapped"] + alt["pruned"] >= 1
    truth = [tuple(b.row(i).labels.tolist()) for i in range(len(b))]
    acc = np.mean([p == t for p, t in zip(preds[-2000:], truth[-2000:], strict=True)])
    assert acc > 0.7


def test_memory_bound_deactivates_leaves_but_still_predicts() -> None:
    data = sparse_stream(6000, 400, 12, nnz=12, seed=9)
    limit = 3_000_000
    m = MLHAT(grace_period=100, delta=1e-2, tau=1.0, max_bytes=limit)
    run(m, data)
    s = m._state
    info = m.summary()
    assert info["deactivations"] > 0
    assert 0 < info["inactive_leaves"] < info["n_leaves"]
    # bytes in use: every pool but the rows as allocated, plus the rows in use
    fixed = sum(getattr(s, f).nbytes for f in s._fields if f[:3] not in ("rw_", "ht_"))
    assert s.ctr[C_RUSED] <= s.ctr[C_RLIMIT]
    assert fixed + s.ctr[C_RUSED] * row_bytes(s.lf_lv.shape[2]) <= limit
    assert m.memory_bytes <= 1.5 * limit  # the row pool keeps its capacity
    assert len(m.predict_many(data.slice(0, 50))) == 50
    small = MLHAT(max_nodes=5, grace_period=50, delta=1e-2)
    run(small, data)
    assert small.n_nodes <= 5


def test_sparse_million_feature_stream_stays_small() -> None:
    n_features = 1_000_000
    data = sparse_stream(3000, n_features, 5, nnz=8, seed=10)
    data.indices[-1] = n_features - 1  # make sure the last id occurs
    m = MLHAT(grace_period=200)
    run(m, data)
    # global per-feature arrays (9 bytes a feature) are the only O(features) state
    per_feature = m._state.g_bin.nbytes + m._state.g_scale.nbytes
    assert per_feature <= 9 * 2 * n_features
    assert m.memory_bytes - per_feature < 64 * 2**20
    assert m._state.ctr[C_RUSED] <= len(data.indices)


def test_keep_labels_in_place_equals_the_projection() -> None:
    data = dense_stream(3000, n_features=6, n_labels=5, seed=6)
    m = MLHAT(grace_period=100, delta=1e-3)
    m.learn_many(data)
    sel = [4, 0, 2]
    p = m.project(sel)
    q = MLHAT.from_state_dict(m.state_dict())
    cap = q._state.rw_lv.shape
    q.keep_labels(sel)
    assert q._state.rw_lv.shape == cap  # same arrays, no reallocation
    assert q.label_vocab.names == p.label_vocab.names and q.n_labels == 3
    sub = make_batch([{f: float(v) for f, v in zip(r.indices, r.values, strict=True)}
                      for r in data.slice(0, 500)],
                     [[sel.index(j) for j in r.labels if j in sel] for r in data.slice(0, 500)])
    np.testing.assert_array_equal(q.predict_proba_many(sub), p.predict_proba_many(sub))
    assert run(q, sub) == run(p, sub)
    q.learn_many(make_batch([{0: 1.0}], [[3]]))  # a new label reuses a freed column
    assert q.n_labels == 4 and q._state.rw_lv.shape == cap


def test_copy_label_starts_a_new_label_from_an_old_one() -> None:
    data = dense_stream(3000, n_features=6, n_labels=3, seed=11)
    m = MLHAT(grace_period=100, delta=1e-3)
    m.learn_many(data)
    m.learn_many(make_batch([{0: 0.0}], [[3]]))  # label 3 arrives (one instance)
    probe = make_batch([{f: float(v) for f, v in zip(r.indices, r.values, strict=True)}
                        for r in data.slice(0, 200)], [[]] * 200)
    m.copy_label(1, 3)
    sc = m.predict_proba_many(probe)
    np.testing.assert_array_equal(sc[:, 3], sc[:, 1])
    s = m._state
    on1 = (s.lf_lsbits[:, :, 0] >> np.uint64(1)) & np.uint64(1)
    on3 = (s.lf_lsbits[:, :, 0] >> np.uint64(3)) & np.uint64(1)
    np.testing.assert_array_equal(on1, on3)
    with pytest.raises(ValueError, match="label id 4"):
        m.copy_label(0, 4)


def test_pools_grow_in_place_keeping_every_value() -> None:
    from ihomer.learners.mlhat.state import grow_labels, grow_rows

    s = empty_state(16, 10, 3, 4, 0)
    rng = np.random.default_rng(0)
    s.rw_lv[:] = rng.random(s.rw_lv.shape)
    s.lf_lv[:] = rng.random(s.lf_lv.shape)
    rows, leaves = s.rw_lv.copy(), s.lf_lv.copy()
    t = grow_labels(s, 7)  # wider label axis: every (row, kind) moves
    assert t.rw_lv.shape == (10, 4, 7) and t.rw_lv.flags.owndata
    np.testing.assert_array_equal(t.rw_lv[:, :, :3], rows)
    np.testing.assert_array_equal(t.lf_lv[:, :, :3], leaves)
    assert not t.rw_lv[:, :, 3:].any() and not t.lf_lv[:, :, 3:].any()
    u = grow_rows(t, 40)  # more rows: the old ones stay in front
    assert u.rw_lv.shape == (40, 4, 7) and u.rw_lv.flags.owndata
    np.testing.assert_array_equal(u.rw_lv[:10, :, :3], rows)
    assert not u.rw_lv[10:].any()


def test_share_memory_keeps_the_most_used_rows_within_the_share() -> None:
    data = sparse_stream(4000, 3000, 6, nnz=10, seed=21)
    m = MLHAT(grace_period=100, delta=1e-2, tau=1.0)
    run(m, data.slice(0, 3000))
    s = m._state

    def rows(s: object) -> dict[tuple[int, int], float]:
        live = np.flatnonzero(s.rw_i[:, 1] >= 0)  # type: ignore[attr-defined]
        return {(int(s.rw_i[r, 1]), int(s.rw_i[r, 0])): float(s.rw_f[r, RF_CNT])  # type: ignore[attr-defined]
                for r in live}

    before = rows(s)
    probe = data.slice(3000, 3100)
    share = m.memory_bytes // 3
    m.share_memory(share)
    assert m.memory_bytes <= share
    after = rows(m._state)
    assert 0 < len(after) < len(before)
    assert all(before[k] == c for k, c in after.items())  # kept rows are untouched
    dropped = [c for k, c in before.items() if k not in after]
    assert min(after.values()) >= max(dropped)  # the least used went first
    t = m._state
    for r in np.flatnonzero(t.rw_i[:, 1] >= 0):  # the hash table finds every kept row
        assert K.ht_find(t, (int(t.rw_i[r, 1]) << 32) | int(t.rw_i[r, 0])) == r
    assert len(m.predict_many(probe)) == 100
    run(m, data.slice(3000, 4000))  # it keeps learning inside its share
    assert m.memory_bytes <= share
    m.share_memory(None)
    assert m._state.ctr[C_RLIMIT] > len(m._state.rw_i)


def test_state_dict_round_trip_predicts_and_learns_the_same() -> None:
    data = sparse_stream(2000, 60, 4, seed=13)
    m = MLHAT(grace_period=50, delta=1e-2, poisson=True, seed=3)
    run(m, data.slice(0, 1000))
    state = m.state_dict()
    for f, a in state["tree"].items():
        assert isinstance(a, np.ndarray) and a.dtype != object, f
    twin = MLHAT.from_state_dict(state)
    assert twin.params() == m.params()
    assert twin.label_vocab.names == m.label_vocab.names
    rest = data.slice(1000, 2000)
    assert run(twin, rest) == run(m, rest)
    np.testing.assert_array_equal(twin.predict_proba_many(rest), m.predict_proba_many(rest))


def loaded_as_older(old: MLHAT, data: Batch, strip: Callable[[dict], None]) -> MLHAT:
    """``old`` after the first half of ``data``, checkpointed, ``strip``-ped to what an older
    version wrote, and loaded: the twin must answer the second half as ``old`` does."""
    run(old, data.slice(0, len(data) // 2))
    state = old.state_dict()
    strip(state)
    twin = MLHAT.from_state_dict(state)
    rest = data.slice(len(data) // 2, len(data))
    assert run(twin, rest) == run(old, rest)
    return twin


def test_a_state_from_before_the_label_counts_answers_every_label_it_knew() -> None:
    """A checkpoint without ``lb_n`` counts every label it knew as learned (so none of them
    is silenced) and the never-present column as never learned."""
    data = sparse_stream(2000, 60, 4, seed=13)

    def strip(state: dict) -> None:
        del state["tree"]["lb_n"]
    twin = loaded_as_older(MLHAT(grace_period=50, seed=3), data, strip)
    n = twin._state.lb_n[0, 0]
    assert (n[:4] >= 1).all() and n[4] == 0  # column 4: the never-present one


def test_a_state_from_before_model_fading_continues_with_plain_sums() -> None:
    def strip(state: dict) -> None:
        # as written before the parameter existed: no model_fading, one parameter slot fewer
        del state["params"]["model_fading"]
        state["prm"] = state["prm"][:P_FADE]

    old = MLHAT(grace_period=50, delta=1e-2, model_fading=1.0)
    twin = loaded_as_older(old, sparse_stream(2000, 60, 4, seed=14), strip)
    assert twin.model_fading == 1.0 and twin._prm[P_FADE] == 1.0


def test_a_state_from_before_the_alternate_marks_continues() -> None:
    def strip(state: dict) -> None:  # as written before: two counters fewer
        state["tree"]["ctr"] = state["tree"]["ctr"][:22]

    twin = loaded_as_older(MLHAT(grace_period=50, delta=1e-2), sparse_stream(2000, 60, 4, seed=17),
                           strip)
    assert len(twin._state.ctr) == len(MLHAT()._state.ctr)
    assert twin.take_alternate_log() == []


def test_alternate_log_says_which_learned_instance_started_and_swapped() -> None:
    tree = MLHAT(grace_period=50, tau=0.5)
    rng = np.random.default_rng(2)
    x = rng.random((6000, 4)) < 0.5
    y = np.where(np.arange(6000)[:, None] < 3000, x[:, :1], x[:, 2:3])  # the concept moves
    data = Batch.from_dense(x.astype(float), y)
    one_by_one = []
    for i in range(len(data)):
        tree.learn_many(data.slice(i, i + 1))
        log = tree.take_alternate_log()
        assert all(n == tree.n_learned for _, n in log)  # this instance did it
        one_by_one += log
        assert tree.take_alternate_log() == []  # taken: emptied
    assert tree.alternates["created"] == sum(w == "started" for w, _ in one_by_one) >= 1
    assert tree.alternates["swapped"] == sum(w == "swapped" for w, _ in one_by_one)
    assert min(n for _, n in one_by_one) > 3000
    whole = MLHAT(grace_period=50, tau=0.5)
    whole.learn_many(data)
    assert whole.take_alternate_log() == one_by_one  # in one batch: the same, in order


def test_a_state_from_before_the_labelset_prior_continues_without_it() -> None:
    def strip(state: dict) -> None:
        # as written before the prior existed: no parameter, no counts in the seen-set table
        del state["params"]["labelset_prior"]
        for key in ("prior", "label_count", "n_learned"):
            del state["labelsets"][key]

    data = sparse_stream(2000, 60, 4, seed=16)
    twin = loaded_as_older(MLHAT(grace_period=50, delta=1e-2, labelset_prior=0.0), data, strip)
    assert twin.labelset_prior == 0.0 and twin._labelsets.prior == 0.0
    # the default's table keeps the counts the prior needs, and they survive a checkpoint
    new = MLHAT(grace_period=50, delta=1e-2)
    run(new, data.slice(0, 1000))
    table = MLHAT.from_state_dict(new.state_dict())._labelsets
    assert table.prior == new.labelset_prior > 0.0
    assert table._n_learned == 1000
    first = data.slice(0, 1000)
    ids = first.label_ids[first.label_indptr[0]:first.label_indptr[-1]]
    np.testing.assert_array_equal(table._label_count, np.bincount(ids, minlength=4))


def test_model_losses_fade() -> None:
    """A faded sum of per-instance losses in [0, 1] stays below 1 / (1 - f); a plain sum
    grows with the instances."""
    data = sparse_stream(3000, 60, 4, seed=15)
    errs = {}
    for f in (1.0, 0.99):
        m = MLHAT(grace_period=10**9, model_fading=f)  # one leaf: the root
        run(m, data)
        errs[f] = m._state.lf_err[int(m._state.nd_i[m._state.ctr[0], ND_LEAF])]
    assert np.all(errs[0.99] <= 1 / (1 - 0.99) + 1e-9)
    assert errs[1.0].max() > 1 / (1 - 0.99)


def test_parameters_are_checked_and_reported() -> None:
    with pytest.raises(ValueError):
        MLHAT(loss="zero-one")
    for fading in (0.0, 1.5):
        with pytest.raises(ValueError, match="model_fading"):
            MLHAT(model_fading=fading)
    m = MLHAT(grace_period=123)
    assert m.params()["grace_period"] == 123
    assert m._prm[P_DELTA] == 1e-7
    with pytest.raises(ValueError):
        m.project([0])  # no labels yet
    h = MLHAT(loss="hamming")
    h.learn_many(sparse_stream(300, 20, 3, seed=1))
    assert len(h.predict_many(sparse_stream(10, 20, 3, seed=2))) == 10


def test_instance_losses_by_hand() -> None:
    y = np.array([1, 1, 0, 0], np.uint8)
    scores = np.array([0.9, 0.2, 0.7, 0.1])  # predicts {0, 2} for truth {0, 1}
    assert K.instance_loss(scores, y, 4, 0, 0.5) == pytest.approx(2 / 4)
    assert K.instance_loss(scores, y, 4, 1, 0.5) == pytest.approx(1 - 2 * 1 / 4)
    assert K.instance_loss(np.zeros(4), np.zeros(4, np.uint8), 4, 1, 0.5) == 0.0


def test_second_process_loads_the_kernels_from_the_cache() -> None:
    """A second process compiles nothing: every jitted kernel it runs comes from numba's
    cache (a cold compile takes a minute or more on two cores). Counted by numba's own cache
    statistics, not timed, so that a busy machine cannot fail it."""
    code = (
        "import json, sys, numba;"
        "from ihomer.learners.mlhat import MLHAT;"
        "m=MLHAT(); m.learn_one({'a': 1.0}, ['x']); m.predict_one({'a': 1.0});"
        "ds=[f for n, mod in list(sys.modules.items()) if n.startswith('ihomer')"
        " for f in vars(mod).values() if isinstance(f, numba.core.dispatcher.Dispatcher)];"
        "print(json.dumps([sum(sum(d.stats.cache_hits.values()) for d in ds),"
        " sum(sum(d.stats.cache_misses.values()) for d in ds)]))"
    )
    MLHAT().learn_one({"a": 1.0}, ["x"])  # make sure the cache exists
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    hits, misses = json.loads(out.stdout)
    assert hits >= 3 and misses == 0, out.stdout


def _models_before(m: MLHAT, row: Batch) -> np.ndarray:
    """Every model's probabilities for ``row`` at its leaf, as the tree stands."""
    s = m._state
    L = m.n_labels
    node = K.route(s, s.ctr[C_ROOT], row.indices, row.values, 0, len(row.indices))
    sc3 = np.zeros((4, max(L, 1)))
    K.leaf_scores_all(s, m._prm, s.nd_i[node, ND_LEAF], row.indices, row.values, 0,
                      len(row.indices), L, sc3)
    return sc3[:, :L]


@pytest.mark.parametrize("mixing", [0.0, 1.0, 5.0])
def test_leaf_mixing_weights_each_label_by_the_models_faded_squared_errors(mixing) -> None:
    """One leaf (no split): the per-label errors and the mixed probabilities, recomputed by
    hand from the four models' probabilities before each instance (0 for a label no
    instance learned so far carried)."""
    data = dense_stream(400, n_labels=3, seed=12)
    m = MLHAT(grace_period=10**9, leaf_mixing=mixing, model_fading=0.95, no_change=False,
              decode="threshold")
    m.bind(Schema(tuple(f"f{i}" for i in range(6)), ("a", "b", "c")))
    err = np.zeros((4, 3))
    present = np.zeros(3, bool)
    for i in range(len(data)):
        row = data.slice(i, i + 1)
        models = _models_before(m, row)
        w = np.exp(-mixing * (err - err.min(axis=0)))
        want = (w * models).sum(axis=0) / w.sum(axis=0)
        s = m._state
        fresh = err.max(axis=0) == 0.0  # never rated: the leaf's best model answers
        want[fresh] = models[K.leaf_choice(s, s.nd_i[s.ctr[C_ROOT], ND_LEAF])][fresh]
        want[~present] = 0.0
        np.testing.assert_allclose(m.predict_proba_many(row)[0], want, rtol=1e-12)
        m.learn_many(row)
        y = np.isin(np.arange(3), row.label_ids)
        present |= y
        err = 0.95 * err + (models - y) ** 2
    s = m._state
    lf = s.nd_i[s.ctr[C_ROOT], ND_LEAF]
    np.testing.assert_allclose(s.lf_lv[lf, LV_ERR:LV_ERR + 4, :3], err, rtol=1e-10)


def test_without_leaf_mixing_the_best_model_answers_for_every_label() -> None:
    data = dense_stream(600, n_labels=3, seed=13)
    m = MLHAT(grace_period=10**9, leaf_mixing=None, no_change=False, decode="threshold")
    m.learn_many(data.slice(0, 500))
    s = m._state
    lf = s.nd_i[s.ctr[C_ROOT], ND_LEAF]
    best = K.leaf_choice(s, lf)
    for i in range(500, 520):
        row = data.slice(i, i + 1)
        np.testing.assert_array_equal(m.predict_proba_many(row)[0],
                                      _models_before(m, row)[best])


def test_a_checkpoint_from_before_leaf_mixing_answers_as_it_did() -> None:
    data = dense_stream(1500, n_labels=3, seed=14)
    m = MLHAT(grace_period=100, leaf_mixing=None)
    m.learn_many(data.slice(0, 1000))
    state = m.state_dict()
    del state["params"]["leaf_mixing"]
    state["tree"]["lf_lv"] = state["tree"]["lf_lv"][:, :4]  # no per-label errors then
    state["prm"] = state["prm"][:17]
    old = MLHAT.from_state_dict(state)
    assert old.leaf_mixing is None and old._state.lf_lv.shape[1] == 8
    rest = data.slice(1000, 1500)
    np.testing.assert_array_equal(old.predict_proba_many(rest), m.predict_proba_many(rest))
    assert (old.test_then_train_many(rest).label_ids.tolist()
            == m.test_then_train_many(rest).label_ids.tolist())
    with pytest.raises(ValueError, match="leaf_mixing"):
        MLHAT(leaf_mixing=-1.0)


@pytest.mark.parametrize("decode", ["threshold", "seen", "f1"])
def test_a_label_never_learned_present_answers_zero_from_the_next_row_on(decode) -> None:
    """Labels declared up front (bind) but not carried by any learned instance yet score 0 and
    are never answered; a label first carried by row r of a batch is answered from row r + 1
    on, exactly as with one row per batch."""
    base = dense_stream(300, n_labels=8, seed=21)
    rng = np.random.default_rng(21)
    x = [dict(zip(base.indices[base.indptr[i]:base.indptr[i + 1]].tolist(),
                  base.values[base.indptr[i]:base.indptr[i + 1]].tolist(), strict=True))
         for i in range(300)]
    # label j occurs from row 30 j on (label 7 never), often at a batch's inner rows
    y = [[j for j in base.label_ids[base.label_indptr[i]:base.label_indptr[i + 1]].tolist()
          if i >= 30 * j and j < 7 and rng.random() < 0.7] for i in range(300)]
    data = make_batch(x, y)
    schema = Schema(tuple(f"f{i}" for i in range(6)), tuple("abcdefgh"))
    answers, probs = [], []
    for size in (1, 7, 300):
        m = MLHAT(decode=decode, grace_period=50, seed=3).bind(schema)
        got, dense = [], []
        for a in range(0, 300, size):
            sub = data.slice(a, min(a + size, 300))
            pred, p = m.test_then_train_scored(sub)
            got += [pred.row(i).tolist() for i in range(len(sub))]
            dense.append(p)
        answers.append(got)
        probs.append(np.concatenate(dense))
    assert answers[0] == answers[1] == answers[2]
    np.testing.assert_array_equal(probs[0], probs[2])
    seen = np.zeros(8, bool)
    for i in range(300):
        assert not (probs[0][i, ~seen] > 0).any()
        assert seen[answers[0][i]].all()
        seen[data.label_ids[data.label_indptr[i]:data.label_indptr[i + 1]]] = True
