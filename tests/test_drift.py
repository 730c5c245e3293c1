"""Drift detectors: parity with river step by step, pools in jitted code, window invariants."""

from __future__ import annotations

import numba
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from river import drift as river_drift

import ihomer.drift.adwin as adwin_module
from ihomer.drift import (
    ADWIN,
    ADWIN_MAX_BUCKETS,
    ADWIN_MAX_LEVELS,
    ADWIN_STATE_LEN,
    PH_STATE_LEN,
    PageHinkley,
    adwin_estimation,
    adwin_init,
    adwin_new,
    adwin_pool,
    adwin_update,
    adwin_width,
    ph_new,
    ph_update,
)


def bernoulli_abrupt(seed: int, n: int = 3000) -> np.ndarray:
    rng = np.random.default_rng(seed)
    p = np.repeat([0.2, 0.6, 0.1, 0.5], n)
    return rng.binomial(1, p).astype(np.float64)


def bernoulli_gradual(seed: int, n: int = 12000) -> np.ndarray:
    rng = np.random.default_rng(seed)
    p = np.clip(np.linspace(-1.0, 2.0, n), 0.1, 0.9)
    return rng.binomial(1, p).astype(np.float64)


def gaussian_shifts(seed: int, n: int = 2500) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.concatenate(
        [rng.normal(mu, sd, n) for mu, sd in [(0, 1), (1.5, 1), (1.5, 3), (-2, 0.5)]]
    )


STREAMS = {
    "bernoulli_abrupt": bernoulli_abrupt(1),
    "bernoulli_gradual": bernoulli_gradual(2),
    "gaussian": gaussian_shifts(3),
    "gaussian_stationary": np.random.default_rng(4).normal(0.0, 1.0, 6000),
    "constant": np.full(4000, 0.7),
    "large_scale": np.random.default_rng(5).normal(3.0, 1.0, 4000) * 1e6,
}

ADWIN_PARAMS = [
    {},
    {"clock": 1},
    {"delta": 0.1, "clock": 3, "max_buckets": 10, "min_window_length": 1, "grace_period": 0},
    {"delta": 1e-5, "max_buckets": 2, "min_window_length": 20, "grace_period": 100},
]


def close(a: float, b: float) -> bool:
    return abs(a - b) <= 1e-9 * max(1.0, abs(a), abs(b))


def river_adwin_trace(
    values: np.ndarray, **params: float
) -> list[tuple[bool, float, float, float]]:
    det = river_drift.ADWIN(**params)
    out = []
    for x in values.tolist():
        det.update(x)
        out.append((det.drift_detected, det.width, det.variance, det.estimation))
    return out


@pytest.mark.parametrize("params", ADWIN_PARAMS, ids=lambda p: ",".join(map(str, p.values())))
@pytest.mark.parametrize("name", list(STREAMS))
def test_adwin_matches_river_every_step(name: str, params: dict) -> None:
    values = STREAMS[name]
    ours = ADWIN(**params)
    for i, (drift, width, variance, estimation) in enumerate(river_adwin_trace(values, **params)):
        assert ours.update(values[i]) == drift, i
        assert ours.drift_detected == drift
        assert ours.width == width, i
        assert close(ours.variance, variance), (i, ours.variance, variance)
        assert close(ours.estimation, estimation), i


@numba.njit
def _adwin_detections(state: np.ndarray, values: np.ndarray) -> np.ndarray:
    hits = np.zeros(values.shape[0], dtype=np.bool_)
    for i in range(values.shape[0]):
        hits[i] = adwin_update(state, values[i])
    return np.flatnonzero(hits)


def test_adwin_long_stream_matches_river() -> None:
    rng = np.random.default_rng(11)
    values = np.concatenate(
        [
            rng.binomial(1, 0.3, 60_000),
            rng.binomial(1, 0.36, 60_000),
            rng.normal(0.5, 0.2, 40_000),
        ]
    ).astype(np.float64)
    det = river_drift.ADWIN()
    expected = []
    for i, x in enumerate(values.tolist()):
        det.update(x)
        if det.drift_detected:
            expected.append(i)
    state = adwin_new()
    assert _adwin_detections(state, values).tolist() == expected
    assert len(expected) >= 2
    assert adwin_width(state) == det.width
    assert close(adwin_estimation(state), det.estimation)


def test_adwin_update_after_drift_restarts_window() -> None:
    det = ADWIN(clock=1)
    for _ in range(300):
        det.update(0.0)
    while not det.update(10.0):
        pass
    assert det.drift_detected and det.width > 1
    assert det.update(3.0) is False
    assert det.width == 1.0 and det.estimation == 3.0 and det.total == 3.0


@numba.njit
def _route(pool: np.ndarray, node: np.ndarray, values: np.ndarray) -> int:
    hits = 0
    for i in range(values.shape[0]):
        if adwin_update(pool[node[i]], values[i]):
            hits += 1
    return hits


def test_adwin_pool_rows_are_independent_detectors() -> None:
    rng = np.random.default_rng(3)
    values = bernoulli_abrupt(8, n=1500)
    node = rng.integers(0, 3, values.shape[0])
    pool = adwin_pool(3, delta=0.01)
    assert pool.shape == (3, ADWIN_STATE_LEN) and pool.dtype == np.float64
    hits = _route(pool, node, values)
    total_hits = 0
    for k in range(3):
        single = ADWIN(delta=0.01)
        total_hits += sum(single.update(x) for x in values[node == k])
        np.testing.assert_array_equal(single.state, pool[k])
    assert hits == total_hits

    grown = np.concatenate([pool, adwin_pool(2, delta=0.01)])
    np.testing.assert_array_equal(grown[:3], pool)
    np.testing.assert_array_equal(grown[4], adwin_new(delta=0.01))
    adwin_init(grown[0], 0.01)
    np.testing.assert_array_equal(grown[0], adwin_new(delta=0.01))


def test_adwin_overflowing_top_level_slides_the_window() -> None:
    """A window longer than the row can hold drops its oldest bucket instead of overflowing."""
    max_buckets = 5
    state = adwin_new(max_buckets=max_buckets, clock=10**9)
    header, stride = adwin_module._HEADER, adwin_module._STRIDE
    first = adwin_module._BUCKETS  # ring starting at slot 0: (sum, variance) pairs
    width = 0.0
    for level in range(ADWIN_MAX_LEVELS):
        base = header + level * stride
        state[base] = max_buckets
        state[base + first : base + first + 2 * max_buckets : 2] = 2.0**level  # values all 1.0
        width += max_buckets * 2.0**level
    state[adwin_module._N_LEVELS] = ADWIN_MAX_LEVELS
    state[adwin_module._WIDTH] = width
    state[adwin_module._TOTAL] = width
    guard = np.full(3, 123.0)
    padded = np.concatenate([state, guard])
    row = padded[:ADWIN_STATE_LEN]

    assert adwin_update(row, 1.0) is False
    np.testing.assert_array_equal(padded[ADWIN_STATE_LEN:], guard)
    top = 2.0 ** (ADWIN_MAX_LEVELS - 1)
    assert adwin_width(row) == width + 1.0 - top
    assert adwin_estimation(row) == 1.0 and adwin_module.adwin_variance(row) == 0.0
    counts = [row[header + level * stride] for level in range(ADWIN_MAX_LEVELS)]
    assert counts[:-1] == [max_buckets - 1] * (ADWIN_MAX_LEVELS - 1)
    assert counts[-1] == max_buckets
    assert sum(c * 2.0**lv for lv, c in enumerate(counts)) == adwin_width(row)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"delta": 0.0},
        {"delta": 1.0},
        {"clock": 0},
        {"max_buckets": 0},
        {"max_buckets": ADWIN_MAX_BUCKETS + 1},
    ],
)
def test_adwin_rejects_bad_parameters(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        adwin_new(**kwargs)


def test_adwin_rejects_wrong_row_length() -> None:
    with pytest.raises(ValueError):
        adwin_init(np.zeros(ADWIN_STATE_LEN - 1))


segments = st.lists(
    st.tuples(st.floats(-5.0, 5.0), st.floats(0.0, 3.0), st.integers(1, 300)),
    min_size=1,
    max_size=6,
)


def segment_stream(segs: list[tuple[float, float, int]], seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.normal(mu, sd, n) for mu, sd, n in segs])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    segs=segments,
    seed=st.integers(0, 2**32 - 1),
    delta=st.sampled_from([1e-4, 0.002, 0.05, 0.5]),
    clock=st.integers(1, 8),
    max_buckets=st.integers(2, ADWIN_MAX_BUCKETS),
    min_window_length=st.integers(1, 12),
    grace_period=st.integers(0, 30),
)
def test_adwin_matches_river_on_random_streams(
    segs: list,
    seed: int,
    delta: float,
    clock: int,
    max_buckets: int,
    min_window_length: int,
    grace_period: int,
) -> None:
    params = {
        "delta": delta,
        "clock": clock,
        "max_buckets": max_buckets,
        "min_window_length": min_window_length,
        "grace_period": grace_period,
    }
    values = segment_stream(segs, seed)
    ours = ADWIN(**params)
    for i, (drift, width, variance, estimation) in enumerate(river_adwin_trace(values, **params)):
        assert ours.update(values[i]) == drift
        assert ours.width == width
        assert close(ours.variance, variance)
        assert close(ours.estimation, estimation)


@settings(max_examples=60, deadline=None)
@given(
    segs=segments,
    seed=st.integers(0, 2**32 - 1),
    clock=st.integers(1, 4),
    max_buckets=st.integers(1, ADWIN_MAX_BUCKETS),
    min_window_length=st.integers(1, 8),
)
def test_adwin_window_is_the_recent_suffix(
    segs: list, seed: int, clock: int, max_buckets: int, min_window_length: int
) -> None:
    """The window is always the newest ``width`` values since the last restart.

    Runs ``max_buckets=1`` too, where river 0.26 panics once a merge empties a middle level.
    """
    values = segment_stream(segs, seed)
    ours = ADWIN(
        delta=0.1,
        clock=clock,
        max_buckets=max_buckets,
        min_window_length=min_window_length,
        grace_period=0,
    )
    start = 0
    for i, x in enumerate(values):
        if ours.drift_detected:
            start = i
        ours.update(x)
        width = int(ours.width)
        assert ours.width == width and 1 <= width <= i + 1 - start
        window = values[i + 1 - width : i + 1]
        scale = 1.0 + np.abs(window).max()
        assert abs(ours.estimation - window.mean()) <= 1e-9 * scale
        assert abs(ours.total - window.sum()) <= 1e-9 * scale * width
        squares = ((window - window.mean()) ** 2).sum()
        assert abs(ours.variance - squares) <= 1e-7 * scale**2 * width


@pytest.mark.parametrize("mode", ["both", "up", "down"])
@pytest.mark.parametrize(
    "params",
    [{}, {"threshold": 5.0, "min_instances": 10}, {"delta": 0.1, "alpha": 0.99, "threshold": 2.0}],
    ids=["default", "sensitive", "faded"],
)
@pytest.mark.parametrize("name", list(STREAMS))
def test_page_hinkley_matches_river(name: str, params: dict, mode: str) -> None:
    values = STREAMS[name] + 0.0
    if name == "large_scale":
        values = values / 1e6
    expected = []
    det = river_drift.PageHinkley(mode=mode, **params)
    for i, x in enumerate(values.tolist()):
        det.update(x)
        if det.drift_detected:
            expected.append(i)
    ours = PageHinkley(mode=mode, **params)
    state = ph_new(mode=mode, **params)
    got = []
    for i, x in enumerate(values):
        hit = ours.update(x)
        assert hit == ours.drift_detected == ph_update(state, x)
        if hit:
            got.append(i)
    assert got == expected
    if name in ("gaussian", "bernoulli_abrupt"):
        assert expected  # the streams do exercise detections (and the resets after them)


@settings(max_examples=40, deadline=None)
@given(
    segs=segments,
    seed=st.integers(0, 2**32 - 1),
    mode=st.sampled_from(["both", "up", "down"]),
    threshold=st.floats(0.5, 30.0),
    min_instances=st.integers(1, 40),
)
def test_page_hinkley_matches_river_on_random_streams(
    segs: list, seed: int, mode: str, threshold: float, min_instances: int
) -> None:
    values = segment_stream(segs, seed)
    det = river_drift.PageHinkley(min_instances=min_instances, threshold=threshold, mode=mode)
    state = ph_new(min_instances=min_instances, threshold=threshold, mode=mode)
    for x in values.tolist():
        det.update(x)
        assert ph_update(state, x) == det.drift_detected


def test_page_hinkley_state_and_validation() -> None:
    assert ph_new().shape == (PH_STATE_LEN,)
    with pytest.raises(ValueError):
        ph_new(mode="sideways")
