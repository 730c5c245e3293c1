"""Multi-label Hoeffding adaptive tree (MLHAT) over flat arrays and numba kernels."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ihomer.learners.base import (
    MultiLabelLearner,
    Predictions,
    Vocabulary,
    check_flag,
    check_range,
    check_seed,
)
from ihomer.learners.decoding import LABELSET_PRIOR, NoChange, SeenLabelsets, check_vote_weight
from ihomer.learners.mlhat import kernels as K
from ihomer.learners.mlhat.state import (
    C_ALT_LIVE,
    C_ALT_NEW,
    C_ALT_PRUNE,
    C_ALT_SWAP,
    C_DEACT,
    C_INACTIVE,
    C_L,
    C_LOG,
    C_LOG_N,
    C_LUSED,
    C_NEED_ROWS,
    C_NLIMIT,
    C_NUSED,
    C_RLIMIT,
    C_ROOT,
    C_RUSED,
    C_SEEN,
    C_SPLITS,
    LABEL_FIELDS,
    LABELSET_SLOTS,
    LOG_STARTED,
    LOG_SWAPPED,
    MODEL_NAMES,
    N_COUNTERS,
    N_LV,
    N_PARAMS,
    ND_LEAF,
    ND_LEFT,
    ND_RIGHT,
    P_ADWIN_DELTA,
    P_ALPHA,
    P_DELTA,
    P_DWIN,
    P_FADE,
    P_GRACE,
    P_LOSS,
    P_LR,
    P_LR2,
    P_MAXDEPTH,
    P_MEM_PERIOD,
    P_MIX,
    P_NONEMPTY,
    P_NTHR,
    P_POISSON,
    P_SWITCH,
    P_TAU,
    P_THRESH,
    ROW_FIELDS,
    TreeState,
    empty_state,
    grow_features,
    grow_labels,
    grow_nodes,
    grow_rows,
    pool_row_bytes,
    rows_within,
    shrink_rows,
    state_bytes,
    words_for,
)
from ihomer.stream.base import INDEX_DTYPE, PTR_DTYPE, VALUE_DTYPE, Batch

_INITIAL_NODES = 16
_INITIAL_ROWS = 1024
_LOSSES = {"hamming": 0, "f1": 1}
# Parameters added after the first checkpoints, with the value that reproduces the old trees.
_LEGACY_PARAMS = {"model_fading": 1.0, "decode": "threshold", "no_change": False,
                  "vote_weight": 0.0, "leaf_mixing": None, "new_labels": "blank",
                  "labelset_prior": 0.0}
_NEW_LABELS = ("absent", "blank")
_DECODES = ("threshold", "seen", "f1")
# Rows decoded per kernel call: the dense score block is rows x labels.
_DECODE_CHUNK = 1024
_PARAMS = ("grace_period", "delta", "tau", "n_thresholds", "learning_rate",
           "learning_rate_fast", "nb_alpha", "leaf_mixing", "adwin_delta",
           "switch_significance", "drift_window",
           "max_depth", "max_nodes", "max_bytes", "loss", "model_fading", "threshold", "nonempty",
           "decode", "max_labelsets", "labelset_prior", "no_change", "vote_weight", "new_labels",
           "poisson", "seed")


def _copy_columns(s: TreeState, dst: slice, src: slice | np.ndarray) -> None:
    """Copy the label columns ``src`` of every per-label array into ``dst`` (a single source
    column fills a whole ``dst``), in row blocks: no full-size temporary of the row pool."""
    for f in LABEL_FIELDS:
        a = getattr(s, f)
        for i in range(0, len(a), 4096):
            a[i:i + 4096, :, dst] = a[i:i + 4096, :, src]


class MLHAT(MultiLabelLearner):
    """Multi-label Hoeffding adaptive tree.

    A Hoeffding tree whose node impurity is the sum of the binary entropies of the node's labels
    (a vector of Bernoulli variables), with leaf models chosen per leaf by their own
    prequential loss, and ADWIN-driven alternate subtrees for local drift (Esteban et
    al., "Hoeffding adaptive trees for multi-label classification on data streams", KBS 2024;
    the alternate-tree scheme of Bifet and Gavaldà's HAT as in river's
    ``HoeffdingAdaptiveTreeClassifier``).

    Splits. Every ``grace_period`` weight a leaf compares its features: binary ones (every value
    seen so far is 0 or 1) by exact presence counts per label, numeric ones by ``n_thresholds``
    evenly spaced thresholds whose per-label partitions come from one Gaussian per (feature,
    label value). The leaf splits when the best merit beats the second best (or the null split)
    by more than the Hoeffding bound with range ``log2(distinct labelsets at the leaf)`` (1 when
    at most two) and confidence ``delta``, or when the bound falls below ``tau`` times that
    range (a tie).

    Leaf models. Every leaf updates, on every instance, a majority-labelset model, per-label
    naive Bayes and per-label online logistic regression at two step sizes (``learning_rate``
    and ``learning_rate_fast``: one normalised SGD step per instance, the step divided by
    ``1 + ||x||^2`` of the max-abs scaled row), and rates each by its losses on the instances
    it saw *before* learning them: per label (squared error of its probability) and per
    instance (``loss`` below). Each label's probability mixes the models', weighted
    exponentially by their per-label errors (``leaf_mixing``); without mixing the leaf
    predicts with the model of lowest instance loss, like MOA's NBAdaptive. The predicted set
    is every label scoring at least 0.5. ``loss`` picks how models are rated per instance and
    what the drift monitors watch: ``"hamming"`` (the paper's) or ``"f1"`` (example-based F1
    loss, the default).

    Drift. Each node feeds the loss of the prediction it routes to an ADWIN detector
    (confidence ``adwin_delta``); a detected increase at a split node grows an alternate subtree
    that learns in parallel. Once both have seen ``drift_window`` instances, the alternate
    replaces the node's subtree if its mean loss is significantly lower (significance
    ``switch_significance``) and is discarded if significantly higher. Alternates do not grow
    alternates of their own, and predictions use the main tree only.

    Memory. Statistics live in rows, one per (leaf, feature) that occurred at the leaf; when the
    tree would exceed ``max_bytes`` the least promising leaves (seen weight times error, as in
    MOA) drop their rows and keep predicting with their majority labelset; they are reactivated
    when room frees up. ``max_nodes`` caps the node count (no split or alternate beyond it).

    Parameters
    ----------
    grace_period
        Weight a leaf sees between split attempts.
    delta
        Confidence of the Hoeffding test (probability of choosing the wrong split).
    tau
        Tie threshold, relative to the merit's range: split on the best feature once the
        Hoeffding bound is below ``tau`` times the range.
    n_thresholds
        Candidate thresholds per numeric feature.
    learning_rate
        Step size of the leaves' slow logistic regressions (before normalisation by
        ``1 + ||x||^2``).
    learning_rate_fast
        Step size of the leaves' fast logistic regressions (idem).
    nb_alpha
        Laplace prior of naive Bayes counts.
    leaf_mixing
        Rate of the per-label mixture of a leaf's models: each label's probability is the
        models' weighted by ``exp(-leaf_mixing * e)``, ``e`` the model's faded squared error on
        that label above the best model's. ``None``: the leaf's single best model answers for
        every label.
    adwin_delta
        Confidence of the nodes' ADWIN detectors.
    switch_significance
        Significance of the test that swaps in or prunes an alternate subtree.
    drift_window
        Instances both a node and its alternate must see before they are compared.
    max_depth
        No leaf splits below this depth.
    max_nodes
        Most nodes (main tree plus alternates); ``None`` for no bound.
    max_bytes
        Bound on the bytes the tree uses: its node and leaf pools as allocated plus the
        statistics rows in use (the row pool keeps its capacity when leaves are deactivated, so
        :attr:`memory_bytes` may exceed the bound by those free rows); ``None`` for no bound.
        Nodes are bounded by ``max_nodes`` (and indirectly, as a growing node pool leaves
        fewer bytes for rows, so fewer leaves stay active and split).
    loss
        ``"f1"`` or ``"hamming"``: the per-instance loss that rates leaf models and feeds the
        drift monitors.
    model_fading
        Fading factor of the leaf models' prequential losses (per unit of weight): a leaf
        predicts with the model whose faded loss is lowest, so the choice follows the model
        that is best now rather than the one that was best since the leaf was made (1.0: plain
        sums, as MOA's NBAdaptive).
    threshold
        Per-label decision threshold on the chosen leaf model's score.
    nonempty
        When no label reaches 0.5, predict the top-scoring one if its score beats the rate of
        empty label sets learned so far, rather than the empty set (which is always wrong on
        a stream whose label sets are never empty); the per-label threshold stays 0.5.
    decode
        ``"seen"``: answer with the label set, among those learned so far, that is most
        likely under the per-label scores, when that has been the better answer recently
        (see :class:`~ihomer.learners.decoding.SeenLabelsets`); ``"f1"`` (the default): as
        ``"seen"``, and then the top-scoring labels of highest expected example F1 whenever
        that set has been the better answer recently; ``"threshold"``: every label scoring
        at least ``threshold`` (with the ``nonempty`` rule). "Better" is a faded loss that
        weighs exact matches and F1 alike (:func:`~ihomer.learners.decoding.answer_loss`).
    max_labelsets
        Label sets the ``"seen"`` and ``"f1"`` decoders remember at most (the most frequent
        are kept).
    labelset_prior
        Weight of the label-set prior those decoders rate the seen sets with: a set that
        occurs more often than its labels' frequencies would make it, were they independent,
        is preferred (see :mod:`ihomer.learners.decoding`); 0 for none.
    no_change
        Answer with the label set of the last learned instance, or with that of the most
        similar recent one, while it rates better than the tree's answer
        (:class:`~ihomer.learners.decoding.NoChange`).
    vote_weight
        With ``no_change`` and a ``decode`` other than ``"threshold"``: the share of the
        probabilities the decoder chooses from that is the vote of the five most similar of the
        last 200 learned instances (:class:`~ihomer.learners.decoding.Votes`); 0 for none,
        ``"auto"`` (the default) to choose it row by row among 0 to 0.5 by the faded log loss
        each share would have had (:class:`~ihomer.learners.decoding.NoChange`).
    new_labels
        How a label the tree meets after it began learning starts: ``"absent"`` (the default)
        as absent from every instance learned so far, which it was, so that the tree learns
        the same whether the label was declared up front (``bind``) or arrived with the
        stream; ``"blank"`` from nothing, so that its first occurrence switches it on for the
        next instances until enough absences pull it down. ``"absent"`` keeps one more label
        column, never present, that each new label starts as a copy of.
    poisson
        Weight each instance by a Poisson(1) draw (online bagging), from ``seed``.
    seed
        Seed of the Poisson draws; same seed, same stream, same predictions.

    Defaults. ``grace_period=200``, ``delta=1e-7``, ``tau=0.05``, ``adwin_delta=0.002``,
    ``switch_significance=0.05`` and ``drift_window=300`` are river's (and MLHAT's). The others
    were chosen with ``bench/tune_ihomer.py``, exact prequential runs over the 21 datasets of the
    shared suite with a published MLHAT row, by the means of example F1 / micro F1 / subset
    accuracy: 0.6042 / 0.6133 / 0.3972 under the defaults (published MLHAT: 0.555 example F1
    over 22). Every measurement, with the variants not adopted, is in ``bench/TUNING.md``; in
    short:

    * ``loss="f1"``: rated by Hamming loss, leaves on sparse label sets settle on models that
      predict almost nothing, which is Hamming-optimal and useless for F1 (0.505 / 0.532
      against 0.538 / 0.559 example / micro F1 when chosen).
    * ``learning_rate=1``, ``learning_rate_fast=5``, each step divided by ``1 + ||x||^2``:
      dense low-cardinality label sets want small steps and sparse many-label ones large
      steps, and no single rate serves both; ``(1, 5)`` was best on all three means.
    * ``tau`` relative to the merit's range: with an absolute tie threshold no tree on the
      suite ever split; more eager settings lowered the means by about 0.007.
    * ``nonempty=True`` and ``threshold=0.5``: an empty answer is always wrong on a stream
      whose label sets are never empty (+0.018 example F1, +0.012 subset accuracy when
      chosen); ``threshold=0.4`` traded 0.007 subset accuracy for 0.005 F1.
    * ``model_fading=0.99``: a leaf answers with the model that is best now, not the one that
      was best since the leaf was made (+0.003 example and micro F1;
      0.95 to 0.999 within 0.002).
    * ``leaf_mixing=1``: each label mixes the leaf's four models by their errors on it (+0.004
      example F1 and micro F1, +0.003 subset accuracy when chosen).
    * ``decode="f1"``, ``labelset_prior=0.5``, ``no_change=True``, ``vote_weight="auto"``: the
      threshold answer, the most likely seen label set, the set of highest expected F1, the
      last and the nearest learned label sets all compete, each rated by a faded loss that
      weighs exact matches and F1 alike; each part added 0.003 to 0.009 to some mean when it
      was added, and ``"seen"`` keeps 0.004 more subset accuracy for 0.006 less example F1.
    * ``new_labels="absent"``: the tree learns the same whether a label was declared up front
      or arrived with the stream.

    Not a parameter: a label that no learned instance has carried yet answers probability 0.
    A young leaf's models would give it about 0.3 (naive Bayes' smoothed prior, the logistic
    regressions' overshoot), which the expected-F1 decoder could turn into answers the stream
    never produced (13 of 14 labels on yeast's fourth instance); with the rule the means are
    0.6042 / 0.6133 / 0.3972 against 0.6032 / 0.6126 / 0.3981 (2026-12-07).
    * ``poisson=False``: Poisson(1) weights cost a single tree about 0.03 on both F1 means
      (they pay only in an ensemble). ``nb_alpha=1`` and ``n_thresholds=10`` are the usual
      choices, not tuned. ``max_bytes=512 MiB``: no stream of the suite reaches it (imdb ends
      at 63 MiB, delicious with 983 labels at 124 MiB).

    Examples
    --------
    >>> from ihomer.learners.mlhat import MLHAT
    >>> tree = MLHAT(seed=1)
    >>> for i in range(600):
    ...     x = {"a": (i * 7919) % 11 - 5.0, "b": float(i % 2)}
    ...     tree.learn_one(x, ["pos"] if x["a"] > 0 else [])
    >>> tree.predict_one({"a": 3.0, "b": 0.0}), tree.predict_one({"a": -4.0, "b": 1.0})
    ({'pos': True}, {'pos': False})
    >>> print(tree)
    split
        if a <= 0.454545: leaf w=216 model=logistic {}
        if a > 0.454545: leaf w=184 model=logistic {pos}
    """

    jitted = True

    def __init__(
        self,
        grace_period: int = 200,
        delta: float = 1e-7,
        tau: float = 0.05,
        n_thresholds: int = 10,
        learning_rate: float = 1.0,
        learning_rate_fast: float = 5.0,
        nb_alpha: float = 1.0,
        leaf_mixing: float | None = 1.0,
        adwin_delta: float = 0.002,
        switch_significance: float = 0.05,
        drift_window: int = 300,
        max_depth: int = 20,
        max_nodes: int | None = None,
        max_bytes: int | None = 512 * 2**20,
        loss: str = "f1",
        model_fading: float = 0.99,
        threshold: float = 0.5,
        nonempty: bool = True,
        decode: str = "f1",
        max_labelsets: int = 4096,
        labelset_prior: float = LABELSET_PRIOR,
        no_change: bool = True,
        vote_weight: float | str = "auto",
        new_labels: str = "absent",
        poisson: bool = False,
        seed: int = 0,
    ) -> None:
        super().__init__()
        # name, value, low, high, open_low, open_high, optional (None allowed), integer
        for name, value, low, high, open_low, open_high, optional, integer in (
            ("grace_period", grace_period, 1, None, False, False, False, True),
            ("delta", delta, 0.0, 1.0, True, True, False, False),
            ("tau", tau, 0.0, None, False, False, False, False),
            ("n_thresholds", n_thresholds, 1, None, False, False, False, True),
            ("learning_rate", learning_rate, 0.0, None, True, False, False, False),
            ("learning_rate_fast", learning_rate_fast, 0.0, None, True, False, False, False),
            ("nb_alpha", nb_alpha, 0.0, None, True, False, False, False),
            ("leaf_mixing", leaf_mixing, 0.0, None, False, False, True, False),
            ("adwin_delta", adwin_delta, 0.0, 1.0, True, True, False, False),
            ("switch_significance", switch_significance, 0.0, 1.0, True, True, False, False),
            ("drift_window", drift_window, 1, None, False, False, False, True),
            ("max_depth", max_depth, 0, None, False, False, False, True),
            ("max_nodes", max_nodes, 1, None, False, False, True, True),
            ("max_bytes", max_bytes, 0, None, False, False, True, True),
            ("model_fading", model_fading, 0.0, 1.0, True, False, False, False),
            ("threshold", threshold, 0.0, 1.0, True, True, False, False),
            ("max_labelsets", max_labelsets, 1, None, False, False, False, True),
            ("labelset_prior", labelset_prior, 0.0, None, False, False, False, False),
        ):
            check_range(name, value, low, high, open_low=open_low, open_high=open_high,
                        optional=optional, integer=integer)
        check_vote_weight(vote_weight)
        for name, flag in (("nonempty", nonempty), ("no_change", no_change),
                           ("poisson", poisson)):
            check_flag(name, flag)
        check_seed(seed)
        self.grace_period = grace_period
        self.delta = delta
        self.tau = tau
        self.n_thresholds = n_thresholds
        self.learning_rate = learning_rate
        self.learning_rate_fast = learning_rate_fast
        self.nb_alpha = nb_alpha
        self.leaf_mixing = leaf_mixing
        self.adwin_delta = adwin_delta
        self.switch_significance = switch_significance
        self.drift_window = drift_window
        self.max_depth = max_depth
        self.max_nodes = max_nodes
        self.max_bytes = max_bytes
        if loss not in _LOSSES:
            raise ValueError(f"loss must be one of {sorted(_LOSSES)}, not {loss!r}")
        self.loss = loss
        self.model_fading = model_fading
        self.threshold = threshold
        self.nonempty = nonempty
        if decode not in _DECODES:
            raise ValueError(f"decode must be one of {list(_DECODES)}, not {decode!r}")
        self.decode = decode
        self.max_labelsets = max_labelsets
        self.labelset_prior = labelset_prior
        self._labelsets = (None if decode == "threshold" else
                           SeenLabelsets(max_labelsets, model_fading, decode == "f1",
                                         labelset_prior))
        self.no_change = no_change
        self.vote_weight = vote_weight
        self._no_change = NoChange(vote_weight=vote_weight) if no_change else None
        if new_labels not in _NEW_LABELS:
            raise ValueError(f"new_labels must be one of {list(_NEW_LABELS)}, not {new_labels!r}")
        self.new_labels = new_labels
        self.poisson = poisson
        self.seed = seed
        prm = np.zeros(N_PARAMS)
        prm[P_GRACE] = grace_period
        prm[P_DELTA] = delta
        prm[P_TAU] = tau
        prm[P_NTHR] = n_thresholds
        prm[P_LR] = learning_rate
        prm[P_LR2] = learning_rate_fast
        prm[P_ALPHA] = nb_alpha
        prm[P_ADWIN_DELTA] = adwin_delta
        prm[P_SWITCH] = switch_significance
        prm[P_DWIN] = drift_window
        prm[P_MAXDEPTH] = max_depth
        prm[P_POISSON] = 1.0 if poisson else 0.0
        prm[P_MEM_PERIOD] = 10_000
        prm[P_LOSS] = _LOSSES[loss]
        prm[P_NONEMPTY] = 1.0 if nonempty else 0.0
        prm[P_THRESH] = threshold
        prm[P_FADE] = model_fading
        prm[P_MIX] = -1.0 if leaf_mixing is None else leaf_mixing
        self._prm = prm
        self._share_bytes: int | None = None
        self._state = empty_state(_INITIAL_NODES, 0, 1, 0, seed)
        # With new_labels="absent" the state's last label column is a label that is never
        # present: every label that arrives later starts as a copy of it (see _grow_labels).
        self._never = new_labels == "absent"
        self._state.ctr[C_L] = int(self._never)
        self._state.ctr[C_NLIMIT] = np.iinfo(np.int64).max if max_nodes is None else max_nodes
        self._set_row_limit()
        self._state.ctr[C_ROOT] = K.new_leaf_node(self._state, self._prm, 0, 0)

    # ------------------------------------------------------------------ pools
    def _bound(self) -> int | None:
        """The bytes the tree may hold: ``max_bytes`` and any share imposed from outside."""
        bounds = [b for b in (self.max_bytes, self._share_bytes) if b is not None]
        return min(bounds) if bounds else None

    def _fixed_bytes(self, label_cap: int) -> int:
        """Bytes of everything but the row pool and its hash, at ``label_cap`` labels."""
        s = self._state
        per_label = s.lf_lv[:, :, :1].nbytes + s.lb_n[:, :, :1].nbytes
        fixed = sum(getattr(s, f).nbytes for f in s._fields
                    if f not in ROW_FIELDS and f not in ("ht_key", "ht_val"))
        return (fixed + per_label * (label_cap - s.lf_lv.shape[2]) + self._prm.nbytes
                + self._table_bytes())

    def _table_bytes(self) -> int:
        """Bytes of the seen-label-set decoder's table (0 with ``decode="threshold"``)."""
        return 0 if self._labelsets is None else self._labelsets.nbytes

    def _set_row_limit(self) -> None:
        """Rows the memory bound leaves room for, next to everything else the tree holds.

        Rows (with their hash slots) are the only pool that grows with the data at a leaf, so
        the bound is enforced on them: whatever the node and leaf pools and the per-feature
        arrays take is subtracted first. Called again whenever one of those grows.
        """
        s = self._state
        bound = self._bound()
        if bound is None:
            s.ctr[C_RLIMIT] = np.iinfo(np.int64).max
            return
        fixed = self._fixed_bytes(s.lf_lv.shape[2])
        s.ctr[C_RLIMIT] = max(1, rows_within(bound - fixed, s.lf_lv.shape[2]))

    def _fit_rows(self, label_cap: int) -> None:
        """Shrink the row pool so that the tree, at ``label_cap`` labels, fits its bound.

        Keeps 80 % of the rows the bound allows (the least used rows go first, see
        :func:`~ihomer.learners.mlhat.kernels.trim_rows`), so that it does not have to
        shrink again at the next instance.
        """
        bound = self._bound()
        s = self._state
        if bound is None:
            return
        fixed = self._fixed_bytes(label_cap)
        if fixed + len(s.rw_i) * pool_row_bytes(label_cap) + s.ht_key.nbytes + s.ht_val.nbytes \
                <= bound:
            return
        rows = int(0.8 * rows_within(bound - fixed, label_cap))
        K.trim_rows(s, rows)
        K.compact_rows(s)
        self._state = shrink_rows(s, max(rows, int(s.ctr[C_RUSED]), 1))

    def share_memory(self, nbytes: int | None) -> None:
        """Bound the tree's bytes by ``nbytes`` as well as by ``max_bytes`` (``None``: lift it).

        For a learner that holds many trees under one budget (iHOMER), which hands each tree
        its share between calls. A tree above its new bound drops its least used statistics
        rows and releases the room they took.
        """
        self._share_bytes = nbytes
        self._fit_rows(self._state.lf_lv.shape[2])
        self._set_row_limit()

    @property
    def _n_columns(self) -> int:
        """Label columns of the state: the labels, and the one never present."""
        return self._n_labels + self._never

    def _grow_labels(self, n_labels: int) -> None:
        """Room for ``n_labels`` labels; with ``new_labels="absent"`` each new one starts as a
        copy of the column that was never present (a tree bound to the whole label set from
        the start learns the same)."""
        s = self._state
        old = int(s.ctr[C_L])
        need = n_labels + self._never
        cap = s.lf_lv.shape[2]
        if need > cap:
            # exact on the first growth (bind), then by half again: label growth reallocates
            # every row, so it must stay rare, but a power of two would waste up to half of it
            cap = max(need, cap * 3 // 2) if old > 0 else need
            self._fit_rows(cap)  # wider rows: make room first, not after the copy
            self._state = s = grow_labels(self._state, cap)
            self._set_row_limit()
        if self._never and old > 0:
            # the never column, at old - 1, is the first new label's already; copy it to the
            # other new labels and to its own new place, the last
            _copy_columns(s, slice(old, need), slice(old - 1, old))
        s.ctr[C_L] = need

    def _grow_features(self, n_features: int) -> None:
        cap = max(len(self._state.g_bin), 16)
        while cap < n_features:
            cap *= 2
        self._state = grow_features(self._state, cap)
        self._set_row_limit()

    def _grow_for(self) -> None:
        """Grow whichever pool made the kernel stop (doubling)."""
        s = self._state
        need_rows = int(s.ctr[C_NEED_ROWS])
        if need_rows > 0:
            cap = len(s.rw_i)
            new = max(2 * cap, _INITIAL_ROWS, int(s.ctr[C_RUSED]) + need_rows)
            new = int(min(new, max(s.ctr[C_RLIMIT], int(s.ctr[C_RUSED]) + need_rows)))
            self._state = grow_rows(s, new)
        else:
            self._state = grow_nodes(s, 2 * len(s.nd_i))
            self._fit_rows(self._state.lf_lv.shape[2])  # more nodes, less room for rows
            self._set_row_limit()
        self._state.ctr[C_NEED_ROWS] = 0

    # ------------------------------------------------------------------ hooks
    def _run(self, batch: Batch, predict: bool, scores: list[np.ndarray] | None = None,
             learn: np.ndarray | None = None) -> Predictions:
        """Predict (if ``predict``) and learn ``batch`` (only the rows flagged in ``learn``
        when given); ``scores`` collects the probabilities each row was answered from, chunk
        by chunk."""
        table = self._labelsets
        if table is None and scores is None:
            return self._run_kernel(batch, predict, None, learn)
        # Learning alone predicts too: the decoder rates its answers against the threshold's
        # on every learned instance, so learn_many after predict_many is test_then_train_many.
        votes = self._votes if table is not None else None
        parts = []
        for a in range(0, len(batch), _DECODE_CHUNK):
            sub = batch.slice(a, min(a + _DECODE_CHUNK, len(batch)))
            flags = None if learn is None else learn[a:a + len(sub)]
            dense = np.zeros((len(sub), max(self._n_columns, 1)))
            answer = self._run_kernel(sub, True, dense, flags)
            probs = dense[:, : self._n_labels]
            if votes is not None:  # the decoder chooses from the model's and the neighbours'
                votes.slice(a, a + len(sub)).mix(probs, (sub.label_indptr, sub.label_ids),
                                                 flags)
            if scores is not None:
                scores.append(probs)
            if table is not None:
                # the chunk's label sets join the table after its rows were predicted; each
                # row is decoded with the sets learned before it
                avail = table.observe(sub.label_indptr, sub.label_ids, flags)
                answer = table.decode(probs, answer, avail, (sub.label_indptr, sub.label_ids),
                                      flags)
            parts.append(answer)
            self._set_row_limit()
        if not parts:
            return self._run_kernel(batch, predict, None, learn)
        if not predict:
            return Predictions(np.zeros(len(batch) + 1, PTR_DTYPE), np.zeros(0, INDEX_DTYPE))
        return Predictions.concat(parts)

    def _run_kernel(self, batch: Batch, predict: bool, dense: np.ndarray | None,
                    learn: np.ndarray | None = None) -> Predictions:
        n = len(batch)
        flags = np.zeros(0, np.bool_) if learn is None else np.ascontiguousarray(learn, np.bool_)
        L = self._n_columns
        out_ptr = np.zeros(n + 1, PTR_DTYPE)
        out_ids = np.zeros(n * L if predict else 0, INDEX_DTYPE)
        out_sc = np.zeros(n * L if predict else 0, VALUE_DTYPE)
        out_dense = np.zeros((0, 1)) if dense is None else dense
        done = 0
        while True:
            done = K.test_then_train(self._state, self._prm, batch.indptr, batch.indices,
                                     batch.values, batch.label_indptr, batch.label_ids, done,
                                     predict, flags, out_ptr, out_ids, out_sc, out_dense)
            if done < n or self._state.ctr[C_NEED_ROWS] > 0:
                self._grow_for()
            if done >= n:
                break
        return self._answers(out_ptr, out_ids, out_sc)

    def _answers(self, ptr: np.ndarray, ids: np.ndarray, sc: np.ndarray) -> Predictions:
        """The kernel's answers (CSR), without the never-present column (its score is 0, as
        every label's that no learned instance carried, so the kernel never answers it)."""
        m = int(ptr[-1])
        ids, sc = ids[:m], sc[:m]
        keep = ids < self._n_labels
        if keep.all():
            return Predictions(ptr, ids.copy(), sc.copy())
        rows = np.repeat(np.arange(len(ptr) - 1), np.diff(ptr))
        new = np.zeros_like(ptr)
        np.cumsum(np.bincount(rows[keep], minlength=len(ptr) - 1), out=new[1:])
        return Predictions(new, ids[keep], sc[keep])

    def _learn_batch(self, batch: Batch) -> None:
        self._run(batch, False)

    def _test_then_train_batch(self, batch: Batch) -> Predictions:
        return self._run(batch, True)

    def _scores_batch(self, batch: Batch) -> np.ndarray:
        out = np.zeros((len(batch), self._n_columns))
        K.predict_scores(self._state, self._prm, batch.indptr, batch.indices, batch.values, out)
        return out[:, : self._n_labels]

    def _predict_batch(self, batch: Batch) -> Predictions:
        return self._predict_scored(batch, None)

    def _predict_scored(self, batch: Batch, scores: list[np.ndarray] | None) -> Predictions:
        """The decoded answers; ``scores`` collects the probabilities they came from."""
        n = len(batch)
        out_ptr = np.zeros(n + 1, PTR_DTYPE)
        out_ids = np.zeros(n * self._n_columns, INDEX_DTYPE)
        out_sc = np.zeros(n * self._n_columns, VALUE_DTYPE)
        table = self._labelsets
        keep = table is not None or scores is not None
        dense = np.zeros((n if keep else 0, max(self._n_columns, 1)))
        K.predict_csr(self._state, self._prm, batch.indptr, batch.indices, batch.values,
                      out_ptr, out_ids, out_sc, dense)
        answer = self._answers(out_ptr, out_ids, out_sc)
        probs = dense[:, : self._n_labels]
        if table is not None:
            if self._votes is not None:
                self._votes.mix(probs)
            answer = table.decode(probs, answer)
        if scores is not None:
            scores.append(probs)
        return answer

    def test_then_train_scored(self, batch: Batch, learn: np.ndarray | None = None,
                               ) -> tuple[Predictions, np.ndarray]:
        """:meth:`test_then_train_many`, with the ``(n_rows, n_labels)`` probabilities each row
        was answered from (a hierarchy of trees decodes over them all).

        ``learn`` (a flag per row) learns only the flagged rows; every row is still answered,
        in stream order, by the tree as it stood before that row. This is how a tree of a
        hierarchy that learns only the instances routed to it still scores every instance.
        The answer of the last learned instances (``no_change``) would learn every row, so the
        two do not go together.
        """
        batch = self._ensure_batch(batch)
        if learn is not None:
            if self._no_change is not None:
                raise ValueError("test_then_train_scored: a learn mask needs no_change=False")
            if len(learn) != len(batch):
                raise ValueError(f"test_then_train_scored: learn has {len(learn)} flags for "
                                 f"{len(batch)} rows")
        keep: list[np.ndarray] = []
        pred = self._answered(batch, True, lambda b: self._run(b, True, keep, learn))
        return pred, (np.concatenate(keep) if keep else np.zeros((0, self._n_labels)))

    def predict_scored(self, batch: Batch) -> tuple[Predictions, np.ndarray]:
        """:meth:`predict_many`, with the probabilities each row was answered from."""
        batch = self._ensure_batch(batch)
        keep: list[np.ndarray] = []
        pred = self._answered(batch, False, lambda b: self._predict_scored(b, keep))
        return pred, keep[0]

    # ------------------------------------------------------------------ projection
    def project(self, label_ids: Sequence[int], feature_vocab: Vocabulary | None = None) -> MLHAT:
        """A copy of this tree that answers only for ``label_ids`` (ids local to this tree).

        Structure, split tests, drift monitors and alternates are kept; every per-label
        statistic (counts, naive Bayes sums, logistic weights and biases, labelset tables) is
        restricted to the selected labels, in the given order, which become labels
        ``0..len(label_ids)-1`` of the projection. The leaves' model losses and the monitors'
        loss histories were measured on all labels and are kept as they are: they describe
        the subtree's quality until the projection's own instances overwrite them.

        The projection gets a copy of the feature vocabulary, or ``feature_vocab`` itself when
        given (iHOMER's trees share the hierarchy's: a copy is 2.4 MB on debtags).
        """
        sel = self._check_labels(label_ids)
        cols = self._columns(sel)
        new = MLHAT(**{k: getattr(self, k) for k in _PARAMS})
        new.feature_vocab = self.feature_vocab.copy() if feature_vocab is None else feature_vocab
        new.label_vocab.extend(self.label_vocab.names[i] for i in sel)
        s = self._state
        cap = 1
        while cap < max(len(cols), 1):
            cap *= 2
        upd = {}
        for f in s._fields:
            a = getattr(s, f)
            if f in LABEL_FIELDS:
                b = np.zeros((*a.shape[:2], cap), a.dtype)
                b[:, :, : len(cols)] = a[:, :, cols]
                upd[f] = b
            else:
                upd[f] = a.copy()
        upd["lf_lsbits"] = np.zeros((len(s.lf_i), LABELSET_SLOTS, words_for(cap)), np.uint64)
        upd["lf_lscnt"] = np.zeros_like(s.lf_lscnt)
        K.project_labelsets(s.lf_lsbits, s.lf_lscnt, s.lf_i, sel, upd["lf_lsbits"],
                            upd["lf_lscnt"], upd["lf_i"], upd["lf_f"])
        new._state = TreeState(**upd)
        if self._labelsets is not None:
            new._labelsets = self._labelsets.project(sel)
        if self._no_change is not None:
            new._no_change = self._no_change.project(sel)
        new._never = self._never
        new._state.ctr[C_L] = len(cols)
        new._n_labels = len(sel)
        new._n_features = self._n_features
        new._set_row_limit()
        return new

    def keep_labels(self, label_ids: Sequence[int]) -> None:
        """Restrict this tree, in place, to ``label_ids`` (as :meth:`project`, without a copy).

        The kept labels become ``0..len(label_ids)-1`` in the given order; the label capacity
        stays, so labels added later reuse the freed columns without reallocating the rows.
        For a tree too large to hold twice (iHOMER's meta tree on many labels and features).
        """
        sel = self._check_labels(label_ids)
        cols = self._columns(sel)
        s = self._state
        k = len(sel)
        _copy_columns(s, slice(0, len(cols)), cols)
        for f in LABEL_FIELDS:
            getattr(s, f)[:, :, len(cols):] = 0.0
        bits = np.zeros_like(s.lf_lsbits)
        cnt = np.zeros_like(s.lf_lscnt)
        lf_i, lf_f = s.lf_i.copy(), s.lf_f.copy()
        K.project_labelsets(s.lf_lsbits, s.lf_lscnt, s.lf_i, sel, bits, cnt, lf_i, lf_f)
        self._state = s._replace(lf_lsbits=bits, lf_lscnt=cnt, lf_i=lf_i, lf_f=lf_f)
        if self._labelsets is not None:
            self._labelsets = self._labelsets.project(sel)
        if self._no_change is not None:
            self._no_change = self._no_change.project(sel)
        self._state.ctr[C_L] = len(cols)
        self._n_labels = k
        names = self.label_vocab.names
        self.label_vocab = Vocabulary(names[i] for i in sel)

    def copy_label(self, src: int, dst: int) -> None:
        """Make label ``dst`` start from everything the tree learned about label ``src``.

        Counts, naive Bayes sums, logistic weights and biases, and membership in every leaf's
        labelset table are copied; ``dst`` must be a label the tree has not learned yet.
        (iHOMER warm-starts a new cluster's meta-label from the cluster it came from.)
        """
        for i in (src, dst):
            if not 0 <= i < self._n_labels:
                raise ValueError(f"label id {i} is not in [0, {self._n_labels})")
        s = self._state
        _copy_columns(s, slice(dst, dst + 1), slice(src, src + 1))
        bits = s.lf_lsbits
        on = (bits[:, :, src >> 6] >> np.uint64(src & 63)) & np.uint64(1)
        bits[:, :, dst >> 6] &= ~(np.uint64(1) << np.uint64(dst & 63))
        bits[:, :, dst >> 6] |= on << np.uint64(dst & 63)
        if self._labelsets is not None:
            self._labelsets.copy_label(src, dst)
        if self._no_change is not None:
            self._no_change = self._no_change.copy_label(src, dst)

    def _columns(self, sel: np.ndarray) -> np.ndarray:
        """The state's label columns of the labels ``sel``, and the never-present one."""
        return np.append(sel, self._n_labels) if self._never else sel

    def _check_labels(self, label_ids: Sequence[int]) -> np.ndarray:
        sel = np.asarray(label_ids, dtype=np.int64)
        if sel.ndim != 1 or (len(sel) and (sel.min() < 0 or sel.max() >= self._n_labels)):
            raise ValueError(f"label ids must lie in [0, {self._n_labels})")
        if len(np.unique(sel)) != len(sel):
            raise ValueError("label ids must be distinct")
        return sel

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        """Vocabularies, constructor parameters and every state array: the whole model.

        The tree is nothing but NumPy arrays, so it opts in to the safe (pickle-free)
        checkpoint format of :mod:`ihomer.connectors.checkpoint`.
        """
        return {
            **super().state_dict(),
            "params": {k: getattr(self, k) for k in _PARAMS},
            "prm": self._prm.copy(),
            "tree": {f: a.copy() for f, a in zip(self._state._fields, self._state, strict=True)},
            "labelsets": None if self._labelsets is None else self._labelsets.state_dict(),
        }

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> MLHAT:
        """The tree :meth:`state_dict` described; it predicts and learns exactly as the original."""
        # A state written before a parameter existed continues with the behaviour it had then.
        learner = cls(**{**_LEGACY_PARAMS, **state["params"]})
        learner._load_vocabularies(state)
        prm = np.array(state["prm"], dtype=np.float64)
        learner._prm[: len(prm)] = prm
        tree = {f: np.array(state["tree"][f]) for f in TreeState._fields if f in state["tree"]}
        if "lb_n" not in tree:  # from before the label counts: every label counts as learned,
            # but the never-present column, which the labels that arrive later copy
            n = np.ones((1, 1, tree["lf_lv"].shape[2]))
            n[0, 0, len(learner.label_vocab):] = 0.0
            tree["lb_n"] = n
        if len(tree["ctr"]) < N_COUNTERS:  # from before the alternates' log: nothing logged
            tree["ctr"] = np.concatenate(
                [tree["ctr"], np.zeros(N_COUNTERS - len(tree["ctr"]), np.int64)])
        lv = tree["lf_lv"]
        if lv.shape[1] < N_LV:  # from before the per-label errors: they start at zero
            tree["lf_lv"] = np.concatenate(
                [lv, np.zeros((lv.shape[0], N_LV - lv.shape[1], lv.shape[2]))], axis=1)
        learner._state = TreeState(**tree)
        learner._never = int(learner._state.ctr[C_L]) > learner._n_labels
        if state.get("labelsets") is not None:
            learner._labelsets = SeenLabelsets.from_state_dict(state["labelsets"])
        return learner

    # ------------------------------------------------------------------ inspection
    def _main_nodes(self) -> list[tuple[int, int]]:
        """(node, depth) of every node of the main tree, depth first, left before right."""
        s = self._state
        out = []
        stack = [(int(s.ctr[C_ROOT]), 0)]
        while stack:
            n, d = stack.pop()
            out.append((n, d))
            if s.nd_i[n, ND_LEAF] < 0:
                stack.append((int(s.nd_i[n, ND_RIGHT]), d + 1))
                stack.append((int(s.nd_i[n, ND_LEFT]), d + 1))
        return out

    @property
    def n_nodes(self) -> int:
        """Nodes of the main tree (alternate subtrees not counted)."""
        return len(self._main_nodes())

    @property
    def n_leaves(self) -> int:
        return sum(1 for n, _ in self._main_nodes() if self._state.nd_i[n, ND_LEAF] >= 0)

    @property
    def depth(self) -> int:
        """Depth of the main tree (a lone root leaf has depth 0)."""
        return max(d for _, d in self._main_nodes())

    @property
    def n_splits(self) -> int:
        return int(self._state.ctr[C_SPLITS])

    @property
    def leaf_models(self) -> dict[str, int]:
        """How many main-tree leaves currently predict with each model."""
        s = self._state
        out = dict.fromkeys(MODEL_NAMES, 0)
        for n, _ in self._main_nodes():
            lf = int(s.nd_i[n, ND_LEAF])
            if lf >= 0:
                out[MODEL_NAMES[K.leaf_choice(s, lf)]] += 1
        return out

    @property
    def n_learned(self) -> int:
        """Instances the tree has learned (``stats()["instances"]``)."""
        return int(self._state.ctr[C_SEEN])

    def take_alternate_log(self) -> list[tuple[str, int]]:
        """The alternates started and swapped in since the last call, in order:
        ``("started" | "swapped", n)`` with ``n`` the :attr:`n_learned` count of the instance
        whose learning did it (the tree's ``n - 1``-th learned, 0-based). The log is emptied for
        the next call; it keeps 16 entries between calls, and :attr:`alternates` counts the
        rest. A caller that runs the tree over a batch stamps drift events with the instance
        each happened at, not the batch's first.
        """
        c = self._state.ctr
        k = int(c[C_LOG_N])
        kinds = {LOG_STARTED: "started", LOG_SWAPPED: "swapped"}
        out = [(kinds[int(c[C_LOG + 2 * i])], int(c[C_LOG + 2 * i + 1])) for i in range(k)]
        c[C_LOG_N] = 0
        return out

    @property
    def alternates(self) -> dict[str, int]:
        """Alternate subtrees created, swapped in, pruned, and alive now."""
        c = self._state.ctr
        return {"created": int(c[C_ALT_NEW]), "swapped": int(c[C_ALT_SWAP]),
                "pruned": int(c[C_ALT_PRUNE]), "alive": int(c[C_ALT_LIVE])}

    @property
    def memory_bytes(self) -> int:
        """Bytes of every array the tree holds (allocated capacity, not only the used part)."""
        return state_bytes(self._state) + self._prm.nbytes + self._table_bytes()

    def summary(self) -> dict[str, object]:
        """Size, growth, drift and memory figures in one dict (for reports)."""
        c = self._state.ctr
        return {
            "n_nodes": self.n_nodes, "n_leaves": self.n_leaves, "depth": self.depth,
            "n_splits": int(c[C_SPLITS]), "leaf_models": self.leaf_models,
            "alternates": self.alternates, "nodes_in_use": int(c[C_NUSED]),
            "leaves_in_use": int(c[C_LUSED]), "rows_in_use": int(c[C_RUSED]),
            "inactive_leaves": int(c[C_INACTIVE]), "deactivations": int(c[C_DEACT]),
            "instances": int(c[C_SEEN]), "memory_bytes": self.memory_bytes,
        }

    def render(self, max_depth: int | None = None, max_labels: int = 5) -> str:
        """The main tree as indented text, with feature and label names.

        Leaves show the weight they saw, the model they predict with, and the labels of their
        majority labelset (at most ``max_labels``).
        """
        from ihomer.learners.mlhat.inspect import render_tree

        return render_tree(self, max_depth=max_depth, max_labels=max_labels)

    def __str__(self) -> str:
        return self.render()
