"""iHOMER's CSR helpers against plain-Python references (property-based)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from ihomer.learners._split_kernels import dense_rows, owned_predictions, restrict_labels

N_LABELS = 12
label_sets = st.lists(st.sets(st.integers(0, N_LABELS - 1), max_size=6), min_size=0, max_size=8)


def csr(rows: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    indptr = np.zeros(len(rows) + 1, np.int64)
    np.cumsum([len(r) for r in rows], out=indptr[1:])
    return indptr, np.array([g for r in rows for g in r], np.int32)


@settings(max_examples=200, deadline=None)
@given(label_sets, st.lists(st.integers(-1, 5), min_size=N_LABELS, max_size=N_LABELS))
def test_restrict_labels_keeps_a_clusters_labels_as_sorted_local_ids(
        rows: list[set[int]], local_of: list[int]) -> None:
    ptr, ids = csr([sorted(r) for r in rows])
    # The last labels may be beyond the map (labels no cluster holds yet).
    lo = np.array(local_of[:-2], np.int64)
    out_ptr, out_ids = restrict_labels(ptr, ids, lo)
    for i, r in enumerate(rows):
        want = sorted(local_of[g] for g in r if g < len(lo) and local_of[g] >= 0)
        assert out_ids[out_ptr[i]:out_ptr[i + 1]].tolist() == want


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sets(st.integers(0, 5), max_size=4), max_size=8), st.data())
def test_owned_predictions_keeps_the_members_own_labels(local: list[set[int]],
                                                        data: st.DataObject) -> None:
    global_of = np.array(data.draw(st.permutations(range(N_LABELS)))[:4], np.int64)
    owner = np.array(data.draw(st.lists(st.integers(0, 2), min_size=N_LABELS,
                                        max_size=N_LABELS)), np.int64)
    rows = np.array(sorted(data.draw(st.sets(st.integers(0, 20), min_size=len(local),
                                             max_size=len(local)))), np.int64)
    ptr, ids = csr([sorted(r) for r in local])  # local ids 4 and 5 are beyond the member's map
    scores = np.arange(len(ids)) + 0.5
    cap = len(ids)
    r_out, g_out = np.empty(cap, np.int64), np.empty(cap, np.int32)
    s_out = np.empty(cap)
    m = owned_predictions(ptr, ids, scores, global_of, owner, 1, rows, r_out, g_out, s_out, 0)
    want = [(int(rows[i]), int(global_of[loc]), float(scores[p]))
            for i in range(len(local)) for p, loc in enumerate(ids.tolist()) if
            ptr[i] <= p < ptr[i + 1] and loc < len(global_of) and owner[global_of[loc]] == 1]
    got = list(zip(r_out[:m].tolist(), g_out[:m].tolist(), s_out[:m].tolist(), strict=True))
    assert got == want


@settings(max_examples=100, deadline=None)
@given(label_sets)
def test_dense_rows_matches_a_python_fill(rows: list[set[int]]) -> None:
    ptr, ids = csr([sorted(r) for r in rows])
    at = np.arange(len(rows), dtype=np.int64)[::-1].copy()  # rows land in reverse order
    got = dense_rows(ptr, ids, len(rows), N_LABELS - 2, at)  # the last 2 columns are dropped
    want = np.zeros((len(rows), N_LABELS - 2), bool)
    for i, r in enumerate(rows):
        for g in r:
            if g < N_LABELS - 2:
                want[at[i], g] = True
    np.testing.assert_array_equal(got, want)
