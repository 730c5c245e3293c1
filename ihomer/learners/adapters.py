"""Run any river-style multi-label model through the ihomer array interface.

The evaluator and the service speak :class:`~ihomer.learners.base.MultiLabelLearner`. A model
that only has river's ``learn_one(x, y)`` / ``predict_one(x)`` (for instance one of river's own
``multioutput`` models, or a user's class) is wrapped by :class:`RiverAdapter`, which builds the
``{feature name: value}`` dict of each row and the ``{label: bool}`` dict over every known label,
exactly what river's multi-output models expect.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ihomer.learners.base import MultiLabelLearner, Predictions, is_learner
from ihomer.stream.base import INDEX_DTYPE, Batch


class RiverAdapter(MultiLabelLearner):
    """Wrap a river-style multi-label model (``learn_one`` / ``predict_one``)."""

    def __init__(self, model: Any) -> None:
        super().__init__()
        if not (hasattr(model, "learn_one") and hasattr(model, "predict_one")):
            raise TypeError(f"{type(model).__name__} has no learn_one/predict_one")
        self.model = model

    def _y(self, batch: Batch, i: int) -> dict[Any, bool]:
        on = set(batch.label_ids[batch.label_indptr[i]: batch.label_indptr[i + 1]].tolist())
        return {name: (k in on) for k, name in enumerate(self.label_vocab.names)}

    def _ids(self, pred: dict[Any, Any]) -> np.ndarray:
        # A label the stream never declared cannot be scored; it is left out, not invented.
        ids = (self.label_vocab.get(k) for k, v in (pred or {}).items() if v)
        return np.asarray(sorted(i for i in ids if i is not None), dtype=INDEX_DTYPE)

    def _learn_batch(self, batch: Batch) -> None:
        for i in range(len(batch)):
            self.model.learn_one(self._x(batch, i), self._y(batch, i))

    def _predict_batch(self, batch: Batch) -> Predictions:
        return Predictions.from_rows(
            [self._ids(self.model.predict_one(self._x(batch, i))) for i in range(len(batch))])

    def _scores_batch(self, batch: Batch) -> np.ndarray:
        out = np.zeros((len(batch), self.n_labels))
        if not hasattr(self.model, "predict_proba_one"):
            for i in range(len(batch)):
                out[i, self._ids(self.model.predict_one(self._x(batch, i)))] = 1.0
            return out
        for i in range(len(batch)):
            for name, p in self.model.predict_proba_one(self._x(batch, i)).items():
                k = self.label_vocab.get(name)
                if k is not None and k < self.n_labels:
                    out[i, k] = p.get(True, 0.0) if isinstance(p, dict) else float(p)
        return out

    def _test_then_train_batch(self, batch: Batch) -> Predictions:
        rows = []
        for i in range(len(batch)):
            x = self._x(batch, i)
            rows.append(self._ids(self.model.predict_one(x)))
            self.model.learn_one(x, self._y(batch, i))
        return Predictions.from_rows(rows)

    def params(self) -> dict[str, Any]:
        return {"model": repr(self.model)}


def as_learner(model: Any) -> MultiLabelLearner:
    """``model`` itself if it is an ihomer learner, else wrapped in :class:`RiverAdapter`."""
    return model if is_learner(model) else RiverAdapter(model)
