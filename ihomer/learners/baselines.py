"""Reference learners every result is compared with.

* :class:`NoOp` predicts the empty set and learns nothing: it measures the harness itself
  (reading, metric updates), the floor under every learner's run time.
* :class:`MajorityLabelset` predicts the most frequent labelset seen so far: the classic
  "no features" baseline of multi-label streams.
* :class:`BinaryRelevance` trains one river binary classifier per label (river's successor of
  scikit-multiflow's BR); a label that appears late gets its classifier when it first appears.
* :class:`RiverClassifierChain` wraps river's ``multioutput.ClassifierChain``.

Example
-------
>>> from ihomer.learners.baselines import MajorityLabelset
>>> m = MajorityLabelset()
>>> for y in (["a", "b"], ["a"], ["a", "b"]):
...     m.learn_one({"x": 1.0}, y)
>>> sorted(k for k, v in m.predict_one({"x": 1.0}).items() if v)
['a', 'b']
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
from river import base as river_base
from river import compose

from ihomer.learners.base import MultiLabelLearner, Predictions
from ihomer.stream.base import INDEX_DTYPE, PTR_DTYPE, Batch


class NoOp(MultiLabelLearner):
    """Predicts nothing, learns nothing (harness overhead)."""

    def _learn_batch(self, batch: Batch) -> None:
        return None

    def _scores_batch(self, batch: Batch) -> np.ndarray:
        return np.zeros((len(batch), self.n_labels))

    def _predict_batch(self, batch: Batch) -> Predictions:
        return Predictions(np.zeros(len(batch) + 1, PTR_DTYPE), np.zeros(0, INDEX_DTYPE))

    _test_then_train_batch = _predict_batch

    def state_dict(self) -> dict[str, Any]:
        """Only the vocabularies: there is no model (opts in to safe checkpoints)."""
        return super().state_dict()

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> NoOp:
        return super().from_state_dict(state)  # type: ignore[return-value]


class MajorityLabelset(MultiLabelLearner):
    """Predicts the labelset seen most often so far (ties: the one that got there first).

    Scores are the frequency of each label within the majority labelset's count, i.e. 1.0 for
    its labels, so the thresholded prediction is exactly the majority labelset.
    """

    def __init__(self) -> None:
        super().__init__()
        self._counts: dict[tuple[int, ...], int] = {}
        self._best: tuple[int, ...] = ()
        self._best_count = 0

    def _learn_row(self, labels: tuple[int, ...]) -> None:
        c = self._counts.get(labels, 0) + 1
        self._counts[labels] = c
        if c > self._best_count:
            self._best, self._best_count = labels, c

    def _learn_batch(self, batch: Batch) -> None:
        lp, li = batch.label_indptr, batch.label_ids.tolist()
        for i in range(len(batch)):
            self._learn_row(tuple(li[lp[i]: lp[i + 1]]))

    def _scores_batch(self, batch: Batch) -> np.ndarray:
        s = np.zeros((len(batch), self.n_labels))
        if self._best:
            s[:, list(self._best)] = 1.0
        return s

    def _test_then_train_batch(self, batch: Batch) -> Predictions:
        lp, li = batch.label_indptr, batch.label_ids.tolist()
        rows = []
        for i in range(len(batch)):
            rows.append(np.asarray(self._best, dtype=INDEX_DTYPE))
            self._learn_row(tuple(li[lp[i]: lp[i + 1]]))
        return Predictions.from_rows(rows, [np.ones(len(r)) for r in rows])

    def state_dict(self) -> dict[str, Any]:
        """Vocabularies plus the labelset counts as CSR arrays, in first-seen order."""
        sets = list(self._counts)
        indptr = np.zeros(len(sets) + 1, dtype=PTR_DTYPE)
        np.cumsum([len(t) for t in sets], out=indptr[1:])
        return {
            **super().state_dict(),
            "labelset_indptr": indptr,
            "labelset_ids": np.asarray([i for t in sets for i in t], dtype=INDEX_DTYPE),
            "labelset_counts": np.asarray([self._counts[t] for t in sets], dtype=np.int64),
            "best": list(self._best),
            "best_count": self._best_count,
        }

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> MajorityLabelset:
        learner: MajorityLabelset = super().from_state_dict(state)  # type: ignore[assignment]
        ptr, ids = state["labelset_indptr"], state["labelset_ids"].tolist()
        for k, c in enumerate(state["labelset_counts"].tolist()):
            learner._counts[tuple(ids[ptr[k]: ptr[k + 1]])] = int(c)
        learner._best = tuple(int(i) for i in state["best"])
        learner._best_count = int(state["best_count"])
        return learner


#: A river binary classifier, alone or at the end of a pipeline (a scaler first, say).
RiverClassifier = river_base.Classifier | compose.Pipeline


class BinaryRelevance(MultiLabelLearner):
    """One river binary classifier per label, cloned from ``model``.

    Parameters
    ----------
    model
        A river classifier; each label gets an independent clone. It sees the instance as a
        ``{feature name: value}`` dict holding the non-zero features (river's sparse convention).
    """

    def __init__(self, model: RiverClassifier) -> None:
        super().__init__()
        self.model = model
        self._models: list[RiverClassifier] = []

    def _grow_labels(self, n_labels: int) -> None:
        while len(self._models) < n_labels:
            self._models.append(self.model.clone())

    def _learn_batch(self, batch: Batch) -> None:
        for i in range(len(batch)):
            x = self._x(batch, i)
            on = set(batch.label_ids[batch.label_indptr[i]: batch.label_indptr[i + 1]].tolist())
            for lab, m in enumerate(self._models):
                m.learn_one(x, lab in on)

    def _scores_batch(self, batch: Batch) -> np.ndarray:
        out = np.zeros((len(batch), len(self._models)))
        for i in range(len(batch)):
            x = self._x(batch, i)
            for lab, m in enumerate(self._models):
                out[i, lab] = m.predict_proba_one(x).get(True, 0.0)
        return out

    def _predict_batch(self, batch: Batch) -> Predictions:
        # Each label is decided by its classifier's own predict_one (river's arg-max rule,
        # ties included), so this baseline is exactly river's PerOutputClassifier.
        rows = []
        for i in range(len(batch)):
            x = self._x(batch, i)
            rows.append(np.asarray([lab for lab, m in enumerate(self._models)
                                    if m.predict_one(x) is True], dtype=INDEX_DTYPE))
        return Predictions.from_rows(rows)

    def params(self) -> dict[str, Any]:
        return {"model": repr(self.model)}


class RiverClassifierChain(MultiLabelLearner):
    """river's ``multioutput.ClassifierChain`` behind the ihomer interface.

    The chain order is the label order of the stream's schema. river's chain cannot add a
    label once it has learned, so a label that appears later is ignored by this baseline
    (the label still counts in the metrics, as a label never predicted).
    """

    def __init__(self, model: RiverClassifier) -> None:
        super().__init__()
        self.model = model
        self._chain: Any = None
        self._names: list[Any] = []

    def _start(self) -> None:
        from river import multioutput

        self._names = list(self.label_vocab.names)
        # river annotates a Classifier, and takes a pipeline ending in one as well
        self._chain = multioutput.ClassifierChain(copy.deepcopy(self.model),  # type: ignore[arg-type]
                                                  order=self._names)

    def _learn_batch(self, batch: Batch) -> None:
        if self._chain is None:
            self._start()
        for i in range(len(batch)):
            on = set(batch.label_ids[batch.label_indptr[i]: batch.label_indptr[i + 1]].tolist())
            y = {name: (k in on) for k, name in enumerate(self._names)}
            self._chain.learn_one(self._x(batch, i), y)

    def _scores_batch(self, batch: Batch) -> np.ndarray:
        out = np.zeros((len(batch), self.n_labels))
        if self._chain is None:
            return out
        for i in range(len(batch)):
            proba = self._chain.predict_proba_one(self._x(batch, i))
            for k, name in enumerate(self._names):
                p = proba.get(name)
                out[i, k] = p.get(True, 0.0) if p else 0.0
        return out

    def params(self) -> dict[str, Any]:
        return {"model": repr(self.model)}


RIVER_KINDS = ("ht", "hat", "arf", "lr", "nb")


def river_classifier(kind: str, seed: int | None = None) -> RiverClassifier:
    """A fresh river binary classifier by short name (the per-label model of BR and CC).

    ``ht`` Hoeffding tree, ``hat`` Hoeffding adaptive tree, ``arf`` adaptive random forest,
    ``lr`` logistic regression, ``nb`` Gaussian naive Bayes; ``seed`` reaches the models that
    draw random numbers (``hat``, ``arf``).
    """
    from river import forest, linear_model, naive_bayes, preprocessing, tree

    if kind == "ht":
        return tree.HoeffdingTreeClassifier()
    if kind == "hat":
        return tree.HoeffdingAdaptiveTreeClassifier(seed=seed)
    if kind == "arf":
        return forest.ARFClassifier(seed=seed)
    if kind == "lr":
        # Logistic regression diverges on unscaled features; river's idiom is a scaler first.
        return preprocessing.StandardScaler() | linear_model.LogisticRegression()
    if kind == "nb":
        return naive_bayes.GaussianNB()
    raise ValueError(f"unknown river model {kind!r}; choose one of {', '.join(RIVER_KINDS)}")
