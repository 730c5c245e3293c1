"""iHOMER: an incremental hierarchy of multi-label trees over clusters of co-occurring labels.

The label space is partitioned online by :class:`~ihomer.learners.clustering.LabelClustering`
(ODAC over Jaccard dissimilarity: the *global* structure) and every cluster owns one
:class:`~ihomer.learners.mlhat.MLHAT` trained on the instance's labels restricted to the
cluster (each tree handles *local* drift with its own ADWIN-monitored alternates).

Modes (``mode``)
----------------
``flat``
    Every cluster's tree predicts its labels for every instance and learns every instance;
    the prediction is the union.
``homer``
    A meta tree over meta-labels (one per cluster: "some label of the cluster is present")
    predicts which clusters are active; only those clusters' trees answer, and a cluster's
    tree learns only the instances where its meta-label is true (HOMER's routing, which makes
    very large label sets cheap). With a ``decode`` over all labels every tree also scores
    every instance (one kernel pass that learns the routed rows and scores them all), so that
    each label's probability is P(cluster) P(label | cluster) from the trees themselves.

Restructuring without a dip
---------------------------
When the partition changes, a cluster whose label set is unchanged keeps its tree; a cluster
that only gained labels never seen before keeps its tree and grows the new label columns.
Any other new cluster starts (``warm_start=True``) from a projection of the tree that held
most of its labels: the projected tree keeps the structure and those labels' statistics, and
the cluster's other labels start from zero. With ``handover=True`` the trees of the old
partition stay alive and keep answering for their labels until the new tree's prequential
Hamming errors on those labels, over a window of ``handover_min`` instances, are fewer than
theirs (a tie is no evidence; windows follow one another from the restructure on; at
``handover_max`` instances the new tree takes over regardless, which bounds the cost of
running both). In ``homer`` mode a
retired tree keeps its meta-label, learned and routed to as before, until it has handed over
all its labels. A new cluster's meta-label starts from the meta-label of the cluster its tree
was projected from; that of a cluster of labels never seen before starts as absent from every
instance the meta tree learned (MLHAT's ``new_labels="absent"``), as it was.

Exact prequential order
-----------------------
The clustering only changes at its checkpoints (every ``n_min`` instances) and when new labels
arrive, and the trees are independent of one another between changes. A batch is therefore
cut at the change points: each tree runs its own jitted test-then-train loop over a segment,
and the partition is reconciled between segments. A change at a checkpoint applies after the
instance that completed it; a new label is placed before the instance that brings it (its
tree has no statistics for it yet, so nothing of that instance leaks into its prediction).

Defaults
--------
Frozen on the shared suite: ``bench/tune_ihomer.py`` runs the exact prequential protocol over
the 21 datasets with a published MLHAT row, and the defaults are the settings with the best
means of example F1 / micro F1 / subset accuracy, checked on the streams they were not chosen
on (the other ARFF streams and debtags, in ``bench/run.py --profile full``). Under the defaults the
hierarchy measures 0.6029 / 0.6128 / 0.3994 (one ``mlhat`` tree: 0.6042 / 0.6133 / 0.3972).
Every measurement behind them, in the order it was made and with the variants not adopted, is
in ``bench/TUNING.md``; the figures below are the latest for each choice (2026-12-07 unless
said).

* ``mode="homer"``: the meta tree routes, so a tree learns only the instances with one of its
  labels, which keeps very large label sets cheap (debtags, 598 labels, 247 s against one
  tree's 323 s). ``"flat"`` measures 0.6043 / 0.6132 / 0.3984 in 2.3 times the time.
* ``cluster_delta=0.1`` (ODAC's ``ln(1/delta)`` convention), ``cluster_tau=0.1``,
  ``n_min=100`` and sizes from the data: values around them (``cluster_delta`` 0.03 and 0.3,
  ``n_min`` 50 and 200, ``max_size`` 8 and 32) moved no mean by more than 0.0007
  (2026-12-02); ``min_size=2`` lost 0.005. ODAC's partition against random clusters of the
  same sizes (``partition="random"``): 0.5997 / 0.6085 / 0.3968.
* ``warm_start=True`` and ``handover=True`` (windows of ``handover_min=200``, strictly fewer
  errors, ``handover_max=5000``): the specification's restructuring without a dip. Against a
  frozen twin that skips a restructure, the micro F1 of the next 500 instances falls by at
  most 0.012 (``bench/restructure_dip.py``, 25 streams; 0.037 without handover). Cold starts
  measure 0.6019 / 0.6116 / 0.4000, no handover 0.6025 / 0.6123 / 0.3983.
* ``decode="f1"``, ``first_rival="threshold"``, ``labelset_prior=0.5``: one decoder over all
  labels, on P(cluster) P(label | cluster), starts from those probabilities' threshold
  answer and rates the most likely seen label set and the set of highest expected example F1
  against it, as one MLHAT does. The union of the trees' answers as the first rival measures
  0.6034 / 0.6127 / 0.3975; ``decode="seen"`` gave up 0.016 example F1 for 0.006 subset
  accuracy and ``"clusters"`` lost on all three (2026-12-02); without the label-set prior
  subset accuracy fell by 0.008.
* ``no_change=True`` and ``vote_weight="auto"``: the last learned label set and the nearest
  recent instances' as rival answers, and their vote's share of the probabilities chosen
  online per stream. Without ``no_change`` the means fell by 0.009 / 0.011 / 0.006 (2026-12-02);
  the fixed share 0.2 measures 0.6002 / 0.6093 / 0.3947.
* ``route_from=2``: with one cluster there is nothing to route, and the hierarchy answers as
  one tree (on flags, one cluster of 7 labels, subset accuracy 0.077 routed against 0.093).
  Routing from the first cluster measures 0.6035 / 0.6128 / 0.3961.
* ``tree``: MLHAT's defaults, the trees answering by their thresholds under the decoder over
  all labels (their own decoders cost time and measured the same).
* ``max_bytes=1 GiB`` for all trees together: no anchored stream comes near it; debtags
  (65,536 hashed features, 598 labels) peaks at 1,147 MiB of RSS under it.

Example
-------
>>> from ihomer.learners.hierarchy import IHOMER
>>> model = IHOMER(n_min=2)
>>> for _ in range(3):
...     model.learn_one({"a": 1.0}, ["x", "y"])
...     model.learn_one({"b": 1.0}, ["z"])
>>> sorted(k for k, v in model.predict_one({"a": 1.0}).items() if v)
['x', 'y']
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ihomer.learners._split_kernels import dense_rows, owned_predictions, restrict_labels
from ihomer.learners.base import (
    MultiLabelLearner,
    Predictions,
    check_flag,
    check_range,
    check_seed,
)
from ihomer.learners.clustering import Change, LabelClustering
from ihomer.learners.decoding import (
    LABELSET_PRIOR,
    NoChange,
    SeenLabelsets,
    Votes,
    check_vote_weight,
)
from ihomer.learners.mlhat import MLHAT
from ihomer.stream.base import INDEX_DTYPE, PTR_DTYPE, VALUE_DTYPE, Batch

MODES = ("flat", "homer")
DECODES = ("clusters", "seen", "f1")
FIRST_RIVALS = ("threshold", "union")
#: Rows whose scores over all labels are decoded at once (the score block is rows x labels).
_DECODE_CHUNK = 1024


@dataclass
class _Member:
    """One tree and the global labels it models (local id ``i`` is global ``labels[i]``)."""

    key: int
    cluster: int | None  # the clustering's id of the cluster it serves; None once retired
    tree: MLHAT
    labels: list[int]
    local_of: np.ndarray
    pending: set[int] = field(default_factory=set)
    since: int = 0
    err_new: int = 0
    err_old: int = 0
    n_cmp: int = 0  # instances compared since the restructure
    win_n: int = 0  # ... in the current window (err_new, err_old count this window)
    swaps: int = 0
    drifts: int = 0
    origin: int | None = None  # key of the member its tree (and meta column) started from

    def add_labels(self, new: list[int]) -> None:
        for g in new:
            self.local_of[g] = len(self.labels)
            self.labels.append(g)


class IHOMER(MultiLabelLearner):
    """Incremental hierarchy of multi-label Hoeffding adaptive trees (see module docstring).

    Parameters
    ----------
    mode
        ``"homer"`` (default) or ``"flat"``.
    warm_start
        Start a new cluster's tree from a projection of the tree holding most of its labels.
    handover
        Keep old trees answering for their labels until the new tree makes fewer errors on
        them.
    handover_min, handover_max
        Instances the comparison needs at least, and after which the new tree wins anyway.
    partition
        ``"odac"`` (the online clustering) or ``"random"`` (ablation: clusters with the same
        sizes as ODAC's, labels assigned by a seeded hash, re-dealt when ODAC's change).
    cluster_delta
        Confidence of the clustering's Hoeffding tests, in ODAC's convention (a larger value
        splits and aggregates sooner): :class:`~ihomer.learners.clustering.LabelClustering`'s
        ``delta``.
    cluster_tau
        Tie threshold of the clustering's split test (its ``tau``).
    n_min
        Instances between the clustering's checkpoints, where the partition may change.
    min_size, max_size
        Smallest and largest cluster; ``None`` for sizes from the data (see
        :class:`~ihomer.learners.clustering.LabelClustering`).
    tree
        Keyword arguments of every :class:`~ihomer.learners.mlhat.MLHAT` (clusters and meta).
        Under a ``decode`` over all labels the trees answer by their thresholds
        (``decode="threshold"``) unless this sets otherwise; with ``"clusters"`` they keep
        MLHAT's default.
    max_bytes
        Bound on the bytes of all trees together (see :meth:`_share_memory`); each tree also
        keeps its own ``max_bytes`` (MLHAT's default 512 MiB, or as set in ``tree``). ``None``
        for no common bound. What a tree holds besides its statistics rows (its nodes and
        per-label arrays: 165 to 480 KB a tree on enron) is not cut: a budget below what the
        trees hold that way cannot hold, and a warning says so once.
    decode
        ``"clusters"``: the union of what the cluster trees answer. ``"seen"``: that union, or
        the most likely label set seen so far under every label's probability P(cluster)
        P(label | cluster), whichever has rated better
        (:class:`~ihomer.learners.decoding.SeenLabelsets` over the whole label set);
        ``"f1"``: also the set of highest expected example F1 under the same probabilities,
        when it rated better. Answers are rated by a faded loss that weighs exact matches and
        F1 alike (:func:`~ihomer.learners.decoding.answer_loss`). In homer mode every cluster
        tree scores every instance for it, routed to it or not.
    max_labelsets
        Label sets the ``"seen"`` and ``"f1"`` decoders remember at most.
    labelset_prior
        Weight of the label-set prior those decoders rate the seen sets with (as
        :class:`~ihomer.learners.mlhat.MLHAT`'s): it gives back some of the dependence between
        labels that the trees' probabilities, taken as independent, leave out, across
        clusters as within them; 0 for none.
    no_change
        Answer with the label set of the last learned instance, or with that of the most
        similar recent one, while it rates better than the hierarchy's answer
        (:class:`~ihomer.learners.decoding.NoChange`; the trees themselves never do).
    vote_weight
        With ``no_change`` and a ``decode`` over all labels: the share of the probabilities
        that decoder chooses from that is the vote of the five most similar of the last 200
        learned instances (:class:`~ihomer.learners.decoding.Votes`); 0 for none, ``"auto"``
        (the default) to choose it row by row among 0 to 0.5 by the faded log loss each share
        would have had (:class:`~ihomer.learners.decoding.NoChange`).
    route_from
        Homer mode: the meta tree routes once this many trees answer for labels. With one
        cluster there is nothing to route: its meta-label only says that the instance has a
        label, and gating its tree by it multiplies the tree's probabilities by a second,
        noisier estimate of what the tree itself learns from the instances without one. Until
        then the hierarchy is one tree over all labels (flat mode's), and the meta tree learns
        alongside it. 1 routes from the first cluster (the rule before 2026-12-07), as does
        ``decode="clusters"``: there each tree decodes its own labels, and a tree that answers
        every instance would answer one that brings new labels of its cluster with their
        columns already added (they are placed before the instance), which the same instance
        predicted on its own cannot see; a decoder over all labels scores such labels 0.
    first_rival
        The answer the decoder over all labels starts from, against which it rates the seen
        and expected-F1 sets: ``"threshold"``, the per-label threshold (0.5) of the
        probabilities it decodes, with MLHAT's ``nonempty`` rule (the top label when none
        reaches 0.5 and its probability beats the rate of empty label sets learned so far),
        as a single MLHAT starts from its own; ``"union"``, the union of the answers of the
        trees (routed ones in homer mode), the rule before 2026-12-07. In homer mode the two
        differ: the union names a label when the meta tree switches its cluster on and the
        cluster's tree names it, each at 0.5, where the threshold asks P(cluster) P(label |
        cluster) to reach 0.5.
    seed
        Seed of the trees (Poisson weighting) and of the random partition.
    """

    jitted = True

    def __init__(
        self,
        mode: str = "homer",
        warm_start: bool = True,
        handover: bool = True,
        handover_min: int = 200,
        handover_max: int = 5000,
        partition: str = "odac",
        cluster_delta: float = 0.1,
        cluster_tau: float = 0.1,
        n_min: int = 100,
        min_size: int | None = None,
        max_size: int | None = None,
        tree: dict[str, Any] | None = None,
        max_bytes: int | None = 2**30,
        decode: str = "f1",
        max_labelsets: int = 4096,
        labelset_prior: float = LABELSET_PRIOR,
        no_change: bool = True,
        vote_weight: float | str = "auto",
        route_from: int = 2,
        first_rival: str = "threshold",
        seed: int = 0,
    ) -> None:
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
        if decode not in DECODES:
            raise ValueError(f"decode must be one of {DECODES}, not {decode!r}")
        if partition not in ("odac", "random"):
            raise ValueError(f"partition must be 'odac' or 'random', not {partition!r}")
        if first_rival not in FIRST_RIVALS:
            raise ValueError(f"first_rival must be one of {FIRST_RIVALS}, not {first_rival!r}")
        for name, flag in (("warm_start", warm_start), ("handover", handover),
                           ("no_change", no_change)):
            check_flag(name, flag)
        check_seed(seed)
        check_range("handover_min", handover_min, 1, integer=True)
        check_range("handover_max", handover_max, 1, integer=True)
        if handover_max < handover_min:  # say so, rather than blame the one left at default
            raise ValueError(f"handover_max ({handover_max}) must be at least handover_min "
                             f"({handover_min}): raise handover_max with handover_min")
        check_range("route_from", route_from, 1, integer=True)
        check_range("max_bytes", max_bytes, 0, optional=True, integer=True)
        # the clustering's own checks would name them delta and tau, and would compare a
        # string before saying what it is
        check_range("cluster_delta", cluster_delta, 0, 1, open_low=True, open_high=True)
        check_range("cluster_tau", cluster_tau, 0)
        check_range("n_min", n_min, 1, integer=True)
        check_range("min_size", min_size, 1, optional=True, integer=True)
        check_range("max_size", max_size, 2, optional=True, integer=True)
        check_range("max_labelsets", max_labelsets, 1, integer=True)
        check_range("labelset_prior", labelset_prior, 0.0)
        check_vote_weight(vote_weight)
        if tree is not None and not isinstance(tree, dict):
            raise ValueError("tree must be a dict of MLHAT's arguments, e.g. --param "
                             f"'tree={{\"grace_period\": 50}}', not {tree!r}")
        try:  # the trees' parameters fail here, by name, not at the first instance
            MLHAT(**{**dict(tree or {}), "no_change": False})
        except (TypeError, ValueError) as e:
            raise ValueError(f"tree: {e}") from None
        self.mode = mode
        self.warm_start = warm_start
        self.handover = handover
        self.handover_min = handover_min
        self.handover_max = handover_max
        self.partition = partition
        self.cluster_delta = cluster_delta
        self.cluster_tau = cluster_tau
        self.n_min = n_min
        self.min_size = min_size
        self.max_size = max_size
        self.tree = dict(tree or {})
        self.max_bytes = max_bytes
        self.decode = decode
        self.max_labelsets = max_labelsets
        self.labelset_prior = labelset_prior
        self._labelsets = (None if decode == "clusters" else
                           SeenLabelsets(max_labelsets, expected_f1=decode == "f1",
                                         prior=labelset_prior))
        self._label_n = np.zeros(0, np.int64)  # learned instances with each label
        self.no_change = no_change
        self.vote_weight = vote_weight
        self._no_change = NoChange(vote_weight=vote_weight) if no_change else None
        self.route_from = route_from
        self.first_rival = first_rival
        self._n_empty = 0  # learned instances without a label (the threshold's nonempty rule)
        self.seed = seed
        self.clustering = LabelClustering(delta=cluster_delta, tau=cluster_tau, n_min=n_min,
                                          min_size=min_size, max_size=max_size)
        self._partition: dict[int, tuple[int, ...]] = {}
        self._members: dict[int, _Member] = {}
        self._next_key = 0
        self._owner = np.full(0, -1, np.int64)
        self._seen = 0
        self._over_budget = False  # warned that max_bytes cannot hold (_share_memory)
        self._meta: MLHAT | None = None
        self._meta_keys: list[int | None] = []  # None: a retired cluster's column
        self.events: list[dict[str, Any]] = []
        self.n_restructures = 0
        self.n_handovers = 0

    # ------------------------------------------------------------------ sizes
    def _grow_labels(self, n_labels: int) -> None:
        old = len(self._owner)
        if n_labels <= old:
            return
        cap = max(16, old)
        while cap < n_labels:
            cap *= 2
        self._owner = np.concatenate([self._owner, np.full(cap - old, -1, np.int64)])
        self._label_n = np.concatenate([self._label_n, np.zeros(cap - old, np.int64)])
        for m in self._members.values():
            m.local_of = np.concatenate([m.local_of, np.full(cap - old, -1, np.int64)])

    def _new_tree(self, meta: bool = False) -> MLHAT:
        # Under a decoder over all labels the trees answer by their thresholds: that decoder
        # chooses among seen and expected-F1 sets over every label, and a tree's own choice
        # within its cluster only cost time (see the defaults above).
        own: dict[str, Any] = {"decode": "threshold"} if self._labelsets is not None else {}
        # A new meta-label was absent from every instance the meta tree learned (MLHAT's
        # default); a label that joins a cluster's tree starts blank (see the defaults above).
        own["new_labels"] = "absent" if meta else "blank"
        return self._adopt(MLHAT(**{"seed": self.seed, **own, **self.tree, "no_change": False}))

    def _adopt(self, tree: MLHAT) -> MLHAT:
        """Make ``tree`` read the hierarchy's feature vocabulary, shared, not copied.

        The trees only ever see the hierarchy's feature ids, so one vocabulary serves them all;
        a copy per tree cost 2.4 MB each on debtags (65,536 hashed features), 280 MB over the
        ~120 trees of flat mode.
        """
        tree.feature_vocab = self.feature_vocab
        return tree

    def _new_member(self, cluster: int | None, tree: MLHAT, labels: list[int]) -> _Member:
        m = _Member(self._next_key, cluster, tree, [], np.full(len(self._owner), -1, np.int64),
                    since=self._seen)
        self._next_key += 1
        m.add_labels(labels)
        self._members[m.key] = m
        return m

    # ------------------------------------------------------------------ restructuring
    def _target(self) -> dict[int, tuple[int, ...]]:
        """The partition to realise: ODAC's, or the random one with the same sizes."""
        if self.partition == "odac":
            return self._partition
        labels = sorted((g for labs in self._partition.values() for g in labs),
                        key=lambda g: (_mix(self.seed, g), g))
        out: dict[int, tuple[int, ...]] = {}
        pos = 0
        for cid in sorted(self._partition):
            size = len(self._partition[cid])
            out[cid] = tuple(sorted(labels[pos: pos + size]))
            pos += size
        return out

    def _reconcile(self) -> None:
        """Give every cluster of the target partition a member, reusing what can be reused."""
        target = self._target()
        current = {m.key: m for m in self._members.values() if m.cluster is not None}
        by_set = {tuple(sorted(m.labels)): m for m in current.values()}
        claimed: set[int] = set()
        created: list[_Member] = []
        for cid in sorted(target):
            labs = target[cid]
            same = by_set.get(tuple(sorted(labs)))
            if same is not None and same.key not in claimed:
                same.cluster = cid
                claimed.add(same.key)
                continue
            # The current member holding most of these labels (ties: the oldest).
            best, overlap = None, 0
            for m in current.values():
                k = sum(1 for g in labs if m.local_of[g] >= 0)
                if k > overlap:
                    best, overlap = m, k
            brand_new = [g for g in labs if self._owner[g] < 0 and
                         all(mm.local_of[g] < 0 for mm in self._members.values())]
            if (best is not None and best.key not in claimed
                    and overlap == len(best.labels) and overlap + len(brand_new) == len(labs)):
                # Only labels never seen before joined: keep the tree, add their columns.
                best.add_labels(brand_new)
                best.cluster = cid
                claimed.add(best.key)
                for g in brand_new:
                    self._owner[g] = best.key
                continue
            if self.warm_start and best is not None:
                kept = [g for g in labs if best.local_of[g] >= 0]
                tree = best.tree.project([int(best.local_of[g]) for g in kept],
                                         feature_vocab=self.feature_vocab)
                rest = [g for g in labs if best.local_of[g] < 0]
                m = self._new_member(cid, tree, kept + rest)
                m.origin = best.key
            else:
                m = self._new_member(cid, self._new_tree(), list(labs))
            created.append(m)
            for g in labs:
                if self.handover and self._owner[g] >= 0:
                    m.pending.add(g)
                else:
                    self._owner[g] = m.key
        for m in current.values():
            if m.key not in claimed:
                m.cluster = None
        for m in self._members.values():
            self._sync(m.tree, m.labels)
        self._drop_idle()
        if self.mode == "homer":
            self._rebuild_meta()

    def _sync(self, tree: MLHAT, labels: list[int]) -> None:
        """Give a tree room for every feature and the global names of its (local) labels."""
        lnames = self.label_vocab.names
        tree.label_vocab.extend(lnames[g] for g in labels[len(tree.label_vocab):])
        tree._ensure(len(self.feature_vocab), len(tree.label_vocab))

    def _drop_idle(self) -> None:
        """Forget retired members that answer for no label any more (their meta-label stays
        until the next :meth:`_rebuild_meta` and is no longer routed to)."""
        for key in [k for k, m in self._members.items() if m.cluster is None]:
            if not np.any(self._owner == key):
                del self._members[key]

    def _meta_column(self) -> dict[int, int]:
        """Member key -> its column of the meta tree (retired columns have no key)."""
        return {k: j for j, k in enumerate(self._meta_keys) if k is not None}

    def _rebuild_meta(self) -> None:
        """Meta-labels follow the current clusters: keep the columns of surviving members.

        A retired cluster's column stays in the meta tree (its key becomes ``None``: never
        present again, never routed to) until retired columns are a third of them, and only
        then is the tree restricted, in place, to the live ones. That pass touches the whole
        meta tree, the largest of all (it sees every instance); on a stream that restructures
        often (debtags: about 100 restructures in its first 8,000 instances, 140 clusters)
        copying it at every restructure cost more than all the learning.
        """
        # Members that serve a cluster, and retired ones still answering for labels they are
        # handing over (their meta-label keeps routing to them until then).
        current = sorted(k for k, m in self._members.items()
                         if m.cluster is not None or np.any(self._owner == k))
        if self._meta is None:
            self._meta = self._new_tree(meta=True)
            self._meta_keys = []
        meta = self._meta
        column = self._meta_column()
        live = set(current)
        keys: list[int | None] = [k if k in live else None for k in self._meta_keys]
        keys += [k for k in current if k not in column]
        meta.label_vocab.extend(f"cluster-member-{keys[i]}"
                                for i in range(len(meta.label_vocab), len(keys)))
        meta._ensure(len(self.feature_vocab), len(keys))
        if self.warm_start:
            # A new cluster's meta-label starts, like its tree, from the cluster it came from.
            for j in range(len(self._meta_keys), len(keys)):
                origin = self._members[keys[j]].origin  # type: ignore[index]
                if origin in column:
                    meta.copy_label(column[origin], j)
        dead = sum(k is None for k in keys)
        if dead and 3 * dead >= len(keys):
            keep = [i for i, k in enumerate(keys) if k is not None]
            if keep:
                meta.keep_labels(keep)
            else:
                self._meta = self._new_tree(meta=True)
            keys = [keys[i] for i in keep]
        self._meta_keys = keys

    def _apply(self, changes: list[Change]) -> None:
        for c in changes:
            for cid in c.before_ids:
                self._partition.pop(cid, None)
            for cid, labs in zip(c.after_ids, c.after, strict=True):
                self._partition[cid] = tuple(labs)
            if c.kind != "new_labels":
                self.n_restructures += 1
                self.events.append({"instance": c.instance, "kind": "restructure",
                                    "detail": f"{c.kind}: {len(c.before)} -> {len(c.after)} "
                                              f"clusters"})
        self._reconcile()

    # ------------------------------------------------------------------ the loop
    def _process(self, batch: Batch, predict: bool, learn: bool) -> Predictions | None:
        n = len(batch)
        votes = self._votes
        if not learn:
            return self._segment(batch, predict=True, learn=False, votes=votes)
        changes = self.clustering.update_many(batch.label_indptr, batch.label_ids)
        # Where to cut: a new label is placed before its instance, a checkpoint after it.
        cuts: dict[int, list[Change]] = {}
        for c in changes:
            pos = c.instance - self._seen + (0 if c.kind == "new_labels" else 1)
            cuts.setdefault(pos, []).append(c)
        parts: list[Predictions] = []
        start = 0
        points = sorted({*cuts, n})
        while points:
            pos = points.pop(0)
            while start < pos:
                # a handover is decided at the end of a segment, where a window ends
                stop = min(pos, start + self._rows_to_handover())
                whole = start == 0 and stop == n
                parts.append(self._segment(
                    batch if whole else batch.slice(start, stop), predict, learn,
                    None if votes is None else votes if whole else votes.slice(start, stop)))
                start = stop
            if pos in cuts:
                self._apply(cuts[pos])
                # Before routing starts, the instance that brings a new label is a segment of
                # its own: once it is learned the label's cluster may start routing, and the
                # next instance must see that as it would, predicted on its own.
                if (pos < n and pos + 1 not in points and not self._routing()
                        and any(c.kind == "new_labels" for c in cuts[pos])):
                    points.insert(0, pos + 1)
        if not predict:
            return None
        return Predictions.concat(parts)

    def _routing(self) -> bool:
        """Whether the meta tree routes now: in homer mode, once ``route_from`` trees answer
        for labels that have been learned. Before that (one cluster) the one tree learns and
        scores every instance, as in flat mode, while the meta tree learns alongside, so that
        it routes warm from the first split. A label counts from the instance after the one
        that brought it, so that an instance is answered alike whether it is predicted on its
        own or with the one that learns it (which places the new label first)."""
        if self.mode != "homer" or self._meta is None:
            return False
        if self.route_from <= 1 or self._labelsets is None:
            return True
        known = self._label_n[: len(self._owner)] > 0
        count = 0
        for m in self._members.values():
            if m.labels and known[np.asarray(m.labels, np.int64)].any():
                count += 1
                if count >= self.route_from:
                    return True
        return False

    def _rows_to_handover(self) -> int:
        """Rows until the next handover decision (the end of a window, or ``handover_max``):
        segments end there, so that the new owner answers from the very next instance in any
        batching."""
        rows = [min(self.handover_min - m.win_n, self.handover_max - m.n_cmp)
                for m in self._members.values() if m.pending]
        return max(1, min(rows)) if rows and self.handover else 2**62

    def _share_memory(self) -> None:
        """Split what is left of ``max_bytes`` among the trees, in proportion to what they hold.

        Called before every segment, so that the trees together stay within the budget while
        they run their own loops: each may grow by its share of the free bytes, and a tree that
        reaches its share stops taking new features at its leaves (MLHAT's memory rule). When
        the trees hold more than the budget (a restructure created trees or widened the meta
        tree's rows), each is cut back to its proportional part, dropping its least used
        statistics rows. The share follows the size a tree reached, which is where its features
        and labels are: on debtags (598 labels, 65,536 hashed features) the meta tree, which
        sees every instance, holds most of it.
        """
        if self.max_bytes is None:
            return
        trees = [m.tree for m in self._members.values()]
        if self._meta is not None:
            trees.append(self._meta)
        room = self.max_bytes - self.clustering.memory_bytes - self._owner.nbytes
        held = [t.memory_bytes for t in trees]
        total = sum(held)
        if total > room:  # new trees or wider meta rows since the last call: every tree gives
            for t, h in zip(trees, held, strict=True):
                t.share_memory(h * room // total)
            held = [t.memory_bytes for t in trees]
            total = sum(held)
            if total > room and not self._over_budget:
                # a tree's nodes, labels and feature arrays are not cut: a budget below them
                # cannot hold, and the trees have given up their statistics rows meanwhile
                self._over_budget = True
                warnings.warn(
                    f"IHOMER: max_bytes={self.max_bytes:,} cannot hold: its {len(trees)} trees "
                    f"and the clustering hold {total + self.max_bytes - room:,} bytes after the "
                    f"trees gave back the statistics they could (a tree's nodes and label "
                    f"arrays are not cut; the trees split less meanwhile); raise max_bytes",
                    stacklevel=4)
        free = max(0, room - total)
        for t, h in zip(trees, held, strict=True):
            t.share_memory(h + free * h // max(total, 1))

    def _segment(self, seg: Batch, predict: bool, learn: bool,
                 votes: Votes | None = None) -> Predictions:
        """Run every tree over a segment with a fixed partition; return the union (decoded
        over all labels, from probabilities mixed with ``votes``, the segment's rows')."""
        n = len(seg)
        if learn:
            self._share_memory()
        rows_all = np.arange(n, dtype=np.int64)
        out_rows, out_ids, out_sc = [], [], []
        member_preds: dict[int, tuple[Predictions, np.ndarray]] = {}
        # the probabilities every answer came from, for the decoder over all labels
        scored = predict and self._labelsets is not None
        member_dense: dict[int, np.ndarray] = {}
        gate = None
        homer = self._routing()
        if not homer and learn and self.mode == "homer" and self._meta is not None:
            self._route(seg, False, True)  # not routing yet: the meta tree learns all the same
        if homer:
            meta_dense: list[np.ndarray] | None = [] if scored else None
            active_pred, active_true = self._route(seg, predict, learn, meta_dense)
            column = self._meta_column()
            if meta_dense:
                gate = meta_dense[0]
        n_events = len(self.events)
        for key in sorted(self._members):
            m = self._members[key]
            if not m.labels:
                continue
            if m.tree.n_features < len(self.feature_vocab):
                self._sync(m.tree, m.labels)
            lind, lids = restrict_labels(seg.label_indptr, seg.label_ids, m.local_of)
            mb = Batch(seg.indptr, seg.indices, seg.values, lind, lids)
            learned_before = m.tree.n_learned
            pred: Predictions | None  # None: the tree answered no row
            if homer and scored:
                j = column[key]
                pred, rows, member_dense[key] = self._run_scored(
                    m.tree, mb, active_pred[:, j], active_true[:, j] if learn else None)
            elif homer:
                j = column[key]
                pred, rows = self._run_routed(m.tree, mb, active_pred[:, j] if predict else None,
                                              active_true[:, j] if learn else None)
            else:
                tmp: list[np.ndarray] | None = [] if scored else None
                pred, rows = self._run(m.tree, mb, predict, learn, tmp), rows_all
                if tmp:
                    member_dense[key] = tmp[0]
            if learn:
                self._track_drift(m, learned_before, active_true[:, column[key]] if homer
                                  else None)
            if pred is None:
                continue
            member_preds[key] = (pred, rows)
            cap = len(pred.label_ids)
            r = np.empty(cap, np.int64)
            g = np.empty(cap, INDEX_DTYPE)
            s = np.empty(cap, VALUE_DTYPE)
            scores = pred.scores if pred.scores is not None else np.ones(cap)
            k = owned_predictions(pred.indptr, pred.label_ids, scores,
                                  np.asarray(m.labels, np.int64), self._owner, key, rows,
                                  r, g, s, 0)
            out_rows.append(r[:k])
            out_ids.append(g[:k])
            out_sc.append(s[:k])
        # the trees' drift events of this segment, in the order they happened
        self.events[n_events:] = sorted(self.events[n_events:], key=lambda e: e["instance"])
        self._seen += n if learn else 0
        if not predict:
            return Predictions(np.zeros(n + 1, PTR_DTYPE), np.zeros(0, INDEX_DTYPE))
        result = _unlearned_out(_assemble(n, out_rows, out_ids, out_sc), seg, learn,
                                self._label_n[: self._n_labels] > 0)
        answer = result
        if scored:  # with the owners the rows were answered by (a handover may change them)
            answer = self._decode(seg, result, learn, gate, member_dense, votes)
        if self.handover and learn:
            self._account(seg, result, member_preds)
        if learn:
            self._label_n[: self._n_labels] += np.bincount(seg.label_ids,
                                                           minlength=self._n_labels)
            self._n_empty += int(np.count_nonzero(np.diff(seg.label_indptr) == 0))
        return answer

    def _decode(self, seg: Batch, answer: Predictions, learn: bool, gate: np.ndarray | None,
                member_dense: dict[int, np.ndarray], votes: Votes | None = None) -> Predictions:
        """The ``decode`` step over all labels: each row's answer, or the seen label set (or
        expected-F1 set) that is most likely under P(cluster) P(label | cluster), as rated.

        ``member_dense``: every member tree's probabilities of its labels on every row (in
        homer mode P(label | cluster), from a tree that learned only its cluster's instances,
        times ``gate``, the meta tree's P(cluster)).
        """
        table = self._labelsets
        assert table is not None
        n, n_labels = len(seg), self._n_labels
        column = self._meta_column() if gate is not None else {}
        known = self._label_n[:n_labels] > 0  # labels learned before the segment
        # each member's owned labels (global ids, and the mask over its local ones)
        owned = []
        for key, m in self._members.items():
            labels = np.asarray(m.labels, np.int64)
            if len(labels) and key in member_dense:
                own = self._owner[labels] == key
                owned.append((key, labels[own], own))
        parts: list[Predictions] = []
        for a in range(0, n, _DECODE_CHUNK):
            b = min(a + _DECODE_CHUNK, n)
            part = seg if b - a == n else seg.slice(a, b)
            truth = (part.label_indptr, part.label_ids)
            probs = np.zeros((b - a, n_labels))
            for key, glab, own in owned:
                cols = member_dense[key][a:b][:, own]
                if key in column:
                    cols = cols * gate[a:b, column[key], None]  # type: ignore[index]
                probs[:, glab] = cols
            # a label not learned yet scores 0 (its tree is fresh): while learning, up to and
            # including the chunk's first row that carries it
            unseen = np.flatnonzero(~known)
            if learn and len(unseen):
                first = _first_rows(part, n_labels)
                before = np.arange(b - a)[:, None] <= first[None, unseen]
                probs[:, unseen] = np.where(before, 0.0, probs[:, unseen])
                known[part.label_ids] = True
            else:
                probs[:, unseen] = 0.0
            p0 = (self._threshold_answer(probs, seg, a, learn)
                  if self.first_rival == "threshold" else answer.slice(a, b))
            if votes is not None:
                votes.slice(a, b).mix(probs, truth if learn else None)
            if learn:
                avail = table.observe(*truth)
                parts.append(table.decode(probs, p0, avail, truth))
            else:
                parts.append(table.decode(probs, p0))
        return Predictions.concat(parts)

    def _threshold_answer(self, probs: np.ndarray, seg: Batch, a: int, learn: bool
                          ) -> Predictions:
        """Rows ``a`` to ``a + len(probs)`` of ``seg``: every label whose probability reaches
        0.5, or, when none does, the top one if its probability beats the rate of empty label
        sets among the instances learned before the row (MLHAT's ``nonempty`` rule); learning
        (``learn``), the segment's rows are counted already (:attr:`_seen`), not yet in
        :attr:`_n_empty`."""
        rows = len(probs)
        if learn:
            empty = np.diff(seg.label_indptr) == 0
            before = np.concatenate([[0], np.cumsum(empty)])[a:a + rows]
            n_before = self._seen - len(seg) + a + np.arange(rows)
            e_before = self._n_empty + before
        else:
            n_before = np.full(rows, self._seen)
            e_before = np.full(rows, self._n_empty)
        on = probs >= 0.5
        if probs.shape[1]:
            top = probs.argmax(axis=1)
            best = probs[np.arange(rows), top]
            add = ~on.any(axis=1) & (best > 0.0) & (best * np.maximum(n_before, 1) > e_before)
            on[np.flatnonzero(add), top[add]] = True
        r, c = np.nonzero(on)
        indptr = np.zeros(rows + 1, PTR_DTYPE)
        np.cumsum(np.bincount(r, minlength=rows), out=indptr[1:])
        return Predictions(indptr, c.astype(INDEX_DTYPE), probs[r, c])

    @staticmethod
    def _run(tree: MLHAT, mb: Batch, predict: bool, learn: bool,
             dense: list[np.ndarray] | None = None) -> Predictions | None:
        """Run one tree; with ``dense``, also collect the probabilities its answers came
        from."""
        if dense is not None and predict:
            pred, d = tree.test_then_train_scored(mb) if learn else tree.predict_scored(mb)
            dense.append(d)
            return pred
        if predict and learn:
            return tree.test_then_train_many(mb)
        if learn:
            tree.learn_many(mb)
            return None
        return tree.predict_many(mb)

    def _route(self, seg: Batch, predict: bool, learn: bool,
               dense: list[np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Meta tree step: (predicted active clusters, truly active clusters), row by column;
        ``dense`` collects the meta tree's probabilities."""
        assert self._meta is not None
        n, k = len(seg), len(self._meta_keys)
        # A row's meta-labels: the members with a label of the row (during a handover an old
        # member and a new one share labels, so each column is read through its own member).
        truth = np.zeros((n, k), np.bool_)
        for j, key in enumerate(self._meta_keys):
            if key is not None and key in self._members:
                lind, _ = restrict_labels(seg.label_indptr, seg.label_ids,
                                          self._members[key].local_of)
                truth[:, j] = np.diff(lind) > 0
        rows, cols = np.nonzero(truth)
        mind = np.zeros(n + 1, PTR_DTYPE)
        np.cumsum(np.bincount(rows, minlength=n), out=mind[1:])
        mb = Batch(seg.indptr, seg.indices, seg.values, mind, cols.astype(INDEX_DTYPE))
        pred = self._run(self._meta, mb, predict, learn, dense)
        active = (dense_rows(pred.indptr, pred.label_ids, n, k, np.arange(n, dtype=np.int64))
                  if pred is not None else np.zeros((n, k), np.bool_))
        return active, truth

    def _run_routed(self, tree: MLHAT, mb: Batch, pred_mask: np.ndarray | None,
                    learn_mask: np.ndarray | None) -> tuple[Predictions | None, np.ndarray]:
        """Feed a tree only the rows routed to it, in stream order (no decoder over all labels
        needs its probabilities).

        Row flags: predict (meta says active), learn (truly active), or both; consecutive rows
        with the same flag go to the tree in one call.
        """
        n = len(mb)
        p = pred_mask if pred_mask is not None else np.zeros(n, np.bool_)
        lm = learn_mask if learn_mask is not None else np.zeros(n, np.bool_)
        flag = p.astype(np.int8) + 2 * lm.astype(np.int8)
        rows = np.flatnonzero(flag)
        preds: list[Predictions] = []
        pred_rows: list[np.ndarray] = []
        start = 0
        while start < len(rows):
            f = flag[rows[start]]
            stop = start + 1
            while stop < len(rows) and flag[rows[stop]] == f:
                stop += 1
            chunk = rows[start:stop]
            out = self._run(tree, mb.take(chunk), bool(f & 1), bool(f & 2))
            if out is not None:
                preds.append(out)
                pred_rows.append(chunk)
            start = stop
        if pred_mask is None:
            return None, rows
        if not preds:
            return Predictions(np.zeros(1, PTR_DTYPE), np.zeros(0, INDEX_DTYPE),
                               np.zeros(0)), np.zeros(0, np.int64)
        return Predictions.concat(preds), np.concatenate(pred_rows)

    @staticmethod
    def _run_scored(tree: MLHAT, mb: Batch, pred_mask: np.ndarray,
                    learn_mask: np.ndarray | None,
                    ) -> tuple[Predictions, np.ndarray, np.ndarray]:
        """A tree of a homer hierarchy under the decoder over all labels: it learns only the
        rows routed to it (``learn_mask``, its cluster's instances) but scores every row, in
        stream order, so that each label's probability is P(cluster) P(label | cluster) from
        the trees themselves, not a prior where the meta tree did not route a row. Returns the
        answers of the rows the meta tree routed to it (``pred_mask``), those rows, and the
        probabilities of every row."""
        if learn_mask is None:
            pred, dense = tree.predict_scored(mb)
        else:
            pred, dense = tree.test_then_train_scored(mb, learn_mask)
        rows = np.flatnonzero(pred_mask)
        return pred.take(rows), rows, dense

    def _account(self, seg: Batch, final: Predictions,
                 member_preds: dict[int, tuple[Predictions, np.ndarray]]) -> None:
        """Handover: compare new trees with the answering old ones on the pending labels."""
        n = len(seg)
        rows = np.arange(n, dtype=np.int64)
        for key, m in list(self._members.items()):
            if not m.pending:
                continue
            pend = np.asarray(sorted(m.pending), np.int64)
            width = int(max(pend.max() + 1, 1))
            truth = dense_rows(seg.label_indptr, seg.label_ids, n, width, rows)[:, pend]
            old = dense_rows(final.indptr, final.label_ids, n, width, rows)[:, pend]
            # a row the new tree was not asked about (homer mode: not routed to it) counts
            # as its empty answer
            pred, prow = member_preds.get(key, (Predictions(np.zeros(1, PTR_DTYPE),
                                                            np.zeros(0, INDEX_DTYPE)),
                                                np.zeros(0, np.int64)))
            loc = m.local_of[pend]
            mine = dense_rows(pred.indptr, pred.label_ids, n, len(m.labels), prow)[:, loc]
            e_new = np.count_nonzero(mine != truth, axis=1)
            e_old = np.count_nonzero(old != truth, axis=1)
            # Windows of handover_min instances: the new tree takes over at the end of the
            # first window in which it made fewer errors than the old one. A fresh window
            # each time, so that its first, cold instances do not count against it forever.
            # A tie is no evidence: a projected tree whose leaves mix their models per label
            # answers its labels exactly as the tree it came from, and handing over on a tie
            # gave them, after a few hundred instances, to trees that then did worse (bibtex
            # at instance 3,300: 0.031 micro F1 below the model without that restructure).
            won, i = False, 0
            while i < n and not won:
                take = min(n - i, self.handover_min - m.win_n)
                m.err_new += int(e_new[i:i + take].sum())
                m.err_old += int(e_old[i:i + take].sum())
                m.win_n += take
                m.n_cmp += take
                i += take
                if m.win_n >= self.handover_min:
                    won = m.err_new < m.err_old
                    if not won:
                        m.err_new = m.err_old = m.win_n = 0
            if won or m.n_cmp >= self.handover_max:
                self._owner[pend] = key
                self.n_handovers += 1
                self.events.append({
                    "instance": self._seen - 1, "kind": "handover",
                    "detail": f"{len(pend)} labels after {m.n_cmp} instances (errors in the "
                              f"last window: new {m.err_new}, old {m.err_old})"})
                m.pending.clear()
        self._drop_idle()

    def _track_drift(self, m: _Member, learned_before: int,
                     learned: np.ndarray | None) -> None:
        """Record the alternates ``m``'s tree started or swapped in over a segment, each
        stamped with the instance whose learning did it: ``learned`` flags the segment's rows
        the tree learned (None: all of them), and it had learned ``learned_before`` instances
        before them. Beyond the tree's log (16 a segment) the rest join the last event of their
        kind."""
        alt = m.tree.alternates
        log = m.tree.take_alternate_log()
        if not log and alt["created"] == m.drifts and alt["swapped"] == m.swaps:
            return
        rows = None if learned is None else np.flatnonzero(learned)

        def instance(n: int) -> int:
            k = n - learned_before - 1
            if k < 0 or (rows is not None and k >= len(rows)):
                return self._seen
            return self._seen + (k if rows is None else int(rows[k]))

        for what, kind, total, seen in (("started", "drift", alt["created"], m.drifts),
                                        ("swapped", "alternate_swap", alt["swapped"], m.swaps)):
            at = [n for w, n in log if w == what] or ([learned_before + 1] if total > seen else [])
            for i, n in enumerate(at):
                count = total - seen - i if i == len(at) - 1 else 1
                detail = (f"cluster {m.cluster}: {count} alternate(s) started" if kind == "drift"
                          else f"cluster {m.cluster}: {count}")
                self.events.append({"instance": instance(n), "kind": kind, "detail": detail})
        m.drifts, m.swaps = alt["created"], alt["swapped"]

    # ------------------------------------------------------------------ hooks
    def _learn_batch(self, batch: Batch) -> None:
        # the decoder over all labels rates itself, and a handover compares old and new
        # trees, on every learned instance, so learning predicts too (learn_many after
        # predict_many is test_then_train_many)
        self._process(batch, predict=self._labelsets is not None or self.handover, learn=True)

    def _test_then_train_batch(self, batch: Batch) -> Predictions:
        out = self._process(batch, predict=True, learn=True)
        assert out is not None
        return out

    def _predict_batch(self, batch: Batch) -> Predictions:
        out = self._process(batch, predict=True, learn=False)
        assert out is not None
        return out

    def _scores_batch(self, batch: Batch) -> np.ndarray:
        out = np.zeros((len(batch), self.n_labels))
        gate = None
        column = self._meta_column()
        if self._routing() and self._meta_keys:
            gate = self._meta.predict_proba_many(batch)  # type: ignore[union-attr]
        for key, m in self._members.items():
            if not m.labels:
                continue
            s = m.tree.predict_proba_many(batch)
            labels = np.asarray(m.labels, np.int64)
            own = self._owner[labels] == key
            cols = s[:, : len(labels)][:, own]
            if gate is not None and key in column:
                cols = cols * gate[:, [column[key]]]
            out[:, labels[own]] = cols
        return out

    # ------------------------------------------------------------------ checkpoints
    _MEMBER_INTS = ("since", "err_new", "err_old", "n_cmp", "win_n", "swaps", "drifts")

    def state_dict(self) -> dict[str, Any]:
        """The whole hierarchy as JSON values and NumPy arrays: vocabularies, parameters, the
        clustering, every tree (clusters, retired ones still answering, the meta tree) and the
        bookkeeping between them. It opts iHOMER in to the safe (pickle-free) checkpoint format
        of :mod:`ihomer.connectors.checkpoint`.
        """
        return {
            **super().state_dict(),
            "params": {**self._get_params(), "tree": dict(self.tree)},
            "clustering": self.clustering.state_dict(),
            "partition": [[cid, list(labs)] for cid, labs in self._partition.items()],
            "members": [{"key": m.key, "cluster": m.cluster, "labels": list(m.labels),
                         "local_of": m.local_of.copy(), "pending": sorted(m.pending),
                         "origin": m.origin, "tree": _tree_state(m.tree),
                         **{k: getattr(m, k) for k in self._MEMBER_INTS}}
                        for m in self._members.values()],
            "next_key": self._next_key,
            "owner": self._owner.copy(),
            "seen": self._seen,
            "meta": None if self._meta is None else _tree_state(self._meta),
            "meta_keys": list(self._meta_keys),
            "events": [dict(e) for e in self.events],
            "n_restructures": self.n_restructures,
            "n_handovers": self.n_handovers,
            "labelsets": None if self._labelsets is None else self._labelsets.state_dict(),
            "label_n": self._label_n.copy(),
            "n_empty": self._n_empty,
        }

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> IHOMER:
        """The hierarchy :meth:`state_dict` described; it predicts and learns exactly as the
        original would have."""
        # a state saved before the no-change answer, the decoder over all labels, the
        # neighbours' vote, the label-set prior, the one-cluster rule or the threshold as the
        # decoder's first rival existed continues without them
        model = cls(**{"no_change": False, "decode": "clusters", "vote_weight": 0.0,
                       "labelset_prior": 0.0, "route_from": 1, "first_rival": "union",
                       **state["params"]})
        model._load_vocabularies(state)
        model.clustering = LabelClustering.from_state_dict(state["clustering"])
        model._partition = {int(cid): tuple(int(g) for g in labs)
                            for cid, labs in state["partition"]}
        model._members = {}
        for d in state["members"]:
            m = _Member(int(d["key"]), None if d["cluster"] is None else int(d["cluster"]),
                        model._adopt(MLHAT.from_state_dict(d["tree"])),
                        [int(g) for g in d["labels"]],
                        np.array(d["local_of"], dtype=np.int64),
                        pending={int(g) for g in d["pending"]},
                        origin=None if d["origin"] is None else int(d["origin"]),
                        **{k: int(d.get(k, 0)) for k in cls._MEMBER_INTS})
            model._members[m.key] = m
        model._next_key = int(state["next_key"])
        model._owner = np.array(state["owner"], dtype=np.int64)
        model._seen = int(state["seen"])
        model._meta = (None if state["meta"] is None
                       else model._adopt(MLHAT.from_state_dict(state["meta"])))
        model._meta_keys = [None if k is None else int(k) for k in state["meta_keys"]]
        model.events = [dict(e) for e in state["events"]]
        model.n_restructures = int(state["n_restructures"])
        model.n_handovers = int(state["n_handovers"])
        if state.get("labelsets") is not None:
            model._labelsets = SeenLabelsets.from_state_dict(state["labelsets"])
        model._n_empty = int(state.get("n_empty", 0))
        model._label_n = np.zeros(len(model._owner), np.int64)
        if "label_n" in state:
            label_n = np.asarray(state["label_n"], np.int64)
            model._label_n[: len(label_n)] = label_n
        return model

    # ------------------------------------------------------------------ inspection
    @property
    def n_clusters(self) -> int:
        return sum(1 for m in self._members.values() if m.cluster is not None)

    def clusters(self) -> list[list[Any]]:
        """The current clusters as lists of label names."""
        names = self.label_vocab.names
        return [[names[g] for g in sorted(m.labels)] for m in
                sorted(self._members.values(), key=lambda m: m.key) if m.cluster is not None]

    @property
    def memory_bytes(self) -> int:
        trees = sum(m.tree.memory_bytes for m in self._members.values())
        meta = self._meta.memory_bytes if self._meta is not None else 0
        return trees + meta + self.clustering.memory_bytes + self._owner.nbytes

    def summary(self) -> dict[str, Any]:
        sizes = sorted((len(m.labels) for m in self._members.values() if m.cluster is not None),
                       reverse=True)
        return {
            "mode": self.mode,
            "n_clusters": self.n_clusters,
            "cluster_sizes": sizes,
            "trees_alive": len(self._members),
            "restructures": self.n_restructures,
            "handovers": self.n_handovers,
            "drifts": sum(1 for e in self.events if e["kind"] == "drift"),
            "alternate_swaps": sum(1 for e in self.events if e["kind"] == "alternate_swap"),
            "n_nodes": sum(m.tree.n_nodes for m in self._members.values()),
            "memory_bytes": self.memory_bytes,
            "clustering_memory_bytes": self.clustering.memory_bytes,
        }

    def params(self) -> dict[str, Any]:
        out = super().params()
        out["tree"] = dict(self.tree)
        return out


def _tree_state(tree: MLHAT) -> dict[str, Any]:
    """A member's state without the feature names, which are the hierarchy's (saved once)."""
    return {**tree.state_dict(), "feature_names": []}


def _mix(seed: int, x: int) -> int:
    """SplitMix64 of ``seed`` and ``x``: a fixed, process-independent pseudo-random key."""
    z = (x + (seed + 1) * 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    return z ^ (z >> 31)


def _first_rows(rows: Batch, n_labels: int) -> np.ndarray:
    """Each label's first row among ``rows`` that carries it (``len(rows)`` where none does)."""
    n = len(rows)
    first = np.full(n_labels, n)
    row_of = np.repeat(np.arange(n), np.diff(rows.label_indptr))
    np.minimum.at(first, np.asarray(rows.label_ids, np.int64), row_of)
    return first


def _unlearned_out(pred: Predictions, seg: Batch, learn: bool, known: np.ndarray
                   ) -> Predictions:
    """``pred`` without the labels not learned yet (``~known``), on every row up to and
    including the segment's first that carries the label when it is learned (``learn``), on
    every row otherwise. A label is placed in its cluster's tree before the instance that
    brings it, and a fresh column may score above the threshold: answering it would give the
    instance its own new label, which the same instance predicted on its own cannot have."""
    if known.all():
        return pred
    n = len(seg)
    first = _first_rows(seg, len(known)) if learn else np.full(len(known), n)
    rows = np.repeat(np.arange(n), np.diff(pred.indptr))
    ids = np.asarray(pred.label_ids, np.int64)
    drop = ~known[ids] & (rows <= first[ids])
    if not drop.any():
        return pred
    keep = ~drop
    indptr = np.zeros(n + 1, PTR_DTYPE)
    np.cumsum(np.bincount(rows[keep], minlength=n), out=indptr[1:])
    return Predictions(indptr, pred.label_ids[keep],
                       None if pred.scores is None else pred.scores[keep])


def _assemble(n: int, rows: list[np.ndarray], ids: list[np.ndarray],
              scores: list[np.ndarray]) -> Predictions:
    """(row, label, score) triples from every tree -> one CSR prediction, sorted per row."""
    if not rows:
        return Predictions(np.zeros(n + 1, PTR_DTYPE), np.zeros(0, INDEX_DTYPE), np.zeros(0))
    r = np.concatenate(rows)
    g = np.concatenate(ids)
    s = np.concatenate(scores)
    order = np.lexsort((g, r))
    indptr = np.zeros(n + 1, PTR_DTYPE)
    np.cumsum(np.bincount(r, minlength=n), out=indptr[1:])
    return Predictions(indptr, g[order].astype(INDEX_DTYPE), s[order])
