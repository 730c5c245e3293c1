"""Page-Hinkley drift detection as a numba kernel over one flat state row.

Like :mod:`ihomer.drift.adwin`, the whole detector is one ``float64`` vector of fixed length
:data:`PH_STATE_LEN`, so that many detectors form a 2-D array and jitted code can update
``pool[k]`` directly.

The test (Page, 1954) follows a running mean ``m_t`` of the stream and two cumulative sums of
the deviations ``x_t - m_t``, faded by ``alpha`` and offset by the tolerated magnitude
``delta``: ``S+`` (offset ``-delta``) grows when values rise above the mean, ``S-`` (offset
``+delta``) falls when they drop below it. Drift is reported when ``S+`` has risen more than
``threshold`` above its minimum (mode ``"up"``), or ``S-`` has fallen more than ``threshold``
below its maximum (mode ``"down"``), or either (mode ``"both"``), once ``min_instances`` values
were seen. Semantics and floating point operations are those of ``river.drift.PageHinkley``
(river 0.26), including its reset: the update after a detection starts from an empty state.

Example
-------
>>> import numpy as np
>>> from ihomer.drift.page_hinkley import ph_new, ph_update
>>> rng = np.random.default_rng(1)
>>> stream = np.concatenate([rng.normal(0.0, 1.0, 500), rng.normal(3.0, 1.0, 500)])
>>> state = ph_new(mode="up")
>>> [i for i, x in enumerate(stream) if ph_update(state, x)]
[506]
"""

from __future__ import annotations

import numba
import numpy as np

#: Numeric codes of the ``mode`` parameter as stored in the state row.
PH_MODE_BOTH = 0
PH_MODE_UP = 1
PH_MODE_DOWN = 2
_MODES = {"both": PH_MODE_BOTH, "up": PH_MODE_UP, "down": PH_MODE_DOWN}

# State slots.
_MIN_INSTANCES = 0
_DELTA = 1
_THRESHOLD = 2
_ALPHA = 3
_MODE = 4
_N = 5
_MEAN = 6
_SUM_INC = 7
_SUM_DEC = 8
_MIN_INC = 9
_MAX_DEC = 10
_DRIFT = 11

#: Length of one detector's state row.
PH_STATE_LEN: int = 12


@numba.njit(cache=True)
def ph_init(
    state: np.ndarray,
    min_instances: int = 30,
    delta: float = 0.005,
    threshold: float = 50.0,
    alpha: float = 1 - 0.0001,
    mode: int = PH_MODE_BOTH,
) -> None:
    """(Re)initialise ``state`` in place; ``mode`` is one of the ``PH_MODE_*`` codes."""
    if state.shape[0] != PH_STATE_LEN:
        raise ValueError("Page-Hinkley state row has the wrong length")
    if mode != PH_MODE_BOTH and mode != PH_MODE_UP and mode != PH_MODE_DOWN:
        raise ValueError("Page-Hinkley mode must be PH_MODE_BOTH, PH_MODE_UP or PH_MODE_DOWN")
    state[_MIN_INSTANCES] = min_instances
    state[_DELTA] = delta
    state[_THRESHOLD] = threshold
    state[_ALPHA] = alpha
    state[_MODE] = mode
    _reset(state)


@numba.njit(cache=True)
def _reset(state: np.ndarray) -> None:
    """Forget the stream, keeping the parameters."""
    state[_N] = 0.0
    state[_MEAN] = 0.0
    state[_SUM_INC] = 0.0
    state[_SUM_DEC] = 0.0
    state[_MIN_INC] = np.inf
    state[_MAX_DEC] = -1.0  # river's starting value, kept for identical detections
    state[_DRIFT] = 0.0


@numba.njit(cache=True)
def ph_update(state: np.ndarray, value: float) -> bool:
    """Add ``value``; return True when drift is detected (``PageHinkley.update`` semantics)."""
    if state[_DRIFT] != 0.0:
        _reset(state)
    n = state[_N] + 1.0
    mean = state[_MEAN] + (1.0 / n) * (value - state[_MEAN])
    state[_N] = n
    state[_MEAN] = mean
    dev = value - mean

    alpha = state[_ALPHA]
    delta = state[_DELTA]
    sum_inc = alpha * state[_SUM_INC] + dev - delta
    sum_dec = alpha * state[_SUM_DEC] + dev + delta
    state[_SUM_INC] = sum_inc
    state[_SUM_DEC] = sum_dec
    if sum_inc < state[_MIN_INC]:
        state[_MIN_INC] = sum_inc
    if sum_dec > state[_MAX_DEC]:
        state[_MAX_DEC] = sum_dec

    if n < state[_MIN_INSTANCES]:
        return False
    threshold = state[_THRESHOLD]
    mode = state[_MODE]
    rise = sum_inc - state[_MIN_INC] > threshold
    fall = state[_MAX_DEC] - sum_dec > threshold
    if mode == PH_MODE_UP:
        detected = rise
    elif mode == PH_MODE_DOWN:
        detected = fall
    else:
        detected = rise or fall
    state[_DRIFT] = 1.0 if detected else 0.0
    return detected


@numba.njit(cache=True)
def ph_drift_detected(state: np.ndarray) -> bool:
    """Whether the last update detected drift."""
    return state[_DRIFT] != 0.0


def ph_new(
    min_instances: int = 30,
    delta: float = 0.005,
    threshold: float = 50.0,
    alpha: float = 1 - 0.0001,
    mode: str = "both",
) -> np.ndarray:
    """A fresh state row; parameters as in ``river.drift.PageHinkley``.

    ``mode`` is ``"up"``, ``"down"`` or ``"both"`` (which direction of change to report).
    """
    if mode not in _MODES:
        raise ValueError(f"Invalid 'mode'. Valid values are: {list(_MODES)}")
    state = np.zeros(PH_STATE_LEN, dtype=np.float64)
    ph_init(state, min_instances, delta, threshold, alpha, _MODES[mode])
    return state


class PageHinkley:
    """One Page-Hinkley detector with river's interface, backed by a state row.

    ``update(x)`` returns whether drift was detected (river's returns None; the result is also
    in :attr:`drift_detected`). The row itself is :attr:`state`.

    >>> ph = PageHinkley(threshold=20.0)
    >>> [i for i in range(200) if ph.update(0.0 if i < 100 else 1.0)]
    [122]
    """

    def __init__(
        self,
        min_instances: int = 30,
        delta: float = 0.005,
        threshold: float = 50.0,
        alpha: float = 1 - 0.0001,
        mode: str = "both",
    ) -> None:
        self.state = ph_new(min_instances, delta, threshold, alpha, mode)

    def update(self, x: float) -> bool:
        """Add ``x``; True when a change is detected."""
        return ph_update(self.state, float(x))

    @property
    def drift_detected(self) -> bool:
        """Whether the last update detected drift."""
        return ph_drift_detected(self.state)
