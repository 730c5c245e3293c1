"""Online clustering of labels by co-occurrence: the global structure of iHOMER.

iHOMER trains one multi-label learner per *cluster of labels that co-occur*, so it needs a
partition of an open, drifting label set that is maintained online. :class:`LabelClustering` is an
ODAC-style (Rodrigues, Gama & Pedroso, 2008) divisive-agglomerative tree over labels with the
Jaccard dissimilarity ``d(a, b) = 1 - n_ab / (n_a + n_b - n_ab)``.

Statistics
----------
Per label ``a`` a count ``n_a``; per unordered pair of labels *in the same cluster* a count
``n_ab``. An instance with ``c`` labels touches ``c`` label counts and at most ``c(c-1)/2`` pair
counts, so an update is O(c^2) whatever the number of labels ``L``. Pair counts live in a flat
open-addressing hash map (see :mod:`ihomer.learners._clustering_kernels`): only pairs that
actually co-occurred take room, which is what makes delicious (983 labels) or debtags (598) cheap.
Counts restart when a cluster is created by a split, an aggregation or a forced split, so they
describe the current concept. A cluster that only *gains* labels (a new label, a small cluster
merged in) keeps its counts: restarting them would postpone its tests each time a rare label
shows up; the incoming labels start from zero.

Each cluster also counts ``n``, the instances that carry at least one of its labels since it was
created. ``n`` is the sample size of the Hoeffding bound: instances where none of the cluster's
labels occur say nothing about a Jaccard dissimilarity, which ignores joint absences. Finally, for
every two clusters, the number of instances carrying labels of both (also in a hash map, O(c^2)
per instance); it is what "nearest" means when a too-small cluster has to be merged somewhere.

Tests
-----
Every ``n_min`` instances of the stream (a *checkpoint*), each active cluster that has seen
``n_min`` more instances since it was last tested computes all its pair dissimilarities (a
jitted O(k^2) pass), with ``d1`` the largest (its pair is the *pivot* pair; ties go to the first
pair in label order), ``d2`` the second largest, ``d0`` the smallest and ``dbar`` the mean, and
the Hoeffding bound ``eps = sqrt(ln(1/delta) / (2 n))`` for a range of 1. Then, in this order:

* **split-large**: a cluster of more than ``max_size`` labels is split on its pivots without the
  test, recursively on the same statistics until every piece fits, each side kept at
  ``min_size`` labels or more (the labels of the bigger side that are least far from the smaller
  side's pivot move over);
* **aggregate**: if ``d1`` exceeds the ``d1`` its parent had when it split by more than
  ``max(eps, parent's eps then)``, the split is undone: the parent becomes an active cluster
  again (with fresh counts) and its whole subtree is dropped;
* **split**: if ``(d1 - d2 > eps or tau > eps)`` and ``(d1 - d0) * |d1 + d0 - 2 dbar| > eps``
  the cluster splits on its pivot pair, every other label joining the pivot it is closer to.
  Labels are placed most decided first; a label as far from both pivots (typically ``d = 1``
  to both: a rare label that met neither) goes to the side whose members are closer on
  average, then to the side with fewer labels, then to the first pivot. Without that rule,
  ties put rare labels on a side arbitrarily (it made delicious' clusters hold 6% of the
  co-occurring pairs instead of 10%). A split that would leave a side below ``min_size`` is not
  made: the size rule would merge it straight back.

Then every cluster smaller than ``min_size`` is merged, smallest first, into its nearest other
cluster: the one maximising the Jaccard similarity of the two clusters' occurrence counts
(``n_ST / (n_S + n_T - n_ST)``), preferring clusters the merged result still fits in
``max_size``, ties to the smaller cluster, then the lower id. All active clusters are candidates,
not only the tree sibling: after a few splits the tree sibling is often a cluster the small one
never co-occurs with. The small cluster leaves the tree (a parent left with one child is replaced
by it) and the absorbing cluster gets a new id.

New labels
----------
A label never seen before enters the cluster holding most of the instance's known labels (ties:
the cluster of the lowest such label). If the instance has no known label, its new labels form
*one* new cluster (they co-occur with each other), which the size rule merges at the next
checkpoint if it is too small. One singleton per label would do as well where ``min_size >= 2``
merges them, but leaves streams whose typical label set has one label fragmented (share of the
co-occurring label pairs kept inside a cluster: bibtex 0.09 instead of 0.12, debtags 0.04
instead of 0.07).
The very first labels therefore form the first (root) cluster. Only labels that occur are
clustered: an id that never appeared is in no cluster (``cluster_of`` raises ``KeyError``), and
the caller predicts it absent.

Sizes
-----
``min_size`` defaults to the most frequent size of a non-empty label set seen so far (recomputed
at each checkpoint). ``max_size`` defaults to ``max(16, ceil(sqrt(L)), 2 * min_size)`` with ``L``
the number of labels seen: ``sqrt(L)`` balances the number of per-cluster learners against their
width (the HOMER trade-off), 16 keeps small label sets in a few clusters, and ``2 * min_size``
is needed for a forced split to produce two legal halves (delicious: typical label set of 23
labels, so clusters of 23 to 46 labels, about 30 of them). With an explicit ``max_size`` and the
default ``min_size``, the latter is capped at ``max_size // 2``.

Ids
---
Every active cluster has an integer id that is never reused: an id names one label set for one
uninterrupted period. A cluster whose labels are unchanged by a change keeps its id; any change to
its labels (a split, a merge, even a new label joining) gives it a new one. The learner built on
top keys its per-cluster models on these ids and reads what to restructure from each
:class:`Change` (kind, instance, clusters before and after).

Example
-------
Two groups of labels that never co-occur, after a first instance that carries them all:

>>> import numpy as np
>>> from ihomer.learners.clustering import LabelClustering
>>> clu = LabelClustering(n_min=50)
>>> first = clu.update(np.arange(6))
>>> for i in range(200):
...     changes = clu.update(np.array([0, 1, 2]) if i % 2 else np.array([3, 4, 5]))
>>> clu.partition()
[(0, 1, 2), (3, 4, 5)]
>>> [(c.kind, c.instance, c.after) for c in clu.history]
[('new_labels', 0, ((0, 1, 2, 3, 4, 5),)), ('split', 149, ((0, 1, 2), (3, 4, 5)))]
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ihomer.learners import _clustering_kernels as K
from ihomer.stream.base import _integers

__all__ = ["Change", "LabelClustering", "hoeffding_bound"]

Labels = tuple[int, ...]


@dataclass(frozen=True)
class Change:
    """One structural change of the partition.

    Attributes
    ----------
    kind
        ``"new_labels"`` (labels placed on arrival), ``"split"``, ``"aggregate"``,
        ``"merge_small"`` or ``"split_large"``.
    instance
        0-based index of the instance during which it happened (for a checkpoint, the instance
        that completed the ``n_min`` block; for new labels, the instance that brought them).
    before, after
        Label sets of the clusters that disappeared and of those that appeared.
    before_ids, after_ids
        Their cluster ids, in the same order.
    """

    kind: str
    instance: int
    before: tuple[Labels, ...]
    after: tuple[Labels, ...]
    before_ids: tuple[int, ...]
    after_ids: tuple[int, ...]


class _Node:
    """A node of the cluster tree: an active cluster (leaf) or a past split."""

    __slots__ = ("children", "created", "id", "labels", "parent", "split_d1", "split_eps")

    def __init__(self, parent: _Node | None) -> None:
        self.parent = parent
        self.children: list[_Node] = []
        self.id = -1
        self.labels: Labels = ()
        self.split_d1: float | None = None
        self.split_eps = 0.0
        self.created = 0

    def leaves(self) -> list[_Node]:
        if not self.children:
            return [self]
        return [leaf for c in self.children for leaf in c.leaves()]

    def all_labels(self) -> Labels:
        return tuple(sorted(lab for leaf in self.leaves() for lab in leaf.labels))


class _HashCounter:
    """Owner of one kernel hash map: its arrays, its growth, its size in bytes."""

    def __init__(self, capacity: int = 1024) -> None:
        self.keys = np.full(capacity, K.EMPTY, dtype=np.int64)
        self.vals = np.zeros(capacity, dtype=np.int64)
        self.fill = np.zeros(1, dtype=np.int64)

    def reserve(self, extra: int) -> None:
        capacity = len(self.keys)
        while 2 * (int(self.fill[0]) + extra) > capacity:
            capacity *= 2
        if capacity != len(self.keys):
            self.keys, self.vals = K.hm_rehash(self.keys, self.vals, capacity)

    def __len__(self) -> int:
        return int(self.fill[0])

    @property
    def nbytes(self) -> int:
        return self.keys.nbytes + self.vals.nbytes + self.fill.nbytes


def hoeffding_bound(delta: float, n: int) -> float:
    """``sqrt(ln(1/delta) / (2 n))``: Hoeffding's bound for a range of 1, ODAC's convention."""
    return math.sqrt(math.log(1.0 / delta) / (2.0 * n))


def _pair(a: int, b: int) -> int:
    return (min(a, b) << 32) | max(a, b)


def _check_rows(indptr: np.ndarray, ids: np.ndarray) -> None:
    """Reject a batch before any of it is learned: ids must be >= 0 and increase in each row."""
    seg = ids[indptr[0] : indptr[-1]]
    if len(seg) and seg.min() < 0:
        raise ValueError("label ids must be non-negative")
    bad = np.diff(seg) <= 0
    starts = indptr[1:-1] - indptr[0]
    bad[starts[(starts > 0) & (starts < len(seg))] - 1] = False  # pairs across two rows
    if bad.any():
        row = int(np.searchsorted(indptr, indptr[0] + np.argmax(bad) + 1, side="right")) - 1
        raise ValueError(f"row {row}: label ids must be strictly increasing, got "
                         f"{ids[indptr[row] : indptr[row + 1]].tolist()}")


def _grown(arr: np.ndarray, size: int, fill: int) -> np.ndarray:
    """``arr`` with room for ``size`` entries (capacity doubled), new entries set to ``fill``."""
    if size <= len(arr):
        return arr
    out = np.full(max(size, 2 * len(arr)), fill, dtype=arr.dtype)
    out[: len(arr)] = arr
    return out


class LabelClustering:
    """Online divisive-agglomerative clustering of labels by co-occurrence (see module doc).

    Parameters
    ----------
    delta
        Confidence parameter in ODAC's convention: the bound is
        ``eps = sqrt(ln(1/delta) / (2 n))``, so a *larger* ``delta`` gives a *tighter* bound and
        makes splits and aggregations easier. ODAC's and the spec's starting value 0.9 gives
        ``ln(1/0.9) ~= 0.105``: ``eps ~= 0.023`` after 100 instances; the default 0.1
        (``eps ~= 0.107`` after 100 instances) measured best for iHOMER on the shared suite
        (see :mod:`ihomer.learners.hierarchy`, Defaults).
    tau
        Tie threshold: the pivot pair need not stand out from the second pair once ``eps`` is
        below ``tau``.
    n_min
        Instances between checkpoints, and instances a cluster must have seen since its last
        test to be tested again.
    min_size
        Smallest cluster size; ``None`` for the most frequent label-set size seen.
    max_size
        Largest cluster size; ``None`` for ``max(16, ceil(sqrt(L)), 2 * min_size)``.
    """

    def __init__(self, delta: float = 0.1, tau: float = 0.1, n_min: int = 100,
                 min_size: int | None = None, max_size: int | None = None) -> None:
        if not 0.0 < delta < 1.0:
            raise ValueError(f"delta must be in (0, 1), got {delta}")
        if tau < 0:
            raise ValueError(f"tau must be >= 0, got {tau}")
        if n_min < 1:
            raise ValueError(f"n_min must be >= 1, got {n_min}")
        if min_size is not None and min_size < 1:
            raise ValueError(f"min_size must be >= 1, got {min_size}")
        if max_size is not None and max_size < 2:
            raise ValueError(f"max_size must be >= 2, got {max_size}")
        if min_size is not None and max_size is not None and 2 * min_size > max_size:
            raise ValueError(
                f"max_size ({max_size}) must be at least 2 * min_size ({min_size}) so that a "
                "forced split can give two clusters of legal size"
            )
        self.delta = delta
        self.tau = tau
        self.n_min = n_min
        self.min_size = min_size
        self.max_size = max_size

        self.history: list[Change] = []
        self.n_seen = 0
        self._root = _Node(None)
        self._active: dict[int, _Node] = {}
        self._next_id = 0
        self._n_labels = 0
        self._cluster_of = np.full(64, -1, dtype=np.int64)
        self._label_n = np.zeros(64, dtype=np.int64)
        self._cluster_n = np.zeros(64, dtype=np.int64)
        self._tested_at = np.zeros(64, dtype=np.int64)
        self._size_hist = np.zeros(64, dtype=np.int64)
        self._touched = np.zeros(64, dtype=np.int64)
        self._pairs = _HashCounter()
        self._cross = _HashCounter()
        self._min, self._max = self._sizes()

    # ------------------------------------------------------------------ learning
    def update(self, label_ids: np.ndarray) -> list[Change]:
        """Learn one instance's label ids (any order, duplicates ignored); return the changes."""
        row = np.asarray(label_ids).ravel()
        ids = np.unique(_integers(row, np.int64, "label id", np.array([0, len(row)])))
        return self.update_many(np.array([0, len(ids)], dtype=np.int64), ids)

    def update_many(self, label_indptr: np.ndarray, label_ids: np.ndarray) -> list[Change]:
        """Learn a CSR batch of label sets (strictly increasing ids per row), row by row.

        The result is exactly that of :meth:`update` on each row in turn: counting runs in a
        jitted loop that hands back to Python only at checkpoints and at rows that bring new
        labels or need a bigger hash map.
        """
        indptr = _integers(label_indptr, np.int64, "row pointer", None)
        ids = _integers(label_ids, np.int64, "label id", indptr)
        n = len(indptr) - 1
        if n <= 0:
            return []
        _check_rows(indptr, ids)
        widest = int(np.diff(indptr).max())
        self._size_hist = _grown(self._size_hist, widest + 1, 0)
        self._touched = _grown(self._touched, widest, 0)
        changes: list[Change] = []
        r = 0
        while r < n:
            stop = min(n, r + self.n_min - self.n_seen % self.n_min)
            got, code = K.count_rows(
                indptr, ids, r, stop, self._cluster_of, self._label_n, self._cluster_n,
                self._size_hist, self._touched, self._pairs.keys, self._pairs.vals,
                self._pairs.fill, self._cross.keys, self._cross.vals, self._cross.fill,
            )
            self.n_seen += got - r
            r = got
            row = ids[indptr[r] : indptr[r + 1]] if r < n else ids[:0]
            if code == K.DONE:
                if self.n_seen % self.n_min == 0:
                    changes += self._checkpoint()
            elif code == K.NEW_LABEL:
                changes.append(self._place_new(row))
            elif code == K.GROW_PAIRS:
                self._pairs.reserve(len(row) * (len(row) - 1) // 2)
            else:
                self._cross.reserve(len(row) * (len(row) - 1) // 2)
        self.history += changes
        return changes

    # ------------------------------------------------------------------ inspection
    @property
    def n_labels(self) -> int:
        """Number of distinct labels seen."""
        return self._n_labels

    @property
    def min_size_(self) -> int:
        """``min_size`` in force (resolved from the data when left to its default)."""
        return self._min

    @property
    def max_size_(self) -> int:
        """``max_size`` in force (resolved from the data when left to its default)."""
        return self._max

    def partition(self) -> list[Labels]:
        """The clusters' label sets, ordered by their smallest label."""
        return sorted(node.labels for node in self._active.values())

    def clusters(self) -> dict[int, Labels]:
        """``{cluster id: labels}`` of the active clusters, by id."""
        return {cid: self._active[cid].labels for cid in sorted(self._active)}

    def cluster_of(self, label: int) -> int:
        """Id of the cluster holding ``label`` (``KeyError`` for a label never seen)."""
        if not 0 <= label < len(self._cluster_of) or self._cluster_of[label] < 0:
            raise KeyError(label)
        return int(self._cluster_of[label])

    def dissimilarity(self, a: int, b: int) -> float:
        """Current Jaccard dissimilarity of two labels of the same cluster.

        Pairs in different clusters are not counted (that is what keeps updates O(c^2)), so
        asking for one raises ``ValueError``.
        """
        if self.cluster_of(a) != self.cluster_of(b):
            raise ValueError(f"labels {a} and {b} are in different clusters")
        if a == b:
            return 0.0
        labels = np.array(sorted((a, b)), dtype=np.int64)
        d = K.dissimilarities(labels, self._label_n, self._pairs.keys, self._pairs.vals)
        return float(d[0, 1])

    def tree(self) -> dict[str, Any]:
        """The cluster hierarchy as nested dicts.

        Each node has ``id`` (the cluster id :attr:`history` names it by; ``None`` for the root,
        which only groups the top-level clusters, and for the inner nodes of a forced split,
        which never were clusters), ``labels``, ``active`` (true for the current clusters),
        ``n`` (instances seen by an active cluster), ``created`` (the instance index of the
        history entry that made the node or gave it its id), ``split_d1`` (for a past split)
        and ``children``.
        """

        def walk(node: _Node) -> dict[str, Any]:
            active = node.id in self._active and self._active[node.id] is node
            return {
                "id": None if node is self._root or node.id < 0 else node.id,
                "labels": node.labels if active else node.all_labels(),
                "active": active,
                "n": int(self._cluster_n[node.id]) if active else None,
                "created": node.created,
                "split_d1": node.split_d1,
                "children": [walk(c) for c in node.children],
            }

        return walk(self._root)

    @property
    def memory_bytes(self) -> int:
        """Bytes held by the statistics (arrays and hash maps; the small tree is not counted)."""
        arrays = (self._cluster_of, self._label_n, self._cluster_n, self._tested_at,
                  self._size_hist, self._touched)
        return sum(a.nbytes for a in arrays) + self._pairs.nbytes + self._cross.nbytes

    # ------------------------------------------------------------------ checkpoints
    _ARRAYS = ("_cluster_of", "_label_n", "_cluster_n", "_tested_at", "_size_hist", "_touched")

    def state_dict(self) -> dict[str, Any]:
        """The whole clustering as JSON values and NumPy arrays (no pickle).

        The cluster tree is listed depth first, each node with the index of its parent, so
        children keep their order; active clusters keep their order too, since checkpoints
        visit them in it.
        """
        nodes: list[_Node] = []
        stack = [self._root]
        while stack:
            node = stack.pop()
            nodes.append(node)
            stack.extend(reversed(node.children))
        index = {id(n): i for i, n in enumerate(nodes)}
        return {
            "params": {"delta": self.delta, "tau": self.tau, "n_min": self.n_min,
                       "min_size": self.min_size, "max_size": self.max_size},
            "n_seen": self.n_seen, "next_id": self._next_id, "n_labels": self._n_labels,
            "sizes": [self._min, self._max],
            "arrays": {a: getattr(self, a).copy() for a in self._ARRAYS},
            "pairs": [self._pairs.keys.copy(), self._pairs.vals.copy(), self._pairs.fill.copy()],
            "cross": [self._cross.keys.copy(), self._cross.vals.copy(), self._cross.fill.copy()],
            "nodes": [{"parent": -1 if n.parent is None else index[id(n.parent)], "id": n.id,
                       "labels": list(n.labels), "split_d1": n.split_d1,
                       "split_eps": n.split_eps, "created": n.created} for n in nodes],
            "active": [[cid, index[id(n)]] for cid, n in self._active.items()],
            "history": [{"kind": c.kind, "instance": c.instance,
                         "before": [list(x) for x in c.before],
                         "after": [list(x) for x in c.after],
                         "before_ids": list(c.before_ids), "after_ids": list(c.after_ids)}
                        for c in self.history],
        }

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> LabelClustering:
        """The clustering :meth:`state_dict` described; it continues exactly as the original."""
        clu = cls(**state["params"])
        clu.n_seen = int(state["n_seen"])
        clu._next_id = int(state["next_id"])
        clu._n_labels = int(state["n_labels"])
        clu._min, clu._max = (int(v) for v in state["sizes"])
        for a in cls._ARRAYS:
            setattr(clu, a, np.array(state["arrays"][a], dtype=np.int64))
        for name in ("pairs", "cross"):
            h = getattr(clu, f"_{name}")
            h.keys, h.vals, h.fill = (np.array(v, dtype=np.int64) for v in state[name])
        nodes: list[_Node] = []
        for d in state["nodes"]:
            parent = nodes[d["parent"]] if d["parent"] >= 0 else None
            node = _Node(parent)
            node.id = int(d["id"])
            node.labels = tuple(int(g) for g in d["labels"])
            node.split_d1 = None if d["split_d1"] is None else float(d["split_d1"])
            node.split_eps = float(d["split_eps"])
            node.created = int(d["created"])
            if parent is not None:
                parent.children.append(node)
            nodes.append(node)
        clu._root = nodes[0]
        clu._active = {int(cid): nodes[i] for cid, i in state["active"]}
        clu.history = [Change(c["kind"], int(c["instance"]),
                              tuple(tuple(x) for x in c["before"]),
                              tuple(tuple(x) for x in c["after"]),
                              tuple(c["before_ids"]), tuple(c["after_ids"]))
                       for c in state["history"]]
        return clu

    def draw(self, path: str | Path, names: list[str] | None = None) -> Path:
        """Draw the tree to ``path``: Graphviz text for ``.dot``, a matplotlib image for ``.png``.

        Active clusters are filled; ``names`` (indexed by label id) replaces ids in the boxes.
        """
        path = Path(path)
        suffix = path.suffix.lower()
        if suffix not in (".dot", ".png"):
            raise ValueError(f"draw writes .dot or .png files, not {path.name!r}")
        tree = self.tree()
        if names is not None and len(names) < self._n_labels:
            raise ValueError(f"names has {len(names)} entries for {self._n_labels} labels (one "
                             "per label id, e.g. model.label_vocab.names)")

        def text(node: dict[str, Any]) -> str:
            if node["id"] is not None:
                head = f"#{node['id']}"
            else:
                head = "all labels" if node is tree else "split"
            labs = [" ".join(str(names[i]).split()) if names else str(i) for i in node["labels"]]
            body = " ".join(labs[:12]) + (f" … (+{len(labs) - 12})" if len(labs) > 12 else "")
            return "\n".join([f"{head} [{len(labs)}]", *textwrap.wrap(body, 28)])

        if suffix == ".dot":
            lines = ["digraph clusters {", "  node [shape=box, fontsize=10];"]

            def emit(node: dict[str, Any], key: str) -> None:
                style = ', style=filled, fillcolor="#cde4ff"' if node["active"] else ""
                label = (text(node).replace("\\", "\\\\").replace('"', '\\"')
                         .replace("\n", "\\n"))
                lines.append(f'  {key} [label="{label}"{style}];')
                for i, child in enumerate(node["children"]):
                    ckey = f"{key}_{i}"
                    emit(child, ckey)
                    lines.append(f"  {key} -> {ckey};")

            emit(tree, "n")
            lines.append("}")
            path.write_text("\n".join(lines) + "\n")
            return path
        self._draw_png(tree, path, text)
        return path

    @staticmethod
    def _draw_png(tree: dict[str, Any], path: Path, text: Callable[[dict[str, Any]], str]) -> None:
        from matplotlib.figure import Figure  # no pyplot: leaves the caller's backend alone

        pos: dict[int, tuple[float, float]] = {}
        nodes: list[dict[str, Any]] = []
        edges: list[tuple[int, int]] = []
        counter = [0]

        def place(node: dict[str, Any], depth: int) -> float:
            me = len(nodes)
            nodes.append(node)
            if node["children"]:
                xs = []
                for child in node["children"]:
                    edges.append((me, len(nodes)))
                    xs.append(place(child, depth + 1))
                x = sum(xs) / len(xs)
            else:
                x = float(counter[0])
                counter[0] += 1
            pos[me] = (x, -float(depth))
            return x

        place(tree, 0)
        depth = max(-y for _, y in pos.values()) + 1
        # room for the widest box (about 0.065 inch a character at 7 points) and the tallest
        lines = [text(node).split("\n") for node in nodes]
        wide = max(1.6, 0.065 * max(len(line) for box in lines for line in box) + 0.4)
        tall = max(1.4, 0.14 * max(len(box) for box in lines) + 0.6)
        fig = Figure(figsize=(max(6.0, wide * counter[0]), max(3.0, tall * depth)))
        ax = fig.subplots()
        for a, b in edges:
            ax.plot([pos[a][0], pos[b][0]], [pos[a][1], pos[b][1]], color="grey", lw=0.8)
        for i, node in enumerate(nodes):
            color = "#cde4ff" if node["active"] else "white"
            ax.text(*pos[i], text(node), ha="center", va="center", fontsize=7,
                    bbox={"boxstyle": "round", "facecolor": color, "edgecolor": "black"})
        ax.set_xlim(-1, max(counter[0], 1))
        ax.set_ylim(-depth, 1)
        ax.axis("off")
        fig.tight_layout()
        fig.savefig(path, dpi=100)

    # ------------------------------------------------------------------ bookkeeping
    def _sizes(self) -> tuple[int, int]:
        hist = self._size_hist[1:]
        mode = int(np.argmax(hist)) + 1 if hist.any() else 1
        if self.max_size is not None:
            mx = self.max_size
        else:
            mx = max(16, math.ceil(math.sqrt(self._n_labels)), 2 * (self.min_size or mode))
        mn = self.min_size if self.min_size is not None else min(mode, mx // 2)
        return mn, mx

    def _fresh_id(self) -> int:
        cid = self._next_id
        self._next_id += 1
        if cid >= len(self._cluster_n):
            self._cluster_n = _grown(self._cluster_n, cid + 1, 0)
            self._tested_at = _grown(self._tested_at, cid + 1, 0)
        return cid

    def _activate(self, node: _Node, labels: Labels, at: int) -> None:
        """Make ``node`` an active cluster with a new id and fresh counts, created by the
        change recorded at instance ``at``."""
        node.id = self._fresh_id()
        node.labels = labels
        node.children = []
        node.split_d1 = None
        node.created = at
        self._active[node.id] = node
        self._cluster_of[list(labels)] = node.id
        self._cluster_n[node.id] = 0
        self._tested_at[node.id] = 0

    def _dissolve(self, node: _Node) -> None:
        """Forget an active cluster's counts (its labels are about to move)."""
        labels = np.array(node.labels, dtype=np.int64)
        K.drop_pairs(labels, self._pairs.keys, self._pairs.vals, self._pairs.fill)
        self._label_n[labels] = 0
        del self._active[node.id]
        for other in self._active:
            K.hm_del(self._cross.keys, self._cross.vals, self._cross.fill, _pair(node.id, other))

    def _relabel(self, node: _Node, labels: Labels, at: int) -> None:
        """Give an active cluster that gains labels a new id, keeping its counts (the id, and
        so ``created``, dates from the change at instance ``at``)."""
        old = node.id
        new = self._fresh_id()
        node.created = at
        del self._active[old]
        for other in self._active:
            x = K.hm_del(self._cross.keys, self._cross.vals, self._cross.fill, _pair(old, other))
            if x:
                K.hm_add(self._cross.keys, self._cross.vals, self._cross.fill, _pair(new, other), x)
        node.id = new
        node.labels = labels
        self._active[new] = node
        self._cluster_of[list(labels)] = new
        self._cluster_n[new] = self._cluster_n[old]
        self._tested_at[new] = self._tested_at[old]

    def _place_new(self, row: np.ndarray) -> Change:
        top = int(row[-1]) + 1
        self._cluster_of = _grown(self._cluster_of, top, -1)
        self._label_n = _grown(self._label_n, top, 0)
        known = [int(a) for a in row if self._cluster_of[a] >= 0]
        new = tuple(int(a) for a in row if self._cluster_of[a] < 0)
        self._n_labels += len(new)
        if not known:
            node = _Node(self._root)
            self._root.children.append(node)
            self._activate(node, new, self.n_seen)
            return Change("new_labels", self.n_seen, (), (new,), (), (node.id,))
        tally: dict[int, int] = {}
        for a in known:  # dict order = order of each cluster's lowest label in the row
            cid = int(self._cluster_of[a])
            tally[cid] = tally.get(cid, 0) + 1
        best = max(tally, key=lambda c: tally[c])  # first maximum wins
        node = self._active[best]
        before = node.labels
        self._relabel(node, tuple(sorted(before + new)), self.n_seen)
        return Change("new_labels", self.n_seen, (before,), (node.labels,), (best,), (node.id,))

    # ------------------------------------------------------------------ tests
    def _checkpoint(self) -> list[Change]:
        self._min, self._max = self._sizes()
        at = self.n_seen - 1
        changes: list[Change] = []
        for cid in sorted(self._active):
            node = self._active.get(cid)
            n = int(self._cluster_n[cid])
            if node is None or n - self._tested_at[cid] < self.n_min:
                continue
            self._tested_at[cid] = n
            k = len(node.labels)
            if k < 2:
                continue
            labels = np.array(node.labels, dtype=np.int64)
            d = K.dissimilarities(labels, self._label_n, self._pairs.keys, self._pairs.vals)
            d1, d2, d0, dbar, p, q = K.summarize(d)
            eps = hoeffding_bound(self.delta, n)
            if k > self._max:
                changes.append(self._split_large(node, d, eps, at))
                continue
            parent = node.parent
            if (parent is not self._root and parent is not None and parent.split_d1 is not None
                    and d1 - parent.split_d1 > max(eps, parent.split_eps)):
                changes.append(self._aggregate(parent, at))
                continue
            if k >= 3 and (d1 - d2 > eps or self.tau > eps) and \
                    (d1 - d0) * abs(d1 + d0 - 2.0 * dbar) > eps:
                side = self._divide(d, p, q, balance=False)
                if min(side.sum(), k - side.sum()) >= self._min:
                    changes.append(self._split(node, side, d1, eps, at))
        changes += self._merge_small(at)
        return changes

    def _divide(self, d: np.ndarray, p: int, q: int, balance: bool) -> np.ndarray:
        """Boolean mask of the labels that go with pivot ``p`` (see the module doc)."""
        side = K.divide(d, p, q)
        n_p = int(side.sum())
        n_q = len(side) - n_p
        if balance and min(n_p, n_q) < self._min:
            small_is_p = n_p < n_q
            small_pivot, big_pivot = (p, q) if small_is_p else (q, p)
            cand = np.flatnonzero(side != small_is_p)
            cand = cand[cand != big_pivot]
            margin = d[cand, small_pivot] - d[cand, big_pivot]
            moved = cand[np.lexsort((cand, margin))][: self._min - min(n_p, n_q)]
            side[moved] = small_is_p
        return side

    def _split(self, node: _Node, side: np.ndarray, d1: float, eps: float, at: int) -> Change:
        labels = np.array(node.labels, dtype=np.int64)
        before, old = node.labels, node.id
        self._dissolve(node)
        kids = []
        for part in (labels[side], labels[~side]):
            child = _Node(node)
            self._activate(child, tuple(int(a) for a in part), at)
            kids.append(child)
        node.children = kids
        node.split_d1, node.split_eps = d1, eps
        return Change("split", at, (before,), tuple(c.labels for c in kids), (old,),
                      tuple(c.id for c in kids))

    def _split_large(self, node: _Node, d: np.ndarray, eps: float, at: int) -> Change:
        labels = np.array(node.labels, dtype=np.int64)
        before, old = node.labels, node.id
        self._dissolve(node)
        out: list[_Node] = []

        def divide(parent: _Node, idx: np.ndarray) -> None:
            sub = d[np.ix_(idx, idx)]
            d1, _, _, _, p, q = K.summarize(sub)
            side = self._divide(sub, p, q, balance=True)
            parent.children = []
            for part in (idx[side], idx[~side]):
                child = _Node(parent)
                parent.children.append(child)
                if len(part) > self._max:  # an inner node: never a cluster, so no id
                    child.created = at
                    divide(child, part)
                else:
                    self._activate(child, tuple(int(a) for a in labels[part]), at)
                    out.append(child)
            parent.split_d1, parent.split_eps = d1, eps

        divide(node, np.arange(len(labels)))
        return Change("split_large", at, (before,), tuple(c.labels for c in out), (old,),
                      tuple(c.id for c in out))

    def _aggregate(self, parent: _Node, at: int) -> Change:
        leaves = [leaf for leaf in parent.leaves() if leaf.id in self._active]
        before = tuple(leaf.labels for leaf in leaves)
        ids = tuple(leaf.id for leaf in leaves)
        for leaf in leaves:
            self._dissolve(leaf)
        self._activate(parent, tuple(sorted(a for labs in before for a in labs)), at)
        return Change("aggregate", at, before, (parent.labels,), ids, (parent.id,))

    def _merge_small(self, at: int) -> list[Change]:
        changes = []
        while len(self._active) > 1:
            small = [c for c in self._active.values() if len(c.labels) < self._min]
            if not small:
                break
            s = min(small, key=lambda c: (len(c.labels), c.id))
            ns = int(self._cluster_n[s.id])

            def rank(t: _Node, s: _Node = s, ns: int = ns) -> tuple[bool, float, int, int]:
                x = K.hm_get(self._cross.keys, self._cross.vals, _pair(s.id, t.id))
                union = ns + int(self._cluster_n[t.id]) - x
                sim = x / union if union > 0 else 0.0
                fits = len(s.labels) + len(t.labels) <= self._max
                return (not fits, -sim, len(t.labels), t.id)

            t = min((c for c in self._active.values() if c is not s), key=rank)
            before, ids = (s.labels, t.labels), (s.id, t.id)
            self._dissolve(s)
            self._detach(s)
            self._relabel(t, tuple(sorted(s.labels + t.labels)), at)
            changes.append(Change("merge_small", at, before, (t.labels,), ids, (t.id,)))
        return changes

    def _detach(self, node: _Node) -> None:
        """Remove a leaf from the tree; a parent left with one child is replaced by it."""
        parent = node.parent
        assert parent is not None
        parent.children.remove(node)
        if parent is not self._root and len(parent.children) == 1:
            only = parent.children[0]
            grand = parent.parent
            assert grand is not None
            grand.children[grand.children.index(parent)] = only
            only.parent = grand
