"""Decoding per-label scores into a label set that the stream has already produced.

A per-label threshold treats labels as independent: it may answer with a combination of labels
that never occurred together. :class:`SeenLabelsets` remembers the label sets learned so far and
answers, for each instance, with the one that is most likely under the per-label scores taken
as independent probabilities,

    argmax over seen sets S of  sum_{l in S} log p_l + sum_{l not in S} log (1 - p_l),

which is the per-label threshold's own objective restricted to sets that exist (the threshold
set is its unrestricted maximum). This is the label-powerset idea of pruned sets (Read,
Pfahringer and Holmes, ICDM 2008) applied at decoding time: the per-label models stay as they
are and the combination is borrowed from the stream. The empty set is a candidate only when the
threshold rule itself answers empty, so the rule never withdraws a label the threshold rule
would have given for an empty answer it learned from other instances.

The table is bounded (``max_labelsets``): past the bound the sets seen least often are dropped
(between batches, so that every instance is decoded with the sets learned before it).

Example-based F1 rewards a different answer: with ``expected_f1`` the decoder also computes,
per instance, the set of the ``k`` top-scoring labels whose expected F1 under the same
independent probabilities is highest (the optimal set under independence is a top-``k`` set;
Jansche, ACL 2007; Nan Ye et al., ICML 2012), computed exactly from the Poisson-binomial
distributions of how many of the ``k`` labels and of the others are true. It is never empty:
by river's convention an empty answer scores an F1 of 0 whatever the truth. That set is given
when it has rated better than the answer the decoder would otherwise give.

Scores taken as independent ignore how labels go together, and that is what a label set's
frequency knows. With a ``prior`` weight ``w`` each seen set ``S`` is rated by

    sum_{l in S} log p_l + sum_{l not in S} log (1 - p_l)
        + w * [log P(S) - sum_{l in S} log pi_l - sum_{l not in S} log (1 - pi_l)],

``P(S)`` the set's frequency among the learned instances and ``pi_l`` label ``l``'s (both with
add-one smoothing): the log ratio of the set's frequency to the one its labels' frequencies
would give if they were independent. At ``w = 1`` this is the exact correction when labels
depend on each other given the features as much as they do overall; the features explain
part of that dependence, hence a weight below 1 (:data:`LABELSET_PRIOR`). The counts are
those of the instances learned before each row, updated row by row.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import numba
import numpy as np

from ihomer.learners.base import Predictions, check_range
from ihomer.stream.base import INDEX_DTYPE, PTR_DTYPE, VALUE_DTYPE

#: Scores are clipped to [EPS, 1 - EPS] before the logarithms: a leaf's majority-labelset model
#: answers 0 or 1, which would otherwise veto every set that disagrees on one label.
EPS = 0.02
#: Largest answer of the expected-F1 set (the top-scoring labels it considers).
F1_TOP = 32
#: Weight of the 0/1 loss (subset accuracy's) in :func:`answer_loss`, the rest is the F1 loss
#: (example F1's). Chosen on the 21 anchored shared datasets (2026-12-02, rating every rival
#: answer of MLHAT and iHOMER by it, offline from their recorded answers): 0.5 kept both
#: learners' mean subset accuracy and raised their example and micro F1 (0.4: more F1, less
#: subset accuracy; 0.6: the reverse; 0, the F1 loss alone as before, cost 0.02 subset
#: accuracy once the expected-F1 set competes).
SUBSET_WEIGHT = 0.5
#: Weight of the label-set prior (see the module docstring) that the learners' decoders use by
#: default. Chosen on the 21 anchored shared datasets (2026-12-06, ``bench/tune_ihomer.py``, both
#: learners, means of example F1 / micro F1 / subset accuracy): 0.5 took ``mlhat`` from
#: 0.6014 / 0.6074 / 0.3894 (no prior) to 0.6001 / 0.6091 / 0.3980 and ``ihomer`` from
#: 0.6013 / 0.6086 / 0.3885 to 0.6005 / 0.6103 / 0.3964; 1 (the exact correction) gave
#: 0.6000 / 0.6054 / 0.3910 and 0.6015 / 0.6075 / 0.3910; 0.25 0.5988 / 0.6074 / 0.3946 and
#: 0.6005 / 0.6095 / 0.3945; 0.75 0.6008 / 0.6069 / 0.3943 and 0.6019 / 0.6088 / 0.3947
#: (``bench/results/tuning.json``).
LABELSET_PRIOR = 0.5
#: Bound on the counts of true labels the expected F1 sums over (mass beyond it is dropped;
#: the bound used per row is the mean count plus six standard deviations, at most this).
F1_TAIL = 64
#: The shares of the neighbours' vote that ``vote_weight="auto"`` chooses among, row by row,
#: by their faded log loss (:func:`mix_votes`). 0 to 0.5: the range every fixed weight was
#: measured in (2026-12-02 and 2026-12-07; on the 21 anchored shared datasets the best fixed
#: weight was 0.2 to 0.3 for both learners, and 0.5 already cost example F1). Widening it to
#: 0.7 measured within 0.0005 of these on every mean (2026-12-07, both learners).
VOTE_SHARES = np.array([0.0, 0.1, 0.2, 0.3, 0.4, 0.5])


@numba.njit(cache=True)
def _add_label(src: np.ndarray, dst: np.ndarray, q: float, top: int) -> None:
    """``dst[:top + 1]``: the distribution of a count ``src`` plus one Bernoulli(``q``) label
    (``dst`` may be ``src``: the update runs downwards)."""
    for b in range(top, 0, -1):
        dst[b] = src[b] * (1.0 - q) + src[b - 1] * q
    dst[0] = src[0] * (1.0 - q)


@numba.njit(cache=True)
def f1_set_size(p: np.ndarray, order: np.ndarray) -> int:
    """How many of the top labels (``order``: label ids by decreasing ``p``) form the set of
    highest expected F1, labels being independent with probabilities ``p``; 0 when no label
    has a positive probability.

    For the set ``S`` of the top ``k``, ``F1 = 2a / (k + a + b)`` with ``a`` the true labels in
    ``S`` and ``b`` those outside it; both counts are Poisson-binomial and independent, so the
    expectation is a double sum over their distributions, built by adding one label at a time
    (``a``: the top labels forwards; ``b``: the others backwards); every ``k`` up to
    :data:`F1_TOP` is tried (the expectation need not be unimodal in ``k``), ties going to
    the smaller set.
    """
    n = len(p)
    top = min(F1_TOP, n)
    if top == 0 or p[order[0]] <= 0.0:
        return 0
    mu = 0.0
    var = 0.0
    for lab in range(n):
        mu += p[lab]
        var += p[lab] * (1.0 - p[lab])
    tail = min(F1_TAIL, int(mu + 6.0 * np.sqrt(var)) + 6)
    suf = np.zeros((top + 1, tail + 1))
    suf[top, 0] = 1.0
    for j in range(top, n):
        q = p[order[j]]
        if q <= 0.0:
            break
        _add_label(suf[top], suf[top], q, tail)
    for k in range(top - 1, -1, -1):
        _add_label(suf[k + 1], suf[k], p[order[k]], tail)
    inside = np.zeros(top + 1)
    inside[0] = 1.0
    best = 0.0
    size = 1
    for k in range(1, top + 1):
        _add_label(inside, inside, p[order[k - 1]], k)
        e = 0.0
        for a in range(1, k + 1):
            if inside[a] < 1e-12:
                continue
            s = 0.0
            for b in range(tail + 1):
                s += suf[k, b] / (k + a + b)
            e += 2.0 * a * inside[a] * s
        if e > best:
            best = e
            size = k
    return size


@numba.njit(cache=True)
def answer_loss(ids: np.ndarray, a: int, b: int, truth: np.ndarray, n_truth: int) -> float:
    """The loss rival answers are rated by: the set ``ids[a:b]`` against the row marked in
    ``truth``, ``SUBSET_WEIGHT`` times its 0/1 loss plus the rest times its F1 loss, each as
    the metric scores it (an empty answer to an empty truth is exact, and its F1 is 0)."""
    tp = 0
    for j in range(a, b):
        tp += truth[ids[j]]
    zero_one = 0.0 if tp == n_truth and b - a == n_truth else 1.0
    f1 = 0.0 if b == a and n_truth == 0 else 2.0 * tp / (b - a + n_truth)
    return SUBSET_WEIGHT * zero_one + (1.0 - SUBSET_WEIGHT) * (1.0 - f1)


@numba.njit(cache=True)
def decode_rows(scores: np.ndarray, p0_ptr: np.ndarray, p0_ids: np.ndarray, avail: np.ndarray,
                ls_ptr: np.ndarray, ls_ids: np.ndarray, label_ptr: np.ndarray,
                label_ids: np.ndarray, rated: np.ndarray, rate: np.ndarray, fade: float,
                eps: float, f1: bool, out_ptr: np.ndarray, out_ids: np.ndarray,
                out_sc: np.ndarray, prior: float, set_cnt: np.ndarray, lab_cnt: np.ndarray,
                n_seen: float, row_set: np.ndarray) -> None:
    """Row ``i``: the most likely of the first ``avail[i]`` sets of the table (CSR ``ls_ptr``,
    ``ls_ids``) under ``scores[i]``, or the threshold answer ``p0`` (CSR).

    The threshold answer is given when no set qualifies, or when its faded loss
    ``rate[0]`` is below the decoder's ``rate[1]``. With the true label sets of the rows
    (``label_ptr``/``label_ids``, one row per score row; ``label_ptr`` of length 0 when
    unknown) both answers are rated after each row where a set qualified (elsewhere they are
    the same answer), fading by ``fade``; ``rated`` (flags by row; empty: every row) marks
    the rows whose truth counts. Ties between sets go
    to the set learned first; the empty set is skipped when ``p0``'s row is not empty.

    With ``f1``, the expected-F1 set (:func:`f1_set_size`) is given instead when its faded
    loss ``rate[2]`` is below ``rate[3]``, that of the answer chosen above; both are rated
    after every row whose truth is known.

    With ``prior > 0`` the sets are rated with the label-set prior of that weight (module
    docstring) from the counts of the learned instances before the first row: ``set_cnt``
    per set of the table, ``lab_cnt`` per label and ``n_seen`` in all; after row ``i`` the
    counts take in set ``row_set[i]`` and the row's true labels, unless ``row_set[i]`` is -1
    (a row not learned). ``set_cnt`` and ``lab_cnt`` are updated in place.
    """
    n, n_labels = scores.shape
    lg = np.empty(n_labels)
    truth = np.zeros(n_labels, np.int64)
    f1_ids = np.empty(n_labels, np.int64)
    known = len(label_ptr) > 0
    pos = 0
    out_ptr[0] = 0
    for i in range(n):
        a0 = p0_ptr[i]
        b0 = p0_ptr[i + 1]
        best = -1
        k = avail[i]
        if k > 0:
            for lab in range(n_labels):
                p = min(max(scores[i, lab], eps), 1.0 - eps)
                lg[lab] = np.log(p) - np.log(1.0 - p)
                if prior > 0.0:
                    lg[lab] -= prior * (np.log(lab_cnt[lab] + 1.0)
                                        - np.log(n_seen - lab_cnt[lab] + 1.0))
            top = -np.inf
            for c in range(k):
                a = ls_ptr[c]
                b = ls_ptr[c + 1]
                if a == b and b0 > a0:
                    continue
                v = prior * np.log(set_cnt[c] + 1.0) if prior > 0.0 else 0.0
                for j in range(a, b):
                    v += lg[ls_ids[j]]
                if v > top:
                    top = v
                    best = c
        # the answer without the expected-F1 set: ids[a1:b1]
        if best < 0 or rate[0] < rate[1]:
            ids, a1, b1 = p0_ids, a0, b0
        else:
            ids, a1, b1 = ls_ids, ls_ptr[best], ls_ptr[best + 1]
        nf = 0
        if f1:
            order = np.argsort(-scores[i])
            nf = f1_set_size(scores[i], order)
            f1_ids[:nf] = np.sort(order[:nf])
        if f1 and rate[2] < rate[3]:
            for j in range(nf):
                out_ids[pos] = f1_ids[j]
                out_sc[pos] = scores[i, f1_ids[j]]
                pos += 1
        else:
            for j in range(a1, b1):
                out_ids[pos] = ids[j]
                out_sc[pos] = scores[i, ids[j]]
                pos += 1
        out_ptr[i + 1] = pos
        if prior > 0.0 and row_set[i] >= 0:
            set_cnt[row_set[i]] += 1.0
            for j in range(label_ptr[i], label_ptr[i + 1]):
                lab_cnt[label_ids[j]] += 1.0
            n_seen += 1.0
        if known and (best >= 0 or f1) and (len(rated) == 0 or rated[i]):
            c0 = label_ptr[i]
            d0 = label_ptr[i + 1]
            for j in range(c0, d0):
                truth[label_ids[j]] = 1
            if best >= 0:
                rate[0] = fade * rate[0] + answer_loss(p0_ids, a0, b0, truth, d0 - c0)
                rate[1] = fade * rate[1] + answer_loss(ls_ids, ls_ptr[best], ls_ptr[best + 1],
                                                    truth, d0 - c0)
            if f1:
                rate[2] = fade * rate[2] + answer_loss(f1_ids, 0, nf, truth, d0 - c0)
                rate[3] = fade * rate[3] + answer_loss(ids, a1, b1, truth, d0 - c0)
            for j in range(c0, d0):
                truth[label_ids[j]] = 0


class SeenLabelsets:
    """The label sets learned so far, with how often each was seen, and the decoder over them.

    A stream whose label sets rarely repeat (delicious: 15,000 distinct sets in 16,105
    instances) gains nothing from the restriction and loses the labels the threshold got
    right, so the decoder rates itself: on every learned instance both its answer and the
    threshold's are scored by :func:`answer_loss` (faded by ``fade``), and the threshold's answer is
    given whenever its loss is the lower one, as a leaf picks its model.

    Parameters
    ----------
    max_labelsets
        Sets kept at most; beyond it the least frequent go first (ties: the most recent).
    fade
        Fading factor of the answers' losses.
    expected_f1
        Also rate the set of highest expected F1 (see the module docstring) against the
        answer above, and give it when it rates better.
    prior
        Weight of the label-set prior in rating the seen sets (see the module docstring);
        0 rates them by the scores alone.

    Examples
    --------
    >>> import numpy as np
    >>> table = SeenLabelsets()
    >>> avail = table.observe(np.array([0, 2, 4, 5]), np.array([0, 1, 0, 1, 2]))
    >>> avail.tolist(), len(table)   # row 1 repeats row 0's set
    ([0, 1, 1], 2)
    >>> scores = np.array([[0.9, 0.45, 0.1]])   # the threshold answer {0} never occurred
    >>> p0 = Predictions(np.array([0, 1]), np.array([0]))
    >>> table.decode(scores, p0).row(0).tolist()
    [0, 1]
    """

    def __init__(self, max_labelsets: int = 4096, fade: float = 0.99,
                 expected_f1: bool = False, prior: float = 0.0) -> None:
        if max_labelsets < 1:
            raise ValueError(f"max_labelsets must be at least 1, not {max_labelsets!r}")
        if not 0.0 <= prior < np.inf:
            raise ValueError(f"prior must be a finite weight of at least 0, not {prior!r}")
        self.max_labelsets = max_labelsets
        self.fade = fade
        self.expected_f1 = expected_f1
        self.prior = float(prior)
        # learned instances with each label, and in all: the prior's label frequencies (kept
        # apart from the sets' counts, which lose the sets the bound drops)
        self._label_count = np.zeros(0, np.float64)
        self._n_learned = 0
        #: faded losses of the threshold's answers, of the most likely seen sets', of the
        #: expected-F1 sets' and of the answers chosen from the first two
        self.rate = np.zeros(4)
        self._sets: list[tuple[int, ...]] = []
        self._count: list[int] = []
        self._index: dict[tuple[int, ...], int] = {}
        # CSR copy of the sets for the kernel, grown by doubling: observe() only appends, so
        # the sets not yet in it (from _built on) are added at the next read; _replace
        # rebuilds it. Rebuilding it at every call cost iHOMER's many small trees a third of
        # their time on delicious.
        self._ptr = np.zeros(1, np.int64)
        self._ids = np.zeros(0, np.int64)
        self._built = 0
        self._n_ids = 0  # labels over all sets
        self._max_len = 0  # largest set

    def __len__(self) -> int:
        return len(self._sets)

    @property
    def nbytes(self) -> int:
        """Bytes of the CSR copy the decoder reads (the Python index holds about as much)."""
        return 8 * (len(self._sets) + 1 + self._n_ids + len(self._label_count))

    def _csr(self) -> tuple[np.ndarray, np.ndarray]:
        n = len(self._sets)
        if self._built < n:
            new = self._sets[self._built:]
            if n + 1 > len(self._ptr):
                self._ptr = np.concatenate([self._ptr, np.zeros(max(n + 1, 2 * len(self._ptr))
                                                                - len(self._ptr), np.int64)])
            if self._n_ids > len(self._ids):
                self._ids = np.concatenate([self._ids, np.zeros(max(self._n_ids,
                                                                    2 * len(self._ids))
                                                                - len(self._ids), np.int64)])
            start = int(self._ptr[self._built])
            sizes = np.fromiter((len(t) for t in new), np.int64, len(new))
            np.cumsum(sizes, out=self._ptr[self._built + 1:n + 1])
            self._ptr[self._built + 1:n + 1] += start
            self._ids[start:self._n_ids] = np.fromiter((lab for t in new for lab in t),
                                                       np.int64, self._n_ids - start)
            self._built = n
        return self._ptr[:n + 1], self._ids[:self._n_ids]

    def _trim(self) -> None:
        """Keep the ``max_labelsets`` most frequent sets, in the order they were learned."""
        if len(self._sets) <= self.max_labelsets:
            return
        order = sorted(range(len(self._sets)), key=lambda c: (-self._count[c], c))
        keep = sorted(order[: self.max_labelsets])
        self._replace([self._sets[c] for c in keep], [self._count[c] for c in keep])

    def _grow_labels(self, n_labels: int) -> None:
        if n_labels > len(self._label_count):
            self._label_count = np.concatenate(
                [self._label_count, np.zeros(n_labels - len(self._label_count))])

    @staticmethod
    def _key(label_indptr: np.ndarray, label_ids: np.ndarray, i: int) -> tuple[int, ...]:
        return tuple(sorted(int(v) for v in label_ids[label_indptr[i]:label_indptr[i + 1]]))

    @staticmethod
    def _labels_of(label_indptr: np.ndarray, label_ids: np.ndarray,
                   rows: np.ndarray | None) -> np.ndarray:
        """The labels of the CSR rows flagged in ``rows`` (all rows when None)."""
        ids = np.asarray(label_ids[label_indptr[0]:label_indptr[-1]], np.int64)
        return ids if rows is None else ids[np.repeat(rows, np.diff(label_indptr))]

    def observe(self, label_indptr: np.ndarray, label_ids: np.ndarray,
                learned: np.ndarray | None = None) -> np.ndarray:
        """Learn the label sets of a batch, in order (only the rows flagged in ``learned`` when
        given); returns for each row how many sets of the table (a prefix: new sets are
        appended) were learned before it."""
        self._trim()
        n = len(label_indptr) - 1
        avail = np.empty(n, np.int64)
        taken = self._labels_of(label_indptr, label_ids, learned)
        self._grow_labels(int(taken.max(initial=-1)) + 1)
        np.add.at(self._label_count, taken, 1.0)
        self._n_learned += n if learned is None else int(np.count_nonzero(learned[:n]))
        for i in range(n):
            avail[i] = len(self._sets)
            if learned is not None and not learned[i]:
                continue
            key = self._key(label_indptr, label_ids, i)
            c = self._index.get(key)
            if c is None:
                self._index[key] = len(self._sets)
                self._sets.append(key)
                self._count.append(1)
                self._n_ids += len(key)
                self._max_len = max(self._max_len, len(key))
            else:
                self._count[c] += 1
        return avail

    def decode(self, scores: np.ndarray, threshold_answer: Predictions,
               avail: np.ndarray | None = None, truth: tuple[np.ndarray, np.ndarray] | None = None,
               rated: np.ndarray | None = None) -> Predictions:
        """The decoded label sets of the rows of ``scores`` (``(n, n_labels)`` probabilities).

        ``threshold_answer`` is what the per-label threshold answered for the same rows;
        ``avail[i]`` bounds row ``i``'s candidates to the sets learned before it (as
        :meth:`observe` returned; default: the whole table). ``truth``, the rows' true label
        sets (CSR indptr and ids) when they are being learned, rates both answers after each
        row (only the rows flagged in ``rated`` when given: the others are not learned); the
        rows must have been passed to :meth:`observe` just before (with the same flags), so
        that the prior's counts can be taken back to where each row stood.
        """
        n = len(scores)
        if avail is None:
            avail = np.full(n, len(self._sets), np.int64)
        ptr, ids = self._csr()
        scores = np.ascontiguousarray(scores, dtype=np.float64)
        out_ptr = np.zeros(n + 1, PTR_DTYPE)
        cap = max(self._max_len,
                  int(np.diff(threshold_answer.indptr).max(initial=0)),
                  min(F1_TOP, scores.shape[1]) if self.expected_f1 else 0)
        out_ids = np.zeros(n * cap, INDEX_DTYPE)
        out_sc = np.zeros(n * cap, VALUE_DTYPE)
        lptr, lids = truth if truth is not None else (np.zeros(0, np.int64),) * 2
        set_cnt, lab_cnt, n_seen, row_set = self._prior_counts(n, scores.shape[1], truth, rated)
        decode_rows(scores, np.asarray(threshold_answer.indptr, np.int64),
                    np.asarray(threshold_answer.label_ids, np.int64), avail, ptr, ids,
                    np.asarray(lptr, np.int64), np.asarray(lids, np.int64),
                    np.zeros(0, np.bool_) if rated is None else rated, self.rate,
                    self.fade, EPS, self.expected_f1, out_ptr, out_ids, out_sc, self.prior,
                    set_cnt, lab_cnt, n_seen, row_set)
        m = int(out_ptr[-1])
        return Predictions(out_ptr, out_ids[:m].copy(), out_sc[:m].copy())

    def _prior_counts(self, n: int, n_labels: int,
                      truth: tuple[np.ndarray, np.ndarray] | None, rated: np.ndarray | None
                      ) -> tuple[np.ndarray, np.ndarray, float, np.ndarray]:
        """The prior's counts as they stood before the first of ``n`` rows (copies; the rows
        that :meth:`observe` took in just before are taken back out) and each row's set in the
        table (-1 where the row is not learned); empty arrays without a prior."""
        if self.prior == 0.0:
            return np.zeros(0), np.zeros(0), 0.0, np.zeros(0, np.int64)
        row_set = np.full(n, -1, np.int64)
        if truth is not None:
            lptr, lids = truth
            self._grow_labels(int(np.max(lids, initial=-1)) + 1)
            for i in range(n):
                if rated is None or len(rated) == 0 or rated[i]:
                    row_set[i] = self._index[self._key(lptr, lids, i)]
        self._grow_labels(n_labels)
        set_cnt = np.asarray(self._count, np.float64)
        lab_cnt = self._label_count.copy()
        learned = row_set >= 0
        if learned.any() and truth is not None:  # rows are learned only with their truth
            set_cnt -= np.bincount(row_set[learned], minlength=len(set_cnt))
            np.subtract.at(lab_cnt, self._labels_of(truth[0], truth[1], learned), 1.0)
        return set_cnt, lab_cnt, float(self._n_learned - learned.sum()), row_set

    def _replace(self, sets: list[tuple[int, ...]], counts: list[int]) -> None:
        """Take ``sets`` (sorted tuples) as the table; equal sets merge and add their counts."""
        index: dict[tuple[int, ...], int] = {}
        kept: list[tuple[int, ...]] = []
        count: list[int] = []
        for key, cnt in zip(sets, counts, strict=True):
            c = index.get(key)
            if c is None:
                index[key] = len(kept)
                kept.append(key)
                count.append(cnt)
            else:
                count[c] += cnt
        self._sets, self._count, self._index = kept, count, index
        self._ptr = np.zeros(1, np.int64)
        self._ids = np.zeros(0, np.int64)
        self._built = 0
        self._n_ids = sum(len(t) for t in kept)
        self._max_len = max((len(t) for t in kept), default=0)

    def project(self, label_ids: np.ndarray) -> SeenLabelsets:
        """The table seen through labels ``label_ids`` only (they become ``0..k-1``); sets with
        the same image merge."""
        local = {int(g): j for j, g in enumerate(label_ids)}
        new = SeenLabelsets(self.max_labelsets, self.fade, self.expected_f1, self.prior)
        new.rate = self.rate.copy()
        self._grow_labels(int(np.max(label_ids, initial=-1)) + 1)
        new._label_count = self._label_count[np.asarray(label_ids, np.int64)].copy()
        new._n_learned = self._n_learned
        new._replace([tuple(sorted(local[g] for g in s if g in local)) for s in self._sets],
                     self._count)
        return new

    def copy_label(self, src: int, dst: int) -> None:
        """Label ``dst`` joins every set that holds ``src`` (a tree warm-starting one label from
        another, as :meth:`ihomer.learners.mlhat.MLHAT.copy_label`)."""
        self._replace([tuple(sorted({*s, dst})) if src in s else s for s in self._sets],
                      self._count)
        self._grow_labels(max(src, dst) + 1)
        self._label_count[dst] = self._label_count[src]

    def state_dict(self) -> dict[str, Any]:
        ptr, ids = self._csr()
        return {"max_labelsets": self.max_labelsets, "fade": self.fade,
                "expected_f1": self.expected_f1, "rate": self.rate.copy(),
                "ptr": ptr.copy(), "ids": ids.copy(), "count": np.asarray(self._count, np.int64),
                "prior": self.prior, "label_count": self._label_count.copy(),
                "n_learned": self._n_learned}

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> SeenLabelsets:
        # a state from before the prior continues without it
        table = cls(int(state["max_labelsets"]), float(state["fade"]),
                    bool(state.get("expected_f1", False)), float(state.get("prior", 0.0)))
        rate = np.array(state["rate"], np.float64)  # two entries in states before expected_f1
        table.rate[: len(rate)] = rate
        ptr = np.asarray(state["ptr"], np.int64)
        ids = np.asarray(state["ids"], np.int64)
        table._replace([tuple(int(v) for v in ids[ptr[c]:ptr[c + 1]])
                        for c in range(len(ptr) - 1)], [int(v) for v in state["count"]])
        if "label_count" in state:
            table._label_count = np.array(state["label_count"], np.float64)
            table._n_learned = int(state["n_learned"])
        return table


@numba.njit(cache=True)
def _feature_weight(stats: np.ndarray, n: float, f: int) -> float:
    """1 / variance of feature ``f`` over the ``n`` learned rows (absent counts as 0), or 0
    for a feature that never varied: distances in standard units."""
    if n <= 0.0:
        return 0.0
    mean = stats[0, f] / n
    var = stats[1, f] / n - mean * mean
    return 1.0 / var if var > 1e-12 else 0.0


@numba.njit(cache=True)
def nearest_rows(indptr: np.ndarray, indices: np.ndarray, values: np.ndarray, first: int,
                 window: int, k: int, label_ptr: np.ndarray, label_ids: np.ndarray,
                 learned: bool, stats: np.ndarray, count: np.ndarray, scratch: np.ndarray,
                 out_ptr: np.ndarray, out_ids: np.ndarray, out_sc: np.ndarray, has: np.ndarray,
                 v_ptr: np.ndarray, v_ids: np.ndarray, v_sh: np.ndarray) -> None:
    """Rows ``first`` on of the CSR ``indptr``/``indices``/``values``: the label set of the
    most similar of the ``window`` rows before each that were learned (rows before ``first``
    always were, the others when ``learned``), scored by that similarity; and the vote of the
    ``k`` most similar (at least 1): each label they carry with the share of them that carry it
    (CSR ``v_ptr``/``v_ids``/``v_sh``; shares of the rows found when fewer qualified).

    Similarity is the cosine of the two rows in standard units (each feature divided by its
    standard deviation over the learned rows, ``stats[0]`` the sums and ``stats[1]`` the sums
    of squares over ``count[0]`` rows); ties go to the most recent row. ``has[i]`` is False
    where no row qualified (the answer and the vote are then empty). With ``learned`` each row
    joins ``stats`` after it is answered.
    """
    n = len(indptr) - 1
    top_q = np.empty(k, np.int64)
    top_s = np.empty(k)
    pos = 0
    vpos = 0
    out_ptr[0] = 0
    v_ptr[0] = 0
    for r in range(first, n):
        i = r - first
        a, b = indptr[r], indptr[r + 1]
        xx = 0.0
        for j in range(a, b):
            w = _feature_weight(stats, count[0], indices[j])
            scratch[indices[j]] = values[j] * w
            xx += values[j] * values[j] * w
        hi = r if learned else first
        lo = max(0, hi - window)
        found = 0
        for q in range(hi - 1, lo - 1, -1):
            yy = 0.0
            xy = 0.0
            for j in range(indptr[q], indptr[q + 1]):
                f = indices[j]
                yy += values[j] * values[j] * _feature_weight(stats, count[0], f)
                xy += values[j] * scratch[f]
            den = np.sqrt(xx * yy)
            sim = xy / den if den > 0.0 else 0.0
            if found == k and sim <= top_s[k - 1]:
                continue
            if found < k:
                found += 1
            # insert in decreasing order, after equal ones (those are more recent)
            t = found - 1
            while t > 0 and top_s[t - 1] < sim:
                top_s[t] = top_s[t - 1]
                top_q[t] = top_q[t - 1]
                t -= 1
            top_s[t] = sim
            top_q[t] = q
        for j in range(a, b):
            scratch[indices[j]] = 0.0
        has[i] = found > 0
        if found > 0:
            best = top_q[0]
            sc = min(max(top_s[0], 0.0), 1.0)
            for j in range(label_ptr[best], label_ptr[best + 1]):
                out_ids[pos] = label_ids[j]
                out_sc[pos] = sc
                pos += 1
            start = vpos
            for t in range(found):
                q = top_q[t]
                for j in range(label_ptr[q], label_ptr[q + 1]):
                    lab = label_ids[j]
                    u = start
                    while u < vpos and v_ids[u] != lab:
                        u += 1
                    if u == vpos:
                        v_ids[vpos] = lab
                        v_sh[vpos] = 0.0
                        vpos += 1
                    v_sh[u] += 1.0
            for u in range(start, vpos):
                v_sh[u] /= found
        out_ptr[i + 1] = pos
        v_ptr[i + 1] = vpos
        if learned:
            count[0] += 1.0
            for j in range(a, b):
                stats[0, indices[j]] += values[j]
                stats[1, indices[j]] += values[j] * values[j]


@numba.njit(cache=True)
def no_change_rows(p_ptr: np.ndarray, p_ids: np.ndarray, p_sc: np.ndarray, q_ptr: np.ndarray,
                   q_ids: np.ndarray, q_sc: np.ndarray, has: np.ndarray, last: np.ndarray,
                   n_last: int, was: np.ndarray, stay: np.ndarray, label_ptr: np.ndarray,
                   label_ids: np.ndarray, rate: np.ndarray, fade: float, out_ptr: np.ndarray,
                   out_ids: np.ndarray, out_sc: np.ndarray) -> int:
    """Row ``i``: the model's answer ``p`` (CSR with scores ``p_sc``), the last learned label
    set (``last[:n_last]``; ``n_last < 0`` while nothing was learned) or the nearest row's set
    ``q`` (where ``has[i]``), whichever has the lowest faded loss (``rate[0]``: the model's,
    ``rate[1]``: the last set's, ``rate[2]``: the nearest set's; ties go to the model, then
    to the last set). A label given from the last set scores its persistence, the faded share
    of the instances following one with the label that had it too (``stay / was``).

    With the true label sets of the rows (``label_ptr`` of length 0 when unknown) the answers
    are rated after each row and the row's set becomes the last one. Returns the new
    ``n_last`` (the set is written to ``last``).
    """
    n = len(p_ptr) - 1
    known = len(label_ptr) > 0
    truth = np.zeros(len(was), np.int64)
    pos = 0
    out_ptr[0] = 0
    for i in range(n):
        a0 = p_ptr[i]
        b0 = p_ptr[i + 1]
        pick = 0
        if n_last >= 0 and rate[1] < rate[0]:
            pick = 1
        if has[i] and rate[2] < rate[pick]:
            pick = 2
        if pick == 1:
            for j in range(n_last):
                lab = last[j]
                out_ids[pos] = lab
                out_sc[pos] = stay[lab] / was[lab] if was[lab] > 0.0 else 0.0
                pos += 1
        elif pick == 2:
            for j in range(q_ptr[i], q_ptr[i + 1]):
                out_ids[pos] = q_ids[j]
                out_sc[pos] = q_sc[j]
                pos += 1
        else:
            for j in range(a0, b0):
                out_ids[pos] = p_ids[j]
                out_sc[pos] = p_sc[j]
                pos += 1
        out_ptr[i + 1] = pos
        if not known:
            continue
        c0 = label_ptr[i]
        d0 = label_ptr[i + 1]
        for j in range(c0, d0):
            truth[label_ids[j]] = 1
        if n_last >= 0:
            rate[0] = fade * rate[0] + answer_loss(p_ids, a0, b0, truth, d0 - c0)
            rate[1] = fade * rate[1] + answer_loss(last, 0, n_last, truth, d0 - c0)
            if has[i]:
                rate[2] = fade * rate[2] + answer_loss(q_ids, q_ptr[i], q_ptr[i + 1], truth,
                                                       d0 - c0)
            for j in range(n_last):
                lab = last[j]
                was[lab] = fade * was[lab] + 1.0
                stay[lab] = fade * stay[lab] + truth[lab]
        for j in range(c0, d0):
            truth[label_ids[j]] = 0
            last[j - c0] = label_ids[j]
        n_last = d0 - c0
    return n_last


@numba.njit(cache=True)
def mix_votes(scores: np.ndarray, v_ptr: np.ndarray, v_ids: np.ndarray, v_sc: np.ndarray,
              shares: np.ndarray, loss: np.ndarray, fade: float, eps: float,
              label_ptr: np.ndarray, label_ids: np.ndarray, rated: np.ndarray) -> None:
    """Mix each row's vote (CSR ``v_*``, label shares) into ``scores`` in place, row by row,
    with the one of ``shares`` whose faded log loss ``loss`` is lowest so far (ties: the
    smaller share); with the rows' truth (``label_ptr``, ``label_ids``; none when empty)
    every share is then rated on the row (only the rows flagged in ``rated`` when it is not
    empty), so that each row is mixed with what the rows before it chose.

    The loss is the decoder's own: each label's log loss of the mixed probability clipped to
    ``[eps, 1 - eps]``, summed over the labels. A label the vote does not name and the model
    scores at most ``eps`` costs every share the same, and is skipped.
    """
    n, n_labels = scores.shape
    k = len(shares)
    vote = np.zeros(n_labels)
    truth = np.zeros(n_labels, np.bool_)
    named = np.zeros(n_labels, np.bool_)
    learned = len(label_ptr) > 0
    for i in range(n):
        best = 0
        for g in range(1, k):
            if loss[g] < loss[best]:
                best = g
        w = shares[best]
        for j in range(v_ptr[i], v_ptr[i + 1]):
            if v_ids[j] < n_labels:
                vote[v_ids[j]] = v_sc[j]
                named[v_ids[j]] = True
        if learned and (len(rated) == 0 or rated[i]):
            for j in range(label_ptr[i], label_ptr[i + 1]):
                if label_ids[j] < n_labels:
                    truth[label_ids[j]] = True
            for g in range(k):
                loss[g] *= fade
            for lab in range(n_labels):
                p = scores[i, lab]
                if p <= eps and not named[lab]:
                    continue
                for g in range(k):
                    q = min(max((1.0 - shares[g]) * p + shares[g] * vote[lab], eps), 1.0 - eps)
                    loss[g] -= np.log(q) if truth[lab] else np.log(1.0 - q)
            for j in range(label_ptr[i], label_ptr[i + 1]):
                if label_ids[j] < n_labels:
                    truth[label_ids[j]] = False
        if w > 0.0:
            for lab in range(n_labels):
                scores[i, lab] = (1.0 - w) * scores[i, lab] + w * vote[lab]
        for j in range(v_ptr[i], v_ptr[i + 1]):
            if v_ids[j] < n_labels:
                vote[v_ids[j]] = 0.0
                named[v_ids[j]] = False


@dataclass
class Votes:
    """The vote of each row's nearest recent instances, to be mixed into the probabilities a
    decoder chooses the row's label set from.

    ``shares`` (CSR, one row per instance): the labels the ``k`` nearest of the recent
    instances carry, scored by the share of them that carry it; ``weight``: how much of the
    mixed probability the vote is, ``(1 - weight) p_model + weight share`` (0: none).
    With ``loss`` (the faded log loss of each of :data:`VOTE_SHARES`, which this updates in
    place: :class:`NoChange`'s) the weight is instead chosen row by row (:func:`mix_votes`).

    Examples
    --------
    >>> import numpy as np
    >>> v = Votes(Predictions(np.array([0, 2, 2]), np.array([0, 2]), np.array([0.6, 0.2])), 0.5)
    >>> v.mix(np.array([[0.2, 0.8, 0.0], [0.2, 0.8, 0.0]])).tolist()
    [[0.4, 0.4, 0.1], [0.1, 0.4, 0.0]]
    """

    shares: Predictions
    weight: float
    loss: np.ndarray | None = None
    fade: float = 0.99

    def slice(self, start: int, stop: int) -> Votes:
        """The votes of rows ``start`` to ``stop`` (exclusive); the same ``loss``."""
        return Votes(self.shares.slice(start, stop), self.weight, self.loss, self.fade)

    def mix(self, scores: np.ndarray, truth: tuple[np.ndarray, np.ndarray] | None = None,
            rated: np.ndarray | None = None) -> np.ndarray:
        """``scores`` (rows by labels, the rows of these votes) mixed with the votes, in
        place; labels beyond ``scores``' columns are left out. With a chosen weight
        (``loss``), ``truth`` (CSR indptr and ids of the rows' true sets, when they are
        learned: only the rows flagged in ``rated`` when given) rates every share after each
        row."""
        sh = self.shares
        assert sh.scores is not None
        if self.loss is not None:
            lptr, lids = truth if truth is not None else (np.zeros(0, np.int64),) * 2
            mix_votes(scores, np.asarray(sh.indptr, np.int64), np.asarray(sh.label_ids, np.int64),
                      np.asarray(sh.scores, np.float64), VOTE_SHARES, self.loss, self.fade, EPS,
                      np.asarray(lptr, np.int64), np.asarray(lids, np.int64),
                      np.zeros(0, np.bool_) if rated is None else rated)
            return scores
        if self.weight == 0.0:
            return scores
        rows = np.repeat(np.arange(len(sh)), np.diff(sh.indptr))
        ids = np.asarray(sh.label_ids, np.int64)
        inside = ids < scores.shape[1]
        scores *= 1.0 - self.weight
        scores[rows[inside], ids[inside]] += self.weight * sh.scores[inside]
        return scores


def check_vote_weight(vote_weight: float | str) -> None:
    """``vote_weight`` is ``"auto"`` or a share in [0, 1], else a ValueError says so."""
    if vote_weight != "auto":
        try:
            check_range("vote_weight", vote_weight, 0.0, 1.0)
        except ValueError:
            raise ValueError(
                f"vote_weight must be 'auto' or in [0, 1], not {vote_weight!r}") from None


class Neighbours(NamedTuple):
    """What :meth:`NoChange.neighbours` found for a batch of rows."""

    #: the nearest recent instance's label set per row, scored by its similarity
    nearest: Predictions
    #: whether any recent instance qualified, per row
    has: np.ndarray
    #: the vote of the ``k`` nearest, for the decoders
    votes: Votes


class NoChange:
    """Answers taken from the recent past, given instead of the model's answer while they have
    rated better: the label set of the last learned instance, and that of the most similar of
    the last ``window`` learned instances.

    Many recorded streams are ordered: consecutive instances share their labels (corel5k's
    images come in themed runs, plant's and eukaryote's proteins in families), and then the
    label set just learned is a better guess than any model of the features. MOA's
    ``NoChange`` classifier is the baseline that measures this (Bifet et al., "Pitfalls in
    benchmarking data stream classification", 2013; Zliobaite et al., "Evaluation methods and
    decision theory for classification of streaming data with temporal dependence", 2015).
    The nearest recent instance generalises it to runs that interleave, and to label sets that
    a tree's leaves split apart; it is the one-neighbour case of the windowed k-nearest
    neighbours of multi-label streams (Roseberry et al., "Self-adjusting k nearest neighbors
    for continual learning from multi-label drifting data streams", Neurocomputing 2021),
    by cosine in standard units (measured on the 21 anchored shared datasets: plain cosine
    or Euclidean distances gained less, three neighbours' vote no more than one, windows of
    500 or 1,000 no more than 200).

    Both are rival answers, rated like :class:`SeenLabelsets`: after every instance that is
    predicted and then learned (``test_then_train_many``), the model's answer and the two
    rivals are scored by :func:`answer_loss`, faded by ``fade``, and the lowest answers the
    next instance (a learner with these answers predicts every instance it learns, as the
    seen-set decoder does, so that learning alone rates too). On a stream without that order
    the model keeps answering.

    The ``k`` nearest of the window also vote (:meth:`neighbours`, :class:`Votes`): a learner
    whose decoder chooses among label sets mixes, with weight ``vote_weight``, each label's
    share among them into the model's probabilities before choosing. As a rival answer
    the vote of several neighbours did not beat the nearest one's set; mixed into the
    probabilities it measured, on the 21 anchored shared datasets with ``k = 5`` (2026-12-02),
    0.597 / 0.603 / 0.386 (example F1 / micro F1 / subset accuracy) for MLHAT and 0.586 /
    0.596 / 0.389 for iHOMER against 0.592 / 0.599 / 0.387 and 0.585 / 0.595 / 0.386 without
    (weights 0.2 and 0.4: within 0.002 of 0.3; 0.5 lower for iHOMER; with the leaves that
    mix their models, ``leaf_mixing``, iHOMER does best at 0.2). It helps most where
    the labels of alike instances agree more than one instance shows (20ng +0.015 example F1,
    stackex-chess, flags, enron) and costs most where one neighbour is already the best
    guess (virus-go -0.010 to -0.019).

    ``vote_weight="auto"`` chooses the share per stream instead, and keeps choosing: before each
    row, the share of :data:`VOTE_SHARES` whose mixed probabilities have had the lowest log
    loss over the learned rows (faded by ``fade``, as the answers are rated), the loss the
    seen-set decoder's own objective is made of. The best fixed weight differs between
    streams (on the anchored shared datasets the choice ends at 0 on bibtex, medical, scene
    and virus-go, at 0.4 to 0.5 on flags, emotions and birds) and between learners (0.2 for
    iHOMER, whose probabilities had the lower log loss, 0.3 for MLHAT). Measured on the 21
    anchored shared datasets (2026-12-07, example F1 / micro F1 / subset accuracy): MLHAT
    0.6032 / 0.6126 / 0.3981 against 0.6001 / 0.6091 / 0.3980 at its fixed 0.3, iHOMER
    0.6034 / 0.6127 / 0.3975 against 0.6002 / 0.6093 / 0.3947 at its 0.2 (before its
    decoder's first rival became the threshold of its probabilities). With the rating
    patched for the run (not options), MLHAT measured 0.6036 / 0.6125 / 0.3988 by the Brier
    score and 0.6036 / 0.6124 / 0.3994 faded by 0.999; iHOMER moved alike.

    Examples
    --------
    >>> import numpy as np
    >>> nc = NoChange()
    >>> model = Predictions(np.array([0, 1, 2, 3]), np.array([0, 0, 0]), np.ones(3))
    >>> rows = (np.array([0, 1, 2, 3]), np.array([0, 0, 0]), np.array([1.0, 2.0, 3.0]))
    >>> truth = (np.array([0, 1, 2, 3]), np.array([1, 1, 1]))   # label 1, again and again
    >>> nc.choose(model, rows, truth, n_labels=2).label_ids.tolist()   # rated worse from row 2 on
    [0, 0, 1]
    """

    def __init__(self, fade: float = 0.99, window: int = 200, k: int = 5,
                 vote_weight: float | str = 0.0) -> None:
        if not 0.0 < fade <= 1.0:
            raise ValueError(f"fade must be in (0, 1], not {fade!r}")
        if window < 0:
            raise ValueError(f"window must be at least 0, not {window!r}")
        if k < 1:
            raise ValueError(f"k must be at least 1, not {k!r}")
        check_vote_weight(vote_weight)
        self.fade = fade
        self.window = window
        self.k = k
        self.vote_weight = vote_weight
        #: with ``vote_weight="auto"``: the faded log loss of each share of VOTE_SHARES
        self.vote_loss = np.zeros(len(VOTE_SHARES)) if vote_weight == "auto" else None
        #: faded losses of the model's answers, of the last sets and of the nearest rows' sets
        self.rate = np.zeros(3)
        self._last = np.zeros(0, np.int64)
        self._n_last = -1
        self._was = np.zeros(0)
        self._stay = np.zeros(0)
        # the last `window` learned rows (features and labels, CSR) and the feature moments
        # over every learned row
        self._rows = (np.zeros(1, np.int64), np.zeros(0, np.int64), np.zeros(0))
        self._labels = (np.zeros(1, np.int64), np.zeros(0, np.int64))
        self._stats = np.zeros((2, 0))
        self._count = np.zeros(1)
        # the kernel's per-feature buffer, all zeros between calls (64 Ki features: 512 KiB
        # that a call per instance would otherwise allocate every time)
        self._scratch = np.zeros(0)

    @property
    def votes(self) -> bool:
        """Whether the neighbours vote (a fixed positive weight, or one chosen online)."""
        return self.vote_loss is not None or float(self.vote_weight) > 0.0

    @property
    def vote_share(self) -> float:
        """The share of the vote the next row is mixed with."""
        if self.vote_loss is None:
            return float(self.vote_weight)
        return float(VOTE_SHARES[int(np.argmin(self.vote_loss))])

    def _grow(self, n_labels: int, n_features: int) -> None:
        if n_labels > len(self._was):
            extra = n_labels - len(self._was)
            self._was = np.concatenate([self._was, np.zeros(extra)])
            self._stay = np.concatenate([self._stay, np.zeros(extra)])
            self._last = np.concatenate([self._last, np.zeros(extra, np.int64)])
        if n_features > self._stats.shape[1]:
            self._stats = np.concatenate(
                [self._stats, np.zeros((2, n_features - self._stats.shape[1]))], axis=1)
        if self._stats.shape[1] > len(self._scratch):
            self._scratch = np.zeros(self._stats.shape[1])

    def neighbours(self, rows: tuple[np.ndarray, np.ndarray, np.ndarray],
                   truth: tuple[np.ndarray, np.ndarray] | None) -> Neighbours:
        """The rows' nearest recent instances: the nearest one's set (the rival answer) and the
        vote of the ``k`` nearest (for the decoders, :class:`Votes`). With ``truth`` (the
        rows' true sets, CSR indptr and ids: the rows are learned in this call) each row sees
        the rows before it and joins the window after; :meth:`choose` then takes the result
        instead of searching again."""
        ptr, ind, val = (np.asarray(rows[0], np.int64), np.asarray(rows[1], np.int64),
                         np.asarray(rows[2], np.float64))
        n = len(ptr) - 1
        wptr, wind, wval = self._rows
        lptr, lids = self._labels
        first = len(wptr) - 1
        cptr = np.concatenate([wptr, ptr[1:] - ptr[0] + wptr[-1]])
        cind = np.concatenate([wind, ind[ptr[0]:ptr[-1]]])
        cval = np.concatenate([wval, val[ptr[0]:ptr[-1]]])
        if truth is not None:
            tptr, tids = np.asarray(truth[0], np.int64), np.asarray(truth[1], np.int64)
            clptr = np.concatenate([lptr, tptr[1:] - tptr[0] + lptr[-1]])
            clids = np.concatenate([lids, tids[tptr[0]:tptr[-1]]])
        else:
            clptr, clids = lptr, lids
        self._grow(0, int(cind.max(initial=-1)) + 1)
        cap = int(np.diff(clptr).max(initial=0))
        out_ptr = np.zeros(n + 1, np.int64)
        out_ids = np.zeros(n * cap, np.int64)
        out_sc = np.zeros(n * cap)
        has = np.zeros(n, np.bool_)
        v_ptr = np.zeros(n + 1, PTR_DTYPE)
        v_ids = np.zeros(n * cap * self.k, INDEX_DTYPE)
        v_sh = np.zeros(n * cap * self.k, VALUE_DTYPE)
        nearest_rows(cptr, cind, cval, first, self.window, self.k, clptr, clids,
                     truth is not None, self._stats, self._count, self._scratch, out_ptr,
                     out_ids, out_sc, has, v_ptr, v_ids, v_sh)
        if truth is not None:  # keep the last `window` rows
            keep = max(0, len(cptr) - 1 - self.window)
            self._rows = (cptr[keep:] - cptr[keep], cind[cptr[keep]:], cval[cptr[keep]:])
            self._labels = (clptr[keep:] - clptr[keep], clids[clptr[keep]:])
        m = int(out_ptr[-1])
        v = int(v_ptr[-1])
        return Neighbours(Predictions(out_ptr, out_ids[:m], out_sc[:m]), has,
                          Votes(Predictions(v_ptr, v_ids[:v], v_sh[:v]), self.vote_share,
                                self.vote_loss, self.fade))

    def choose(self, answer: Predictions, rows: tuple[np.ndarray, np.ndarray, np.ndarray],
               truth: tuple[np.ndarray, np.ndarray] | None, n_labels: int,
               near: Neighbours | None = None) -> Predictions:
        """The rows' answers: the model's ``answer``, the last set or the nearest row's set, as
        rated. ``rows``: the rows' features (CSR indptr, indices and values); ``truth`` (CSR
        indptr and ids of the rows' true sets, when they are learned in the same call) rates
        the answers after each row and moves the last set and the window on. ``near``: what
        :meth:`neighbours` returned for the same rows and ``truth`` (the window has moved on
        already), else they are searched here."""
        if near is None:
            near = self.neighbours(rows, truth)
        self._grow(n_labels, 0)
        n = len(answer.indptr) - 1
        p_ptr = np.asarray(answer.indptr, np.int64)
        p_ids = np.asarray(answer.label_ids, np.int64)
        p_sc = (np.ones(len(p_ids)) if answer.scores is None
                else np.asarray(answer.scores, np.float64))
        q = near.nearest
        q_ptr = np.asarray(q.indptr, np.int64)
        lptr, lids = truth if truth is not None else (np.zeros(0, np.int64),) * 2
        cap = max(int(np.diff(p_ptr).max(initial=0)), int(np.diff(q_ptr).max(initial=0)),
                  n_labels)
        out_ptr = np.zeros(n + 1, PTR_DTYPE)
        out_ids = np.zeros(n * cap, INDEX_DTYPE)
        out_sc = np.zeros(n * cap, VALUE_DTYPE)
        self._n_last = no_change_rows(p_ptr, p_ids, p_sc, q_ptr,
                                      np.asarray(q.label_ids, np.int64),
                                      np.asarray(q.scores, np.float64), near.has, self._last,
                                      self._n_last, self._was, self._stay,
                                      np.asarray(lptr, np.int64), np.asarray(lids, np.int64),
                                      self.rate, self.fade, out_ptr, out_ids, out_sc)
        m = int(out_ptr[-1])
        return Predictions(out_ptr, out_ids[:m].copy(), out_sc[:m].copy())

    def _relabel(self, mapping: dict[int, list[int]], n_labels: int) -> NoChange:
        """A copy whose label ``l`` is read as the labels ``mapping.get(l, [])``: the window's
        sets and the last set are rewritten, and each image takes ``l``'s persistence counts
        (``was``/``stay``)."""
        nc = NoChange(self.fade, self.window, self.k, self.vote_weight)
        nc.rate = self.rate.copy()
        if self.vote_loss is not None:
            nc.vote_loss = self.vote_loss.copy()
        nc._rows = tuple(a.copy() for a in self._rows)  # type: ignore[assignment]
        nc._stats = self._stats.copy()
        nc._count = self._count.copy()
        nc._scratch = np.zeros(len(self._scratch))
        lptr, lids = self._labels
        sets = [sorted({m for lab in lids[lptr[r]:lptr[r + 1]].tolist()
                        for m in mapping.get(lab, [])}) for r in range(len(lptr) - 1)]
        ptr = np.zeros(len(sets) + 1, np.int64)
        np.cumsum([len(t) for t in sets], out=ptr[1:])
        nc._labels = (ptr, np.array([v for t in sets for v in t], np.int64))
        nc._grow(n_labels, 0)
        for lab, images in mapping.items():
            for m in images:
                if lab < len(self._was):
                    nc._was[m] = self._was[lab]
                    nc._stay[m] = self._stay[lab]
        if self._n_last >= 0:
            last = sorted({m for lab in self._last[: self._n_last].tolist()
                           for m in mapping.get(lab, [])})
            nc._last[: len(last)] = last
            nc._n_last = len(last)
        return nc

    def project(self, label_ids: np.ndarray) -> NoChange:
        """The answers seen through labels ``label_ids`` only (they become ``0..k-1``), as a
        tree's :meth:`~ihomer.learners.mlhat.MLHAT.project`."""
        return self._relabel({int(g): [j] for j, g in enumerate(label_ids)}, len(label_ids))

    def copy_label(self, src: int, dst: int) -> NoChange:
        """Label ``dst`` joins every remembered set that holds ``src`` (as
        :meth:`SeenLabelsets.copy_label`)."""
        n = max(len(self._was), dst + 1)
        mapping = {lab: [lab] for lab in range(n) if lab != dst}
        mapping[src] = [src, dst]
        return self._relabel(mapping, n)

    def state_dict(self) -> dict[str, Any]:
        return {"fade": self.fade, "window": self.window, "k": self.k,
                "vote_weight": self.vote_weight, "rate": self.rate.copy(),
                "last": self._last[: max(self._n_last, 0)].copy(), "n_last": self._n_last,
                "was": self._was.copy(), "stay": self._stay.copy(),
                "rows": [a.copy() for a in self._rows],
                "row_labels": [a.copy() for a in self._labels],
                "stats": self._stats.copy(), "count": self._count.copy(),
                "vote_loss": None if self.vote_loss is None else self.vote_loss.copy()}

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> NoChange:
        # a checkpoint from before the nearest-row answer has no window and no third rate:
        # the window fills again from the next learned rows
        weight = state.get("vote_weight", 0.0)
        nc = cls(float(state["fade"]), int(state.get("window", 200)), int(state.get("k", 5)),
                 weight if weight == "auto" else float(weight))
        if state.get("vote_loss") is not None:
            nc.vote_loss = np.array(state["vote_loss"], np.float64)
        rate = np.array(state["rate"], np.float64)
        nc.rate[: len(rate)] = rate
        if len(rate) < 3:  # the nearest set starts level with the model (ties go to it)
            nc.rate[2] = rate[0]
        nc._was = np.array(state["was"], np.float64)
        nc._stay = np.array(state["stay"], np.float64)
        nc._last = np.zeros(len(nc._was), np.int64)
        last = np.asarray(state["last"], np.int64)
        nc._last[: len(last)] = last
        nc._n_last = int(state["n_last"])
        if "rows" in state:
            nc._rows = (np.array(state["rows"][0], np.int64), np.array(state["rows"][1], np.int64),
                        np.array(state["rows"][2], np.float64))
            nc._labels = (np.array(state["row_labels"][0], np.int64),
                          np.array(state["row_labels"][1], np.int64))
            nc._stats = np.array(state["stats"], np.float64).reshape(2, -1)
            nc._count = np.array(state["count"], np.float64)
            nc._scratch = np.zeros(nc._stats.shape[1])
        return nc
