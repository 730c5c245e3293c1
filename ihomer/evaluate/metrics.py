"""Prequential multi-label metrics that reproduce river's numbers at array speed.

Published iHOMER results were computed with river, so every metric here is defined as the river
construction it replaces, including river's handling of empty sets and of a label universe that
grows while the stream runs. The river side of the contract is what an evaluator does when, for
each instance, it passes ``y_true = {label: label in Y}`` and ``y_pred = {label: label in Z}`` over
every label known so far (the *universe*, ``n_labels`` here) to::

    subset_accuracy    metrics.multioutput.ExactMatch()
    hamming_loss       1 - metrics.multioutput.MicroAverage(metrics.Accuracy())
    example_precision  metrics.multioutput.SampleAverage(metrics.Precision())
    example_recall     metrics.multioutput.SampleAverage(metrics.Recall())
    example_f1         metrics.multioutput.SampleAverage(metrics.F1())
    micro_precision    metrics.multioutput.MicroAverage(metrics.Precision())
    micro_recall       metrics.multioutput.MicroAverage(metrics.Recall())
    micro_f1           metrics.multioutput.MicroAverage(metrics.F1())
    macro_precision    metrics.multioutput.MacroAverage(metrics.Precision())
    macro_recall       metrics.multioutput.MacroAverage(metrics.Recall())
    macro_f1           metrics.multioutput.MacroAverage(metrics.F1())

River's conventions, which these classes copy (``Y`` true set, ``Z`` predicted set):

* Every 0/0 is 0. An instance with ``Z`` empty has example precision 0, one with ``Y`` empty has
  example recall 0, and one with both empty scores 0 on all three example-based metrics even
  though it is an exact match. A label never predicted has macro precision 0, a label never
  relevant has macro recall 0, and F1 is 0 whenever precision + recall is 0.
* Hamming loss is ``mismatches / sum of universe sizes``, each instance counting the labels known
  when it was scored. Before any label decision is scored, river's accuracy is 0, so the loss
  is 1.0 (not 0.0).
* The macro average runs over every label that ever was in the universe, so a label that joins
  the universe late enters the average from then on, with counts from then on. Where river
  raises on an empty universe (``statistics.mean`` of nothing), the macro metrics are 0.0.
* ``ExactMatch`` compares the two dicts, so river needs ``y_pred`` to carry the same keys as
  ``y_true``; with both over the universe this is ``Y == Z``, which is what is computed here.

State is a handful of integer counters (per label: true positives, false positives, false
negatives; in total: exact matches, mismatches, scored label decisions) plus compensated sums of
the example-based scores, updated by numba kernels straight from CSR arrays (``indptr`` int64,
``label_ids`` int32 sorted within a row, as in :class:`~ihomer.stream.Batch` and
:class:`~ihomer.learners.base.Predictions`). Counts are exact, so the only rounding is in the
final divisions and in the sums of per-instance (example-based) and per-label (macro) scores,
which use Neumaier summation so that long streams, and the add/subtract of a sliding window,
do not drift.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numba
import numpy as np

__all__ = ["METRIC_NAMES", "MultiLabelMetrics", "RollingMultiLabelMetrics"]

METRIC_NAMES: tuple[str, ...] = (
    "subset_accuracy",
    "hamming_loss",
    "example_precision",
    "example_recall",
    "example_f1",
    "micro_precision",
    "micro_recall",
    "micro_f1",
    "macro_precision",
    "macro_recall",
    "macro_f1",
)

_N_METRICS = len(METRIC_NAMES)
# Per-label counter rows, and the code of a (label, outcome) entry kept for a windowed row.
_TP, _FP, _FN = 0, 1, 2
# Slots of the int64 ``totals`` array.
_COUNT, _EXACT, _MISMATCH, _DECISIONS, _SUM_TP, _SUM_FP, _SUM_FN = range(7)
# Slots of the rolling ``state`` array: ring heads and sizes of the rows and of their entries.
_ROW_HEAD, _ROW_SIZE, _ENT_HEAD, _ENT_SIZE = range(4)
# Slots of a windowed row: universe size, |Y|, |Z|, |Y & Z|.
_ROW_FIELDS = 4

# The entry ring passed by the cumulative metric, which never needs to subtract a row.
_NO_ENTRIES = np.zeros(0, dtype=np.int64)

_CSR_ERRORS = {
    1: "indptr is decreasing or points outside label_ids",
    2: "a label id is outside [0, n_labels)",
    3: "label ids are not strictly increasing within the row",
}


@numba.njit(cache=True)
def _check_csr(indptr: np.ndarray, ids: np.ndarray, n_labels: int) -> tuple[int, int]:
    """``(row, error code)`` of the first malformed row, ``(-1, 0)`` when all rows are valid."""
    n = len(indptr) - 1
    if n >= 0 and (indptr[0] < 0 or indptr[n] > len(ids)):
        return 0, 1
    for i in range(n):
        a, b = indptr[i], indptr[i + 1]
        if b < a:
            return i, 1
        last = -1
        for k in range(a, b):
            lab = ids[k]
            if lab < 0 or lab >= n_labels:
                return i, 2
            if lab <= last:
                return i, 3
            last = lab
    return -1, 0


@numba.njit(cache=True)
def _scores(n_true: float, n_pred: float, n_hit: float) -> tuple[float, float, float]:
    """Precision, recall and F1 written exactly as river's ``Precision``/``Recall``/``F1``."""
    p = n_hit / n_pred if n_pred > 0 else 0.0
    r = n_hit / n_true if n_true > 0 else 0.0
    f = 2.0 * p * r / (p + r) if p + r > 0 else 0.0
    return p, r, f


@numba.njit(cache=True)
def _neumaier_add(sums: np.ndarray, k: int, x: float) -> None:
    """Add ``x`` to the compensated sum stored as ``sums[k]`` (value) and ``sums[k + 1]``."""
    s = sums[k]
    t = s + x
    if abs(s) >= abs(x):
        sums[k + 1] += (s - t) + x
    else:
        sums[k + 1] += (x - t) + s
    sums[k] = t


@numba.njit(cache=True)
def _account(
    totals: np.ndarray, sums: np.ndarray, universe: int, n_true: int, n_pred: int, n_hit: int,
    sign: int,
) -> None:
    """Add (``sign`` 1) or remove (``sign`` -1) one row's contribution to the totals and sums."""
    totals[_COUNT] += sign
    if n_hit == n_true and n_hit == n_pred:
        totals[_EXACT] += sign
    totals[_MISMATCH] += sign * (n_true + n_pred - 2 * n_hit)
    totals[_DECISIONS] += sign * universe
    totals[_SUM_TP] += sign * n_hit
    totals[_SUM_FP] += sign * (n_pred - n_hit)
    totals[_SUM_FN] += sign * (n_true - n_hit)
    p, r, f = _scores(n_true, n_pred, n_hit)
    _neumaier_add(sums, 0, sign * p)
    _neumaier_add(sums, 2, sign * r)
    _neumaier_add(sums, 4, sign * f)


@numba.njit(cache=True)
def _merge_row(
    t_ids: np.ndarray, a: int, b: int, p_ids: np.ndarray, c: int, d: int,
    counts: np.ndarray, ent: np.ndarray, e_at: int,
) -> int:
    """Count one row's per-label outcomes; return ``|Y & Z|``.

    With a non-empty ``ent`` ring, each (label, outcome) is also written there from position
    ``e_at`` on, so that a sliding window can subtract the row again when it leaves.
    """
    ecap = len(ent)
    i, j, hits, k = a, c, 0, e_at
    while i < b or j < d:
        if j == d or (i < b and t_ids[i] < p_ids[j]):
            lab, code = t_ids[i], _FN
            i += 1
        elif i == b or p_ids[j] < t_ids[i]:
            lab, code = p_ids[j], _FP
            j += 1
        else:
            lab, code = t_ids[i], _TP
            i += 1
            j += 1
            hits += 1
        counts[code, lab] += 1
        if ecap:
            ent[k % ecap] = 4 * np.int64(lab) + code
            k += 1
    return hits


@numba.njit(cache=True)
def _update_cumulative(
    t_ptr: np.ndarray, t_ids: np.ndarray, p_ptr: np.ndarray, p_ids: np.ndarray, universe: int,
    counts: np.ndarray, totals: np.ndarray, sums: np.ndarray, no_ent: np.ndarray,
) -> None:
    """Add every row of the batch to the counters."""
    for i in range(len(t_ptr) - 1):
        a, b, c, d = t_ptr[i], t_ptr[i + 1], p_ptr[i], p_ptr[i + 1]
        hits = _merge_row(t_ids, a, b, p_ids, c, d, counts, no_ent, 0)
        _account(totals, sums, universe, b - a, d - c, hits, 1)


@numba.njit(cache=True)
def _update_rolling(
    t_ptr: np.ndarray, t_ids: np.ndarray, p_ptr: np.ndarray, p_ids: np.ndarray, first: int,
    universe: int, window: int, counts: np.ndarray, totals: np.ndarray, sums: np.ndarray,
    rows: np.ndarray, ent: np.ndarray, state: np.ndarray,
) -> None:
    """Push rows ``first:`` into the window, evicting (and subtracting) the oldest when full.

    The caller guarantees room: ``rows`` holds ``min(window, size + pushed)`` rows and ``ent``
    the live entries plus those of the pushed rows.
    """
    rcap, ecap = len(rows), len(ent)
    for i in range(first, len(t_ptr) - 1):
        if state[_ROW_SIZE] == window:
            h = state[_ROW_HEAD]
            n_true, n_pred, n_hit = rows[h, 1], rows[h, 2], rows[h, 3]
            n_ent = n_true + n_pred - n_hit
            if n_ent:
                eh = state[_ENT_HEAD]
                for k in range(n_ent):
                    e = ent[(eh + k) % ecap]
                    counts[e & 3, e >> 2] -= 1
                state[_ENT_HEAD] = (eh + n_ent) % ecap
                state[_ENT_SIZE] -= n_ent
            _account(totals, sums, rows[h, 0], n_true, n_pred, n_hit, -1)
            state[_ROW_HEAD] = (h + 1) % rcap
            state[_ROW_SIZE] -= 1
        a, b, c, d = t_ptr[i], t_ptr[i + 1], p_ptr[i], p_ptr[i + 1]
        e_at = state[_ENT_HEAD] + state[_ENT_SIZE]
        hits = _merge_row(t_ids, a, b, p_ids, c, d, counts, ent, e_at)
        _account(totals, sums, universe, b - a, d - c, hits, 1)
        r = (state[_ROW_HEAD] + state[_ROW_SIZE]) % rcap
        rows[r, 0], rows[r, 1], rows[r, 2], rows[r, 3] = universe, b - a, d - c, hits
        state[_ROW_SIZE] += 1
        state[_ENT_SIZE] += b - a + d - c - hits


@numba.njit(cache=True)
def _summary(counts: np.ndarray, n_macro: int, totals: np.ndarray, sums: np.ndarray) -> np.ndarray:
    """The values of :data:`METRIC_NAMES`, in order."""
    out = np.zeros(_N_METRICS)
    n = totals[_COUNT]
    if n > 0:
        out[0] = totals[_EXACT] / n
        out[2] = (sums[0] + sums[1]) / n
        out[3] = (sums[2] + sums[3]) / n
        out[4] = (sums[4] + sums[5]) / n
    decisions = totals[_DECISIONS]
    accuracy = (decisions - totals[_MISMATCH]) / decisions if decisions > 0 else 0.0
    out[1] = 1.0 - accuracy
    tp, fp, fn = totals[_SUM_TP], totals[_SUM_FP], totals[_SUM_FN]
    out[5], out[6], out[7] = _scores(tp + fn, tp + fp, tp)
    if n_macro > 0:
        macro = np.zeros(6)
        for lab in range(n_macro):
            tp, fp, fn = counts[_TP, lab], counts[_FP, lab], counts[_FN, lab]
            p, r, f = _scores(tp + fn, tp + fp, tp)
            _neumaier_add(macro, 0, p)
            _neumaier_add(macro, 2, r)
            _neumaier_add(macro, 4, f)
        out[8] = (macro[0] + macro[1]) / n_macro
        out[9] = (macro[2] + macro[3]) / n_macro
        out[10] = (macro[4] + macro[5]) / n_macro
    return out


def _grow(a: np.ndarray, size: int, axis: int) -> np.ndarray:
    """``a`` zero-padded along ``axis`` to ``size``."""
    pad = [(0, 0)] * a.ndim
    pad[axis] = (0, size - a.shape[axis])
    return np.pad(a, pad)


def _capacity(have: int, need: int) -> int:
    """Doubling growth, so that a slowly growing universe costs amortised O(1) per label."""
    while have < need:
        have = max(2 * have, 1)
    return have


class MultiLabelMetrics:
    """Cumulative prequential multi-label metrics, equal to river's (see the module docstring).

    Rows arrive in CSR form, true and predicted sets side by side, with the size of the label
    universe they were scored over. Ids must be ``< n_labels`` and strictly increasing within a
    row; the universe may grow between updates. A batch update is the same as updating its rows
    one by one.

    Examples
    --------

    >>> import numpy as np
    >>> m = MultiLabelMetrics()
    >>> m.update_one([1, 2], [0, 1, 2], n_labels=3)
    >>> m.update(np.array([0, 2, 4]), np.array([0, 1, 0, 1]),
    ...          np.array([0, 1, 3]), np.array([0, 0, 1]), n_labels=3)
    >>> m.n
    3
    >>> round(m.get()["subset_accuracy"], 4), round(m.get()["hamming_loss"], 4)
    (0.3333, 0.2222)
    >>> round(m.get()["example_f1"], 4), round(m.get()["macro_recall"], 4)
    (0.8222, 0.8889)

    """

    def __init__(self) -> None:
        self._counts = np.zeros((3, 0), dtype=np.int64)
        self._totals = np.zeros(7, dtype=np.int64)
        self._sums = np.zeros(6, dtype=np.float64)
        self._n_macro = 0

    @property
    def n(self) -> int:
        """Number of instances seen."""
        return int(self._totals[_COUNT])

    def state_dict(self) -> dict[str, Any]:
        """The exact counters (integers and compensated sums), for checkpoints."""
        return {"counts": self._counts.copy(), "totals": self._totals.copy(),
                "sums": self._sums.copy(), "n_macro": self._n_macro}

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> MultiLabelMetrics:
        """Rebuild the metrics that :meth:`state_dict` described."""
        m = cls()
        counts = np.asarray(state["counts"], dtype=np.int64)
        totals = np.asarray(state["totals"], dtype=np.int64)
        sums = np.asarray(state["sums"], dtype=np.float64)
        if counts.ndim != 2 or counts.shape[0] != 3 or totals.shape != (7,) or sums.shape != (6,):
            raise ValueError("metric state has the wrong shape")
        m._counts, m._totals, m._sums = counts, totals, sums
        m._n_macro = int(state["n_macro"])
        return m

    def update(
        self,
        true_indptr: np.ndarray,
        true_ids: np.ndarray,
        pred_indptr: np.ndarray,
        pred_ids: np.ndarray,
        n_labels: int,
    ) -> None:
        """Score a batch of rows, all over a universe of ``n_labels`` labels.

        The input is checked before any counter moves, so a ``ValueError`` leaves the metric
        as it was. A universe smaller than an earlier one is scored as river scores a smaller
        ``y_true`` dict: the rows count fewer label decisions, and the macro average keeps
        every label seen before.
        """
        t_ptr = np.ascontiguousarray(true_indptr, dtype=np.int64)
        t_ids = np.ascontiguousarray(true_ids, dtype=np.int32)
        p_ptr = np.ascontiguousarray(pred_indptr, dtype=np.int64)
        p_ids = np.ascontiguousarray(pred_ids, dtype=np.int32)
        n_labels = int(n_labels)
        if n_labels < 0:
            raise ValueError(f"n_labels must be non-negative, got {n_labels}")
        if len(t_ptr) != len(p_ptr) or len(t_ptr) == 0:
            raise ValueError(
                f"true_indptr ({len(t_ptr)}) and pred_indptr ({len(p_ptr)}) must have the same, "
                "non-zero length"
            )
        for what, ptr, ids in (("true", t_ptr, t_ids), ("pred", p_ptr, p_ids)):
            row, err = _check_csr(ptr, ids, n_labels)
            if err:
                raise ValueError(f"{what} row {row}: {_CSR_ERRORS[err]} (n_labels={n_labels})")
        if n_labels > self._counts.shape[1]:
            self._counts = _grow(self._counts, _capacity(self._counts.shape[1], n_labels), 1)
        self._n_macro = max(self._n_macro, n_labels)
        self._push(t_ptr, t_ids, p_ptr, p_ids, n_labels)

    def update_one(self, true_ids: Iterable[int], pred_ids: Iterable[int], n_labels: int) -> None:
        """Score one instance; the id lists may be in any order and contain repeats."""
        t = np.unique(np.fromiter(true_ids, dtype=np.int32))
        p = np.unique(np.fromiter(pred_ids, dtype=np.int32))
        self.update(np.array([0, len(t)]), t, np.array([0, len(p)]), p, n_labels)

    def _push(
        self, t_ptr: np.ndarray, t_ids: np.ndarray, p_ptr: np.ndarray, p_ids: np.ndarray,
        n_labels: int,
    ) -> None:
        _update_cumulative(t_ptr, t_ids, p_ptr, p_ids, n_labels, self._counts, self._totals,
                           self._sums, _NO_ENTRIES)

    def get(self) -> dict[str, float]:
        """Current value of every metric in :data:`METRIC_NAMES`."""
        values = _summary(self._counts, self._n_macro, self._totals, self._sums)
        return dict(zip(METRIC_NAMES, values.tolist(), strict=True))



class RollingMultiLabelMetrics(MultiLabelMetrics):
    """The same metrics over the last ``window`` instances, exactly.

    Equal to wrapping each river construction in ``utils.Rolling(..., window_size=window)``.
    Every row in the window keeps the universe it was scored over (as river replays the stored
    ``y_true`` dict when reverting), so the Hamming loss divides by the sum of those sizes; the
    macro average runs over the current universe, because river never drops a label it has
    seen: a label with no positive or predicted instance left in the window scores 0.

    The window's rows are kept in ring buffers (per row: universe size, ``|Y|``, ``|Z|``,
    ``|Y & Z|``, and the row's (label, outcome) entries), and a leaving row's contribution is
    subtracted, so an update costs the size of the rows that enter and leave, not of the window.
    ``n`` counts every instance seen, including those that have left the window.

    Examples
    --------

    >>> m = RollingMultiLabelMetrics(window=2)
    >>> for y, z in [([0], [0]), ([1], [0]), ([0, 1], [0, 1])]:
    ...     m.update_one(y, z, n_labels=2)
    >>> m.n, m.get()["subset_accuracy"], m.get()["micro_precision"]
    (3, 0.5, 0.6666666666666666)

    """

    def __init__(self, window: int) -> None:
        if window < 1:
            raise ValueError(f"window must be at least 1, got {window}")
        super().__init__()
        self.window = int(window)
        self._seen = 0
        self._rows = np.zeros((0, _ROW_FIELDS), dtype=np.int64)
        self._ent = np.zeros(0, dtype=np.int64)
        self._state = np.zeros(4, dtype=np.int64)

    @property
    def n(self) -> int:
        """Number of instances seen (the window holds the last ``min(n, window)``)."""
        return self._seen

    def _push(
        self, t_ptr: np.ndarray, t_ids: np.ndarray, p_ptr: np.ndarray, p_ids: np.ndarray,
        n_labels: int,
    ) -> None:
        n_rows = len(t_ptr) - 1
        self._seen += n_rows
        # Rows that would leave the window before this batch ends never change its final state.
        first = max(0, n_rows - self.window)
        size = int(self._state[_ROW_SIZE])
        need_rows = min(self.window, size + n_rows - first)
        if need_rows > len(self._rows):
            # Until the window first fills nothing is evicted, so the ring starts at 0 and
            # growing it is a plain copy.
            cap = min(self.window, _capacity(len(self._rows), need_rows))
            self._rows = _grow(self._rows, cap, 0)
        incoming = (t_ptr[n_rows] - t_ptr[first]) + (p_ptr[n_rows] - p_ptr[first])
        live = int(self._state[_ENT_SIZE])
        if live + incoming > len(self._ent):
            head = int(self._state[_ENT_HEAD])
            ring = np.roll(self._ent, -head)[:live]
            self._ent = _grow(ring, _capacity(len(self._ent), live + incoming), 0)
            self._state[_ENT_HEAD] = 0
        _update_rolling(t_ptr, t_ids, p_ptr, p_ids, first, n_labels, self.window, self._counts,
                        self._totals, self._sums, self._rows, self._ent, self._state)
