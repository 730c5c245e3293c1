"""The learner interface every ihomer learner implements.

Two faces, one model:

* the **river face**, for people embedding a learner in Python code: ``learn_one(x, y)``,
  ``predict_one(x)``, ``predict_proba_one(x)`` with ``x`` a ``{feature: value}`` dict and ``y``
  a ``{label: bool}`` dict (river's multi-output convention) or any iterable of present labels;
* the **array face**, for the evaluator, the Kafka service and anyone holding NumPy data:
  ``learn_many``, ``predict_many`` and ``test_then_train_many`` on a CSR
  :class:`~ihomer.stream.Batch`.

Learners work internally on integer feature and label ids. A :class:`Vocabulary` maps names to
ids and grows when a new name appears, so the label set (and the feature set) may grow while
learning. ``bind(schema)`` pre-fills both vocabularies from a stream's schema so that ids in a
batch and ids in the model agree.

``test_then_train_many`` is the exact prequential protocol in one call: each row is predicted
with the model as it stands and then learned, in order. Learners with jitted kernels override
it to run the whole loop without returning to Python per row.

Batches are checked where they come in, before any of the model changes: their layout
(:meth:`~ihomer.stream.base.Batch.check`), and their feature values:

* a **missing** value (NaN: how the ARFF reader stores ``?``; ``None`` on the river face) is
  left out of its row, so every learner sees the feature as absent, which in this project's
  sparse convention means 0. The learner counts them (``n_missing``) and warns once, naming the
  first one. MOA and river skip a missing value when they update a feature's statistics; the
  kernels here have no "missing" state, and 0 is what a sparse row says of every feature it
  does not list.
* an infinite value, one beyond ±1e100 (:data:`~ihomer.stream.base.MAX_ABS_VALUE`), or one
  that is not a number at all raises a ``ValueError`` naming the row and the feature, and the
  model is left as it was: such a value would turn the statistics it enters into NaNs for
  good, and every answer they give after it.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Iterable, Mapping, Sequence, Set
from dataclasses import dataclass
from decimal import Decimal
from numbers import Integral, Real
from typing import TYPE_CHECKING, Any, Self, SupportsFloat

import numpy as np
from river import base as river_base

from ihomer.stream.base import (
    INDEX_DTYPE,
    MAX_ABS_VALUE,
    MAX_FEATURES,
    MAX_LABELS,
    PTR_DTYPE,
    VALUE_DTYPE,
    Batch,
    Name,
    RowError,
    Schema,
    unusable_value,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from ihomer.learners.decoding import NoChange, Votes

#: A label or feature name: a string or an integer (:func:`checked_name`).
Label = Name
FeatureKey = Label
#: river's ``x``: ``{feature name: value}``; a value is a number, or None for a missing one
Features = Mapping[Any, SupportsFloat | None]
#: river's ``y``: ``{label: bool}``, or the present labels' names
Targets = Mapping[Any, bool] | Iterable[Label]


class Vocabulary:
    """A growing, order-preserving map between names and dense integer ids."""

    def __init__(self, names: Iterable[Any] = ()) -> None:
        self.names: list[Any] = []
        self.ids: dict[Any, int] = {}
        for n in names:
            self.add(n)

    def __len__(self) -> int:
        return len(self.names)

    def __contains__(self, name: object) -> bool:
        return name in self.ids

    def add(self, name: Any) -> int:
        i = self.ids.get(name)
        if i is None:
            name = checked_name(name, "a")
            i = len(self.names)
            self.ids[name] = i
            self.names.append(name)
        return i

    def get(self, name: Any) -> int | None:
        return self.ids.get(name)

    def copy(self) -> Vocabulary:
        """An independent vocabulary with the same names and ids (no per-name work)."""
        out = Vocabulary()
        out.names = list(self.names)
        out.ids = dict(self.ids)
        return out

    def extend(self, names: Iterable[Any]) -> None:
        """Add every name of ``names`` in order (those already present keep their id)."""
        for n in names:
            self.add(n)


@dataclass
class Predictions:
    """Predicted label sets in CSR form, with the score of each predicted label when known."""

    indptr: np.ndarray
    label_ids: np.ndarray
    scores: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.indptr) - 1

    def row(self, i: int) -> np.ndarray:
        return self.label_ids[self.indptr[i] : self.indptr[i + 1]]

    def slice(self, start: int, stop: int) -> Predictions:
        """Rows ``start`` to ``stop`` (exclusive)."""
        a, b = int(self.indptr[start]), int(self.indptr[stop])
        return Predictions(self.indptr[start:stop + 1] - a, self.label_ids[a:b],
                           None if self.scores is None else self.scores[a:b])

    def take(self, rows: np.ndarray) -> Predictions:
        """The rows ``rows`` (increasing indices), in that order."""
        count = np.diff(self.indptr)
        keep = np.zeros(len(self), np.bool_)
        keep[rows] = True
        mask = np.repeat(keep, count)
        indptr = np.zeros(len(rows) + 1, PTR_DTYPE)
        np.cumsum(count[rows], out=indptr[1:])
        return Predictions(indptr, self.label_ids[mask],
                           None if self.scores is None else self.scores[mask])

    @classmethod
    def from_rows(cls, rows: list[np.ndarray],
                  scores: list[np.ndarray] | None = None) -> Predictions:
        indptr = np.zeros(len(rows) + 1, dtype=PTR_DTYPE)
        np.cumsum([len(r) for r in rows], out=indptr[1:])
        ids = np.concatenate(rows).astype(INDEX_DTYPE) if rows else np.zeros(0, INDEX_DTYPE)
        sc = None
        if scores is not None:
            sc = np.concatenate(scores).astype(VALUE_DTYPE) if scores else np.zeros(0)
        return cls(indptr, ids, sc)

    @classmethod
    def concat(cls, parts: list[Predictions]) -> Predictions:
        """The rows of ``parts`` one after the other (scores of 1 where a part has none)."""
        if not parts:
            return cls.from_rows([], [])
        if len(parts) == 1:
            return parts[0]
        indptr = [np.zeros(1, PTR_DTYPE)]
        offset = 0
        for p in parts:
            indptr.append(p.indptr[1:] + offset)
            offset += p.indptr[-1]
        scores = [p.scores if p.scores is not None else np.ones(len(p.label_ids)) for p in parts]
        return cls(np.concatenate(indptr),
                   np.concatenate([p.label_ids for p in parts]).astype(INDEX_DTYPE),
                   np.concatenate(scores) if parts else np.zeros(0))


def checked_name(name: Any, what: str) -> Label:
    """``name`` as a feature or label name: a string or an integer (NumPy's as Python's), what
    a checkpoint stores as JSON; a TypeError for anything else, before it joins a vocabulary
    (a name that could not be saved would otherwise surface at the first checkpoint, hours
    later). A bool is refused too: True and False as names are almost always a 0/1 indicator
    row passed where label names were meant.

    >>> checked_name(np.int64(3), "label")
    3
    >>> checked_name(True, "label")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    TypeError: label name True is a bool: names are strings or integers ...
    """
    if isinstance(name, bool | np.bool_):
        raise TypeError(f"{what} name {name!r} is a bool: names are strings or integers (for "
                        "indicator rows use a {label: bool} dict, or Batch.from_dense)")
    if isinstance(name, str):
        return str(name)
    if isinstance(name, int | np.integer):
        return int(name)
    raise TypeError(f"{what} name {name!r} is a {type(name).__name__}: names are strings or "
                    "integers (a checkpoint stores them as JSON)")


def _is_series(y: object) -> bool:
    return hasattr(y, "index") and hasattr(y, "to_dict") and not isinstance(y, Mapping)


def _labels_from_y(y: Targets) -> list[Label]:
    """The present labels of river's ``y``, names checked (:func:`checked_name`). A set's new
    labels get their ids in sorted order, not in the set's order, which changes from process
    to process with Python's hash seed."""
    if isinstance(y, Mapping):
        for k, v in y.items():
            if not (isinstance(v, bool | np.bool_) or (isinstance(v, Real) and v in (0, 1))):
                raise TypeError(f"y[{k!r}] is {v!r}: a {{label: bool}} dict says True or False "
                                "(or 1/0) of each label")
            checked_name(k, "label")
        return [k for k, v in y.items() if v]
    if isinstance(y, (str, bytes)):
        raise TypeError("y must be a {label: bool} dict or an iterable of labels, not a string")
    if isinstance(y, np.ndarray):
        raise TypeError("y is a NumPy array: give a {label: bool} dict or the present labels' "
                        "names (Batch.from_dense takes indicator rows)")
    if not isinstance(y, Iterable):
        raise TypeError(f"y must be a {{label: bool}} dict or an iterable of labels (an empty "
                        f"one for no label), not {type(y).__name__}")
    names = [checked_name(n, "label") for n in y]
    if isinstance(y, Set):
        names.sort(key=lambda n: (isinstance(n, str), n))
    return names


def check_range(name: str, value: Any, low: float | None = None, high: float | None = None,
                *, open_low: bool = False, open_high: bool = False,
                optional: bool = False, integer: bool = False) -> None:
    """A ValueError naming ``name`` unless ``value`` is a finite number (not a bool; an
    integer when ``integer``) within the bounds (``None``: unbounded; ``open_*``: the bound
    itself excluded), or ``None`` when ``optional``. Constructors call it so that a bad
    parameter fails at once, by name, not as a ZeroDivisionError, an endless loop or NaN
    probabilities at the first instance, nor as a comparison's TypeError naming nothing.

    >>> check_range("delta", 0.0, 0.0, 1.0, open_low=True, open_high=True)
    Traceback (most recent call last):
    ...
    ValueError: delta must be in (0, 1), not 0.0
    >>> check_range("grace_period", 2.5, 1, integer=True)
    Traceback (most recent call last):
    ...
    ValueError: grace_period must be an integer in [1, inf), not 2.5
    """
    if optional and value is None:
        return
    kind = Integral if integer else Real
    ok = (isinstance(value, kind) and not isinstance(value, bool | np.bool_)
          and math.isfinite(value))
    if ok and low is not None:
        ok = value > low if open_low else value >= low
    if ok and high is not None:
        ok = value < high if open_high else value <= high
    if not ok:
        def bound(b: float) -> str:
            return f"{b:,}" if isinstance(b, int) else f"{b:g}"

        left = "(-inf" if low is None else f"{'(' if open_low else '['}{bound(low)}"
        right = "inf)" if high is None else f"{bound(high)}{')' if open_high else ']'}"
        either = "None or " if optional else ""
        what = "an integer in" if integer else "in"
        raise ValueError(f"{name} must be {either}{what} {left}, {right}, not {value!r}")


def check_flag(name: str, value: Any) -> None:
    """A ValueError naming ``name`` unless ``value`` is True or False: a string such as
    ``"false"`` is truthy, and would switch the option on.

    >>> check_flag("no_change", "false")
    Traceback (most recent call last):
    ...
    ValueError: no_change must be True or False, not 'false'
    """
    if not isinstance(value, bool | np.bool_):
        raise ValueError(f"{name} must be True or False, not {value!r}")


def check_seed(value: Any) -> None:
    """A ValueError unless ``value`` is an integer (not a bool), as every learner's ``seed``."""
    if not isinstance(value, Integral) or isinstance(value, bool | np.bool_):
        raise ValueError(f"seed must be an integer, not {value!r}")


def is_learner(model: object) -> bool:
    """Whether ``model`` is an ihomer learner (a :class:`MultiLabelLearner`). Not
    ``isinstance``: river's estimators answer it for a pipeline by its last step, and a river
    ``Pipeline`` ending in an ihomer learner has none of the learner's array face.

    >>> from river import preprocessing
    >>> from ihomer.learners.baselines import MajorityLabelset
    >>> pipeline = preprocessing.StandardScaler() | MajorityLabelset()
    >>> isinstance(pipeline, MultiLabelLearner), is_learner(pipeline)
    (True, False)
    """
    return issubclass(type(model), MultiLabelLearner)


class MultiLabelLearner(river_base.MultiLabelClassifier):
    """Base class: vocabularies, the river face, and the array face.

    A learner is not thread-safe (as river's are not): learning grows the arrays that scoring
    reads, so a caller that shares one between threads holds one lock around every call.

    Subclasses implement four hooks on integer ids:

    * ``_grow_labels(n_labels)``: make room for label ids ``< n_labels``;
    * ``_grow_features(n_features)``: make room for feature ids ``< n_features``;
    * ``_learn_batch(batch)``: learn the rows in order;
    * ``_scores_batch(batch) -> ndarray (n_rows, n_labels)``: probability of each label.

    and may override ``_test_then_train_batch`` and ``_predict_batch`` with faster kernels.

    A subclass that sets ``_no_change`` (a :class:`~ihomer.learners.decoding.NoChange`) has
    every answer of the public methods pass through it: the last learned label set answers
    instead of the model while it has rated better.
    """

    threshold: float = 0.5
    #: Whether the learner runs jitted kernels that :meth:`warm_up` should load.
    jitted: bool = False

    def __init__(self) -> None:
        self.feature_vocab = Vocabulary()
        self.label_vocab = Vocabulary()
        self._n_labels = 0
        self._n_features = 0
        self._no_change: NoChange | None = None
        #: missing feature values (NaN, ``None``) left out of the rows that came in so far (a
        #: row predicted by one call and learned by another counts in both)
        self.n_missing = 0
        #: while a batch is being answered: its rows' votes of their nearest recent instances,
        #: for a decoder that mixes them into its probabilities (rows of that batch)
        self._votes: Votes | None = None

    # ------------------------------------------------------------------ vocabularies
    def bind(self, schema: Schema) -> Self:
        """Adopt a stream's feature and label names so batch ids and model ids agree.

        A schema whose names the model already holds at other ids is refused before anything
        changes: the model stays as it was."""
        pairs = ((self.feature_vocab, schema.feature_names, "feature"),
                 (self.label_vocab, schema.label_names, "label"))
        for vocab, names, what in pairs:
            new = len(vocab)  # the id the next name the model does not know would get
            for i, name in enumerate(names):
                got = vocab.get(name)
                if got is None:
                    checked_name(name, what)
                    got, new = new, new + 1
                if got != i:
                    raise ValueError(
                        f"schema {what} {name!r} is id {i} in the stream but id {got} in the model"
                    )
        for vocab, names, _ in pairs:
            vocab.extend(names)
        self._ensure(len(self.feature_vocab), len(self.label_vocab))
        return self

    def _ensure(self, n_features: int, n_labels: int) -> None:
        if n_features > self._n_features:
            self._n_features = n_features
            self._grow_features(n_features)
        if n_labels > self._n_labels:
            self._n_labels = n_labels
            self._grow_labels(n_labels)

    def _by_name(self, batch: Batch, grow: bool) -> tuple[Batch, list[Label], list[Label]]:
        """``batch`` in this model's ids where its columns are named (``feature_names``,
        ``label_names``: batch_from_arrow's wide form): each column is the feature (label) of
        its name, wherever it stands in the table. With ``grow``, a name the vocabulary lacks
        gets the next free id, and is returned (features, labels) for the caller to add once
        the batch has passed its checks; without, its entries are left out (scoring never
        grows a model, as ``predict_one`` drops unknown keys)."""
        if batch.feature_names is None and batch.label_names is None:
            return batch, [], []
        batch.check()
        parts: dict[str, Any] = {"feature_names": None, "label_names": None}
        new: dict[str, list[Label]] = {"feature": [], "label": []}
        for what, vocab, names, ptr, ids, vals in (
                ("feature", self.feature_vocab, batch.feature_names, batch.indptr,
                 batch.indices, batch.values),
                ("label", self.label_vocab, batch.label_names, batch.label_indptr,
                 batch.label_ids, None)):
            if names is None:
                continue
            to = np.empty(len(names), np.int64)
            for j, raw in enumerate(names):
                name = checked_name(raw, what)
                i = vocab.get(name)
                if i is None and grow:
                    i = len(vocab) + len(new[what])
                    new[what].append(name)
                to[j] = -1 if i is None else i
            mapped = to[ids]
            keep = mapped >= 0
            rows = np.repeat(np.arange(len(batch)), np.diff(ptr))[keep]
            mapped = mapped[keep]
            order = np.lexsort((mapped, rows))  # ids increase within each row again
            out_ptr = np.zeros(len(batch) + 1, PTR_DTYPE)
            np.cumsum(np.bincount(rows, minlength=len(batch)), out=out_ptr[1:])
            if what == "feature":
                assert vals is not None
                parts.update(indptr=out_ptr, indices=mapped[order].astype(INDEX_DTYPE),
                             values=vals[keep][order])
            else:
                parts.update(label_indptr=out_ptr, label_ids=mapped[order].astype(INDEX_DTYPE))
        return dataclasses.replace(batch, **parts), new["feature"], new["label"]

    def _ensure_batch(self, batch: Batch) -> Batch:
        """``batch`` as the model takes it (see the module docstring on feature values), with
        room made for its feature and label ids."""
        if not isinstance(batch, Batch):
            raise TypeError(f"the array face takes an ihomer.stream.Batch, not "
                            f"{type(batch).__name__}: Batch.from_dense(X, Y) builds one from "
                            "dense arrays, ihomer.stream.batch_from_arrow from an Arrow table; "
                            "learn_one / predict_one take river's dicts")
        batch, new_features, new_labels = self._by_name(batch, grow=True)
        batch = self._checked(batch, new_features)
        nf = int(batch.indices.max()) + 1 if len(batch.indices) else 0
        nl = int(batch.label_ids.max()) + 1 if len(batch.label_ids) else 0
        for what, n, limit, ptr, ids in (
                ("feature", nf, MAX_FEATURES, batch.indptr, batch.indices),
                ("label", nl, MAX_LABELS, batch.label_indptr, batch.label_ids)):
            if n > limit:
                k = int(np.argmax(ids >= limit))
                row = int(np.searchsorted(ptr, k, side="right")) - 1
                raise RowError.in_batch(
                    batch, row, f"{what} id {ids[k]} is beyond the {limit:,} a learner takes "
                    "(ids are positions in its vocabulary, not raw hashes; see "
                    "ihomer.stream.base)")
        self.feature_vocab.extend(new_features)  # the batch passed: its new names join
        self.label_vocab.extend(new_labels)
        if nf > len(self.feature_vocab) or nl > len(self.label_vocab):
            # Ids beyond the vocabulary: give them placeholder names so both faces agree.
            for vocab, n, prefix in ((self.feature_vocab, nf, "f"), (self.label_vocab, nl, "l")):
                for i in range(len(vocab), n):
                    name = f"{prefix}{i}"
                    while name in vocab:  # never let a placeholder alias a real name
                        name = "_" + name
                    vocab.add(name)
        self._ensure(len(self.feature_vocab), len(self.label_vocab))
        return batch

    def _checked(self, batch: Batch, pending: Sequence[Label] = ()) -> Batch:
        """``batch`` without its missing values; a ValueError for an unusable one, or for a
        batch that breaks the CSR contract (:meth:`~ihomer.stream.base.Batch.check`).
        ``pending`` names the ids after the vocabulary's (new names of a named batch)."""
        batch.check()
        usable = np.abs(batch.values) <= MAX_ABS_VALUE  # False for NaN
        if usable.all():
            return batch
        bad = np.flatnonzero(~usable)
        wrong = bad[~np.isnan(batch.values[bad])]
        first = int(wrong[0] if len(wrong) else bad[0])
        row = int(np.searchsorted(batch.indptr, first, side="right")) - 1
        fid = int(batch.indices[first])
        names = [*self.feature_vocab.names, *pending]
        feature = repr(names[fid]) if fid < len(names) else f"id {fid}"
        if len(wrong):
            raise RowError.in_batch(batch, row,
                                    f"feature {feature}: {unusable_value(batch.values[first])}")
        # the feature, not the row: a replay hands the learner its stream in parts
        self._missing(len(bad), f"feature {feature}", 4)  # the caller of a *_many
        return batch.keep_entries(usable)

    def _missing(self, count: int, first: str, stacklevel: int) -> None:
        if self.n_missing == 0:
            warnings.warn(f"{type(self).__name__}: missing feature values are left out of their "
                          f"rows (read as absent, i.e. 0); the first in {first}",
                          stacklevel=stacklevel + 1)
        self.n_missing += count

    @property
    def n_labels(self) -> int:
        return self._n_labels

    @property
    def n_features(self) -> int:
        """Feature ids the model has room for (``len(feature_vocab)`` once it has grown)."""
        return self._n_features

    # ------------------------------------------------------------------ hooks
    def _grow_labels(self, n_labels: int) -> None:  # pragma: no cover - trivial default
        pass

    def _grow_features(self, n_features: int) -> None:  # pragma: no cover - trivial default
        pass

    def _learn_batch(self, batch: Batch) -> None:
        raise NotImplementedError

    def _scores_batch(self, batch: Batch) -> np.ndarray:
        raise NotImplementedError

    def _predict_batch(self, batch: Batch) -> Predictions:
        scores = self._scores_batch(batch)
        rows = []
        srows = []
        for s in scores:
            ids = np.flatnonzero(s >= self.threshold)
            rows.append(ids)
            srows.append(s[ids])
        return Predictions.from_rows(rows, srows)

    def _test_then_train_batch(self, batch: Batch) -> Predictions:
        rows, srows = [], []
        for i in range(len(batch)):
            one = batch.slice(i, i + 1)
            p = self._predict_batch(one)
            rows.append(p.label_ids)
            srows.append(p.scores if p.scores is not None else np.ones(len(p.label_ids)))
            self._learn_batch(one)
        return Predictions.from_rows(rows, srows)

    # ------------------------------------------------------------------ array face
    def learn_many(self, batch: Batch) -> None:
        """Learn every row of ``batch`` in order."""
        batch = self._ensure_batch(batch)
        if len(batch):  # a poll that found nothing is no call to the model
            self._learn_rows(batch)

    def _learn_rows(self, batch: Batch) -> None:
        # With the no-change answer, learning predicts too, so that both answers are rated on
        # every learned row: learn_many after predict_many is then test_then_train_many.
        if self._no_change is None:
            self._learn_batch(batch)
        else:
            self._answered(batch, True, self._test_then_train_batch)

    def predict_many(self, batch: Batch) -> Predictions:
        """Predict every row of ``batch`` with the current model (no learning).

        The answer holds label ids (``label_vocab.names[i]`` names id ``i``); the batch's own
        labels, if any, are not read."""
        batch = self._ensure_batch(self._unlabelled(batch))
        if not len(batch):
            return Predictions.from_rows([], [])
        return self._answered(batch, False, self._predict_batch)

    def _unlabelled(self, batch: Batch) -> Batch:
        """The rows a prediction reads: their labels dropped, and the features the model has
        no name for (ids beyond its vocabulary, which it never saw and knows nothing of, as
        ``predict_one`` drops unknown names), so that scoring never grows the model."""
        if not isinstance(batch, Batch):
            return batch  # _ensure_batch says what it takes
        batch = self._by_name(batch, grow=False)[0].without_labels()
        known = len(self.feature_vocab)
        if len(batch.indices) and int(batch.indices.max()) >= known:
            # the layout and the values, all of them, as predict_one checks every value
            batch = self._checked(batch)
            batch = batch.keep_entries(batch.indices < known)
        return batch

    def _answered(self, batch: Batch, learned: bool,
                  run: Callable[[Batch], Predictions]) -> Predictions:
        """The answer for the rows of ``batch``: the model's (``run(batch)``), or a recent
        instance's set where that rates better (``learned``: the rows are learned in the same
        call, which rates them). While ``run`` runs, :attr:`_votes` holds the rows' votes of
        their nearest recent instances, found before any of them was learned."""
        nc = self._no_change
        if nc is None:
            return run(batch)
        truth = (batch.label_indptr, batch.label_ids) if learned else None
        rows = (batch.indptr, batch.indices, batch.values)
        near = nc.neighbours(rows, truth)
        self._votes = near.votes if nc.votes else None
        try:
            pred = run(batch)
        finally:
            self._votes = None
        return nc.choose(pred, rows, truth, self._n_labels, near)

    def predict_proba_many(self, batch: Batch) -> np.ndarray:
        """``(n_rows, n_labels)`` probabilities of each label (column ``i``: the label
        ``label_vocab.names[i]``). These are the model's probabilities; ``predict_many`` decodes
        its answer from them (and, with the no-change answer, from recent instances' votes), so
        it is not always the labels of probability 0.5 or more."""
        batch = self._ensure_batch(self._unlabelled(batch))
        return self._scores_batch(batch)

    def test_then_train_many(self, batch: Batch) -> Predictions:
        """Predict each row with the model as it stands, then learn it: exact prequential."""
        batch = self._ensure_batch(batch)
        if not len(batch):
            return Predictions.from_rows([], [])
        return self._answered(batch, True, self._test_then_train_batch)

    # ------------------------------------------------------------------ river face
    def _x(self, batch: Batch, i: int) -> dict[Any, float]:
        """Row ``i`` of ``batch`` as river's ``{feature name: value}`` dict of non-zeros (keys
        typed as river's ``Hashable`` ones, which a ``dict[FeatureKey, ...]`` is not)."""
        a, b = batch.indptr[i], batch.indptr[i + 1]
        names = self.feature_vocab.names
        return {names[j]: v for j, v in zip(batch.indices[a:b].tolist(),
                                            batch.values[a:b].tolist(), strict=True)}

    def _row_from_x(self, x: Features, grow: bool) -> Batch:
        if not isinstance(x, Mapping):
            raise TypeError(f"x must be a {{feature: value}} dict, not {type(x).__name__}")
        values: list[tuple[FeatureKey, float]] = []
        missing: list[FeatureKey] = []
        vocab = self.feature_vocab
        for k, v in x.items():  # every name and value checked before the vocabulary grows
            if grow and k not in vocab:
                checked_name(k, "feature")
            if v is None or (isinstance(v, Real | Decimal) and v != v):  # None, or NaN
                missing.append(k)
                continue
            if isinstance(v, np.bool_):
                v = bool(v)
            elif not isinstance(v, Real | Decimal):
                raise ValueError(f"feature {k!r}: {v!r} is not a number")
            try:
                fv = float(v)
            except OverflowError:
                raise ValueError(f"feature {k!r}: an integer beyond float64's range") from None
            if not abs(fv) <= MAX_ABS_VALUE:
                raise ValueError(f"feature {k!r}: {unusable_value(fv)}")
            values.append((k, fv))
        if missing:
            self._missing(len(missing), f"feature {missing[0]!r}", 3)  # the caller of *_one
        items = []
        for k, fv in values:
            fid = self.feature_vocab.add(k) if grow else self.feature_vocab.get(k)
            if fid is None:
                continue  # a feature the model never saw carries no information yet
            if fv != 0.0:
                items.append((fid, fv))
        items.sort()
        idx = np.fromiter((i for i, _ in items), dtype=INDEX_DTYPE, count=len(items))
        val = np.fromiter((v for _, v in items), dtype=VALUE_DTYPE, count=len(items))
        return Batch(np.array([0, len(items)]), idx, val, np.zeros(2, PTR_DTYPE),
                     np.zeros(0, INDEX_DTYPE))

    def learn_one(self, x: Features, y: Targets) -> None:
        """Learn one instance; new features and new labels get ids on the fly."""
        if _is_series(y):  # a pandas Series of bools: {label: bool}, not its values
            y = y.to_dict()  # type: ignore[union-attr]
        names = _labels_from_y(y)  # checked before x's features join the vocabulary
        row = self._row_from_x(x, grow=True)
        if isinstance(y, Mapping):
            # labels named as absent are part of the label set too, and new ones get their
            # ids in the dict's order (as a bound schema's), present or not: iHOMER's
            # clustering visits labels by id, so another order gives other answers
            for name in y:
                self.label_vocab.add(name)
        lab = sorted({self.label_vocab.add(name) for name in names})
        row.label_indptr = np.array([0, len(lab)], dtype=PTR_DTYPE)
        row.label_ids = np.asarray(lab, dtype=INDEX_DTYPE)
        self._ensure(len(self.feature_vocab), len(self.label_vocab))
        self._learn_rows(row)

    # river annotates these as dict[Hashable, ...]; the narrower key type is what callers get
    # (dicts are invariant, hence the ignores)
    def predict_proba_one(  # type: ignore[override]
        self, x: Features
    ) -> dict[Label, dict[bool, float]]:
        """``{label: {False: 1 - p, True: p}}`` for every known label (river's convention):
        the model's probabilities, which :meth:`predict_one` decodes its answer from (see
        :meth:`predict_proba_many`)."""
        row = self._row_from_x(x, grow=False)  # bad input is refused, known labels or not
        if self._n_labels == 0:
            return {}
        scores = self._scores_batch(row)[0]
        return {
            name: {False: 1.0 - float(p), True: float(p)}
            for name, p in zip(self.label_vocab.names, scores, strict=False)
        }

    def predict_one(self, x: Features) -> dict[Label, bool]:  # type: ignore[override]
        """``{label: bool}`` for every known label."""
        row = self._row_from_x(x, grow=False)  # bad input is refused, known labels or not
        if self._n_labels == 0:
            return {}
        p = self._answered(row, False, self._predict_batch)
        on = set(p.row(0).tolist())
        return {name: (i in on) for i, name in enumerate(self.label_vocab.names)}

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        """The vocabularies and sizes as JSON values (the part of the state every learner has).

        This is half of the learner state protocol of ``ihomer.connectors.checkpoint``: a
        subclass whose whole model is JSON values and NumPy arrays overrides ``state_dict`` and
        ``from_state_dict``, calling these, and so opts in to the safe checkpoint format. The
        base versions alone do not opt in, since they would drop the model itself.
        """
        return {
            "feature_names": list(self.feature_vocab.names),
            "label_names": list(self.label_vocab.names),
            "n_features": self._n_features,
            "n_labels": self._n_labels,
            "no_change": None if self._no_change is None else self._no_change.state_dict(),
            "n_missing": self.n_missing,
        }

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> MultiLabelLearner:
        """A new learner (built with no arguments) holding the vocabularies of ``state``."""
        learner = cls()
        learner.feature_vocab = Vocabulary(state["feature_names"])
        learner.label_vocab = Vocabulary(state["label_names"])
        learner._ensure(int(state["n_features"]), int(state["n_labels"]))
        learner._load_no_change(state)
        learner.n_missing = int(state.get("n_missing", 0))  # older states: none counted
        return learner

    def _load_vocabularies(self, state: dict[str, Any]) -> None:
        """Take the vocabularies and sizes of ``state`` as they are, for a subclass whose own
        state already has room for them (nothing is grown), and the no-change answer's state."""
        self.feature_vocab = Vocabulary(state["feature_names"])
        self.label_vocab = Vocabulary(state["label_names"])
        self._n_features = int(state["n_features"])
        self._n_labels = int(state["n_labels"])
        self.n_missing = int(state.get("n_missing", 0))  # older states: none counted
        self._load_no_change(state)

    def _load_no_change(self, state: dict[str, Any]) -> None:
        from ihomer.learners.decoding import NoChange  # decoding imports this module

        if state.get("no_change") is not None:
            self._no_change = NoChange.from_state_dict(state["no_change"])

    # ------------------------------------------------------------------ reporting
    def warm_up(self) -> float:
        """Load the compiled kernels this learner runs and return the seconds it took.

        The first call of a jitted kernel in a process reads numba's on-disk cache (or
        compiles): a one-off start-up cost, like an import or a JVM start, that would otherwise
        be charged to the first instances and swamp the timing of a short stream (flags: 194
        instances). The prequential evaluator calls this before its clock starts and reports
        the time apart. A throw-away twin with the same parameters learns a small synthetic
        stream (numeric, binary and nominal features, co-occurring labels, a drift half way)
        long enough to split, restructure and detect drift; ``self`` is left untouched.
        """
        if not self.jitted:
            return 0.0
        import time

        t0 = time.perf_counter()
        twin = self.clone()
        schema, batch = _warm_up_stream()
        twin.bind(schema)
        twin.test_then_train_many(batch)
        twin.predict_proba_many(batch.slice(0, 8))
        return time.perf_counter() - t0

    def params(self) -> dict[str, Any]:
        """Constructor parameters as plain values, for result files (river's ``_get_params``,
        with a ``repr`` for any other value, such as a river model)."""
        out = {}
        for k, v in self._get_params().items():
            plain = isinstance(v, (int, float, str, bool, type(None)))
            out[k] = v if plain else repr(getattr(self, k, v))
        return out


def _warm_up_stream(n: int = 1500, seed: int = 7) -> tuple[Schema, Batch]:
    """The synthetic stream of :meth:`MultiLabelLearner.warm_up`: 3 numeric, 3 binary (stored
    sparsely) and 1 nominal feature; 5 labels driven by them, two of them always together so
    label clusters form, and the concept flipped half way so drift detectors fire."""
    rng = np.random.default_rng(seed)
    num = rng.normal(size=(n, 3))
    binary = rng.random((n, 3)) < 0.4
    nominal = rng.integers(0, 3, n)
    a, b = num[:, 0] > 0, binary[:, 0]
    labels = np.column_stack([a, a, num[:, 1] > 0.5, b ^ (nominal == 1), num[:, 2] > 1.0])
    labels[n // 2:, :3] = ~labels[n // 2:, :3]
    rows_i, rows_v, rows_l = [], [], []
    for i in range(n):
        idx = [0, 1, 2, *(3 + np.flatnonzero(binary[i]))]
        val = [*num[i], *([1.0] * int(binary[i].sum()))]
        if nominal[i]:
            idx.append(6)
            val.append(float(nominal[i]))
        rows_i.append(np.asarray(idx, dtype=INDEX_DTYPE))
        rows_v.append(np.asarray(val, dtype=VALUE_DTYPE))
        rows_l.append(np.flatnonzero(labels[i]).astype(INDEX_DTYPE))
    lens = np.array([len(r) for r in rows_i])
    llens = np.array([len(r) for r in rows_l])
    batch = Batch(indptr=np.concatenate([[0], np.cumsum(lens)]).astype(PTR_DTYPE),
                  indices=np.concatenate(rows_i), values=np.concatenate(rows_v),
                  label_indptr=np.concatenate([[0], np.cumsum(llens)]).astype(PTR_DTYPE),
                  label_ids=np.concatenate(rows_l))
    schema = Schema(feature_names=("x0", "x1", "x2", "b0", "b1", "b2", "colour"),
                    label_names=tuple(f"y{j}" for j in range(5)),
                    nominal={6: ("red", "green", "blue")}, sparse=True, source="warm-up")
    return schema, batch
