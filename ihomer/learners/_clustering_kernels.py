"""Numba kernels behind :mod:`ihomer.learners.clustering`.

Pair statistics live in an open-addressing hash map made of two flat ``int64`` arrays (``keys``,
``vals``) plus a one-element ``fill`` counter. A key packs an ordered pair of non-negative ids
``a < b`` as ``a << 32 | b``; ``EMPTY`` (-1) marks a free slot. Linear probing with backward-shift
deletion keeps the table free of tombstones, so deleting the pairs of a dissolved cluster really
gives the room back. Flat arrays rather than a ``numba.typed.Dict`` because their memory is exact
(``nbytes``), they cross the Python/numba boundary for free and probing a packed ``int64`` is a
handful of instructions. The caller keeps the load factor at most 1/2 (see
:func:`count_rows`' ``GROW_*`` codes) and grows the table with :func:`hm_rehash`.
"""

from __future__ import annotations

import numba
import numpy as np

njit = numba.njit(cache=True)

EMPTY = -1

#: Return codes of :func:`count_rows`: why it stopped before ``stop``.
DONE = 0
NEW_LABEL = 1
GROW_PAIRS = 2
GROW_CROSS = 3


@njit
def _home(key: int | np.int64, mask: int) -> np.int64:
    x = np.uint64(key)
    x = (x ^ (x >> np.uint64(33))) * np.uint64(0xFF51AFD7ED558CCD)
    x = x ^ (x >> np.uint64(33))
    return np.int64(x & np.uint64(mask))


@njit
def _find(keys: np.ndarray, key: int | np.int64) -> np.int64:
    """Slot holding ``key``, or the free slot where it would go."""
    mask = len(keys) - 1
    h = _home(key, mask)
    while True:
        k = keys[h]
        if k == key or k == EMPTY:
            return h
        h = (h + 1) & mask


@njit
def hm_add(keys: np.ndarray, vals: np.ndarray, fill: np.ndarray, key: int | np.int64,
           inc: int) -> None:
    h = _find(keys, key)
    if keys[h] == EMPTY:
        keys[h] = key
        vals[h] = inc
        fill[0] += 1
    else:
        vals[h] += inc


@njit
def hm_get(keys: np.ndarray, vals: np.ndarray, key: int) -> int:
    h = _find(keys, key)
    return vals[h] if keys[h] == key else 0


@njit
def hm_del(keys: np.ndarray, vals: np.ndarray, fill: np.ndarray, key: int) -> int:
    """Remove ``key``; return its count (0 when absent)."""
    i = _find(keys, key)
    if keys[i] != key:
        return 0
    out = vals[i]
    mask = len(keys) - 1
    j = i
    while True:
        j = (j + 1) & mask
        if keys[j] == EMPTY:
            break
        k = _home(keys[j], mask)
        # The entry at j may stay only if its home lies cyclically in (i, j].
        stays = (i < k <= j) if i <= j else (k > i or k <= j)
        if not stays:
            keys[i] = keys[j]
            vals[i] = vals[j]
            i = j
    keys[i] = EMPTY
    vals[i] = 0
    fill[0] -= 1
    return out


@njit
def hm_rehash(keys: np.ndarray, vals: np.ndarray, capacity: int) -> tuple[np.ndarray, np.ndarray]:
    nk = np.full(capacity, EMPTY, dtype=np.int64)
    nv = np.zeros(capacity, dtype=np.int64)
    for h in range(len(keys)):
        if keys[h] != EMPTY:
            s = _find(nk, keys[h])
            nk[s] = keys[h]
            nv[s] = vals[h]
    return nk, nv


@njit
def count_rows(
    indptr: np.ndarray,
    ids: np.ndarray,
    start: int,
    stop: int,
    cluster_of: np.ndarray,
    label_n: np.ndarray,
    cluster_n: np.ndarray,
    size_hist: np.ndarray,
    touched: np.ndarray,
    pk: np.ndarray,
    pv: np.ndarray,
    pfill: np.ndarray,
    xk: np.ndarray,
    xv: np.ndarray,
    xfill: np.ndarray,
) -> tuple[int, int]:
    """Count rows ``start:stop``; return ``(row reached, code)``.

    Stops *before* a row that needs Python: a label without a cluster (``NEW_LABEL``) or a hash
    map that could pass half full (``GROW_PAIRS`` / ``GROW_CROSS``). Nothing of that row has been
    counted then, so the caller fixes the cause and calls again from the same row. Ids must be
    strictly increasing within a row (the caller checks).
    """
    n_labels = len(cluster_of)
    for r in range(start, stop):
        a0 = indptr[r]
        a1 = indptr[r + 1]
        c = a1 - a0
        for k in range(a0, a1):
            lab = ids[k]
            if lab >= n_labels or cluster_of[lab] < 0:
                return r, NEW_LABEL
        worst = c * (c - 1) // 2
        if 2 * (pfill[0] + worst) > len(pk):
            return r, GROW_PAIRS
        if 2 * (xfill[0] + worst) > len(xk):
            return r, GROW_CROSS
        size_hist[c] += 1
        n_touched = 0
        for k in range(a0, a1):
            lab = ids[k]
            label_n[lab] += 1
            cid = cluster_of[lab]
            seen = False
            for t in range(n_touched):
                if touched[t] == cid:
                    seen = True
                    break
            if not seen:
                touched[n_touched] = cid
                n_touched += 1
                cluster_n[cid] += 1
        for k in range(a0, a1):
            a = np.int64(ids[k])
            ca = cluster_of[a]
            for m in range(k + 1, a1):
                b = ids[m]
                if cluster_of[b] == ca:
                    hm_add(pk, pv, pfill, (a << 32) | np.int64(b), 1)
        for t in range(n_touched):
            for u in range(t + 1, n_touched):
                s, v = np.int64(touched[t]), np.int64(touched[u])
                if s > v:
                    s, v = v, s
                hm_add(xk, xv, xfill, (s << 32) | v, 1)
    return stop, DONE


@njit
def dissimilarities(labels: np.ndarray, label_n: np.ndarray, pk: np.ndarray,
                    pv: np.ndarray) -> np.ndarray:
    """Jaccard dissimilarity matrix of a cluster's (sorted) labels."""
    k = len(labels)
    d = np.ones((k, k))
    for i in range(k):
        d[i, i] = 0.0
        a = labels[i]
        for j in range(i + 1, k):
            b = labels[j]
            nab = hm_get(pk, pv, (a << 32) | b)
            union = label_n[a] + label_n[b] - nab
            v = 1.0 - nab / union if union > 0 else 1.0
            d[i, j] = v
            d[j, i] = v
    return d


@njit
def summarize(d: np.ndarray) -> tuple[float, float, float, float, int, int]:
    """``(d1, d2, d0, dbar, p, q)`` over the pairs ``i < j`` of ``d`` (needs two rows or more).

    ``(p, q)`` is the pivot pair; among equal maxima the first pair in index order wins, which
    is the label-index tie-break because rows are in label order. ``d2`` is the largest value
    of the other pairs (``-1`` when there is no other pair).
    """
    k = d.shape[0]
    d1 = -1.0
    d0 = 2.0
    total = 0.0
    p = 0
    q = 1
    for i in range(k):
        for j in range(i + 1, k):
            v = d[i, j]
            total += v
            if v > d1:
                d1, p, q = v, i, j
            d0 = min(d0, v)
    d2 = -1.0
    for i in range(k):
        for j in range(i + 1, k):
            if (i != p or j != q) and d[i, j] > d2:
                d2 = d[i, j]
    return d1, d2, d0, total / (k * (k - 1) // 2), p, q


@njit
def drop_pairs(labels: np.ndarray, pk: np.ndarray, pv: np.ndarray, pfill: np.ndarray) -> None:
    """Forget every pair count inside ``labels`` (sorted)."""
    k = len(labels)
    for i in range(k):
        for j in range(i + 1, k):
            hm_del(pk, pv, pfill, (labels[i] << 32) | labels[j])


@njit
def divide(d: np.ndarray, p: int, q: int) -> np.ndarray:
    """Mask of the labels that join pivot ``p`` rather than ``q`` (rule in the clustering doc).

    Labels are placed by decreasing ``|d(., q) - d(., p)|`` (stable, so ties go in label
    order); one as far from both pivots goes to the side whose members are closer on average,
    then to the smaller side, then to ``p``. Running sums keep it O(k^2).
    """
    k = d.shape[0]
    side = np.zeros(k, dtype=np.bool_)
    side[p] = True
    margin = d[:, q] - d[:, p]
    order = np.argsort(-np.abs(margin), kind="mergesort")
    sum_p = d[:, p].copy()
    sum_q = d[:, q].copy()
    n_p = 1
    n_q = 1
    for i in order:
        if i == p or i == q:
            continue
        m = margin[i]
        if m == 0.0:
            m = sum_q[i] / n_q - sum_p[i] / n_p
        if m > 0.0 or (m == 0.0 and n_p <= n_q):
            side[i] = True
            sum_p += d[:, i]
            n_p += 1
        else:
            sum_q += d[:, i]
            n_q += 1
    return side
