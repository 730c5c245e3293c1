"""Numba kernels of the multi-label Hoeffding adaptive tree.

Every function takes the tree's :class:`~ihomer.learners.mlhat.state.TreeState` (a named tuple
of arrays), the parameter vector ``prm`` and instances as CSR slices (``indices[a:b]`` sorted
feature ids, ``values[a:b]`` their values, ``label_ids[c:d]`` sorted label ids), so a parent
learner can drive a tree from its own jitted loop. The prequential loop
(:func:`test_then_train`) runs a whole batch without returning to Python, except to grow a pool:
it checks, before touching row ``i``, that the pools can absorb the worst case of one instance,
and otherwise returns ``i`` so that Python can grow the arrays and call again from the same row.
Nothing in a row is ever densified: per-instance work is O(nnz * L) for the logistic models and
naive Bayes, O(nnz * |Y|) for the split statistics.

A parent learner's jitted loop can drive a tree one instance at a time by calling
:func:`test_then_train` with one-row views of its CSR pointers (``indptr[i:i + 2]``,
``label_ptr[i:i + 2]``, offsets stay absolute) and ``start=0``; a return value of 0 means a
pool must grow, which only Python can do.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from ihomer.drift.adwin import adwin_estimation, adwin_init, adwin_update
from ihomer.learners.mlhat.state import (
    C_ALT_LIVE,
    C_ALT_NEW,
    C_ALT_PRUNE,
    C_ALT_SWAP,
    C_DEACT,
    C_DEPTH,
    C_EMPTY,
    C_HUSED,
    C_INACTIVE,
    C_L,
    C_LFREE,
    C_LOG,
    C_LOG_N,
    C_LUSED,
    C_NEED_ROWS,
    C_NFREE,
    C_NLIMIT,
    C_NUSED,
    C_RFREE,
    C_RLIMIT,
    C_ROOT,
    C_RUSED,
    C_SEEN,
    C_SPLITS,
    LF_LSDIST,
    LF_SW,
    LF_W,
    LF_WLAST,
    LI_ACTIVE,
    LI_HEAD,
    LI_LSN,
    LI_NODE,
    LI_NROWS,
    LOG_SLOTS,
    LOG_STARTED,
    LOG_SWAPPED,
    LV_BIAS,
    LV_BIAS2,
    LV_ERR,
    LV_LAB,
    LV_SLAB,
    M_LR,
    M_LR2,
    M_MAJ,
    M_NB,
    N_MODELS,
    ND_ALT,
    ND_DEPTH,
    ND_FEAT,
    ND_ISALT,
    ND_LEAF,
    ND_LEFT,
    ND_RIGHT,
    NF_ERR,
    NF_ERR2,
    NF_ERRN,
    NF_THR,
    P_ADWIN_DELTA,
    P_ALPHA,
    P_DELTA,
    P_DWIN,
    P_FADE,
    P_GRACE,
    P_LOSS,
    P_LR,
    P_LR2,
    P_MAXDEPTH,
    P_MEM_PERIOD,
    P_MIX,
    P_NONEMPTY,
    P_NTHR,
    P_POISSON,
    P_SWITCH,
    P_TAU,
    P_THRESH,
    RF_CNT,
    RF_MAX,
    RF_MIN,
    RF_SQ,
    RF_SUM,
    RI_FEAT,
    RI_LEAF,
    RI_NEXT,
    RV_LSQ,
    RV_LSUM,
    RV_W,
    RV_W2,
)

njit = numba.njit(cache=True)

_LOG2 = math.log(2.0)
_HASH_MUL = np.int64(-7046029254386353131)  # 0x9E3779B97F4A7C15 as a signed word


# ============================================================================ small helpers
@njit
def entropy2(p: float) -> float:
    """Binary entropy in bits, 0 at p in {0, 1} (p is clipped to [0, 1])."""
    if p <= 0.0 or p >= 1.0:
        return 0.0
    return -(p * math.log(p) + (1.0 - p) * math.log(1.0 - p)) / _LOG2


@njit
def hoeffding_bound(value_range: float, delta: float, n: float) -> float:
    """``sqrt(R^2 ln(1/delta) / (2n))``: the deviation the mean of n draws can show by chance."""
    return math.sqrt(value_range * value_range * math.log(1.0 / delta) / (2.0 * n))


@njit
def normal_cdf(z: float) -> float:
    return 0.5 * math.erfc(-z / math.sqrt(2.0))


@njit
def sigmoid(z: float) -> float:
    if z >= 0.0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


@njit
def feature_value(indices, values, a, b, f) -> float:
    """Value of feature ``f`` in the sorted CSR slice ``a:b`` (0.0 when absent)."""
    lo = a
    hi = b
    while lo < hi:
        mid = (lo + hi) >> 1
        g = indices[mid]
        if g < f:
            lo = mid + 1
        elif g > f:
            hi = mid
        else:
            return values[mid]
    return 0.0


@njit
def poisson1(rng) -> int:
    """A Poisson(1) draw (Knuth's product of uniforms) from the xorshift64* state ``rng[0]``."""
    limit = math.exp(-1.0)
    k = 0
    p = 1.0
    while True:
        x = rng[0]
        x ^= x >> np.uint64(12)
        x ^= x << np.uint64(25)
        x ^= x >> np.uint64(27)
        rng[0] = x
        u = float((x * np.uint64(2685821657736338717)) >> np.uint64(11)) * 2.0**-53
        p *= u
        if p < limit:
            return k
        k += 1


# ============================================================================ hash table
@njit
def _slot(key, mask):
    h = key * _HASH_MUL
    return (h ^ (h >> 29)) & mask


@njit
def ht_find(s, key) -> int:
    keys = s.ht_key
    mask = len(keys) - 1
    i = _slot(key, mask)
    while True:
        k = keys[i]
        if k == key:
            return s.ht_val[i]
        if k == -1:
            return -1
        i = (i + 1) & mask


@njit
def ht_insert(s, key, val) -> None:
    keys = s.ht_key
    mask = len(keys) - 1
    i = _slot(key, mask)
    while keys[i] != -1:
        i = (i + 1) & mask
    keys[i] = key
    s.ht_val[i] = val
    s.ctr[C_HUSED] += 1


@njit
def ht_delete(s, key) -> None:
    """Remove ``key`` by backward-shift deletion, so probing never meets tombstones."""
    keys = s.ht_key
    vals = s.ht_val
    mask = len(keys) - 1
    i = _slot(key, mask)
    while keys[i] != key:
        if keys[i] == -1:
            return
        i = (i + 1) & mask
    j = i
    while True:
        j = (j + 1) & mask
        if keys[j] == -1:
            break
        k = _slot(keys[j], mask)
        # entry j may move back to i only if its home slot k is not in the cyclic range (i, j]
        if i <= j:
            stays = i < k <= j
        else:
            stays = k > i or k <= j
        if not stays:
            keys[i] = keys[j]
            vals[i] = vals[j]
            i = j
    keys[i] = -1
    s.ctr[C_HUSED] -= 1


@njit
def ht_fill(s) -> None:
    """Insert every live row (after the table was reallocated)."""
    for r in range(len(s.rw_i)):
        if s.rw_i[r, RI_LEAF] >= 0:
            ht_insert(s, (np.int64(s.rw_i[r, RI_LEAF]) << 32) | np.int64(s.rw_i[r, RI_FEAT]), r)


# ============================================================================ pools
@njit
def new_leaf_node(s, prm, depth, isalt) -> int:
    """A node with a fresh leaf; the caller guarantees a free node and a free leaf."""
    n = s.ctr[C_NFREE]
    s.ctr[C_NFREE] = s.nd_i[n, ND_LEFT]
    s.ctr[C_NUSED] += 1
    lf = s.ctr[C_LFREE]
    s.ctr[C_LFREE] = s.lf_i[lf, LI_NODE]
    s.ctr[C_LUSED] += 1
    s.nd_i[n, ND_FEAT] = -1
    s.nd_f[n, NF_THR] = 0.0
    s.nd_i[n, ND_LEFT] = -1
    s.nd_i[n, ND_RIGHT] = -1
    s.nd_i[n, ND_LEAF] = lf
    s.nd_i[n, ND_ALT] = -1
    s.nd_i[n, ND_DEPTH] = depth
    s.nd_i[n, ND_ISALT] = isalt
    s.nd_f[n, NF_ERR] = 0.0
    s.nd_f[n, NF_ERR2] = 0.0
    s.nd_f[n, NF_ERRN] = 0.0
    if depth > s.ctr[C_DEPTH]:
        s.ctr[C_DEPTH] = depth
    adwin_init(s.nd_adwin[n], prm[P_ADWIN_DELTA], 32, 5, 5, 10)
    s.lf_i[lf, LI_NODE] = n
    s.lf_i[lf, LI_ACTIVE] = 1
    s.lf_i[lf, LI_HEAD] = -1
    s.lf_i[lf, LI_NROWS] = 0
    s.lf_f[lf, LF_W] = 0.0
    s.lf_f[lf, LF_SW] = 0.0
    s.lf_f[lf, LF_WLAST] = 0.0
    s.lf_lv[lf, LV_LAB, :] = 0.0
    s.lf_lv[lf, LV_SLAB, :] = 0.0
    s.lf_lv[lf, LV_BIAS, :] = 0.0
    s.lf_lv[lf, LV_BIAS2, :] = 0.0
    s.lf_lv[lf, LV_ERR:LV_ERR + N_MODELS, :] = 0.0
    s.lf_err[lf, :] = 0.0
    s.lf_lscnt[lf, :] = 0.0
    s.lf_i[lf, LI_LSN] = 0
    s.lf_f[lf, LF_LSDIST] = 0.0
    return n


@njit
def free_leaf_rows(s, lf) -> None:
    """Return every statistics row of leaf ``lf`` to the free list."""
    r = s.lf_i[lf, LI_HEAD]
    while r >= 0:
        nxt = s.rw_i[r, RI_NEXT]
        ht_delete(s, (np.int64(lf) << 32) | np.int64(s.rw_i[r, RI_FEAT]))
        s.rw_i[r, RI_LEAF] = -1
        s.rw_i[r, RI_NEXT] = s.ctr[C_RFREE]
        s.ctr[C_RFREE] = r
        s.ctr[C_RUSED] -= 1
        r = nxt
    s.lf_i[lf, LI_HEAD] = -1
    s.lf_i[lf, LI_NROWS] = 0


@njit
def _free_leaf(s, lf) -> None:
    free_leaf_rows(s, lf)
    if s.lf_i[lf, LI_ACTIVE] == 0:
        s.ctr[C_INACTIVE] -= 1
    s.lf_i[lf, LI_ACTIVE] = -1
    s.lf_i[lf, LI_NODE] = s.ctr[C_LFREE]
    s.ctr[C_LFREE] = lf
    s.ctr[C_LUSED] -= 1


@njit
def _free_node(s, n) -> None:
    s.nd_i[n, ND_DEPTH] = -1
    s.nd_i[n, ND_LEAF] = -1
    s.nd_i[n, ND_ALT] = -1
    s.nd_i[n, ND_LEFT] = s.ctr[C_NFREE]
    s.ctr[C_NFREE] = n
    s.ctr[C_NUSED] -= 1


@njit
def free_subtree(s, n, with_root) -> None:
    """Free everything below node ``n`` (alternates included), and ``n`` itself if asked."""
    stack = np.empty(len(s.nd_i), np.int32)
    top = 0
    if with_root:
        stack[0] = n
        top = 1
    else:
        if s.nd_i[n, ND_LEAF] < 0:
            stack[0] = s.nd_i[n, ND_LEFT]
            stack[1] = s.nd_i[n, ND_RIGHT]
            top = 2
        if s.nd_i[n, ND_ALT] >= 0:
            stack[top] = s.nd_i[n, ND_ALT]
            top += 1
            s.ctr[C_ALT_LIVE] -= 1
    while top > 0:
        top -= 1
        m = stack[top]
        if s.nd_i[m, ND_LEAF] >= 0:
            _free_leaf(s, s.nd_i[m, ND_LEAF])
        else:
            stack[top] = s.nd_i[m, ND_LEFT]
            stack[top + 1] = s.nd_i[m, ND_RIGHT]
            top += 2
        if s.nd_i[m, ND_ALT] >= 0:
            stack[top] = s.nd_i[m, ND_ALT]
            top += 1
            s.ctr[C_ALT_LIVE] -= 1
        _free_node(s, m)


@njit
def route(s, start, indices, values, a, b) -> int:
    """The leaf node an instance reaches from node ``start`` (alternates are not followed)."""
    n = start
    while s.nd_i[n, ND_LEAF] < 0:
        if feature_value(indices, values, a, b, s.nd_i[n, ND_FEAT]) <= s.nd_f[n, NF_THR]:
            n = s.nd_i[n, ND_LEFT]
        else:
            n = s.nd_i[n, ND_RIGHT]
    return n


# ============================================================================ leaf models
@njit
def leaf_choice(s, lf) -> int:
    """The model with the lowest accumulated loss at the leaf (ties: simplest first).

    An inactive leaf has no feature statistics, so it predicts with its majority labelset.
    """
    if s.lf_i[lf, LI_ACTIVE] != 1:
        return M_MAJ
    best = 0
    for m in range(1, N_MODELS):
        if s.lf_err[lf, m] < s.lf_err[lf, best]:
            best = m
    return best


@njit
def _majority_scores(s, lf, L, out) -> None:
    """Labels of the most frequent labelset score above 0.5, the others below.

    The score of label l is its share of the tracked labelset weight ``q_l``, mapped to
    ``0.5 + 0.5 q_l`` inside the majority labelset and ``0.49 q_l`` outside, so that thresholding
    at 0.5 reproduces the majority labelset while scores still rank labels by frequency.
    """
    n = s.lf_i[lf, LI_LSN]
    for lab in range(L):
        out[lab] = 0.0
    if n == 0:
        return
    best = 0
    tot = 0.0
    for e in range(n):
        tot += s.lf_lscnt[lf, e]
        if s.lf_lscnt[lf, e] > s.lf_lscnt[lf, best]:
            best = e
    if tot <= 0.0:
        return
    for e in range(n):
        c = s.lf_lscnt[lf, e] / tot
        for lab in range(L):
            if (s.lf_lsbits[lf, e, lab >> 6] >> np.uint64(lab & 63)) & np.uint64(1):
                out[lab] += c
    for lab in range(L):
        if (s.lf_lsbits[lf, best, lab >> 6] >> np.uint64(lab & 63)) & np.uint64(1):
            out[lab] = 0.5 + 0.5 * out[lab]
        else:
            out[lab] = 0.49 * out[lab]


@njit
def _nb_scores(s, prm, lf, indices, values, a, b, L, out) -> None:
    """Per-label naive Bayes over the features present in the row.

    Binary features use Laplace-smoothed presence counts (``alpha``), numeric ones a Gaussian per
    label value whose moments include the implied zeros. Only the non-zero features of the row
    contribute evidence: the absence terms would cost O(features seen at the leaf) per
    prediction, and for rare sparse features they are close to log(1) anyway.
    """
    alpha = prm[P_ALPHA]
    n = s.lf_f[lf, LF_SW]
    for lab in range(L):
        n1 = s.lf_lv[lf, LV_SLAB, lab]
        out[lab] = math.log((n1 + alpha) / (n - n1 + alpha))
    if n > 0.0:
        base = np.int64(lf) << 32
        for j in range(a, b):
            v = values[j]
            if v == 0.0:
                continue
            f = indices[j]
            r = ht_find(s, base | np.int64(f))
            if s.g_bin[f]:
                c = s.rw_f[r, RF_CNT] if r >= 0 else 0.0
                for lab in range(L):
                    n1 = s.lf_lv[lf, LV_SLAB, lab]
                    c1 = s.rw_lv[r, RV_LSUM, lab] if r >= 0 else 0.0
                    out[lab] += math.log((c1 + alpha) / (n1 + 2.0 * alpha)) - math.log(
                        (c - c1 + alpha) / (n - n1 + 2.0 * alpha))
            elif r >= 0:
                sc = s.g_scale[f]
                floor = 1e-4 * sc * sc + 1e-12
                tsum = s.rw_f[r, RF_SUM]
                tsq = s.rw_f[r, RF_SQ]
                for lab in range(L):
                    n1 = s.lf_lv[lf, LV_SLAB, lab]
                    n0 = n - n1
                    if n1 < 1.0 or n0 < 1.0:
                        continue
                    m1 = s.rw_lv[r, RV_LSUM, lab] / n1
                    v1 = max(s.rw_lv[r, RV_LSQ, lab] / n1 - m1 * m1, floor)
                    m0 = (tsum - s.rw_lv[r, RV_LSUM, lab]) / n0
                    v0 = max((tsq - s.rw_lv[r, RV_LSQ, lab]) / n0 - m0 * m0, floor)
                    out[lab] += 0.5 * ((v - m0) ** 2 / v0 + math.log(v0)
                                     - (v - m1) ** 2 / v1 - math.log(v1))
    for lab in range(L):
        out[lab] = sigmoid(min(max(out[lab], -30.0), 30.0))


@njit
def _lr_scores(s, lf, which, indices, values, a, b, L, out) -> None:
    """Per-label logistic regression ``which`` (0 slow, 1 fast) on max-abs scaled inputs
    (scaling keeps zeros zero)."""
    for lab in range(L):
        out[lab] = s.lf_lv[lf, LV_BIAS + which, lab]
    base = np.int64(lf) << 32
    for j in range(a, b):
        v = values[j]
        if v == 0.0:
            continue
        f = indices[j]
        r = ht_find(s, base | np.int64(f))
        if r < 0:
            continue
        sc = s.g_scale[f]
        x = v / sc if sc > 0.0 else v
        for lab in range(L):
            out[lab] += s.rw_lv[r, RV_W + which, lab] * x
    for lab in range(L):
        out[lab] = sigmoid(min(max(out[lab], -30.0), 30.0))


@njit
def leaf_scores_all(s, prm, lf, indices, values, a, b, L, out3) -> None:
    """Every model's label probabilities into ``out3[m, :L]`` (needed to rate them)."""
    _majority_scores(s, lf, L, out3[M_MAJ])
    if s.lf_i[lf, LI_ACTIVE] == 1:
        _nb_scores(s, prm, lf, indices, values, a, b, L, out3[M_NB])
        _lr_scores(s, lf, 0, indices, values, a, b, L, out3[M_LR])
        _lr_scores(s, lf, 1, indices, values, a, b, L, out3[M_LR2])
    else:
        for m in range(1, N_MODELS):
            out3[m, :L] = out3[M_MAJ, :L]


@njit
def _never_present_out(s, L, out) -> None:
    """Probability 0 for every label no learned instance carried yet.

    Before its first occurrence nothing tells a label from the others but its absences: naive
    Bayes answers its smoothed prior and the logistic regressions, pushed down only, can still
    overshoot above 0.5 on an unusual row, so a mixture or the expected-F1 decoder would answer
    labels the stream never produced. The count ``lb_n`` is the tree's, not a leaf's: a leaf
    born after the label occurred elsewhere still answers it from its models.
    """
    for lab in range(L):
        if s.lb_n[0, 0, lab] <= 0.0:
            out[lab] = 0.0


@njit
def leaf_answer(s, prm, lf, sc3, L, out) -> None:
    """The leaf's label probabilities into ``out[:L]``, from its models' (``sc3[:N_MODELS]``,
    as :func:`leaf_scores_all` gives them).

    With ``P_MIX`` at 0 or more, each label's is the mixture of the models' probabilities
    weighted by ``exp(-P_MIX * (e_m - min e))``, ``e_m`` the model's faded squared error on
    that label (the exponentially weighted average forecaster; Cesa-Bianchi and Lugosi,
    "Prediction, learning, and games", 2006, ch. 2): per label, the models that have
    predicted it best lead, and where they are level their probabilities are averaged. Below 0,
    and for a label no model was rated on yet (all errors 0: a fresh leaf knows nothing, and
    an average of its models' uninformed 0.5s would answer a label), every label's is the
    leaf's best model's (:func:`leaf_choice`).

    A label the tree has never learned as present (``lb_n`` 0) answers 0, whatever the models
    say (:func:`_never_present_out`).
    """
    eta = prm[P_MIX]
    best = leaf_choice(s, lf)
    if eta < 0.0 or s.lf_i[lf, LI_ACTIVE] != 1:
        for lab in range(L):
            out[lab] = sc3[best, lab]
        _never_present_out(s, L, out)
        return
    for lab in range(L):
        lo = s.lf_lv[lf, LV_ERR, lab]
        hi = lo
        for m in range(1, N_MODELS):
            lo = min(lo, s.lf_lv[lf, LV_ERR + m, lab])
            hi = max(hi, s.lf_lv[lf, LV_ERR + m, lab])
        if hi == 0.0:  # never rated on this label (a fresh leaf, a new label): the leaf's rule
            out[lab] = sc3[best, lab]
            continue
        tot = 0.0
        acc = 0.0
        for m in range(N_MODELS):
            w = np.exp(-eta * (s.lf_lv[lf, LV_ERR + m, lab] - lo))
            tot += w
            acc += w * sc3[m, lab]
        out[lab] = acc / tot
    _never_present_out(s, L, out)


@njit
def leaf_scores(s, prm, lf, indices, values, a, b, L, sc3, out) -> None:
    """Label probabilities of the leaf (:func:`leaf_answer`); ``sc3`` is scratch room for
    every model's, computed only when they are mixed."""
    if prm[P_MIX] >= 0.0 and s.lf_i[lf, LI_ACTIVE] == 1:
        leaf_scores_all(s, prm, lf, indices, values, a, b, L, sc3)
        leaf_answer(s, prm, lf, sc3, L, out)
        return
    m = leaf_choice(s, lf)
    if m == M_MAJ:
        _majority_scores(s, lf, L, out)
    elif m == M_NB:
        _nb_scores(s, prm, lf, indices, values, a, b, L, out)
    elif m == M_LR:
        _lr_scores(s, lf, 0, indices, values, a, b, L, out)
    else:
        _lr_scores(s, lf, 1, indices, values, a, b, L, out)
    _never_present_out(s, L, out)


@njit
def instance_loss(scores, y, L, kind, thr) -> float:
    """Loss of the ``scores`` thresholded at ``thr`` against the 0/1 vector ``y``.

    ``kind`` 0: Hamming loss, the fraction of the L labels predicted wrongly. ``kind`` 1: example
    F1 loss, ``1 - 2|Y & Z| / (|Y| + |Z|)`` (0 when both sets are empty). Hamming loss is what
    the MLHAT paper rates leaf models by, but on sparse label sets it rewards predicting nothing;
    the F1 loss rewards getting the relevant labels, which is what the F1 metrics measure.
    """
    if L == 0:
        return 0.0
    miss = 0
    hit = 0
    for lab in range(L):
        p = scores[lab] >= thr
        t = y[lab] != 0
        if p != t:
            miss += 1
        elif p:
            hit += 1
    if kind == 0:
        return miss / L
    n_both = miss + 2 * hit  # |Y| + |Z|
    if n_both == 0:
        return 0.0
    return 1.0 - 2.0 * hit / n_both


# ============================================================================ leaf learning
@njit
def _labelset_update(s, lf, bits, k) -> None:
    """Count the row's labelset in the leaf's table (space-saving once the table is full)."""
    n = s.lf_i[lf, LI_LSN]
    nw = bits.shape[0]
    for e in range(n):
        same = True
        for w in range(nw):
            if s.lf_lsbits[lf, e, w] != bits[w]:
                same = False
                break
        if same:
            s.lf_lscnt[lf, e] += k
            return
    s.lf_f[lf, LF_LSDIST] += 1.0
    if n < s.lf_lscnt.shape[1]:
        e = n
        s.lf_i[lf, LI_LSN] = n + 1
        s.lf_lscnt[lf, e] = k
    else:
        e = 0
        for j in range(1, n):
            if s.lf_lscnt[lf, j] < s.lf_lscnt[lf, e]:
                e = j
        s.lf_lscnt[lf, e] += k
    for w in range(nw):
        s.lf_lsbits[lf, e, w] = bits[w]


@njit
def _row_for(s, lf, f) -> int:
    """The statistics row of (leaf, feature), created on first use; -2 when at the row limit."""
    key = (np.int64(lf) << 32) | np.int64(f)
    r = ht_find(s, key)
    if r >= 0:
        return r
    if s.ctr[C_RUSED] >= s.ctr[C_RLIMIT] or s.ctr[C_RFREE] < 0:
        return -2
    r = s.ctr[C_RFREE]
    s.ctr[C_RFREE] = s.rw_i[r, RI_NEXT]
    s.ctr[C_RUSED] += 1
    s.rw_i[r, RI_FEAT] = f
    s.rw_i[r, RI_LEAF] = lf
    s.rw_f[r, RF_CNT] = 0.0
    s.rw_f[r, RF_SUM] = 0.0
    s.rw_f[r, RF_SQ] = 0.0
    s.rw_f[r, RF_MIN] = np.inf
    s.rw_f[r, RF_MAX] = -np.inf
    s.rw_lv[r, RV_LSUM, :] = 0.0
    s.rw_lv[r, RV_LSQ, :] = 0.0
    s.rw_lv[r, RV_W, :] = 0.0
    s.rw_lv[r, RV_W2, :] = 0.0
    s.rw_i[r, RI_NEXT] = s.lf_i[lf, LI_HEAD]
    s.lf_i[lf, LI_HEAD] = r
    s.lf_i[lf, LI_NROWS] += 1
    ht_insert(s, key, r)
    return r


@njit
def leaf_learn(s, prm, lf, indices, values, a, b, label_ids, c, d, y, bits, k, sc3, L,
               grad, grad2) -> None:
    """Learn one instance of weight ``k`` at leaf ``lf``.

    ``sc3`` holds the models' predictions made *before* this update: their losses rate the
    models (prequentially) and the logistic ones give their gradients. The logistic models take
    one normalised gradient step each: the step size divided by ``1 + ||x||^2`` of the max-abs
    scaled row.
    """
    kind = int(prm[P_LOSS])
    fade = prm[P_FADE] ** k
    for m in range(N_MODELS):
        s.lf_err[lf, m] = fade * s.lf_err[lf, m] + k * instance_loss(sc3[m], y, L, kind,
                                                                    prm[P_THRESH])
        for lab in range(L):
            e = sc3[m, lab] - y[lab]
            s.lf_lv[lf, LV_ERR + m, lab] = fade * s.lf_lv[lf, LV_ERR + m, lab] + k * e * e
    s.lf_f[lf, LF_W] += k
    for j in range(c, d):
        s.lf_lv[lf, LV_LAB, label_ids[j]] += k
    _labelset_update(s, lf, bits, k)
    if s.lf_i[lf, LI_ACTIVE] != 1:
        return
    # normalised step (as in NLMS): divide by the squared norm of the scaled input, bias
    # included, so that a row with a thousand active features moves the logits as much as a
    # row with ten
    sq = 1.0
    for j in range(a, b):
        sc = s.g_scale[indices[j]]
        x = values[j] / sc if sc > 0.0 else values[j]
        sq += x * x
    eta = prm[P_LR] * k / sq
    eta2 = prm[P_LR2] * k / sq
    for lab in range(L):
        grad[lab] = eta * (y[lab] - sc3[M_LR, lab])
        grad2[lab] = eta2 * (y[lab] - sc3[M_LR2, lab])
        s.lf_lv[lf, LV_BIAS, lab] += grad[lab]
        s.lf_lv[lf, LV_BIAS2, lab] += grad2[lab]
    s.lf_f[lf, LF_SW] += k
    for j in range(c, d):
        s.lf_lv[lf, LV_SLAB, label_ids[j]] += k
    for j in range(a, b):
        v = values[j]
        if v == 0.0:
            continue
        f = indices[j]
        r = _row_for(s, lf, f)
        if r == -2:
            enforce_memory(s, lf)
            if s.lf_i[lf, LI_ACTIVE] != 1:
                return
            r = _row_for(s, lf, f)
            if r < 0:
                return
        kv = k * v
        kv2 = kv * v
        s.rw_f[r, RF_CNT] += k
        s.rw_f[r, RF_SUM] += kv
        s.rw_f[r, RF_SQ] += kv2
        if v < s.rw_f[r, RF_MIN]:
            s.rw_f[r, RF_MIN] = v
        if v > s.rw_f[r, RF_MAX]:
            s.rw_f[r, RF_MAX] = v
        for jj in range(c, d):
            lab = label_ids[jj]
            s.rw_lv[r, RV_LSUM, lab] += kv
            s.rw_lv[r, RV_LSQ, lab] += kv2
        sc = s.g_scale[f]
        x = v / sc if sc > 0.0 else v
        for lab in range(L):
            s.rw_lv[r, RV_W, lab] += grad[lab] * x
            s.rw_lv[r, RV_W2, lab] += grad2[lab] * x


# ============================================================================ splitting
@njit
def _label_gain(p_all, n, left, a):
    """Entropy decrease of one label when weight ``left`` (``a`` of it positive) goes left."""
    right = n - left
    if left <= 0.0 or right <= 0.0:
        return 0.0
    n1 = p_all * n
    return (entropy2(p_all) - left / n * entropy2(a / left)
            - right / n * entropy2((n1 - a) / right))


@njit
def split_merit_binary(s, lf, r, L) -> float:
    """Impurity decrease of "feature absent vs present", from exact counts."""
    n = s.lf_f[lf, LF_SW]
    nr = s.rw_f[r, RF_CNT]
    if nr <= 0.0 or nr >= n:
        return 0.0
    merit = 0.0
    for lab in range(L):
        n1 = s.lf_lv[lf, LV_SLAB, lab]
        merit += _label_gain(n1 / n, n, n - nr, n1 - s.rw_lv[r, RV_LSUM, lab])
    return merit


@njit
def _label_moments(s, lf, r, L, mom) -> None:
    """Mean and standard deviation of the feature given label present / absent, zeros included."""
    n = s.lf_f[lf, LF_SW]
    for lab in range(L):
        n1 = s.lf_lv[lf, LV_SLAB, lab]
        n0 = n - n1
        if n1 > 0.0:
            m1 = s.rw_lv[r, RV_LSUM, lab] / n1
            mom[0, lab] = m1
            mom[1, lab] = math.sqrt(max(s.rw_lv[r, RV_LSQ, lab] / n1 - m1 * m1, 0.0))
        if n0 > 0.0:
            m0 = (s.rw_f[r, RF_SUM] - s.rw_lv[r, RV_LSUM, lab]) / n0
            mom[2, lab] = m0
            q0 = (s.rw_f[r, RF_SQ] - s.rw_lv[r, RV_LSQ, lab]) / n0
            mom[3, lab] = math.sqrt(max(q0 - m0 * m0, 0.0))


@njit
def _gauss_below(n, mean, sd, t) -> float:
    """Weight of a Gaussian(mean, sd) population of size n at or below t."""
    if n <= 0.0:
        return 0.0
    if sd <= 1e-12:
        return n if t >= mean else 0.0
    return n * normal_cdf((t - mean) / sd)


@njit
def split_merit_numeric(s, lf, r, L, n_thr, mom, out_t) -> float:
    """Best impurity decrease over ``n_thr`` evenly spaced thresholds of a numeric feature.

    For each label, the weights of its positive and negative instances below a threshold are
    read off a Gaussian fitted to each (Gaussian approximation, as in river's and MOA's numeric
    observers); the merit sums the per-label entropy decreases.
    """
    n = s.lf_f[lf, LF_SW]
    lo = s.rw_f[r, RF_MIN]
    hi = s.rw_f[r, RF_MAX]
    if s.rw_f[r, RF_CNT] < n:  # implied zeros
        lo = min(lo, 0.0)
        hi = max(hi, 0.0)
    if not hi > lo:
        return 0.0
    _label_moments(s, lf, r, L, mom)
    best = 0.0
    for j in range(1, n_thr + 1):
        t = lo + (hi - lo) * j / (n_thr + 1)
        merit = 0.0
        for lab in range(L):
            n1 = s.lf_lv[lf, LV_SLAB, lab]
            a1 = _gauss_below(n1, mom[0, lab], mom[1, lab], t)
            a0 = _gauss_below(n - n1, mom[2, lab], mom[3, lab], t)
            merit += _label_gain(n1 / n, n, a1 + a0, a1)
        if merit > best:
            best = merit
            out_t[0] = t
    return best


@njit
def attempt_split(s, prm, node, lf, L, mom, tbuf) -> bool:
    """Hoeffding test on the leaf's best and second-best features; split if it passes.

    Returns False, with ``ctr[C_NEED_ROWS]`` set, when the split passed but the row pool
    cannot hold the children's inherited weights yet: the caller grows it and the leaf tries
    again on its next instance.

    The range of the merit is ``log2`` of the number of distinct labelsets seen at the leaf (1
    when at most two), the second best is at least the null split (merit 0), and the tie
    threshold ``tau`` forces a decision once the bound is below ``tau`` times the range. Scaling
    by the range keeps the tie rule's meaning (the bound is a small fraction of what a merit
    can be) when labelsets are many: with an absolute ``tau`` of 0.05 and a range of 10 bits
    a tie would need millions of instances, and on the shared suite trees never grew; with the
    relative rule they grow on the long streams (imdb: 5 leaves) and the mean F1 is unchanged
    or slightly better. With two labelsets or fewer both rules coincide.
    """
    n = s.lf_f[lf, LF_SW]
    if n <= 0.0 or s.nd_i[node, ND_DEPTH] >= prm[P_MAXDEPTH]:
        return False
    if s.ctr[C_NUSED] + 2 > s.ctr[C_NLIMIT]:
        return False
    n_thr = int(prm[P_NTHR])
    best = 0.0
    second = 0.0
    best_f = -1
    best_t = 0.0
    r = s.lf_i[lf, LI_HEAD]
    while r >= 0:
        f = s.rw_i[r, RI_FEAT]
        if s.g_bin[f]:
            m = split_merit_binary(s, lf, r, L)
            t = 0.5
        else:
            m = split_merit_numeric(s, lf, r, L, n_thr, mom, tbuf)
            t = tbuf[0]
        if m > best:
            second = best
            best = m
            best_f = f
            best_t = t
        elif m > second:
            second = m
        r = s.rw_i[r, RI_NEXT]
    if best_f < 0:
        return False
    dist = s.lf_f[lf, LF_LSDIST]
    rng = math.log2(dist) if dist > 2.0 else 1.0
    eps = hoeffding_bound(rng, prm[P_DELTA], n)
    if best - second > eps or eps < prm[P_TAU] * rng:
        rows = 2 * s.lf_i[lf, LI_NROWS]
        copy = s.ctr[C_RUSED] + rows <= s.ctr[C_RLIMIT]
        if copy and len(s.rw_i) - s.ctr[C_RUSED] < rows:
            s.ctr[C_NEED_ROWS] = rows  # grow the row pool first, then try again
            return False
        split_leaf(s, prm, node, best_f, best_t, copy)
        return True
    return False


@njit
def split_leaf(s, prm, node, f, t, copy_weights) -> None:
    """Turn leaf ``node`` into a split on ``feature <= t`` with two fresh leaves.

    A split must not cost accuracy, yet fresh leaves know nothing. So each child inherits what
    does not depend on which side an instance went: the logistic weights and biases (when
    ``copy_weights``; the memory bound may forbid the extra rows), the parent's labelset table
    scaled to total weight 1, and the parent's per-model loss *rates* at weight 1, a prior that
    keeps the parent's best model in charge until the child's own losses say otherwise. Split
    statistics and naive Bayes counts start empty: copying them would make the child's Hoeffding
    tests count instances it never saw.
    """
    lf = s.nd_i[node, ND_LEAF]
    depth = s.nd_i[node, ND_DEPTH] + 1
    isalt = s.nd_i[node, ND_ISALT]
    tot = 0.0
    for e in range(s.lf_i[lf, LI_LSN]):
        tot += s.lf_lscnt[lf, e]
    w = s.lf_f[lf, LF_W]
    for side in range(2):
        ch = new_leaf_node(s, prm, depth, isalt)
        clf = s.nd_i[ch, ND_LEAF]
        s.lf_lv[clf, LV_BIAS, :] = s.lf_lv[lf, LV_BIAS, :]
        s.lf_lv[clf, LV_BIAS2, :] = s.lf_lv[lf, LV_BIAS2, :]
        s.lf_lv[clf, LV_ERR:LV_ERR + N_MODELS, :] = s.lf_lv[lf, LV_ERR:LV_ERR + N_MODELS, :]
        for m in range(N_MODELS):
            s.lf_err[clf, m] = s.lf_err[lf, m] / w if w > 0.0 else 0.0
        s.lf_i[clf, LI_LSN] = s.lf_i[lf, LI_LSN]
        s.lf_f[clf, LF_LSDIST] = s.lf_i[lf, LI_LSN]
        for e in range(s.lf_i[lf, LI_LSN]):
            s.lf_lscnt[clf, e] = s.lf_lscnt[lf, e] / tot if tot > 0.0 else 0.0
            s.lf_lsbits[clf, e, :] = s.lf_lsbits[lf, e, :]
        if copy_weights:
            r = s.lf_i[lf, LI_HEAD]
            while r >= 0:
                r2 = _row_for(s, clf, s.rw_i[r, RI_FEAT])
                s.rw_lv[r2, RV_W, :] = s.rw_lv[r, RV_W, :]
                s.rw_lv[r2, RV_W2, :] = s.rw_lv[r, RV_W2, :]
                r = s.rw_i[r, RI_NEXT]
        if side == 0:
            s.nd_i[node, ND_LEFT] = ch
        else:
            s.nd_i[node, ND_RIGHT] = ch
    _free_leaf(s, lf)
    s.nd_i[node, ND_LEAF] = -1
    s.nd_i[node, ND_FEAT] = f
    s.nd_f[node, NF_THR] = t
    s.ctr[C_SPLITS] += 1


# ============================================================================ memory bound
@njit
def trim_rows(s, target) -> None:
    """Drop statistics rows until at most ``target`` are in use, the least used first.

    A row's use is the number of instances in which its feature was non-zero at its leaf
    (``RF_CNT``; ties: the lower row id goes first). A dropped feature is simply no longer
    tracked at that leaf, as when the row limit was reached before it appeared: its split
    statistics and logistic weights restart from zero if it gets a row again. The rarest
    features carry the least evidence for a split and the least weight in the models.
    """
    used = s.ctr[C_RUSED]
    drop = used - target
    if drop <= 0:
        return
    cap = len(s.rw_i)
    cnt = np.empty(used)
    ids = np.empty(used, np.int64)
    k = 0
    for r in range(cap):
        if s.rw_i[r, RI_LEAF] >= 0:
            cnt[k] = s.rw_f[r, RF_CNT]
            ids[k] = r
            k += 1
    order = np.argsort(cnt[:k], kind="mergesort")
    mark = np.zeros(cap, np.bool_)
    for i in range(min(drop, k)):
        mark[ids[order[i]]] = True
    for lf in range(len(s.lf_i)):
        if s.lf_i[lf, LI_ACTIVE] < 0:
            continue
        prev = -1
        r = s.lf_i[lf, LI_HEAD]
        while r >= 0:
            nxt = s.rw_i[r, RI_NEXT]
            if mark[r]:
                if prev < 0:
                    s.lf_i[lf, LI_HEAD] = nxt
                else:
                    s.rw_i[prev, RI_NEXT] = nxt
                ht_delete(s, (np.int64(lf) << 32) | np.int64(s.rw_i[r, RI_FEAT]))
                s.rw_i[r, RI_LEAF] = -1
                s.rw_i[r, RI_NEXT] = s.ctr[C_RFREE]
                s.ctr[C_RFREE] = r
                s.ctr[C_RUSED] -= 1
                s.lf_i[lf, LI_NROWS] -= 1
            else:
                prev = r
            r = nxt


@njit
def widen_in_place(flat, n_rows, n_kinds, old_cap, new_cap) -> None:
    """Re-lay ``(n_rows, n_kinds, old_cap)`` C-ordered values held at the front of ``flat`` as
    ``(n_rows, n_kinds, new_cap)``, new columns zero, moving from the back so that nothing is
    overwritten before it is read (every value only moves forward)."""
    for r in range(n_rows - 1, -1, -1):
        for k in range(n_kinds - 1, -1, -1):
            src = (r * n_kinds + k) * old_cap
            dst = (r * n_kinds + k) * new_cap
            for j in range(new_cap - 1, old_cap - 1, -1):
                flat[dst + j] = 0.0
            for j in range(old_cap - 1, -1, -1):
                flat[dst + j] = flat[src + j]


@njit
def compact_rows(s) -> int:
    """Move the rows in use to ids ``0..used-1`` (stable) and return ``used``.

    Leaf lists and heads follow the moves; the free list and the hash table are left to the
    caller, which rebuilds both for the pool's new capacity.
    """
    cap = len(s.rw_i)
    remap = np.full(cap, -1, np.int64)
    j = 0
    for r in range(cap):
        if s.rw_i[r, RI_LEAF] >= 0:
            remap[r] = j
            if r != j:
                s.rw_i[j, :] = s.rw_i[r, :]
                s.rw_f[j, :] = s.rw_f[r, :]
                s.rw_lv[j, :, :] = s.rw_lv[r, :, :]
            j += 1
    for r in range(j):
        nx = s.rw_i[r, RI_NEXT]
        s.rw_i[r, RI_NEXT] = remap[nx] if nx >= 0 else -1
    for lf in range(len(s.lf_i)):
        h = s.lf_i[lf, LI_HEAD]
        if s.lf_i[lf, LI_ACTIVE] >= 0 and h >= 0:
            s.lf_i[lf, LI_HEAD] = remap[h]
    return j


# ============================================================================ memory bound
@njit
def enforce_memory(s, keep) -> None:
    """Deactivate the least promising leaves so that rows in use fall to 80 % of the limit.

    Promise follows MOA: the weight a leaf has seen times its error, here the training Hamming
    error of per-label majority voting, ``sum_l min(n_l, n - n_l)``. Leaves are ranked by
    promise; the most promising keep (or regain) their statistics while the budget lasts,
    counting an inactive leaf at the mean row count of the active ones. An inactive leaf drops
    its rows, keeps its label counts and labelset table, and predicts with the majority
    labelset. Leaf ``keep`` (the one being updated) is ranked first.
    """
    nl = len(s.lf_i)
    promise = np.full(nl, -1.0)
    n_active = 0
    for lf in range(nl):
        if s.lf_i[lf, LI_ACTIVE] < 0:
            continue
        if s.lf_i[lf, LI_ACTIVE] == 1:
            n_active += 1
        p = 0.0
        w = s.lf_f[lf, LF_W]
        for lab in range(s.ctr[C_L]):
            n1 = s.lf_lv[lf, LV_LAB, lab]
            p += min(n1, w - n1)
        promise[lf] = p
    if keep >= 0:
        promise[keep] = np.inf
    mean_rows = s.ctr[C_RUSED] / max(n_active, 1)
    budget = 0.8 * s.ctr[C_RLIMIT]
    used = 0.0
    order = np.argsort(-promise, kind="mergesort")
    for i in range(nl):
        lf = order[i]
        if promise[lf] < 0.0:
            break
        est = s.lf_i[lf, LI_NROWS] if s.lf_i[lf, LI_ACTIVE] == 1 else mean_rows
        if used + est <= budget:
            used += est
            if s.lf_i[lf, LI_ACTIVE] == 0:
                s.lf_i[lf, LI_ACTIVE] = 1
                s.lf_f[lf, LF_SW] = 0.0
                s.lf_lv[lf, LV_SLAB, :] = 0.0
                s.lf_f[lf, LF_WLAST] = 0.0
                s.ctr[C_INACTIVE] -= 1
        elif s.lf_i[lf, LI_ACTIVE] == 1:
            free_leaf_rows(s, lf)
            s.lf_i[lf, LI_ACTIVE] = 0
            s.ctr[C_INACTIVE] += 1
            s.ctr[C_DEACT] += 1


# ============================================================================ drift
@njit
def _swap_in_alternate(s, n) -> None:
    """Replace the subtree under ``n`` by its alternate, in place (``n`` keeps its id)."""
    alt = s.nd_i[n, ND_ALT]
    s.nd_i[n, ND_ALT] = -1
    s.ctr[C_ALT_LIVE] -= 1
    free_subtree(s, n, False)
    s.nd_i[n, ND_FEAT] = s.nd_i[alt, ND_FEAT]
    s.nd_f[n, NF_THR] = s.nd_f[alt, NF_THR]
    s.nd_i[n, ND_LEFT] = s.nd_i[alt, ND_LEFT]
    s.nd_i[n, ND_RIGHT] = s.nd_i[alt, ND_RIGHT]
    s.nd_i[n, ND_LEAF] = s.nd_i[alt, ND_LEAF]
    s.nd_f[n, NF_ERR] = s.nd_f[alt, NF_ERR]
    s.nd_f[n, NF_ERR2] = s.nd_f[alt, NF_ERR2]
    s.nd_f[n, NF_ERRN] = s.nd_f[alt, NF_ERRN]
    s.nd_adwin[n, :] = s.nd_adwin[alt, :]
    if s.nd_i[n, ND_LEAF] >= 0:
        s.lf_i[s.nd_i[n, ND_LEAF], LI_NODE] = n
    _free_node(s, alt)
    # the adopted subtree is main tree now: it may grow alternates of its own
    stack = np.empty(len(s.nd_i), np.int32)
    stack[0] = n
    top = 1
    while top > 0:
        top -= 1
        m = stack[top]
        s.nd_i[m, ND_ISALT] = 0
        if s.nd_i[m, ND_LEAF] < 0:
            stack[top] = s.nd_i[m, ND_LEFT]
            stack[top + 1] = s.nd_i[m, ND_RIGHT]
            top += 2
    s.ctr[C_ALT_SWAP] += 1
    log_alternate(s, LOG_SWAPPED)


@njit
def log_alternate(s, kind) -> None:
    """Note an alternate started or swapped in, with the learned-instance count, in the
    counters' log (see ``C_LOG``); past ``LOG_SLOTS`` entries only the counters count it."""
    k = s.ctr[C_LOG_N]
    if k < LOG_SLOTS:
        s.ctr[C_LOG + 2 * k] = kind
        s.ctr[C_LOG + 2 * k + 1] = s.ctr[C_SEEN]
        s.ctr[C_LOG_N] = k + 1


@njit
def node_monitor(s, prm, n, loss, allow_alt) -> bool:
    """Feed the loss of the prediction routed through node ``n`` to its monitors.

    ADWIN signals a change in the loss; a change towards a *higher* loss at a split node starts
    an alternate subtree (a single leaf) there. Once the node and its alternate have each seen
    more than ``drift_window`` instances since the alternate started, their mean losses are
    compared with a Hoeffding-style test at significance ``switch_significance`` (the
    variance term uses each side's empirical loss variance, since the losses are not
    Bernoulli): a significantly better alternate replaces the subtree, a significantly worse one
    is discarded. Returns True when the subtree under ``n`` was replaced.
    """
    old = s.nd_f[n, NF_ERR] / s.nd_f[n, NF_ERRN] if s.nd_f[n, NF_ERRN] > 0.0 else 0.0
    s.nd_f[n, NF_ERR] += loss
    s.nd_f[n, NF_ERR2] += loss * loss
    s.nd_f[n, NF_ERRN] += 1.0
    drift = adwin_update(s.nd_adwin[n], loss)
    if drift:
        worse = adwin_estimation(s.nd_adwin[n]) > old
        s.nd_f[n, NF_ERR] = 0.0
        s.nd_f[n, NF_ERR2] = 0.0
        s.nd_f[n, NF_ERRN] = 0.0
        drift = worse
    if s.nd_i[n, ND_LEAF] >= 0:
        return False
    alt = s.nd_i[n, ND_ALT]
    if alt < 0:
        if drift and allow_alt and s.ctr[C_NUSED] + 1 <= s.ctr[C_NLIMIT]:
            s.nd_f[n, NF_ERR] = 0.0
            s.nd_f[n, NF_ERR2] = 0.0
            s.nd_f[n, NF_ERRN] = 0.0
            s.nd_i[n, ND_ALT] = new_leaf_node(s, prm, s.nd_i[n, ND_DEPTH], 1)
            s.ctr[C_ALT_NEW] += 1
            s.ctr[C_ALT_LIVE] += 1
            log_alternate(s, LOG_STARTED)
        return False
    na = s.nd_f[alt, NF_ERRN]
    nn = s.nd_f[n, NF_ERRN]
    dwin = prm[P_DWIN]
    if na > dwin and nn > dwin:
        mo = s.nd_f[n, NF_ERR] / nn
        ma = s.nd_f[alt, NF_ERR] / na
        vo = max(s.nd_f[n, NF_ERR2] / nn - mo * mo, 0.0)
        va = max(s.nd_f[alt, NF_ERR2] / na - ma * ma, 0.0)
        pooled = 0.5 * (vo + va)  # river uses p(1-p), the variance of a 0/1 loss
        bound = math.sqrt(2.0 * pooled * math.log(2.0 / prm[P_SWITCH]) * (1.0 / na + 1.0 / nn))
        if bound < mo - ma:
            _swap_in_alternate(s, n)
            return True
        if bound < ma - mo:
            s.nd_i[n, ND_ALT] = -1
            s.ctr[C_ALT_LIVE] -= 1
            free_subtree(s, alt, True)
            s.ctr[C_ALT_PRUNE] += 1
    return False


# ============================================================================ learning
@njit
def _learn_at_leaf(s, prm, node, indices, values, a, b, label_ids, c, d, y, bits, k, sc3, L,
                   grad, mom, tbuf) -> None:
    lf = s.nd_i[node, ND_LEAF]
    leaf_learn(s, prm, lf, indices, values, a, b, label_ids, c, d, y, bits, k, sc3, L, grad[0],
               grad[1])
    if s.lf_i[lf, LI_ACTIVE] == 1 and s.lf_f[lf, LF_SW] - s.lf_f[lf, LF_WLAST] >= prm[P_GRACE]:
        last = s.lf_f[lf, LF_WLAST]
        s.lf_f[lf, LF_WLAST] = s.lf_f[lf, LF_SW]
        if not attempt_split(s, prm, node, lf, L, mom, tbuf) and s.ctr[C_NEED_ROWS] > 0:
            s.lf_f[lf, LF_WLAST] = last


@njit
def learn_subtree(s, prm, start, indices, values, a, b, label_ids, c, d, y, bits, k, sc3, L,
                  grad, mom, tbuf) -> None:
    """Learn one instance in the subtree under ``start``, which grows no alternates.

    Used for alternate subtrees (and for a subtree just swapped in): the subtree makes its own
    prediction, whose loss feeds the monitors of its nodes.
    """
    leaf_node = route(s, start, indices, values, a, b)
    lf = s.nd_i[leaf_node, ND_LEAF]
    leaf_scores_all(s, prm, lf, indices, values, a, b, L, sc3)
    leaf_answer(s, prm, lf, sc3, L, sc3[N_MODELS])
    loss = instance_loss(sc3[N_MODELS], y, L, int(prm[P_LOSS]), prm[P_THRESH])
    n = start
    while True:
        node_monitor(s, prm, n, loss, False)
        if s.nd_i[n, ND_LEAF] >= 0:
            _learn_at_leaf(s, prm, n, indices, values, a, b, label_ids, c, d, y, bits, k, sc3,
                           L, grad, mom, tbuf)
            return
        if feature_value(indices, values, a, b, s.nd_i[n, ND_FEAT]) <= s.nd_f[n, NF_THR]:
            n = s.nd_i[n, ND_LEFT]
        else:
            n = s.nd_i[n, ND_RIGHT]


@njit
def learn_main(s, prm, indices, values, a, b, label_ids, c, d, y, bits, k, sc3, loss, L, grad,
               mom, tbuf, sc3_alt) -> None:
    """Learn one instance along the main path, given the main leaf's predictions ``sc3``."""
    n = s.ctr[C_ROOT]
    while True:
        if node_monitor(s, prm, n, loss, s.nd_i[n, ND_ISALT] == 0):
            learn_subtree(s, prm, n, indices, values, a, b, label_ids, c, d, y, bits, k,
                          sc3_alt, L, grad, mom, tbuf)
            return
        if s.nd_i[n, ND_LEAF] >= 0:
            _learn_at_leaf(s, prm, n, indices, values, a, b, label_ids, c, d, y, bits, k, sc3,
                           L, grad, mom, tbuf)
            return
        if s.nd_i[n, ND_ALT] >= 0:
            learn_subtree(s, prm, s.nd_i[n, ND_ALT], indices, values, a, b, label_ids, c, d, y,
                          bits, k, sc3_alt, L, grad, mom, tbuf)
        if feature_value(indices, values, a, b, s.nd_i[n, ND_FEAT]) <= s.nd_f[n, NF_THR]:
            n = s.nd_i[n, ND_LEFT]
        else:
            n = s.nd_i[n, ND_RIGHT]


@njit
def _update_features(s, indices, values, a, b) -> None:
    for j in range(a, b):
        v = values[j]
        if v == 0.0:
            continue
        f = indices[j]
        if v != 1.0:
            s.g_bin[f] = 0
        av = abs(v)
        if av > s.g_scale[f]:
            s.g_scale[f] = av


@njit
def _room_for(s, prm, nnz) -> bool:
    """Whether the pools can absorb one instance: an alternate per node on the path, a split
    in the main leaf and in each live alternate, and a row per feature in each of those leaves
    and in one alternate born on this instance."""
    free_nodes = len(s.nd_i) - s.ctr[C_NUSED]
    if free_nodes < s.ctr[C_DEPTH] + 3 + 2 * s.ctr[C_ALT_LIVE]:
        s.ctr[C_NEED_ROWS] = 0
        return False
    need = nnz * (2 + s.ctr[C_ALT_LIVE])
    cap = len(s.rw_i)
    if cap - s.ctr[C_RUSED] < need and cap < s.ctr[C_RLIMIT]:
        s.ctr[C_NEED_ROWS] = need
        return False
    return True


@njit
def emit_labelset(s, prm, sc, L, out_ids, out_sc, pos) -> int:
    """Write the predicted label set of one row (scores ``sc``) from ``pos``; returns the end.

    Every label scoring at least the threshold ``P_THRESH``. With ``P_NONEMPTY``, a set that
    would be empty gets the top-scoring label instead when its score beats the rate of empty
    label sets learned so far: on a stream whose label sets are never empty an empty
    prediction is always wrong, while on one where they are frequent (birds: 46 %) the empty
    set stays the better guess.
    """
    start = pos
    best = -1
    top = 0.0
    thr = prm[P_THRESH]
    for lab in range(L):
        v = sc[lab]
        if v >= thr:
            out_ids[pos] = lab
            out_sc[pos] = v
            pos += 1
        if v > top:
            top = v
            best = lab
    if pos == start and best >= 0 and prm[P_NONEMPTY] != 0.0:
        if top * max(s.ctr[C_SEEN], 1) > s.ctr[C_EMPTY]:
            out_ids[pos] = best
            out_sc[pos] = top
            pos += 1
    return pos


@njit
def test_then_train(s, prm, indptr, indices, values, label_ptr, label_ids, start, predict,
                    learn, out_ptr, out_ids, out_sc, out_dense) -> int:
    """Prequential loop: for each row from ``start``, predict it, then learn it.

    Predictions go to ``out_ptr``/``out_ids``/``out_sc`` (CSR, only when ``predict``), and
    when ``out_dense`` has rows, every label's score of row i to ``out_dense[i]``. ``learn``
    (flags by row; empty: every row) marks the rows learned, the others are only predicted
    and leave the tree as it was (a hierarchy scores every row with a tree that learns only
    the rows routed to it). Returns
    the number of rows done: fewer than the batch when a pool must grow first (Python grows it
    and calls again from there, so the result is the same as one uninterrupted run).
    """
    n_rows = len(indptr) - 1
    L = s.ctr[C_L]
    lc = max(L, 1)
    # every model's probabilities, then (last row) the leaf's answer
    sc3 = np.zeros((N_MODELS + 1, lc))
    sc3_alt = np.zeros((N_MODELS + 1, lc))
    y = np.zeros(lc, np.uint8)
    grad = np.zeros((2, lc))
    mom = np.zeros((4, lc))
    tbuf = np.zeros(1)
    bits = np.zeros(s.lf_lsbits.shape[2], np.uint64)
    use_poisson = prm[P_POISSON] != 0.0
    period = int(prm[P_MEM_PERIOD])
    for i in range(start, n_rows):
        a = indptr[i]
        b = indptr[i + 1]
        c = label_ptr[i]
        d = label_ptr[i + 1]
        if not _room_for(s, prm, b - a):
            return i
        leaf_node = route(s, s.ctr[C_ROOT], indices, values, a, b)
        lf = s.nd_i[leaf_node, ND_LEAF]
        leaf_scores_all(s, prm, lf, indices, values, a, b, L, sc3)
        ans = sc3[N_MODELS]
        leaf_answer(s, prm, lf, sc3, L, ans)
        if predict:
            out_ptr[i + 1] = emit_labelset(s, prm, ans, L, out_ids, out_sc, out_ptr[i])
            if out_dense.shape[0] > 0:
                out_dense[i, :L] = ans[:L]
        if len(learn) > 0 and not learn[i]:
            continue
        for lab in range(L):
            y[lab] = 0
        for w in range(len(bits)):
            bits[w] = 0
        for j in range(c, d):
            lab = label_ids[j]
            y[lab] = 1
            bits[lab >> 6] |= np.uint64(1) << np.uint64(lab & 63)
        loss = instance_loss(ans, y, L, int(prm[P_LOSS]), prm[P_THRESH])
        k = poisson1(s.rng) if use_poisson else 1
        s.ctr[C_SEEN] += 1
        if c == d:
            s.ctr[C_EMPTY] += 1
        for j in range(c, d):  # answered from the next row on (even at Poisson weight 0)
            s.lb_n[0, 0, label_ids[j]] += 1.0
        if k == 0:
            continue
        _update_features(s, indices, values, a, b)
        learn_main(s, prm, indices, values, a, b, label_ids, c, d, y, bits, float(k), sc3, loss,
                   L, grad, mom, tbuf, sc3_alt)
        if s.ctr[C_INACTIVE] > 0 and s.ctr[C_SEEN] % period == 0:
            enforce_memory(s, -1)
        if s.ctr[C_NEED_ROWS] > 0:
            return i + 1
    return n_rows


@njit
def predict_scores(s, prm, indptr, indices, values, out) -> None:
    """``out[i, :L]``: label probabilities of row i from its leaf (:func:`leaf_answer`)."""
    L = s.ctr[C_L]
    sc3 = np.zeros((N_MODELS, max(L, 1)))
    for i in range(len(indptr) - 1):
        a = indptr[i]
        b = indptr[i + 1]
        leaf_node = route(s, s.ctr[C_ROOT], indices, values, a, b)
        leaf_scores(s, prm, s.nd_i[leaf_node, ND_LEAF], indices, values, a, b, L, sc3, out[i])


@njit
def predict_csr(s, prm, indptr, indices, values, out_ptr, out_ids, out_sc, out_dense) -> None:
    """Predicted label sets (score >= 0.5) in CSR form; when ``out_dense`` has rows, every
    label's score of row i goes to ``out_dense[i]`` too (one routing serves both)."""
    L = s.ctr[C_L]
    sc = np.zeros(max(L, 1))
    sc3 = np.zeros((N_MODELS, max(L, 1)))
    pos = 0
    out_ptr[0] = 0
    for i in range(len(indptr) - 1):
        a = indptr[i]
        b = indptr[i + 1]
        leaf_node = route(s, s.ctr[C_ROOT], indices, values, a, b)
        leaf_scores(s, prm, s.nd_i[leaf_node, ND_LEAF], indices, values, a, b, L, sc3, sc)
        if out_dense.shape[0] > 0:
            out_dense[i, :L] = sc[:L]
        pos = emit_labelset(s, prm, sc, L, out_ids, out_sc, pos)
        out_ptr[i + 1] = pos


@njit
def project_labelsets(bits_in, cnt_in, lf_i_in, sel, bits_out, cnt_out, lf_i_out,
                      lf_f_out) -> None:
    """Project every leaf's labelset table onto the labels ``sel`` (merging equal images)."""
    nw = bits_out.shape[2]
    tmp = np.zeros(nw, np.uint64)
    for lf in range(bits_in.shape[0]):
        if lf_i_in[lf, LI_ACTIVE] < 0:
            continue
        n_in = lf_i_in[lf, LI_LSN]
        m = 0
        for e in range(n_in):
            for w in range(nw):
                tmp[w] = 0
            for j in range(len(sel)):
                lab = sel[j]
                if (bits_in[lf, e, lab >> 6] >> np.uint64(lab & 63)) & np.uint64(1):
                    tmp[j >> 6] |= np.uint64(1) << np.uint64(j & 63)
            found = -1
            for q in range(m):
                same = True
                for w in range(nw):
                    if bits_out[lf, q, w] != tmp[w]:
                        same = False
                        break
                if same:
                    found = q
                    break
            if found >= 0:
                cnt_out[lf, found] += cnt_in[lf, e]
            else:
                bits_out[lf, m, :] = tmp
                cnt_out[lf, m] = cnt_in[lf, e]
                m += 1
        lf_i_out[lf, LI_LSN] = m
        if lf_f_out[lf, LF_LSDIST] <= n_in:  # no labelset was ever evicted: the count is exact
            lf_f_out[lf, LF_LSDIST] = m
