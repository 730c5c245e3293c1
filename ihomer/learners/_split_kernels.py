"""Jitted helpers of the iHOMER learner: restrict a CSR label batch to one cluster's labels,
and merge per-cluster predictions back into one CSR prediction."""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True)
def restrict_labels(label_indptr: np.ndarray, label_ids: np.ndarray,
                    local_of: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows of ``label_ids`` (global ids) kept where ``local_of[id] >= 0``, as sorted local ids.

    ``local_of`` maps a global label id to its id inside one cluster's learner (or -1); labels
    beyond ``len(local_of)`` belong to no cluster yet.
    """
    n = len(label_indptr) - 1
    indptr = np.zeros(n + 1, np.int64)
    out = np.empty(len(label_ids), np.int32)
    m = 0
    size = len(local_of)
    for i in range(n):
        start = m
        for p in range(label_indptr[i], label_indptr[i + 1]):
            g = label_ids[p]
            if g < size and local_of[g] >= 0:
                v = np.int32(local_of[g])
                # insertion sort: local ids need not follow the global order
                j = m
                while j > start and out[j - 1] > v:
                    out[j] = out[j - 1]
                    j -= 1
                out[j] = v
                m += 1
        indptr[i + 1] = m
    return indptr, out[:m].copy()


@numba.njit(cache=True)
def owned_predictions(pred_indptr: np.ndarray, pred_ids: np.ndarray, pred_scores: np.ndarray,
                      global_of: np.ndarray, owner: np.ndarray, member: int,
                      rows: np.ndarray, out_rows: np.ndarray, out_ids: np.ndarray,
                      out_scores: np.ndarray, m: int) -> int:
    """Append the predicted labels this member owns as (row, global id, score) triples.

    ``rows[i]`` is the row of the chunk that prediction row ``i`` answers; returns the new
    number of triples ``m``.
    """
    for i in range(len(pred_indptr) - 1):
        for p in range(pred_indptr[i], pred_indptr[i + 1]):
            loc = pred_ids[p]
            if loc >= len(global_of):
                continue
            g = global_of[loc]
            if owner[g] == member:
                out_rows[m] = rows[i]
                out_ids[m] = g
                out_scores[m] = pred_scores[p]
                m += 1
    return m


@numba.njit(cache=True)
def dense_rows(indptr: np.ndarray, ids: np.ndarray, n_rows: int, n_cols: int,
               rows: np.ndarray) -> np.ndarray:
    """A boolean ``(n_rows, n_cols)`` matrix with ``[rows[i], ids] = True`` for each CSR row i."""
    out = np.zeros((n_rows, n_cols), np.bool_)
    for i in range(len(indptr) - 1):
        for p in range(indptr[i], indptr[i + 1]):
            if ids[p] < n_cols:
                out[rows[i], ids[p]] = True
    return out
