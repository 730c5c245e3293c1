"""ihomer.evaluate.metrics against river, the definition it must reproduce."""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from river import metrics, utils

from ihomer.evaluate.metrics import METRIC_NAMES, MultiLabelMetrics, RollingMultiLabelMetrics

TOL = 1e-12

# A row: (universe size, true ids, predicted ids), the ids sorted and below the universe size.
Row = tuple[int, list[int], list[int]]

# Our name -> (river class, constructor kwargs); hamming_loss is 1 - the river value.
RIVER: dict[str, tuple[Callable[..., metrics.base.Metric], dict]] = {
    "subset_accuracy": (metrics.multioutput.ExactMatch, {}),
    "hamming_loss": (metrics.multioutput.MicroAverage, {"metric": metrics.Accuracy()}),
    "example_precision": (metrics.multioutput.SampleAverage, {"metric": metrics.Precision()}),
    "example_recall": (metrics.multioutput.SampleAverage, {"metric": metrics.Recall()}),
    "example_f1": (metrics.multioutput.SampleAverage, {"metric": metrics.F1()}),
    "micro_precision": (metrics.multioutput.MicroAverage, {"metric": metrics.Precision()}),
    "micro_recall": (metrics.multioutput.MicroAverage, {"metric": metrics.Recall()}),
    "micro_f1": (metrics.multioutput.MicroAverage, {"metric": metrics.F1()}),
    "macro_precision": (metrics.multioutput.MacroAverage, {"metric": metrics.Precision()}),
    "macro_recall": (metrics.multioutput.MacroAverage, {"metric": metrics.Recall()}),
    "macro_f1": (metrics.multioutput.MacroAverage, {"metric": metrics.F1()}),
}


class RiverReference:
    """Every river construction, fed ``{label: bool}`` dicts over each row's universe."""

    def __init__(self, window: int | None = None) -> None:
        def make(cls: Callable[..., metrics.base.Metric], kwargs: dict) -> metrics.base.Metric:
            kwargs = {k: v.clone() for k, v in kwargs.items()}
            if window is None:
                return cls(**kwargs)
            return utils.Rolling(cls, window_size=window, **kwargs)

        self.metrics = {name: make(cls, kw) for name, (cls, kw) in RIVER.items()}

    def update(self, universe: int, y: Sequence[int], z: Sequence[int]) -> None:
        yt = {lab: lab in y for lab in range(universe)}
        yp = {lab: lab in z for lab in range(universe)}
        for m in self.metrics.values():
            m.update(yt, yp)

    def get(self) -> dict[str, float]:
        out = {}
        for name, m in self.metrics.items():
            try:
                v = m.get()
            except statistics.StatisticsError:  # MacroAverage over an empty universe
                v = 0.0
            out[name] = 1.0 - v if name == "hamming_loss" else v
        return out


def csr(rows: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray]:
    indptr = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum([len(r) for r in rows], out=indptr[1:])
    ids = np.array([i for r in rows for i in r], dtype=np.int32)
    return indptr, ids


def push(m: MultiLabelMetrics, rows: Sequence[Row]) -> None:
    """Update ``m`` with rows sharing one universe size, as one batch."""
    (universe,) = {u for u, _, _ in rows}
    m.update(*csr([y for _, y, _ in rows]), *csr([z for _, _, z in rows]), universe)


def assert_close(ours: dict[str, float], ref: dict[str, float], tol: float = TOL) -> None:
    assert list(ours) == list(METRIC_NAMES)
    for name in METRIC_NAMES:
        assert abs(ours[name] - ref[name]) <= tol, (name, ours[name], ref[name])


def batches(rows: Sequence[Row], cuts: Sequence[int]) -> list[list[Row]]:
    """Split ``rows`` at ``cuts`` and wherever the universe changes (a batch has one universe)."""
    out: list[list[Row]] = []
    cut = set(cuts)
    for i, row in enumerate(rows):
        if not out or i in cut or row[0] != out[-1][-1][0]:
            out.append([])
        out[-1].append(row)
    return out


@st.composite
def streams(draw: st.DrawFn, max_rows: int = 60) -> list[Row]:
    """Growing universes (starting possibly empty), empty sets, labels that appear late or never
    turn up in any set, and long runs without any label."""
    n = draw(st.integers(0, max_rows))
    universe = draw(st.integers(0, 4))
    density = draw(st.sampled_from([0.0, 0.15, 0.5, 0.9]))

    def subset(universe: int) -> list[int]:
        return [lab for lab in range(universe) if draw(st.floats(0, 1)) < density]

    rows: list[Row] = []
    for _ in range(n):
        universe += draw(st.sampled_from([0, 0, 0, 0, 1, 3]))
        rows.append((universe, subset(universe), subset(universe)))
    return rows


cuts_strategy = st.lists(st.integers(0, 60), max_size=8)


# ---------------------------------------------------------------------------------- cumulative
@settings(max_examples=150, deadline=None)
@given(rows=streams(), cuts=cuts_strategy)
def test_cumulative_matches_river_after_every_update(rows: list[Row], cuts: list[int]) -> None:
    ours, ref = MultiLabelMetrics(), RiverReference()
    assert_close(ours.get(), ref.get())
    for batch in batches(rows, cuts):
        push(ours, batch)
        for row in batch:
            ref.update(*row)
        assert_close(ours.get(), ref.get())
    assert ours.n == len(rows)


@settings(max_examples=100, deadline=None)
@given(rows=streams(), cuts=cuts_strategy)
def test_batch_update_equals_one_by_one(rows: list[Row], cuts: list[int]) -> None:
    whole, single = MultiLabelMetrics(), MultiLabelMetrics()
    for batch in batches(rows, cuts):
        push(whole, batch)
    for universe, y, z in rows:
        single.update_one(y, z, universe)
    assert whole.get() == single.get()
    assert whole.n == single.n == len(rows)


def test_river_docstring_example() -> None:
    # river's ExactMatch example, checked by hand on every metric.
    m = MultiLabelMetrics()
    for y, z in [([1, 2], [0, 1, 2]), ([0, 1], [0]), ([0, 1], [0, 1])]:
        m.update_one(y, z, 3)
    got = m.get()
    p, r = [2 / 3, 1.0, 1.0], [1.0, 0.5, 1.0]
    f = [2 * a * b / (a + b) for a, b in zip(p, r, strict=True)]
    micro_p, micro_r = 5 / 6, 5 / 6
    macro_p = [2 / 3, 1.0, 1.0]  # label 0: 2 of 3 predictions right
    macro_r = [1.0, 2 / 3, 1.0]  # label 1: 2 of 3 relevant found
    macro_f = [2 * a * b / (a + b) for a, b in zip(macro_p, macro_r, strict=True)]
    expected = {
        "subset_accuracy": 1 / 3,
        "hamming_loss": 2 / 9,
        "example_precision": sum(p) / 3,
        "example_recall": sum(r) / 3,
        "example_f1": sum(f) / 3,
        "micro_precision": micro_p,
        "micro_recall": micro_r,
        "micro_f1": 2 * micro_p * micro_r / (micro_p + micro_r),
        "macro_precision": sum(macro_p) / 3,
        "macro_recall": sum(macro_r) / 3,
        "macro_f1": sum(macro_f) / 3,
    }
    assert_close(got, expected)


def test_empty_sets_follow_river_zero_conventions() -> None:
    m = MultiLabelMetrics()
    m.update_one([], [], 2)  # exact match, but 0/0 precision and recall are 0 in river
    got = m.get()
    assert got["subset_accuracy"] == 1.0
    assert got["hamming_loss"] == 0.0
    for name in METRIC_NAMES[2:]:
        assert got[name] == 0.0, name
    m.update_one([1], [], 2)  # nothing predicted: precision 0, recall 0
    got = m.get()
    assert got["subset_accuracy"] == 0.5
    assert got["hamming_loss"] == 0.25
    assert got["example_recall"] == 0.0
    assert got["macro_recall"] == 0.0


def test_nothing_scored_yet() -> None:
    # Before any label decision river's accuracy is 0, hence a Hamming loss of 1; an empty
    # universe still makes exact matches ({} == {}).
    m = MultiLabelMetrics()
    assert m.get() == {name: (1.0 if name == "hamming_loss" else 0.0) for name in METRIC_NAMES}
    m.update_one([], [], 0)
    assert m.get() == {
        name: (1.0 if name in ("hamming_loss", "subset_accuracy") else 0.0)
        for name in METRIC_NAMES
    }
    assert m.n == 1


def test_late_label_enters_macro_average_when_it_joins_the_universe() -> None:
    m = MultiLabelMetrics()
    for _ in range(3):
        m.update_one([0], [0], 1)
    assert m.get()["macro_recall"] == 1.0
    m.update_one([0], [0], 2)  # label 1 joins, never relevant nor predicted: scores 0
    assert m.get()["macro_recall"] == 0.5
    assert m.get()["hamming_loss"] == 0.0
    m.update_one([1], [], 2)
    # 1 mismatch in 1 + 1 + 1 + 2 + 2 decisions, as river's 1 - accuracy
    assert m.get()["hamming_loss"] == 1 - 6 / 7


def test_many_labels_grow_counters() -> None:
    rng = np.random.default_rng(0)
    ours, ref = MultiLabelMetrics(), RiverReference()
    universe = 0
    for _ in range(40):
        universe += int(rng.integers(0, 40))
        y = sorted(rng.choice(max(universe, 1), size=min(universe, 3), replace=False).tolist())
        z = sorted(rng.choice(max(universe, 1), size=min(universe, 2), replace=False).tolist())
        ours.update_one(y, z, universe)
        ref.update(universe, y, z)
    assert universe > 300
    assert_close(ours.get(), ref.get())


@pytest.mark.parametrize(
    ("true_rows", "pred_rows", "n_labels", "message"),
    [
        ([[0, 3]], [[]], 3, "true row 0: a label id is outside"),
        ([[0]], [[], [-1]], 3, "same, non-zero length"),
        ([[1], [2, 1]], [[], []], 3, "true row 1: label ids are not strictly increasing"),
        ([[1]], [[1, 1]], 3, "pred row 0: label ids are not strictly increasing"),
        ([[]], [[-1]], 3, "pred row 0: a label id is outside"),
    ],
)
def test_malformed_input_is_rejected_without_changing_state(
    true_rows: list[list[int]], pred_rows: list[list[int]], n_labels: int, message: str
) -> None:
    for m in (MultiLabelMetrics(), RollingMultiLabelMetrics(3)):
        m.update_one([0], [1], 2)
        before = m.get()
        with pytest.raises(ValueError, match=message):
            m.update(*csr(true_rows), *csr(pred_rows), n_labels)
        assert m.get() == before
        assert m.n == 1


def test_bad_indptr_is_rejected() -> None:
    m = MultiLabelMetrics()
    ids = np.array([0, 1], dtype=np.int32)
    with pytest.raises(ValueError, match="indptr is decreasing"):
        m.update(np.array([0, 2, 1]), ids, np.array([0, 0, 0]), ids[:0], 2)
    with pytest.raises(ValueError, match="outside label_ids"):
        m.update(np.array([0, 3]), ids, np.array([0, 0]), ids[:0], 2)
    with pytest.raises(ValueError, match="window must be at least 1"):
        RollingMultiLabelMetrics(0)


@pytest.mark.parametrize("window", [None, 2])
def test_smaller_universe_is_scored_like_a_smaller_river_dict(window: int | None) -> None:
    ours = MultiLabelMetrics() if window is None else RollingMultiLabelMetrics(window)
    ref = RiverReference(window)
    for row in [(3, [0, 2], [2]), (1, [0], []), (2, [], [1]), (0, [], []), (1, [], [0])]:
        ours.update_one(row[1], row[2], row[0])
        ref.update(*row)
        assert_close(ours.get(), ref.get())


def test_negative_universe_is_rejected() -> None:
    with pytest.raises(ValueError, match="n_labels must be non-negative"):
        MultiLabelMetrics().update_one([], [], -1)


def test_update_one_sorts_and_deduplicates() -> None:
    a, b = MultiLabelMetrics(), MultiLabelMetrics()
    a.update_one([2, 0, 2], (i for i in [1, 0]), 3)
    b.update_one([0, 2], [0, 1], 3)
    assert a.get() == b.get()


# ---------------------------------------------------------------------------------- rolling
@settings(max_examples=150, deadline=None)
@given(rows=streams(), cuts=cuts_strategy, window=st.integers(1, 12))
def test_rolling_matches_river_rolling_after_every_update(
    rows: list[Row], cuts: list[int], window: int
) -> None:
    ours, ref = RollingMultiLabelMetrics(window), RiverReference(window)
    assert_close(ours.get(), ref.get())
    for batch in batches(rows, cuts):
        push(ours, batch)
        for row in batch:
            ref.update(*row)
        assert_close(ours.get(), ref.get())
    assert ours.n == len(rows)


@settings(max_examples=100, deadline=None)
@given(rows=streams(), cuts=cuts_strategy, window=st.integers(1, 12))
def test_rolling_equals_cumulative_recomputed_on_the_window(
    rows: list[Row], cuts: list[int], window: int
) -> None:
    ours = RollingMultiLabelMetrics(window)
    seen = 0
    for batch in batches(rows, cuts):
        push(ours, batch)
        seen += len(batch)
        fresh = MultiLabelMetrics()
        for universe, y, z in rows[max(0, seen - window) : seen]:
            fresh.update_one(y, z, universe)
        assert_close(ours.get(), fresh.get())


@settings(max_examples=60, deadline=None)
@given(rows=streams(), cuts=cuts_strategy, window=st.integers(1, 12))
def test_rolling_batch_update_equals_one_by_one(
    rows: list[Row], cuts: list[int], window: int
) -> None:
    whole, single = RollingMultiLabelMetrics(window), RollingMultiLabelMetrics(window)
    for batch in batches(rows, cuts):
        push(whole, batch)
    for universe, y, z in rows:
        single.update_one(y, z, universe)
    assert_close(whole.get(), single.get())


def test_rolling_long_stream_with_large_batches() -> None:
    # Batches larger than the window (rows that never make it into the final window are skipped),
    # ring wrap-around, and growth of both rings, against a recomputation on the window.
    rng = np.random.default_rng(1)
    window, universe = 50, 28
    ours = RollingMultiLabelMetrics(window)
    ys: list[list[int]] = []
    zs: list[list[int]] = []
    for size in [1, 7, 49, 50, 51, 130, 3, 1000, 17]:
        y = [sorted(rng.choice(universe, rng.integers(0, 6), replace=False).tolist())
             for _ in range(size)]
        z = [sorted(rng.choice(universe, rng.integers(0, 6), replace=False).tolist())
             for _ in range(size)]
        ours.update(*csr(y), *csr(z), universe)
        ys += y
        zs += z
        fresh = MultiLabelMetrics()
        fresh.update(*csr(ys[-window:]), *csr(zs[-window:]), universe)
        assert_close(ours.get(), fresh.get())
    assert ours.n == len(ys)


def test_rolling_keeps_labels_that_left_the_window_in_macro() -> None:
    m = RollingMultiLabelMetrics(window=1)
    m.update_one([0, 1], [0, 1], 2)
    assert m.get()["macro_precision"] == 1.0
    m.update_one([0], [0], 2)  # label 1 left the window but stays in river's macro average
    assert m.get()["macro_precision"] == 0.5


def test_state_dict_round_trip_continues_identically() -> None:
    rng = np.random.default_rng(11)
    a = MultiLabelMetrics()
    for _ in range(50):
        a.update_one(sorted(set(rng.integers(0, 6, 2).tolist())),
                     sorted(set(rng.integers(0, 6, 2).tolist())), 6)
    b = MultiLabelMetrics.from_state_dict(a.state_dict())
    assert b.get() == a.get() and b.n == a.n
    for m in (a, b):
        m.update_one([1, 3], [3], 7)
    assert b.get() == a.get()
