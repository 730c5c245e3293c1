"""ADWIN (ADaptive WINdowing) drift detection as numba kernels over one flat state row.

Why a flat row
--------------
A Hoeffding adaptive tree keeps one ADWIN per node, thousands of them, and updates them from
inside jitted code. A Python object per detector cannot be touched from ``@njit`` code, and a
list of variable-size buckets cannot live in a NumPy array. So the *whole* state of one detector
is a single C-contiguous ``float64`` vector of fixed length :data:`ADWIN_STATE_LEN`: a pool of
detectors is a 2-D array ``pool[k, :]`` and jitted code calls ``adwin_update(pool[k], value)``.

The algorithm
-------------
ADWIN (Bifet & Gavaldà, 2007) keeps a window of the most recent values whose mean it believes
has not changed. The window is stored compressed as an *exponential histogram*: level ``i``
holds buckets that each summarise ``2**i`` consecutive values by their sum and their sum of
squared deviations. New values enter level 0; when a level holds ``max_buckets + 1`` buckets its
two oldest are merged into one bucket of the next level. Every ``clock`` updates (once more than
``grace_period`` values are held) each split of the window into an older part ``W0`` and a newer
part ``W1`` at a bucket boundary is tested: if both parts hold at least ``min_window_length``
values and ``|mean(W0) - mean(W1)|`` exceeds a variance-aware Hoeffding/Bernstein bound at
significance ``delta``, the oldest bucket is dropped, drift is reported and the test is repeated
on the shorter window.

Semantics are those of ``river.drift.ADWIN`` (river 0.26) step for step, with the same floating
point operations in the same order, so detections, ``estimation``, ``width``, ``variance`` and
``total`` agree with river's. That includes river's reset rule: the update *after* one that
reported drift first empties the detector (only its parameters survive) and then adds the value.
One deliberate difference: with ``max_buckets=1`` a merge can empty a middle level, and river
0.26 then panics when a cut reaches that empty level; here empty top levels are discarded, so
the detector keeps working (every other path is unaffected).

Row layout (all ``float64``): a header of parameters and running statistics, then
:data:`ADWIN_MAX_LEVELS` level blocks, each a ring of ``ADWIN_MAX_BUCKETS + 1`` (sum, variance)
slots with its bucket count and the slot of its oldest bucket: 995 values, about 8 KB. 41
levels hold more than ``2**40`` values even with ``max_buckets=1``; if a window ever outgrows
that, the oldest top-level bucket is dropped, so the window becomes a sliding one instead of
overflowing the row.

Example
-------
>>> import numpy as np
>>> from ihomer.drift.adwin import adwin_new, adwin_update, adwin_estimation
>>> rng = np.random.default_rng(7)
>>> stream = np.concatenate([rng.binomial(1, 0.2, 1000), rng.binomial(1, 0.8, 1000)])
>>> state = adwin_new()
>>> [i for i, x in enumerate(stream) if adwin_update(state, float(x))]
[1023]
>>> round(adwin_estimation(state), 1)
0.8

Growing a pool: ``pool = np.concatenate([pool, adwin_pool(extra)])`` appends ``extra`` fresh
detectors (rows are independent, so copying them is safe); re-initialise a recycled row in place
with ``adwin_init(pool[k], ...)``.
"""

from __future__ import annotations

import math

import numba
import numpy as np

#: Largest ``max_buckets`` a state row has room for.
ADWIN_MAX_BUCKETS = 10
#: Number of exponential-histogram levels in a row (level ``i`` buckets hold ``2**i`` values).
ADWIN_MAX_LEVELS = 41

# Header slots.
_DELTA = 0
_CLOCK = 1
_MAX_BUCKETS = 2
_MIN_WINDOW = 3
_GRACE = 4
_TOTAL = 5
_VARIANCE = 6
_WIDTH = 7
_N_LEVELS = 8
_TICK = 9
_DRIFT = 10
_HEADER = 11

# Level block: [count, start, (sum, variance) * _SLOTS]; the buckets form a ring that starts at
# physical slot ``start`` (oldest first), so dropping the oldest buckets moves no data. A level
# briefly holds max_buckets + 1 buckets before its two oldest are merged.
_SLOTS = ADWIN_MAX_BUCKETS + 1
_START = 1
_BUCKETS = 2
_STRIDE = _BUCKETS + 2 * _SLOTS

#: Length of one detector's state row.
ADWIN_STATE_LEN: int = _HEADER + ADWIN_MAX_LEVELS * _STRIDE


@numba.njit(cache=True)
def adwin_init(
    state: np.ndarray,
    delta: float = 0.002,
    clock: int = 32,
    max_buckets: int = 5,
    min_window_length: int = 5,
    grace_period: int = 10,
) -> None:
    """(Re)initialise ``state`` (a row of length :data:`ADWIN_STATE_LEN`) in place.

    Parameters are river's: ``delta`` the significance of the cut test, ``clock`` how many
    updates between two tests, ``max_buckets`` buckets kept per histogram level before merging,
    ``min_window_length`` the smallest sub-window a cut may leave, ``grace_period`` the number of
    values held before the first test.
    """
    if state.shape[0] != ADWIN_STATE_LEN:
        raise ValueError("ADWIN state row has the wrong length")
    if not 0.0 < delta < 1.0:
        raise ValueError("ADWIN delta must lie in (0, 1)")
    if clock < 1:
        raise ValueError("ADWIN clock must be >= 1")
    if not 1 <= max_buckets <= ADWIN_MAX_BUCKETS:
        raise ValueError("ADWIN max_buckets must lie in [1, ADWIN_MAX_BUCKETS]")
    state[:] = 0.0  # a recycled row then equals a fresh one, stale buckets included
    state[_DELTA] = delta
    state[_CLOCK] = clock
    state[_MAX_BUCKETS] = max_buckets
    state[_MIN_WINDOW] = min_window_length
    state[_GRACE] = grace_period
    _reset(state)


@numba.njit(cache=True)
def _reset(state: np.ndarray) -> None:
    """Empty the window, keeping the parameters (river replaces its helper the same way).

    O(1): slots outside a level's ring are never read, so old buckets need not be cleared.
    """
    state[_TOTAL] = 0.0
    state[_VARIANCE] = 0.0
    state[_WIDTH] = 0.0
    state[_N_LEVELS] = 1.0
    state[_TICK] = 0.0
    state[_DRIFT] = 0.0
    state[_HEADER] = 0.0  # level 0 holds no bucket
    state[_HEADER + _START] = 0.0


@numba.njit(cache=True, inline="always")
def _bucket(state: np.ndarray, base: int, j: int) -> int:
    """Index of the sum of the ``j``-th oldest bucket of a level (its variance follows it)."""
    slot = int(state[base + _START]) + j
    if slot >= _SLOTS:
        slot -= _SLOTS
    return base + _BUCKETS + 2 * slot


@numba.njit(cache=True, inline="always")
def _push(state: np.ndarray, base: int, total: float, variance: float) -> None:
    """Append a bucket (the newest) to a level."""
    count = int(state[base])
    at = _bucket(state, base, count)
    state[at] = total
    state[at + 1] = variance
    state[base] = count + 1


@numba.njit(cache=True, inline="always")
def _pop_oldest(state: np.ndarray, base: int, n: int) -> None:
    """Remove the ``n`` oldest buckets of a level."""
    start = int(state[base + _START]) + n
    state[base + _START] = start - _SLOTS if start >= _SLOTS else start
    state[base] -= n


@numba.njit(cache=True)
def _delete_oldest(state: np.ndarray) -> None:
    """Drop the oldest bucket (first bucket of the top level) and update the statistics."""
    top = int(state[_N_LEVELS]) - 1
    base = _HEADER + top * _STRIDE
    n = float(1 << top)
    at = _bucket(state, base, 0)
    u = state[at]
    v = state[at + 1]
    mu = u / n
    width = state[_WIDTH] - n
    total = state[_TOTAL] - u
    d = mu - total / width
    state[_WIDTH] = width
    state[_TOTAL] = total
    state[_VARIANCE] -= v + n * width * d * d / (n + width)
    _pop_oldest(state, base, 1)
    # Empty top levels are discarded so that the top level always holds the oldest bucket
    # (with max_buckets=1 a merge can leave a middle level empty).
    while top > 0 and state[_HEADER + top * _STRIDE] == 0.0:
        top -= 1
    state[_N_LEVELS] = top + 1


@numba.njit(cache=True, inline="always")
def _insert(state: np.ndarray, value: float) -> None:
    """Add ``value`` as a new level-0 bucket, then merge full levels upwards."""
    _push(state, _HEADER, value, 0.0)
    width = state[_WIDTH] + 1.0
    state[_WIDTH] = width
    if width > 1.0:
        dv = value - state[_TOTAL] / (width - 1.0)
        state[_VARIANCE] += (width - 1.0) * dv * dv / width
    state[_TOTAL] += value

    full = int(state[_MAX_BUCKETS]) + 1
    level = 0
    while state[_HEADER + level * _STRIDE] == full:
        base = _HEADER + level * _STRIDE
        if level + 1 == ADWIN_MAX_LEVELS:
            _delete_oldest(state)  # no room for another level: slide the window instead
            break
        size = float(1 << level)
        first = _bucket(state, base, 0)
        second = _bucket(state, base, 1)
        t0 = state[first]
        t1 = state[second]
        d = t0 / size - t1 / size
        merged_var = state[first + 1] + state[second + 1] + size * 0.5 * d * d
        up = base + _STRIDE
        if level + 1 == int(state[_N_LEVELS]):
            state[_N_LEVELS] = level + 2
            state[up] = 0.0
            state[up + _START] = 0.0
        _push(state, up, t0 + t1, merged_var)
        _pop_oldest(state, base, 2)
        level += 1


@numba.njit(cache=True)
def _shrink_while_cut(state: np.ndarray) -> bool:
    """The cut test: drop the oldest bucket while some split of the window is significant."""
    delta = state[_DELTA]
    min_len = state[_MIN_WINDOW]
    detected = False
    shrink = True
    while shrink:
        shrink = False
        width = state[_WIDTH]
        var_per_value = state[_VARIANCE] / width
        delta_prime = math.log(2.0 * math.log(width) / delta)
        n0 = 0.0
        n1 = width
        u0 = 0.0
        u1 = state[_TOTAL]
        level = int(state[_N_LEVELS]) - 1
        while level >= 0 and not shrink:
            base = _HEADER + level * _STRIDE
            size = float(1 << level)
            count = int(state[base])
            start = int(state[base + _START])
            # Every boundary between buckets, oldest first; the end of the window is no split.
            last = count - 1 if level == 0 else count
            for k in range(last):
                n0 += size
                n1 -= size
                slot = start + k if start + k < _SLOTS else start + k - _SLOTS
                t = state[base + _BUCKETS + 2 * slot]
                u0 += t
                u1 -= t
                if n1 >= min_len and n0 >= min_len:
                    m_recip = 1.0 / (n0 - min_len + 1.0) + 1.0 / (n1 - min_len + 1.0)
                    epsilon = (
                        math.sqrt(2.0 * m_recip * var_per_value * delta_prime)
                        + 2.0 / 3.0 * delta_prime * m_recip
                    )
                    if abs(u0 / n0 - u1 / n1) > epsilon:
                        detected = True
                        shrink = True
                        _delete_oldest(state)
                        break
            level -= 1
    return detected


@numba.njit(cache=True)
def adwin_update(state: np.ndarray, value: float) -> bool:
    """Add ``value`` to the detector and return True when drift is detected.

    Matches ``river.drift.ADWIN.update`` followed by ``drift_detected``, including the reset:
    if the previous update detected drift, the window is emptied before ``value`` is added.
    """
    if state[_DRIFT] != 0.0:
        _reset(state)
    _insert(state, value)
    tick = state[_TICK] + 1.0
    if tick < state[_CLOCK]:
        state[_TICK] = tick
        return False
    state[_TICK] = 0.0
    if not state[_WIDTH] > state[_GRACE]:
        return False
    detected = _shrink_while_cut(state)
    state[_DRIFT] = 1.0 if detected else 0.0
    return detected


@numba.njit(cache=True)
def adwin_estimation(state: np.ndarray) -> float:
    """Mean of the values in the current window (0.0 for an empty window)."""
    width = state[_WIDTH]
    return state[_TOTAL] / width if width > 0.0 else 0.0


@numba.njit(cache=True)
def adwin_width(state: np.ndarray) -> float:
    """Number of values in the current window."""
    return state[_WIDTH]


@numba.njit(cache=True)
def adwin_variance(state: np.ndarray) -> float:
    """Sum of squared deviations from the mean over the window (river's ``variance``)."""
    return state[_VARIANCE]


@numba.njit(cache=True)
def adwin_total(state: np.ndarray) -> float:
    """Sum of the values in the current window."""
    return state[_TOTAL]


@numba.njit(cache=True)
def adwin_drift_detected(state: np.ndarray) -> bool:
    """Whether the last update detected drift."""
    return state[_DRIFT] != 0.0


def adwin_new(
    delta: float = 0.002,
    clock: int = 32,
    max_buckets: int = 5,
    min_window_length: int = 5,
    grace_period: int = 10,
) -> np.ndarray:
    """A fresh detector state row (see :func:`adwin_init` for the parameters)."""
    state = np.zeros(ADWIN_STATE_LEN, dtype=np.float64)
    adwin_init(state, delta, clock, max_buckets, min_window_length, grace_period)
    return state


def adwin_pool(
    n: int,
    delta: float = 0.002,
    clock: int = 32,
    max_buckets: int = 5,
    min_window_length: int = 5,
    grace_period: int = 10,
) -> np.ndarray:
    """``n`` fresh detectors as the rows of an ``(n, ADWIN_STATE_LEN)`` array.

    Grow it with ``np.concatenate([pool, adwin_pool(extra, ...)])``.

    >>> pool = adwin_pool(3)
    >>> pool.shape == (3, ADWIN_STATE_LEN)
    True
    >>> adwin_update(pool[1], 1.0), adwin_width(pool[1]), adwin_width(pool[0])
    (False, 1.0, 0.0)
    """
    row = adwin_new(delta, clock, max_buckets, min_window_length, grace_period)
    return np.tile(row, (n, 1))


class ADWIN:
    """One ADWIN detector with river's interface, backed by a state row.

    ``update(x)`` returns whether drift was detected (river's returns None; the result is also
    in :attr:`drift_detected`). The row itself is :attr:`state`.

    >>> detector = ADWIN()
    >>> changes = [i for i in range(2000) if detector.update(float(i >= 1000) * 5.0)]
    >>> changes
    [1023]
    >>> detector.estimation
    5.0
    """

    def __init__(
        self,
        delta: float = 0.002,
        clock: int = 32,
        max_buckets: int = 5,
        min_window_length: int = 5,
        grace_period: int = 10,
    ) -> None:
        self.state = adwin_new(delta, clock, max_buckets, min_window_length, grace_period)

    def update(self, x: float) -> bool:
        """Add ``x``; True when the window was shrunk because of a change."""
        return adwin_update(self.state, float(x))

    @property
    def drift_detected(self) -> bool:
        """Whether the last update detected drift."""
        return adwin_drift_detected(self.state)

    @property
    def estimation(self) -> float:
        """Mean of the current window."""
        return adwin_estimation(self.state)

    @property
    def width(self) -> float:
        """Number of values in the current window."""
        return adwin_width(self.state)

    @property
    def variance(self) -> float:
        """Sum of squared deviations from the window mean."""
        return adwin_variance(self.state)

    @property
    def total(self) -> float:
        """Sum of the values in the current window."""
        return adwin_total(self.state)
