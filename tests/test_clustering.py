"""Tests of the online label clustering (ALGORITHM.md, section 2)."""

from __future__ import annotations

import itertools
import math
import time

import numpy as np
import pytest
from conftest import shared_dataset
from hypothesis import given, settings
from hypothesis import strategies as st

from ihomer.learners import _clustering_kernels as K
from ihomer.learners.clustering import Change, LabelClustering, hoeffding_bound


def csr(rows: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    indptr = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum([len(r) for r in rows], out=indptr[1:])
    ids = np.array([a for r in rows for a in sorted(r)], dtype=np.int64)
    return indptr, ids


def grouped(groups: list[tuple[int, ...]], n: int, noise: float, n_labels: int,
            rng: np.random.Generator) -> list[list[int]]:
    """Instances cycling through ``groups``, each other label added with probability ``noise``."""
    rows = []
    for i in range(n):
        extra = np.flatnonzero(rng.random(n_labels) < noise).tolist()
        rows.append(sorted(set(groups[i % len(groups)]) | set(extra)))
    return rows


def replay(history: list[Change]) -> dict[int, tuple[int, ...]]:
    """Rebuild the partition from the changes alone, as the iHOMER learner will."""
    out: dict[int, tuple[int, ...]] = {}
    for c in history:
        for cid, labels in zip(c.before_ids, c.before, strict=True):
            assert out.pop(cid) == labels
        for cid, labels in zip(c.after_ids, c.after, strict=True):
            assert cid not in out
            out[cid] = labels
    return dict(sorted(out.items()))


def check_invariants(clu: LabelClustering, seen: set[int]) -> None:
    part = clu.partition()
    flat = [a for c in part for a in c]
    assert sorted(flat) == sorted(seen)  # every label seen, exactly once
    clusters = clu.clusters()
    assert sorted(clusters.values()) == part
    for cid, labels in clusters.items():
        assert all(clu.cluster_of(a) == cid for a in labels)
    assert replay(clu.history) == clusters
    ids = [i for c in clu.history for i in c.after_ids]
    assert len(ids) == len(set(ids))  # an id is never reused
    assert sorted(tree_leaves(clu.tree())) == part


def tree_leaves(node: dict) -> list[tuple[int, ...]]:
    """Active clusters of a :meth:`LabelClustering.tree`, checking the tree's shape on the way."""
    if node["active"]:
        assert node["children"] == []
        return [node["labels"]]
    if node["id"] is not None:
        assert len(node["children"]) == 2  # a past split: binary
    out = [labs for c in node["children"] for labs in tree_leaves(c)]
    assert tuple(sorted(a for labs in out for a in labs)) == node["labels"]
    return out


# ---------------------------------------------------------------------- hand-computed values
def test_jaccard_by_hand() -> None:
    clu = LabelClustering(n_min=1000)
    for row in ([0, 1], [0], [1, 2], [0, 1, 2]):
        clu.update(np.array(row))
    # n0 = 3, n1 = 3, n2 = 2 (label 2 arrived with the third instance: its count starts there)
    assert clu.dissimilarity(0, 1) == pytest.approx(1 - 2 / (3 + 3 - 2))
    assert clu.dissimilarity(0, 2) == pytest.approx(1 - 1 / (3 + 2 - 1))
    assert clu.dissimilarity(1, 2) == pytest.approx(1 - 2 / (3 + 2 - 2))
    assert clu.dissimilarity(2, 2) == 0.0
    with pytest.raises(KeyError):
        clu.dissimilarity(0, 9)


def test_never_occurring_labels_are_at_distance_one() -> None:
    labels = np.array([3, 5], dtype=np.int64)
    keys = np.full(8, K.EMPTY, dtype=np.int64)
    d = K.dissimilarities(labels, np.zeros(6, dtype=np.int64), keys, np.zeros(8, dtype=np.int64))
    assert d[0, 1] == 1.0


def test_bound_and_summary_by_hand() -> None:
    assert hoeffding_bound(0.9, 100) == pytest.approx(math.sqrt(math.log(1 / 0.9) / 200))
    assert hoeffding_bound(0.9, 100) == pytest.approx(0.02295, abs=1e-5)
    d = np.array([[0.0, 0.2, 0.9, 0.9],
                  [0.2, 0.0, 0.5, 0.8],
                  [0.9, 0.5, 0.0, 0.1],
                  [0.9, 0.8, 0.1, 0.0]])
    d1, d2, d0, dbar, p, q = K.summarize(d)
    # pivots: the tie 0.9 / 0.9 goes to the first pair in label order, (0, 2)
    assert (d1, d2, d0, p, q) == (0.9, 0.9, 0.1, 0, 2)
    assert dbar == pytest.approx((0.2 + 0.9 + 0.9 + 0.5 + 0.8 + 0.1) / 6)


def test_hash_map_insert_delete_rehash() -> None:
    rng = np.random.default_rng(0)
    keys = np.full(16, K.EMPTY, dtype=np.int64)
    vals = np.zeros(16, dtype=np.int64)
    fill = np.zeros(1, dtype=np.int64)
    truth: dict[int, int] = {}
    for step in range(3000):
        if 2 * (fill[0] + 1) > len(keys):
            keys, vals = K.hm_rehash(keys, vals, 2 * len(keys))
        key = int(rng.integers(0, 400)) << 32 | int(rng.integers(0, 400))
        if step % 3 == 2 and truth:
            victim = list(truth)[int(rng.integers(len(truth)))]
            assert K.hm_del(keys, vals, fill, victim) == truth.pop(victim)
        K.hm_add(keys, vals, fill, key, 1)
        truth[key] = truth.get(key, 0) + 1
        assert fill[0] == len(truth)
    assert all(K.hm_get(keys, vals, k) == v for k, v in truth.items())
    assert K.hm_get(keys, vals, 123) == 0


# ---------------------------------------------------------------------- structure found
def test_two_disjoint_groups_are_split_exactly() -> None:
    rng = np.random.default_rng(3)
    a, b = (0, 2, 4, 6, 8), (1, 3, 5, 7)
    rows = [list(range(9))]
    for _ in range(600):
        group = a if rng.random() < 0.5 else b
        rows.append(sorted(rng.choice(group, size=int(rng.integers(2, len(group) + 1)),
                                      replace=False).tolist()))
    clu = LabelClustering(n_min=50, min_size=2)
    clu.update_many(*csr(rows))
    assert clu.partition() == [a, b]
    assert [c.kind for c in clu.history] == ["new_labels", "split"]
    check_invariants(clu, set(range(9)))


def test_drift_in_label_structure_aggregates_and_resplits() -> None:
    rng = np.random.default_rng(1)
    rows = [list(range(6)), *grouped([(0, 1, 2), (3, 4, 5)], 300, 0.2, 6, rng),
            *grouped([(0, 1, 3), (2, 4, 5)], 3000, 0.0, 6, rng)]
    clu = LabelClustering()
    changes = clu.update_many(*csr(rows))
    kinds = [(c.kind, c.after) for c in changes]
    assert kinds[1] == ("split", ((0, 1, 2), (3, 4, 5)))
    assert ("aggregate", ((0, 1, 2, 3, 4, 5),)) in kinds
    agg = next(c for c in changes if c.kind == "aggregate")
    assert agg.instance > 300  # only after the drift
    assert clu.partition() == [(0, 1, 3), (2, 4, 5)]
    check_invariants(clu, set(range(6)))


def test_new_labels_join_the_cluster_they_co_occur_with() -> None:
    clu = LabelClustering(n_min=10, min_size=2)
    clu.update(np.array([0, 1]))
    clu.update(np.array([0, 2]))  # 2 co-occurs with 0: joins 0's cluster
    assert clu.partition() == [(0, 1, 2)]
    change = clu.update(np.array([7]))[0]  # nothing known: its own cluster
    assert (change.kind, change.instance, change.before, change.after) == (
        "new_labels", 2, (), ((7,),))
    assert clu.partition() == [(0, 1, 2), (7,)]
    for _ in range(7):
        clu.update(np.array([1, 7]))
    # the checkpoint merges the singleton into the cluster it co-occurs with
    assert clu.history[-1].kind == "merge_small"
    assert clu.partition() == [(0, 1, 2, 7)]
    check_invariants(clu, {0, 1, 2, 7})


def test_new_labels_tie_goes_to_the_cluster_of_the_lowest_label() -> None:
    clu = LabelClustering(n_min=1000, min_size=1)
    clu.update(np.array([0]))
    clu.update(np.array([5]))
    clu.update(np.array([0, 5, 9]))
    assert clu.partition() == [(0, 9), (5,)]


# ---------------------------------------------------------------------- size rules
def test_max_and_min_size_rules() -> None:
    rng = np.random.default_rng(0)
    groups = [tuple(range(i, i + 3)) for i in range(0, 30, 3)]
    rows = [list(range(30)), *grouped(groups, 3000, 0.02, 30, rng)]
    clu = LabelClustering(n_min=100, min_size=3, max_size=8)
    clu.update_many(*csr(rows))
    kinds = {c.kind for c in clu.history}
    assert "split_large" in kinds
    first = next(c for c in clu.history if c.kind == "split_large")
    assert first.before == (tuple(range(30)),)
    assert all(3 <= len(c) <= 8 for c in first.after)  # recursive, balanced to min_size
    assert all(3 <= len(c) <= 8 for c in clu.partition())
    check_invariants(clu, set(range(30)))


def test_default_sizes_follow_the_data() -> None:
    clu = LabelClustering(n_min=10)
    rows = [[a, a + 1, a + 2] for a in range(0, 60, 3)] * 3
    clu.update_many(*csr(rows))
    assert clu.min_size_ == 3  # most frequent label-set size
    assert clu.max_size_ == 16  # max(16, ceil(sqrt(60)), 2 * 3)
    assert all(len(c) >= 3 for c in clu.partition())
    assert LabelClustering(max_size=4)._sizes() == (1, 4)
    with pytest.raises(ValueError, match="2 \\* min_size"):
        LabelClustering(min_size=5, max_size=8)


# ---------------------------------------------------------------------- invariants
rows_strategy = st.lists(
    st.lists(st.integers(0, 25), max_size=7, unique=True).map(sorted), min_size=1, max_size=250)


@settings(max_examples=60, deadline=None)
@given(rows=rows_strategy, n_min=st.integers(1, 30), sizes=st.sampled_from(
    [(None, None), (1, 4), (2, 6), (None, 5), (3, 16)]), cuts=st.lists(st.integers(0, 250)))
def test_random_streams_keep_a_partition_and_batch_equals_rows(
        rows: list[list[int]], n_min: int, sizes: tuple[int | None, int | None],
        cuts: list[int]) -> None:
    mn, mx = sizes
    one = LabelClustering(n_min=n_min, min_size=mn, max_size=mx)
    seen: set[int] = set()
    for r in rows:
        one.update(np.array(r, dtype=np.int64))
        seen |= set(r)
        assert sorted(a for c in one.partition() for a in c) == sorted(seen)
    check_invariants(one, seen)
    many = LabelClustering(n_min=n_min, min_size=mn, max_size=mx)
    bounds = sorted({0, len(rows), *(c for c in cuts if c < len(rows))})
    for lo, hi in itertools.pairwise(bounds):
        many.update_many(*csr(rows[lo:hi]))
    assert many.history == one.history
    assert many.partition() == one.partition()
    assert many.tree() == one.tree()


@settings(max_examples=40, deadline=None)
@given(rows=rows_strategy, n_min=st.integers(1, 30), cut=st.integers(0, 250))
def test_state_dict_round_trip_continues_exactly(rows: list[list[int]], n_min: int,
                                                 cut: int) -> None:
    import json

    from ihomer.connectors.checkpoint import flatten, unflatten

    cut = min(cut, len(rows))
    one = LabelClustering(n_min=n_min, min_size=2, max_size=6)
    if cut:
        one.update_many(*csr(rows[:cut]))
    arrays: dict[str, np.ndarray] = {}
    text = json.dumps(flatten(one.state_dict(), arrays))
    two = LabelClustering.from_state_dict(unflatten(json.loads(text), arrays))
    assert two.tree() == one.tree() and two.history == one.history
    if cut < len(rows):
        assert two.update_many(*csr(rows[cut:])) == one.update_many(*csr(rows[cut:]))
    assert two.partition() == one.partition()
    assert two.tree() == one.tree()
    pairs = [(a, b) for c in one.partition() for a, b in itertools.combinations(c[:6], 2)]
    assert [two.dissimilarity(a, b) for a, b in pairs] == [
        one.dissimilarity(a, b) for a, b in pairs]


def test_empty_instances_and_errors() -> None:
    clu = LabelClustering(n_min=2)
    assert clu.update(np.array([], dtype=np.int64)) == []
    assert clu.update_many(np.array([0, 0, 0]), np.array([], dtype=np.int64)) == []
    assert clu.partition() == [] and clu.n_seen == 3
    assert clu.update_many(np.zeros(1, dtype=np.int64), np.array([], dtype=np.int64)) == []
    with pytest.raises(ValueError, match="strictly increasing"):
        clu.update_many(np.array([0, 2]), np.array([3, 1]))
    with pytest.raises(ValueError, match="non-negative"):
        clu.update(np.array([-1]))
    with pytest.raises(KeyError):
        clu.cluster_of(3)
    assert clu.update(np.array([2, 2, 1])) == [Change("new_labels", 3, (), ((1, 2),), (), (0,))]


# ---------------------------------------------------------------------- inspection
def test_tree_draw_and_memory(tmp_path) -> None:
    rng = np.random.default_rng(0)
    groups = [tuple(range(i, i + 3)) for i in range(0, 12, 3)]
    clu = LabelClustering(n_min=50, min_size=2)
    clu.update_many(*csr([list(range(12)), *grouped(groups, 800, 0.05, 12, rng)]))
    tree = clu.tree()
    assert tree["id"] is None and not tree["active"]
    assert tree["labels"] == tuple(range(12))
    assert sorted(tree_leaves(tree)) == clu.partition()
    dot = clu.draw(tmp_path / "t.dot").read_text()
    assert dot.startswith("digraph clusters {") and dot.rstrip().endswith("}")
    assert dot.count("style=filled") == len(clu.partition())
    png = clu.draw(tmp_path / "t.png", names=[f"L{i}" for i in range(12)]).read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match=r"\.dot or \.png"):
        clu.draw(tmp_path / "t.svg")
    assert clu.memory_bytes > 0


def test_delicious_is_fast_and_small() -> None:
    from ihomer.stream.arff import read_arff

    data = read_arff(shared_dataset("delicious.arff.gz")).data
    clu = LabelClustering()
    clu.update_many(data.label_indptr[:200], data.label_ids)  # compile / load the kernels
    clu = LabelClustering()
    start = time.perf_counter()
    clu.update_many(data.label_indptr, data.label_ids)
    elapsed = time.perf_counter() - start
    assert elapsed < 5.0
    assert clu.n_labels == 983
    assert all(len(c) <= clu.max_size_ for c in clu.partition())
    assert clu.memory_bytes < 8 * 2**20
    check_invariants(clu, set(np.unique(data.label_ids).tolist()))


def test_tree_dates_and_names_nodes_as_the_history_does() -> None:
    # ``created`` was the instance after a checkpoint's change, kept a merged cluster's old
    # date, and the inner nodes of a forced split had ids no history entry named.
    rng = np.random.default_rng(5)
    clu = LabelClustering(n_min=20, max_size=4)
    for _ in range(400):
        clu.update(np.flatnonzero(rng.random(12) < 0.3))
    made = {i: ch.instance for ch in clu.history for i in ch.after_ids}
    assert any(ch.kind == "split_large" for ch in clu.history)

    def walk(node: dict) -> None:
        if node["id"] is not None:
            assert made[node["id"]] == node["created"], node
        for child in node["children"]:
            walk(child)

    walk(clu.tree())
    assert _ids(clu.tree()) <= set(made)


def _ids(node: dict) -> set[int]:
    out = {node["id"]} if node["id"] is not None else set()
    for child in node["children"]:
        out |= _ids(child)
    return out


def test_a_merged_cluster_is_dated_by_the_merge() -> None:
    clu = LabelClustering(n_min=10, min_size=3)
    for _ in range(13):
        clu.update(np.array([0, 1, 2]))
    clu.update(np.array([5]))
    for _ in range(10):
        clu.update(np.array([0, 1, 2]))
    merge = next(ch for ch in clu.history if ch.kind == "merge_small")
    node = next(c for c in clu.tree()["children"] if c["id"] == merge.after_ids[0])
    assert node["created"] == merge.instance


def test_label_ids_must_be_integers() -> None:
    with pytest.raises(ValueError, match=r"label id 1\.5 is not an integer"):
        LabelClustering().update(np.array([1.5]))


def test_draw_escapes_names_and_gives_long_names_room(tmp_path) -> None:
    clu = LabelClustering(n_min=5)
    for _ in range(20):
        clu.update(np.array([0, 1]))
    dot = clu.draw(tmp_path / "t.dot", names=["back\\slash", "two\nlines"]).read_text()
    assert 'back\\\\slash two lines' in dot and "two\nlines" not in dot
    with pytest.raises(ValueError, match="names has 1 entries for 2 labels"):
        clu.draw(tmp_path / "short.dot", names=["only one"])
    rng = np.random.default_rng(5)
    clu = LabelClustering(n_min=20, max_size=4)
    for _ in range(400):
        clu.update(np.flatnonzero(rng.random(12) < 0.3))
    assert len(clu.partition()) >= 3
    long = [f"a-rather-long-label-name-{i}" for i in range(12)]
    narrow = clu.draw(tmp_path / "ids.png")
    wide = clu.draw(tmp_path / "names.png", names=long)
    from matplotlib.image import imread
    assert imread(wide).shape[1] > imread(narrow).shape[1]
