"""Tests of the seen-labelset decoder (ihomer.learners.decoding) and MLHAT's decode="seen"."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ihomer.learners.base import Predictions
from ihomer.learners.decoding import EPS, SeenLabelsets, f1_set_size
from ihomer.learners.mlhat import MLHAT
from ihomer.stream.base import Batch


def csr(sets: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    ptr = np.zeros(len(sets) + 1, np.int64)
    np.cumsum([len(s) for s in sets], out=ptr[1:])
    ids = np.array([v for s in sets for v in s], np.int64)
    return ptr, ids


def loglik(scores: np.ndarray, labels: set[int]) -> float:
    """Log-likelihood of a label set under independent clipped per-label probabilities."""
    total = 0.0
    for lab, p in enumerate(scores):
        p = min(max(float(p), EPS), 1 - EPS)
        total += math.log(p) if lab in labels else math.log(1 - p)
    return total


@st.composite
def decoding_cases(draw: st.DrawFn) -> tuple[np.ndarray, list[list[int]], list[list[int]]]:
    n_labels = draw(st.integers(1, 7))
    history = draw(st.lists(st.lists(st.integers(0, n_labels - 1), max_size=n_labels,
                                     unique=True), min_size=1, max_size=30))
    n = draw(st.integers(1, 6))
    scores = np.array(draw(st.lists(st.lists(st.floats(0, 1), min_size=n_labels,
                                             max_size=n_labels), min_size=n, max_size=n)))
    answers = [sorted(np.flatnonzero(s >= 0.5).tolist()) for s in scores]
    return scores, history, answers


@settings(max_examples=200, deadline=None)
@given(decoding_cases())
def test_decoder_picks_the_most_likely_seen_set(case) -> None:
    """Against enumeration: no seen set is more likely than the one decoded (the empty set
    left out when the threshold answer is not empty)."""
    scores, history, answers = case
    table = SeenLabelsets()
    table.observe(*csr(history))
    seen = {tuple(sorted(s)) for s in history}
    got = table.decode(scores, Predictions(*csr(answers)))
    for i in range(len(scores)):
        chosen = set(got.row(i).tolist())
        candidates = [set(s) for s in seen if s or not answers[i]]
        if not candidates:  # only the empty set was seen and the threshold answer is not empty
            assert sorted(chosen) == answers[i]
            continue
        assert tuple(sorted(chosen)) in seen
        best = max(loglik(scores[i], c) for c in candidates)
        assert loglik(scores[i], chosen) >= best - 1e-9
        np.testing.assert_allclose(got.scores[got.indptr[i]:got.indptr[i + 1]],
                                   scores[i, got.row(i)])


def test_the_threshold_set_wins_when_it_was_seen() -> None:
    """The threshold set maximises the likelihood over all sets: seen, it is the answer."""
    table = SeenLabelsets()
    table.observe(*csr([[0], [0, 1], [1, 2], [2]]))
    scores = np.array([[0.6, 0.7, 0.2], [0.1, 0.8, 0.55], [0.9, 0.3, 0.4]])
    answers = [[0, 1], [1, 2], [0]]
    got = table.decode(scores, Predictions(*csr(answers)))
    assert [got.row(i).tolist() for i in range(3)] == answers


def test_unseen_threshold_set_becomes_the_nearest_likely_one_by_hand() -> None:
    table = SeenLabelsets()
    table.observe(*csr([[0, 1], [2], []]))
    # threshold answer {0}: unseen. {0, 1}: log .8 + log .4 + log .9 = -1.245;
    # {2}: log .2 + log .6 + log .1 = -4.423; the empty set is no candidate (answer not empty)
    scores = np.array([[0.8, 0.4, 0.1]])
    got = table.decode(scores, Predictions(*csr([[0]])))
    assert got.row(0).tolist() == [0, 1]
    # an empty threshold answer lets the empty set compete: log .7 + log .6 + log .9 = -0.97
    # against {0, 1}: log .3 + log .4 + log .9 = -2.23 and {2}: log .7 + log .6 + log .1 = -3.17
    got = table.decode(np.array([[0.3, 0.4, 0.1]]), Predictions(*csr([[]])))
    assert got.row(0).tolist() == []


def prior_score(scores: np.ndarray, labels: set[int], history: list[list[int]],
                w: float) -> float:
    """A set's rating with the label-set prior of weight ``w``, from the history's counts
    (add-one smoothing), computed independently of the kernel."""
    n = len(history)
    n_set = sum(set(h) == labels for h in history)
    total = loglik(scores, labels) + w * math.log(n_set + 1)
    for lab in range(len(scores)):
        n_lab = sum(lab in h for h in history)
        pi = math.log(n_lab + 1) if lab in labels else math.log(n - n_lab + 1)
        total -= w * pi
    return total


def test_the_prior_prefers_a_set_that_occurs_more_than_its_labels_predict_by_hand() -> None:
    history = [[0, 1], [0, 1], [2], [0]]
    scores = np.array([[0.6, 0.45, 0.1]])
    plain = SeenLabelsets()
    plain.observe(*csr(history))
    # {0}: logit .6 = 0.405 against {0, 1}: 0.405 + logit .45 = 0.205
    assert plain.decode(scores, Predictions(*csr([[0]]))).row(0).tolist() == [0]
    table = SeenLabelsets(prior=0.5)
    table.observe(*csr(history))
    # with w = 0.5, N = 4, labels counted 3, 2, 1, sets {0,1}: 2, {2}: 1, {0}: 1 (the terms
    # common to every set left out): {0, 1}: .5 log 3 + .405 - .5 log(4/2) - .201
    # - .5 log(3/3) = 0.408; {0}: .5 log 2 + .405 - .5 log(4/2) = 0.405; {2}: -1.504
    assert table.decode(scores, Predictions(*csr([[0]]))).row(0).tolist() == [0, 1]
    with pytest.raises(ValueError, match="prior"):
        SeenLabelsets(prior=-1.0)


@settings(max_examples=150, deadline=None)
@given(decoding_cases(), st.sampled_from([0.25, 0.5, 1.0, 3.0]))
def test_the_prior_decoder_picks_the_best_rated_seen_set(case, w: float) -> None:
    """Against enumeration with the prior computed from the history by hand."""
    scores, history, answers = case
    table = SeenLabelsets(prior=w)
    table.observe(*csr(history))
    got = table.decode(scores, Predictions(*csr(answers)))
    seen = {tuple(sorted(set(s))) for s in history}
    for i in range(len(scores)):
        chosen = set(got.row(i).tolist())
        candidates = [set(s) for s in seen if s or not answers[i]]
        if not candidates:
            assert sorted(chosen) == answers[i]
            continue
        assert tuple(sorted(chosen)) in seen
        best = max(prior_score(scores[i], c, history, w) for c in candidates)
        assert prior_score(scores[i], chosen, history, w) >= best - 1e-9


@settings(max_examples=100, deadline=None)
@given(decoding_cases(), st.lists(st.booleans(), min_size=6, max_size=6))
def test_the_prior_counts_move_row_by_row_as_in_one_batch(case, flags: list[bool]) -> None:
    """One batch (observe, then decode with the truth) answers as the same rows one at a
    time: each row is rated with the counts of the rows learned before it, rows that are
    not learned (flags) leave them alone, and a checkpoint in between changes nothing."""
    scores, history, answers = case
    n = len(scores)
    truth = [sorted(set(history[i % len(history)])) for i in range(n)] if history else \
        [[] for _ in range(n)]
    learned = np.array(flags[:n])
    batch = SeenLabelsets(prior=0.5)
    batch.observe(*csr(history))
    avail = batch.observe(*csr(truth), learned)
    got = batch.decode(scores, Predictions(*csr(answers)), avail, csr(truth), learned)
    single = SeenLabelsets(prior=0.5)
    single.observe(*csr(history))
    for i in range(n):
        single = SeenLabelsets.from_state_dict(single.state_dict())
        row = csr([truth[i]])
        a = single.observe(*row, learned[i:i + 1])
        one = single.decode(scores[i:i + 1], Predictions(*csr([answers[i]])), a, row,
                            learned[i:i + 1])
        assert one.row(0).tolist() == got.row(i).tolist(), i
    assert batch.state_dict()["label_count"].tolist() == \
        single.state_dict()["label_count"].tolist()


def test_observe_reports_the_sets_learned_before_each_row() -> None:
    table = SeenLabelsets()
    avail = table.observe(*csr([[1, 0], [0, 1], [], [2], []]))
    assert avail.tolist() == [0, 1, 1, 2, 3]
    assert len(table) == 3
    # row 0 of the next batch sees every set; decoding a row with no set seen yet keeps the
    # threshold answer
    fresh = SeenLabelsets()
    got = fresh.decode(np.array([[0.2, 0.9]]), Predictions(*csr([[1]])), np.array([0]))
    assert got.row(0).tolist() == [1]


def test_the_table_keeps_the_most_frequent_sets_within_its_bound() -> None:
    table = SeenLabelsets(max_labelsets=2)
    table.observe(*csr([[0], [1], [1], [2], [2], [2], [3]]))
    assert len(table) == 4  # trimmed before the next batch, not in the middle of one
    table.observe(*csr([]))
    state = table.state_dict()
    ptr, ids = state["ptr"], state["ids"]
    kept = [ids[ptr[c]:ptr[c + 1]].tolist() for c in range(len(ptr) - 1)]
    assert kept == [[1], [2]] and state["count"].tolist() == [2, 3]
    with pytest.raises(ValueError, match="max_labelsets"):
        SeenLabelsets(0)


def test_projection_and_copy_merge_equal_images() -> None:
    table = SeenLabelsets()
    table.observe(*csr([[0, 1], [0, 2], [1], [0, 1]]))
    proj = table.project(np.array([2, 0]))  # label 2 -> 0, label 0 -> 1
    st_ = proj.state_dict()
    sets = [st_["ids"][st_["ptr"][c]:st_["ptr"][c + 1]].tolist()
            for c in range(len(st_["ptr"]) - 1)]
    assert sets == [[1], [0, 1], []] and st_["count"].tolist() == [2, 1, 1]
    table.copy_label(1, 3)
    st_ = table.state_dict()
    sets = [st_["ids"][st_["ptr"][c]:st_["ptr"][c + 1]].tolist()
            for c in range(len(st_["ptr"]) - 1)]
    assert sets == [[0, 1, 3], [0, 2], [1, 3]]
    twin = SeenLabelsets.from_state_dict(st_)
    assert twin.state_dict()["count"].tolist() == st_["count"].tolist()


def expected_f1(p: np.ndarray, chosen: set[int]) -> float:
    """E[F1] of answering ``chosen`` by enumerating every truth (labels independent with
    probabilities ``p``; an empty answer scores 0, as in river)."""
    total = 0.0
    for bits in range(2 ** len(p)):
        truth = {lab for lab in range(len(p)) if bits >> lab & 1}
        prob = math.prod(p[lab] if lab in truth else 1 - p[lab] for lab in range(len(p)))
        if chosen:
            total += prob * 2 * len(chosen & truth) / (len(chosen) + len(truth))
    return total


@settings(max_examples=300, deadline=None)
@given(st.lists(st.floats(0, 1), min_size=1, max_size=8))
def test_the_expected_f1_set_is_the_best_of_all_sets(probs: list[float]) -> None:
    """Against enumeration over every truth and every answer: no set has a higher expected
    F1 than the top-k set chosen (so the best set is indeed a top-k set)."""
    p = np.array(probs)
    order = np.argsort(-p, kind="stable")
    k = f1_set_size(p, order)
    if p.max() <= 0:
        assert k == 0
        return
    got = expected_f1(p, set(order[:k].tolist()))
    best = max(expected_f1(p, {lab for lab in range(len(p)) if bits >> lab & 1})
               for bits in range(1, 2 ** len(p)))
    assert got >= best - 1e-9


def test_expected_f1_sets_by_hand() -> None:
    # {0}: .25 * 1 + .25 * 2/3 = 0.417 against {0, 1}: .25 * 1 + .5 * 2/3 = 0.583
    assert f1_set_size(np.array([0.5, 0.5]), np.array([0, 1])) == 2
    # {0}: .81 + .09 * 2/3 = 0.87 against {0, 1}: .09 + (.81 + .09) * 2/3 = 0.69
    assert f1_set_size(np.array([0.9, 0.1]), np.array([0, 1])) == 1
    assert f1_set_size(np.array([0.0, 0.0]), np.array([0, 1])) == 0


def test_the_expected_f1_set_is_given_once_it_rates_better() -> None:
    table = SeenLabelsets(fade=1.0, expected_f1=True)
    table.observe(*csr([[0]]))
    # threshold and seen answer {0}; the expected-F1 set of (.6, .45) is {0, 1}
    # ({0}: .33 + .27 * 2/3 = 0.51; {0, 1}: .27 + (.33 + .18) * 2/3 = 0.61)
    scores = np.array([[0.6, 0.45]] * 3)
    got = table.decode(scores, Predictions(*csr([[0]] * 3)), np.ones(3, np.int64),
                       csr([[0, 1]] * 3))
    # row 0: both rates are 0, the usual answer stands; its loss (half the 0/1 loss and half
    # the F1 loss: 1/2 + 1/6) then exceeds the expected-F1 set's (0)
    assert [got.row(i).tolist() for i in range(3)] == [[0], [0, 1], [0, 1]]
    np.testing.assert_allclose(table.rate[2:], [0.0, 3 * (1 / 2 + 1 / 6)])
    twin = SeenLabelsets.from_state_dict(table.state_dict())
    assert twin.expected_f1 and twin.project(np.array([1, 0])).expected_f1


# ----------------------------------------------------------------------------- MLHAT
def dense_batch(x: np.ndarray, sets: list[list[int]]) -> Batch:
    """A batch of the dense rows of ``x`` with the label sets ``sets``."""
    n, d = x.shape
    return Batch(np.arange(0, d * n + 1, d), np.tile(np.arange(d), n), x.ravel(), *csr(sets))


def stream(n: int, seed: int = 0) -> Batch:
    """Numeric rows, 4 labels: labels 0 and 1 always together, 2 and 3 never together."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 5))
    sets = []
    for r in x:
        y = []
        if r[0] + 0.5 * rng.normal() > 0:
            y += [0, 1]
        y += [2] if r[1] > 0 else [3]
        sets.append(y)
    return dense_batch(x, sets)


def test_every_decoded_prediction_is_a_label_set_seen_before_it() -> None:
    data = stream(1500, seed=1)
    # without the neighbours' vote, whose noise on this stream lets the threshold's answer
    # (a rival rated against the decoder's) win from row 500 on
    preds = MLHAT(decode="seen", grace_period=100, vote_weight=0.0).test_then_train_many(data)
    seen: set[tuple[int, ...]] = set()
    for i in range(len(data)):
        p = tuple(preds.row(i).tolist())
        assert i == 0 or p in seen, i
        seen.add(tuple(sorted(data.label_ids[data.label_indptr[i]:data.label_indptr[i + 1]])))


@pytest.mark.parametrize("decode", ["seen", "f1"])
def test_decoding_is_prequential_row_by_row_and_survives_a_checkpoint(decode: str) -> None:
    data = stream(1200, seed=2)
    a = MLHAT(decode=decode, grace_period=100)
    b = MLHAT(decode=decode, grace_period=100)
    fast = a.test_then_train_many(data.slice(0, 600))
    for i in range(600):
        row = data.slice(i, i + 1)
        assert b.predict_many(row).row(0).tolist() == fast.row(i).tolist(), i
        b.learn_many(row)
    twin = MLHAT.from_state_dict(a.state_dict())
    rest = data.slice(600, 1200)
    pa, pt = a.test_then_train_many(rest), twin.test_then_train_many(rest)
    assert [pa.row(i).tolist() for i in range(600)] == [pt.row(i).tolist() for i in range(600)]


def test_decoding_beats_the_threshold_on_exact_matches() -> None:
    """Labels 2 and 3 exclude each other and 0, 1 come together; near the boundary the
    threshold answers combinations that never occur, the decoder does not."""
    data = stream(3000, seed=3)
    truth = [tuple(data.label_ids[data.label_indptr[i]:data.label_indptr[i + 1]])
             for i in range(len(data))]
    exact = {}
    # the decoder alone: without the neighbours' vote, and over leaves whose best model answers
    # for all labels (leaves that mix their models per label learn the exclusions well enough
    # here that the threshold's answers occur too: both then score 0.824), and without the
    # label-set prior: these labels depend on each other only through the features, which the
    # prior's correction cannot tell apart (with it, 0.820 against 0.821)
    for decode in ("threshold", "seen"):
        p = MLHAT(decode=decode, grace_period=100, vote_weight=0.0, labelset_prior=0.0,
                  leaf_mixing=None).test_then_train_many(data)
        exact[decode] = np.mean([tuple(p.row(i).tolist()) == truth[i] for i in range(len(data))])
    assert exact["seen"] > exact["threshold"]


def test_the_expected_f1_decoder_raises_example_f1() -> None:
    """Noisy labels with probabilities near one half: answering the expected-F1 set beats
    the threshold's answer on example F1 (river's convention), checked with river's metric."""
    from river import metrics

    rng = np.random.default_rng(5)
    n = 3000
    x = rng.normal(size=(n, 3))
    data = dense_batch(x, [[lab for lab in range(3)
                            if rng.random() < 1 / (1 + np.exp(-0.4 * r[lab]))] for r in x])
    f1 = {}
    for decode in ("seen", "f1"):
        p = MLHAT(decode=decode, grace_period=100).test_then_train_many(data)
        metric = metrics.multioutput.SampleAverage(metrics.F1())
        for i in range(n):
            truth = set(data.label_ids[data.label_indptr[i]:data.label_indptr[i + 1]].tolist())
            got = set(p.row(i).tolist())
            metric.update({lab: lab in truth for lab in range(3)},
                          {lab: lab in got for lab in range(3)})
        f1[decode] = metric.get()
    assert f1["f1"] > f1["seen"] + 0.02


def test_projection_and_old_states_keep_their_decoder() -> None:
    data = stream(800, seed=4)
    m = MLHAT(decode="seen", grace_period=100)
    m.learn_many(data)
    proj = m.project([2, 3])
    assert proj.decode == "seen" and proj._labelsets is not None
    assert len(proj._labelsets) == 2  # {2} and {3}, as 0 and 1
    state = MLHAT(grace_period=100).state_dict()
    del state["params"]["decode"], state["labelsets"]
    assert MLHAT.from_state_dict(state).decode == "threshold"
    with pytest.raises(ValueError, match="decode"):
        MLHAT(decode="argmax")


def test_the_threshold_answer_returns_when_it_rates_better() -> None:
    """Rated on learned rows: once the threshold's answers have the lower loss, they are
    given instead of the decoder's."""
    table = SeenLabelsets(fade=1.0)
    table.observe(*csr([[0, 1]]))
    scores = np.array([[0.9, 0.45, 0.1]] * 3)
    answers = Predictions(*csr([[0]] * 3))
    got = table.decode(scores, answers, np.ones(3, np.int64), csr([[0]] * 3))
    # row 0: decoder answers {0, 1} (loss 1/2 + (1 - 2/3) / 2), threshold {0} (loss 0); then
    # the threshold
    assert [got.row(i).tolist() for i in range(3)] == [[0, 1], [0], [0]]
    np.testing.assert_allclose(table.rate, [0.0, 3 * (1 / 2 + 1 / 6), 0.0, 0.0])  # every row


# ----------------------------------------------------------------------------- iHOMER
def grouped_stream(n: int, seed: int = 0) -> Batch:
    """Eight labels in two groups of co-occurring labels (0-3 follow feature 0, 4-7 feature
    1), each group's set one of two patterns chosen by features 2 and 3: every label set is
    one of nine, and near the boundaries per-label answers mix patterns."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 5))
    sets = []
    for r in x:
        y = []
        if r[0] + 0.3 * rng.normal() > 0:
            y += [0, 1] if r[2] > 0 else [0, 2, 3]
        if r[1] + 0.3 * rng.normal() > 0:
            y += [4, 5] if r[3] > 0 else [5, 6, 7]
        sets.append(y)
    return dense_batch(x, sets)


def test_ihomer_decodes_over_p_cluster_times_p_label_given_cluster(monkeypatch) -> None:
    """The probabilities the hierarchy decodes over: for every cluster and every row, routed
    to it or not, its meta probability times the cluster tree's."""
    from ihomer.learners.hierarchy import IHOMER

    data = grouped_stream(2500, seed=1)
    model = IHOMER(n_min=50, no_change=False)
    model.learn_many(data)
    assert model.n_clusters >= 2 and model._meta is not None
    n_labels = 8
    np.testing.assert_array_equal(model._label_n[:n_labels],
                                  np.bincount(data.label_ids, minlength=n_labels))
    labelled = grouped_stream(300, seed=2)  # the trees are asked with no labels given
    probe = Batch(labelled.indptr, labelled.indices, labelled.values,
                  np.zeros(301, np.int64), np.zeros(0, np.int64))
    captured = []
    decode = model._labelsets.decode

    def spy(scores, *args, **kwargs):
        captured.append(scores.copy())
        return decode(scores, *args, **kwargs)

    monkeypatch.setattr(model._labelsets, "decode", spy)
    model.predict_many(probe)
    got = np.concatenate(captured)
    gate = model._meta.predict_proba_many(probe)
    routed = model._meta.predict_many(probe)
    assert 0 < sum(len(routed.row(i)) for i in range(300)) < 300 * len(model._meta_keys)
    want = np.zeros((300, n_labels))
    for j, key in enumerate(model._meta_keys):
        if key is None or key not in model._members:
            continue
        m = model._members[key]
        tree = m.tree.predict_proba_many(probe)
        for local, g in enumerate(m.labels):
            if model._owner[g] == key:
                want[:, g] = gate[:, j] * tree[:, local]
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("mode", ["homer", "flat"])
def test_ihomer_decoder_starts_from_the_threshold_of_its_probabilities(monkeypatch,
                                                                       mode: str) -> None:
    """The first rival handed to the decoder over all labels: every label whose probability
    reaches 0.5, else the top one when it beats the rate of empty label sets learned so far
    (here a quarter of the instances have none), as one MLHAT starts from its own."""
    from ihomer.learners.hierarchy import IHOMER

    data = grouped_stream(2500, seed=1)
    model = IHOMER(n_min=50, no_change=False, mode=mode)  # no vote: the scores are as decoded
    model.learn_many(data)
    empty = int(np.count_nonzero(np.diff(data.label_indptr) == 0))
    assert model._n_empty == empty and 0 < empty < 2500
    probe = grouped_stream(300, seed=2)
    probe = Batch(probe.indptr, probe.indices, probe.values, np.zeros(301, np.int64),
                  np.zeros(0, np.int64))
    captured = []
    decode = model._labelsets.decode

    def spy(scores, first, *args, **kwargs):
        captured.append((scores.copy(), first))
        return decode(scores, first, *args, **kwargs)

    monkeypatch.setattr(model._labelsets, "decode", spy)
    model.predict_many(probe)
    (scores, first), = captured
    tops = 0
    for i, row in enumerate(scores):
        want = np.flatnonzero(row >= 0.5).tolist()
        if not want and row.max() * 2500 > empty:
            want = [int(row.argmax())]
            tops += 1
        assert first.row(i).tolist() == want, i
    assert tops > 0  # the nonempty rule was exercised
    union = IHOMER(n_min=50, no_change=False, mode=mode, first_rival="union")
    union.learn_many(data)
    unions = []
    monkeypatch.setattr(union._labelsets, "decode",
                        lambda scores, first, *a, **k: unions.append(first) or first)
    union.predict_many(probe)
    if mode == "homer":  # routed trees' answers are not the threshold of the product
        assert [unions[0].row(i).tolist() for i in range(300)] != [
            first.row(i).tolist() for i in range(300)]


@pytest.mark.parametrize("decode", ["clusters", "seen", "f1"])
def test_ihomer_decoding_is_prequential_and_survives_a_checkpoint(decode: str) -> None:
    """Row by row (predict, then learn) and in one batch answer alike, handovers included
    (two complete within the first 800 rows, one of them mid-batch)."""
    from ihomer.learners.hierarchy import IHOMER

    data = grouped_stream(1600, seed=3)
    a = IHOMER(n_min=50, decode=decode, no_change=False)
    b = IHOMER(n_min=50, decode=decode, no_change=False)
    fast = a.test_then_train_many(data.slice(0, 800))
    for i in range(800):
        row = data.slice(i, i + 1)
        assert b.predict_many(row).row(0).tolist() == fast.row(i).tolist(), i
        b.learn_many(row)
    assert a.n_handovers >= 1 and a.events == b.events
    twin = IHOMER.from_state_dict(a.state_dict())
    rest = data.slice(800, 1600)
    pa, pt = a.test_then_train_many(rest), twin.test_then_train_many(rest)
    assert [pa.row(i).tolist() for i in range(800)] == [pt.row(i).tolist() for i in range(800)]


def test_ihomer_decoding_raises_exact_matches_and_answers_seen_sets() -> None:
    from ihomer.learners.hierarchy import IHOMER

    data = grouped_stream(4000, seed=4)
    truth = [tuple(data.label_ids[data.label_indptr[i]:data.label_indptr[i + 1]].tolist())
             for i in range(len(data))]
    exact, unseen = {}, {}
    for decode in ("clusters", "seen"):
        p = IHOMER(n_min=50, decode=decode, no_change=False).test_then_train_many(data)
        rows = [tuple(p.row(i).tolist()) for i in range(len(data))]
        exact[decode] = np.mean([r == t for r, t in zip(rows, truth, strict=True)])
        unseen[decode] = np.mean([r not in set(truth) for r in rows])
    assert exact["seen"] > exact["clusters"] + 0.01
    assert unseen["seen"] < unseen["clusters"]


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["observe", "copy", "trim"]),
                          st.lists(st.lists(st.integers(0, 5), max_size=4), min_size=1,
                                   max_size=5)), min_size=1, max_size=12))
def test_the_table_kept_for_the_kernel_matches_its_sets(steps) -> None:
    """The CSR copy grows with every observe and is rebuilt after a merge; it always lists
    the table's sets in order, and the byte count follows them and the label counts."""
    table = SeenLabelsets(max_labelsets=6)
    for op, sets in steps:
        if op == "observe":
            table.observe(*csr([sorted(set(s)) for s in sets]))
        elif op == "copy":
            table.copy_label(sets[0][0] if sets[0] else 0, 5)
        else:
            table._trim()
        ptr, ids = table._csr()
        got = [tuple(ids[ptr[c]:ptr[c + 1]].tolist()) for c in range(len(ptr) - 1)]
        assert got == table._sets
        assert table.nbytes == 8 * (len(table._sets) + 1 + sum(len(s) for s in table._sets)
                                    + len(table._label_count))  # the prior's label counts
        assert table._max_len == max((len(s) for s in table._sets), default=0)
