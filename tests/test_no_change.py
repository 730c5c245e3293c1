"""Tests of the rated no-change answer (ihomer.learners.decoding.NoChange) and of the
``no_change`` option of MLHAT and iHOMER."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ihomer.connectors.checkpoint import flatten, unflatten
from ihomer.learners.base import Predictions
from ihomer.learners.decoding import EPS, VOTE_SHARES, NoChange, Votes, mix_votes
from ihomer.learners.hierarchy import IHOMER
from ihomer.learners.mlhat import MLHAT
from ihomer.stream.base import Batch


def csr(sets: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    ptr = np.zeros(len(sets) + 1, np.int64)
    np.cumsum([len(s) for s in sets], out=ptr[1:])
    return ptr, np.array([v for s in sets for v in s], np.int64)


def answer_loss(answer: set[int], truth: set[int]) -> float:
    """Half the 0/1 loss, half the F1 loss (an empty answer's F1 is 0), by hand."""
    zero_one = 0.0 if answer == truth else 1.0
    f1 = 0.0 if not answer and not truth else 2.0 * len(answer & truth) / (len(answer)
                                                                           + len(truth))
    return 0.5 * zero_one + 0.5 * (1.0 - f1)


class Reference:
    """NoChange written out with Python sets and dicts, from its docstring."""

    def __init__(self, fade: float, window: int) -> None:
        self.fade = fade
        self.window = window
        self.rate = [0.0, 0.0, 0.0]
        self.last: set[int] | None = None
        self.was: dict[int, float] = {}
        self.stay: dict[int, float] = {}
        self.recent: list[tuple[dict[int, float], set[int]]] = []
        self.sums: dict[int, float] = {}
        self.squares: dict[int, float] = {}
        self.count = 0

    def weight(self, f: int) -> float:
        if self.count == 0:
            return 0.0
        mean = self.sums.get(f, 0.0) / self.count
        var = self.squares.get(f, 0.0) / self.count - mean * mean
        return 1.0 / var if var > 1e-12 else 0.0

    def ranked(self, x: dict[int, float]) -> list[tuple[set[int], float]]:
        """The recent rows' sets by decreasing similarity, the most recent first among
        equals."""
        out = []
        for y, labels in reversed(self.recent):
            xy = sum(v * y.get(f, 0.0) * self.weight(f) for f, v in x.items())
            xx = sum(v * v * self.weight(f) for f, v in x.items())
            yy = sum(v * v * self.weight(f) for f, v in y.items())
            out.append((labels, xy / math.sqrt(xx * yy) if xx * yy > 0 else 0.0))
        return sorted(out, key=lambda t: -t[1])  # stable: recency breaks ties

    def nearest(self, x: dict[int, float]) -> tuple[set[int], float] | None:
        ranked = self.ranked(x)
        return ranked[0] if ranked else None

    def vote(self, x: dict[int, float], k: int) -> dict[int, float]:
        top = self.ranked(x)[:k]
        return {lab: sum(lab in t for t, _ in top) / len(top)
                for lab in set().union(*(t for t, _ in top))}

    def learn(self, x: dict[int, float], truth: set[int]) -> None:
        self.recent = [*self.recent, (x, set(truth))][-self.window:] if self.window else []
        self.count += 1
        for f, v in x.items():
            self.sums[f] = self.sums.get(f, 0.0) + v
            self.squares[f] = self.squares.get(f, 0.0) + v * v

    def step(self, answer: dict[int, float], x: dict[int, float],
             truth: set[int] | None) -> dict[int, float]:
        near = self.nearest(x)
        pick = 0
        if self.last is not None and self.rate[1] < self.rate[0]:
            pick = 1
        if near is not None and self.rate[2] < self.rate[pick]:
            pick = 2
        if pick == 1:
            assert self.last is not None
            out = {lab: (self.stay[lab] / self.was[lab] if self.was.get(lab, 0.0) > 0 else 0.0)
                   for lab in self.last}
        elif pick == 2:
            assert near is not None
            out = {lab: min(max(near[1], 0.0), 1.0) for lab in near[0]}
        else:
            out = dict(answer)
        if truth is not None:
            if self.last is not None:
                self.rate[0] = self.fade * self.rate[0] + answer_loss(set(answer), truth)
                self.rate[1] = self.fade * self.rate[1] + answer_loss(self.last, truth)
                if near is not None:
                    self.rate[2] = self.fade * self.rate[2] + answer_loss(near[0], truth)
                for lab in self.last:
                    self.was[lab] = self.fade * self.was.get(lab, 0.0) + 1.0
                    self.stay[lab] = self.fade * self.stay.get(lab, 0.0) + (lab in truth)
            self.last = set(truth)
            self.learn(x, truth)
        return out


label_sets = st.lists(st.integers(0, 5), max_size=4, unique=True)
features = st.dictionaries(st.integers(0, 4), st.sampled_from([-1.0, 0.5, 1.0, 2.0]), max_size=3)


def features_csr(rows: list[dict[int, float]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    ptr = np.zeros(len(rows) + 1, np.int64)
    np.cumsum([len(r) for r in rows], out=ptr[1:])
    keys = [sorted(r) for r in rows]
    return (ptr, np.array([f for k in keys for f in k], np.int64),
            np.array([r[f] for r, k in zip(rows, keys, strict=True) for f in k]))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(label_sets, label_sets, features), min_size=1, max_size=40),
       st.lists(st.booleans(), min_size=1, max_size=8), st.sampled_from([1.0, 0.9, 0.5]),
       st.sampled_from([0, 1, 3, 200]))
def test_no_change_matches_a_reference_over_calls(rows, learned, fade, window) -> None:
    """Rows cut into calls that alternately learn (rated) or only predict; the answers, their
    scores and the rates agree with the reference."""
    nc, ref = NoChange(fade, window), Reference(fade, window)
    start, call = 0, 0
    while start < len(rows):
        part = rows[start:start + 1 + call % 3]
        learn = learned[call % len(learned)]
        answers = [sorted(a) for a, _, _ in part]
        scores = np.array([0.1 * (1 + lab) for a in answers for lab in a])
        got = nc.choose(Predictions(*csr(answers), scores), features_csr([x for _, _, x in part]),
                        csr([sorted(t) for _, t, _ in part]) if learn else None, n_labels=6)
        for i, (a, t, x) in enumerate(part):
            want = ref.step({lab: 0.1 * (1 + lab) for lab in a}, x, set(t) if learn else None)
            row = got.row(i).tolist()
            assert sorted(row) == sorted(want)
            sc = got.scores[got.indptr[i]:got.indptr[i + 1]]
            np.testing.assert_allclose([want[lab] for lab in row], sc, atol=1e-12)
        np.testing.assert_allclose(nc.rate, ref.rate)
        start += len(part)
        call += 1


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(label_sets, features), min_size=1, max_size=40),
       st.lists(st.booleans(), min_size=1, max_size=8), st.sampled_from([1, 2, 5]),
       st.sampled_from([0, 1, 3, 200]))
def test_votes_match_the_k_nearest_of_a_reference(rows, learned, k, window) -> None:
    """Each row's vote: the share of its ``k`` nearest recent rows carrying each label, over
    calls that learn or only predict."""
    nc, ref = NoChange(window=window, k=k, vote_weight=0.5), Reference(1.0, window)
    start, call = 0, 0
    while start < len(rows):
        part = rows[start:start + 1 + call % 3]
        learn = learned[call % len(learned)]
        near = nc.neighbours(features_csr([x for _, x in part]),
                             csr([sorted(t) for t, _ in part]) if learn else None)
        assert near.votes.weight == 0.5
        shares = near.votes.shares
        for i, (t, x) in enumerate(part):
            want = ref.vote(x, k)
            row = shares.row(i).tolist()
            assert sorted(row) == sorted(want)
            np.testing.assert_allclose(shares.scores[shares.indptr[i]:shares.indptr[i + 1]],
                                       [want[lab] for lab in row], atol=1e-12)
            assert near.has[i] == bool(ref.recent)
            if learn:
                ref.learn(x, set(t))
        start += len(part)
        call += 1


def test_votes_mix_into_the_scores_by_hand() -> None:
    """Rows 0 and 1 alike (feature 0), row 2 apart (feature 1); three neighbours vote."""
    nc = NoChange(k=3, vote_weight=0.25)
    rows = (np.array([0, 1, 2, 3, 4]), np.array([0, 0, 1, 0]), np.ones(4))
    near = nc.neighbours(rows, csr([[0], [0, 1], [2], []]))
    # row 3 sees rows 2, 1, 0: similarities 0, 1, 1 in standard units
    assert near.votes.shares.row(3).tolist() == [0, 1, 2]
    np.testing.assert_allclose(near.votes.shares.scores[-3:], [2 / 3, 1 / 3, 1 / 3])
    mixed = near.votes.slice(3, 4).mix(np.array([[0.0, 0.4, 1.0, 0.8]]))
    np.testing.assert_allclose(mixed, [[1 / 6, 0.3 + 1 / 12, 0.75 + 1 / 12, 0.6]])
    assert Votes(near.votes.shares, 0.0).mix(np.ones((4, 4))).tolist() == np.ones((4, 4)).tolist()


def test_the_vote_share_is_chosen_by_its_faded_log_loss_by_hand() -> None:
    """Shares 0 and 0.5; row 0 (rated) is mixed with share 0 (no evidence yet: the smaller),
    then rates 0.5 better; row 1 (not rated) is mixed with 0.5. Label 1, scored 0.01 and not
    in the vote, costs both shares the same and is left out of the loss."""
    scores = np.array([[0.2, 0.01], [0.2, 0.01]])
    loss = np.zeros(2)
    mix_votes(scores, np.array([0, 1, 2]), np.array([0, 0]), np.array([1.0, 1.0]),
              np.array([0.0, 0.5]), loss, 1.0, 0.02, np.array([0, 2, 3]),
              np.array([0, 1, 0]), np.array([True, False]))
    np.testing.assert_allclose(scores, [[0.2, 0.01], [0.6, 0.005]])
    np.testing.assert_allclose(loss, [-math.log(0.2), -math.log(0.6)])


def reference_mix(scores: np.ndarray, votes: list[dict[int, float]], shares: list[float],
                  fade: float, eps: float, truth: list[set[int]] | None) -> tuple[np.ndarray,
                                                                                   np.ndarray]:
    """The chosen share, written out: every label in the loss, row by row."""
    out = scores.copy()
    loss = np.zeros(len(shares))
    for i, row in enumerate(scores):
        w = shares[int(np.argmin(loss))]
        v = np.array([votes[i].get(lab, 0.0) for lab in range(len(row))])
        out[i] = (1 - w) * row + w * v
        if truth is not None:
            y = np.array([lab in truth[i] for lab in range(len(row))])
            q = np.clip((1 - np.array(shares))[:, None] * row + np.outer(shares, v), eps,
                        1 - eps)
            loss = fade * loss - np.where(y, np.log(q), np.log(1 - q)).sum(axis=1)
    return out, loss


probs = st.floats(0.0, 1.0)


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 5).flatmap(lambda n_labels: st.lists(
    st.tuples(st.lists(probs, min_size=n_labels, max_size=n_labels),
              st.dictionaries(st.integers(0, n_labels + 1), probs, max_size=3),
              st.sets(st.integers(0, n_labels - 1))), min_size=1, max_size=30)),
       st.sampled_from([1.0, 0.9]), st.booleans())
def test_the_chosen_share_matches_a_reference(rows, fade, learned) -> None:
    """Labels the vote names beyond the scores' columns are left out, as in a fixed mix."""
    n_labels = len(rows[0][0])
    scores = np.array([r[0] for r in rows])
    votes = [{lab: v for lab, v in r[1].items() if lab < n_labels} for r in rows]
    truth = [r[2] for r in rows] if learned else None
    ptr, ids = csr([sorted(r[1]) for r in rows])
    sc = np.array([r[1][lab] for r in rows for lab in sorted(r[1])])
    loss = np.zeros(len(VOTE_SHARES))
    v = Votes(Predictions(ptr, ids, sc), 0.0, loss, fade)
    got = v.mix(scores.copy(), csr([sorted(t) for t in truth]) if truth else None)
    want, want_loss = reference_mix(scores, votes, VOTE_SHARES.tolist(), fade, EPS, truth)
    np.testing.assert_allclose(got, want, atol=1e-12)
    # left-out labels cost every share the same: the differences between shares agree
    np.testing.assert_allclose(loss - loss[0], want_loss - want_loss[0], atol=1e-9)


def test_projection_and_copied_labels_rewrite_the_remembered_sets() -> None:
    nc = NoChange(k=2, vote_weight=0.5)
    nc.choose(Predictions(*csr([[0]] * 3)), same_features(3), csr([[0, 3], [1, 3], [3]]),
              n_labels=4)
    p = nc.project(np.array([3, 1]))  # label 3 becomes 0, label 1 becomes 1, 0 and 2 go
    near = p.neighbours(same_features(1), None)
    assert near.nearest.row(0).tolist() == [0]  # the last row, {3}
    assert near.votes.shares.row(0).tolist() == [0, 1]  # {3} and {1, 3}
    np.testing.assert_allclose(near.votes.shares.scores, [1.0, 0.5])
    assert p._last[: p._n_last].tolist() == [0] and p.rate.tolist() == nc.rate.tolist()
    c = nc.copy_label(1, 4)
    assert c._labels[1].tolist() == [0, 3, 1, 3, 4, 3]
    assert c._was[4] == c._was[1] and len(c._was) == 5


def same_features(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``n`` rows that all hold the same value: no row is nearer than another, so the
    nearest row is the last one."""
    return np.arange(n + 1), np.zeros(n, np.int64), np.ones(n)


def test_persistence_scores_by_hand() -> None:
    """Label 1 stays twice out of three, label 2 never stays; the last set answers with those
    shares once it rates better than a model that always answers {0}."""
    nc = NoChange(fade=1.0)
    truth = [[1, 2], [1], [1, 2], [0, 3]]
    nc.choose(Predictions(*csr([[0]] * 4)), same_features(4), csr(truth), n_labels=4)
    # rated on rows 1..3, half 0/1 loss, half F1 loss: model {0} loses 1, 1, 1/2 + 1/6; the
    # last sets (the nearest rows' sets too) 1/2 + 1/6, 1/2 + 1/6, 1
    np.testing.assert_allclose(nc.rate, [8 / 3, 7 / 3, 7 / 3])
    got = nc.choose(Predictions(*csr([[0]])), same_features(1), None, n_labels=4)
    assert got.row(0).tolist() == [0, 3]
    np.testing.assert_allclose(got.scores, [0.0, 0.0])  # neither was ever followed by itself
    nc2 = NoChange(fade=1.0)
    nc2.choose(Predictions(*csr([[0]] * 4)), same_features(4),
               csr([[1, 2], [1], [1, 2], [1, 2]]), n_labels=3)
    got = nc2.choose(Predictions(*csr([[0]])), same_features(1), None, n_labels=3)
    assert got.row(0).tolist() == [1, 2]
    np.testing.assert_allclose(got.scores, [3 / 3, 1 / 2])  # 1 stayed 3 of 3, 2 once of 2


def test_the_nearest_row_answers_when_runs_interleave() -> None:
    """Two kinds of rows alternate (feature 0 or feature 1 set, with labels {0} or {1}): the
    last set is always wrong, the nearest row's always right after the first of each."""
    nc = NoChange(fade=1.0)
    n = 20
    kinds = np.arange(n) % 2
    rows = (np.arange(n + 1), kinds.astype(np.int64), np.ones(n))
    got = nc.choose(Predictions(*csr([[5]] * n)), rows, csr([[int(k)] for k in kinds]),
                    n_labels=6)
    assert [got.row(i).tolist() for i in range(3, n)] == [[int(k)] for k in kinds[3:]]
    assert nc.rate[2] < nc.rate[1] and nc.rate[2] < nc.rate[0]
    assert np.allclose(got.scores[-5:], 1.0)  # the same row: cosine 1


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="fade"):
        NoChange(fade=0.0)
    with pytest.raises(ValueError, match="window"):
        NoChange(window=-1)
    with pytest.raises(ValueError, match="k must"):
        NoChange(k=0)
    with pytest.raises(ValueError, match="vote_weight"):
        NoChange(vote_weight=1.5)
    with pytest.raises(ValueError, match="vote_weight must be 'auto'"):
        NoChange(vote_weight="sometimes")


def test_a_checkpoint_from_before_the_nearest_row_loads() -> None:
    old = {"fade": 0.99, "rate": [2.0, 1.5], "last": [1], "n_last": 1, "was": [0.0, 1.0],
           "stay": [0.0, 1.0]}
    nc = NoChange.from_state_dict(old)
    assert nc.rate.tolist() == [2.0, 1.5, 2.0] and nc.window == 200
    got = nc.choose(Predictions(*csr([[0]])), same_features(1), None, n_labels=2)
    assert got.row(0).tolist() == [1]  # the last set still answers; no window yet
    assert nc.k == 5 and nc.vote_weight == 0.0  # and no vote: the answers it gave then


# ----------------------------------------------------------------------------- learners
def runs_stream(n: int, run: int, seed: int = 0, n_labels: int = 6) -> Batch:
    """Features of pure noise; the label set is drawn afresh every ``run`` instances (1 to 3
    of ``n_labels``) and repeats until then: only the order predicts the labels."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4))
    lptr, lids, cur = [0], [], []
    for i in range(n):
        if i % run == 0:
            cur = sorted(rng.choice(n_labels, size=rng.integers(1, 4), replace=False).tolist())
        lids += cur
        lptr.append(len(lids))
    return Batch(np.arange(0, 4 * n + 1, 4), np.tile(np.arange(4), n), x.ravel(),
                 np.array(lptr), np.array(lids))


def iid_stream(n: int, seed: int = 0) -> Batch:
    """Labels that follow the features, independently from row to row."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4))
    lptr, lids = [0], []
    for r in x:
        lids += [lab for lab in range(4) if r[lab] > 0]
        lptr.append(len(lids))
    return Batch(np.arange(0, 4 * n + 1, 4), np.tile(np.arange(4), n), x.ravel(),
                 np.array(lptr), np.array(lids))


def example_f1(data: Batch, pred: Predictions, n_labels: int) -> float:
    """River's mean example F1 (an empty answer scores 0)."""
    from river import metrics

    metric = metrics.multioutput.SampleAverage(metrics.F1())
    for i in range(len(data)):
        truth = set(data.label_ids[data.label_indptr[i]:data.label_indptr[i + 1]].tolist())
        got = set(pred.row(i).tolist())
        metric.update({lab: lab in truth for lab in range(n_labels)},
                      {lab: lab in got for lab in range(n_labels)})
    return metric.get()


LEARNERS = [lambda **kw: MLHAT(grace_period=100, **kw), lambda **kw: IHOMER(n_min=50, **kw)]


@pytest.mark.parametrize("make", LEARNERS, ids=["mlhat", "ihomer"])
def test_no_change_wins_on_ordered_labels_and_keeps_out_of_the_way_otherwise(make) -> None:
    runs = runs_stream(3000, run=5, seed=1, n_labels=20)
    f1 = {nc: example_f1(runs, make(no_change=nc).test_then_train_many(runs), 20)
          for nc in (False, True)}
    # a run of 5 repeats its set 4 times: a little over 0.8 for the last set; the leaf models'
    # fast logistic steps follow the runs too, but a step behind (measured: 0.65)
    assert f1[True] > 0.78 and f1[True] > f1[False] + 0.1
    iid = iid_stream(3000, seed=2)
    f1 = {nc: example_f1(iid, make(no_change=nc).test_then_train_many(iid), 4)
          for nc in (False, True)}
    assert abs(f1[True] - f1[False]) < 0.01


@pytest.mark.parametrize("make", LEARNERS, ids=["mlhat", "ihomer"])
def test_no_change_is_prequential_in_any_batching_and_survives_a_checkpoint(make) -> None:
    """One call, row by row, or predict_many then learn_many per row (learning rates too)."""
    data = runs_stream(1600, run=25, seed=3)
    whole = make(no_change=True).test_then_train_many(data.slice(0, 800))
    rowwise, split = make(no_change=True), make(no_change=True)
    for i in range(800):
        row = data.slice(i, i + 1)
        assert rowwise.test_then_train_many(row).row(0).tolist() == whole.row(i).tolist(), i
        assert split.predict_many(row).row(0).tolist() == whole.row(i).tolist(), i
        split.learn_many(row)
    model = make(no_change=True)
    model.test_then_train_many(data.slice(0, 800))
    arrays: dict[str, np.ndarray] = {}
    text = json.dumps(flatten(model.state_dict(), arrays))  # the safe checkpoint format
    twin = type(model).from_state_dict(unflatten(json.loads(text), arrays))
    assert twin.params() == model.params()
    assert model._no_change.vote_loss.min() > 0.0  # the shares' rating goes with the state
    np.testing.assert_array_equal(twin._no_change.vote_loss, model._no_change.vote_loss)
    rest = data.slice(800, 1600)
    a, b = model.test_then_train_many(rest), twin.test_then_train_many(rest)
    np.testing.assert_array_equal(a.indptr, b.indptr)
    np.testing.assert_array_equal(a.label_ids, b.label_ids)
    np.testing.assert_array_equal(a.scores, b.scores)


def test_the_river_face_answers_with_the_last_learned_set_once_it_rated_better() -> None:
    data = runs_stream(600, run=50, seed=4)
    model = MLHAT(grace_period=100, no_change=True)
    for i in range(len(data)):
        a, b = data.indptr[i], data.indptr[i + 1]
        model.learn_one(dict(zip(data.indices[a:b].tolist(), data.values[a:b].tolist(),
                                 strict=True)),
                        [str(v) for v in data.label_ids[data.label_indptr[i]:
                                                        data.label_indptr[i + 1]]])
    assert model._no_change is not None and model._no_change.rate[1] < model._no_change.rate[0]
    model.learn_one({0: 0.3}, ["new", "5"])
    got = model.predict_one({1: -1.0})
    assert sorted(k for k, v in got.items() if v) == ["5", "new"]


def test_ihomer_trees_never_answer_with_the_last_set() -> None:
    data = runs_stream(1500, run=40, seed=5)
    model = IHOMER(n_min=50, no_change=True, tree={"no_change": True})
    model.test_then_train_many(data)
    trees = [m.tree for m in model._members.values()] + [model._meta]
    assert len(trees) > 1 and all(t is not None and t._no_change is None for t in trees)


def prototype_stream(n: int, seed: int, n_protos: int = 30, n_labels: int = 8,
                     flip: float = 0.15) -> Batch:
    """Instances near one of ``n_protos`` points, each point with its own label set, every
    label of which an instance flips with probability ``flip``: the nearest instance's set is
    noisy, a vote of several is not."""
    rng = np.random.default_rng(seed)
    protos = rng.normal(size=(n_protos, 6))
    sets = rng.random((n_protos, n_labels)) < 0.3
    which = rng.integers(0, n_protos, size=n)
    x = protos[which] + 0.1 * rng.normal(size=(n, 6))
    lptr, lids = [0], []
    for w in which:
        lids += np.flatnonzero(sets[w] ^ (rng.random(n_labels) < flip)).tolist()
        lptr.append(len(lids))
    return Batch(np.arange(0, 6 * n + 1, 6), np.tile(np.arange(6), n), x.ravel(),
                 np.array(lptr), np.array(lids))


@pytest.mark.parametrize("make", LEARNERS, ids=["mlhat", "ihomer"])
def test_the_neighbours_vote_outdoes_the_nearest_set_on_noisy_labels(make) -> None:
    data = prototype_stream(2000, seed=5)
    f1 = {w: example_f1(data, make(vote_weight=w).test_then_train_many(data), 8)
          for w in (0.0, 0.3, "auto")}
    assert f1[0.3] > f1[0.0] + 0.02  # measured: 0.632 -> 0.667 for both
    assert f1["auto"] > f1[0.0] + 0.02  # the share chosen online finds it too
    whole = make().test_then_train_many(data.slice(0, 300))
    rowwise = make()
    for i in range(300):
        got = rowwise.test_then_train_many(data.slice(i, i + 1))
        assert got.row(0).tolist() == whole.row(i).tolist(), i


def test_a_checkpoint_from_before_the_vote_answers_without_it() -> None:
    data = prototype_stream(600, seed=6)
    for model in (MLHAT(grace_period=100, vote_weight=0.3), IHOMER(n_min=50, vote_weight=0.2)):
        model.test_then_train_many(data.slice(0, 400))
        state = model.state_dict()
        weight = state["params"].pop("vote_weight")
        del state["no_change"]["vote_weight"]
        assert state["no_change"].pop("vote_loss") is None  # a fixed weight chooses nothing
        old = type(model).from_state_dict(state)
        assert old.vote_weight == 0.0 and old._no_change.vote_weight == 0.0 < weight
        state["no_change"]["vote_weight"] = state["params"]["vote_weight"] = weight
        same = type(model).from_state_dict(state)
        rest = data.slice(400, 600)
        assert (same.test_then_train_many(rest).label_ids.tolist()
                == model.test_then_train_many(rest).label_ids.tolist())
