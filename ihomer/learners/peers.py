"""Peer learners for the benchmarks: MOA (the Java reference) and river, behind our interface.

Every peer is an ordinary :class:`~ihomer.learners.base.MultiLabelLearner`, so it is driven by
our prequential evaluator on exactly the instances ours see and scored by exactly the same
metric code: the numbers in a benchmark report are comparable line by line, which they would
not be if each library ran its own loop and its own metric definitions.

MOA learners (``moa-*``) run inside the JVM through the JPype bridge of the optional ``capymoa``
package, which ships ``moa.jar`` (``pip install "ihomer[bench]"``, needs a JDK 17). Nothing here
imports capymoa or jpype until a MOA learner is *built*: the names are always registered, so
``ihomer learners`` lists them and asking for one without the extra fails with one line saying
what to install, while ``import ihomer`` stays free of any Java.

=================  =====================================================================
name               class
=================  =====================================================================
``moa-isoupt``     ``moa.classifiers.multilabel.trees.ISOUPTree`` (multi-target regression
                   tree on 0/1 targets), label on iff its output ``>= threshold`` (0.5)
``moa-mlht``       ``moa.classifiers.multilabel.MultilabelHoeffdingTree``
``moa-br-ht``      ``moa.classifiers.multitarget.BasicMultiLabelClassifier`` (binary
                   relevance) over ``moa.classifiers.trees.HoeffdingTree``
``river-br-ht``    binary relevance over ``river.tree.HoeffdingTreeClassifier``
``river-br-hat``   binary relevance over ``river.tree.HoeffdingAdaptiveTreeClassifier``
``river-br-arf``   binary relevance over ``river.forest.ARFClassifier``
``river-br-lr``    binary relevance over ``StandardScaler | LogisticRegression``
``river-br-nb``    binary relevance over ``river.naive_bayes.GaussianNB``
``river-cc``       ``river.multioutput.ClassifierChain`` over logistic regression
                   (``base=ht|hat|arf|nb`` for another per-label model)
``river-isoupt``   ``river.tree.ISOUPTreeRegressor`` on 0/1 targets, label on iff ``>= 0.5``
=================  =====================================================================
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, Self

import numpy as np

from ihomer.learners import baselines as b
from ihomer.learners.adapters import RiverAdapter
from ihomer.learners.base import MultiLabelLearner, Predictions, check_range
from ihomer.learners.registry import register
from ihomer.stream.base import INDEX_DTYPE, Batch, Schema

BENCH_EXTRA = "pip install ihomer[bench]"


def _start_jvm(who: str) -> Any:
    """Start the JVM (through capymoa, which knows where its moa.jar and the JDK are) once.

    Returns the ``jpype`` module; raises ``ValueError`` naming the extra when it is missing, so
    the CLI prints one line instead of a traceback.
    """
    try:
        import capymoa  # noqa: F401  (importing it starts the JVM with moa.jar on the path)
        import jpype
    except (ImportError, RuntimeError) as e:  # capymoa raises RuntimeError when Java is missing
        raise ValueError(f"learner {who!r} needs `{BENCH_EXTRA}` (capymoa, and a JDK 17 on "
                         f"the machine): {e}") from None
    return jpype


class MOALearner(MultiLabelLearner):
    """A MOA multi-label learner driven instance by instance through JPype.

    Each CSR row becomes one MOA instance whose header lists the features first and the labels
    last as nominal ``{0, 1}`` attributes (MOA's ``Range`` "last L attributes"), the layout of
    Mulan files, so a learner sees the same attribute order as MOA reading the ARFF itself.
    Dense streams give ``DenseInstance`` rows and sparse ones ``SparseInstance`` rows, again as
    MOA's ARFF loader would (the distinction matters: a dense row also carries its zeros).
    Nominal features keep their domains, so MOA's trees use their nominal split observers.

    Predictions follow ``moa.evaluation.BasicMultiLabelPerformanceEvaluator``: label *j* is on
    iff ``vote(j, 1) > vote(j, 0)``; a ``null`` prediction (MOA's trees before their first
    instance) is the empty set. MOA's evaluator skips such instances; we count them, as we do
    for every learner. With ``threshold`` set, label *j* is on iff ``vote(j, 1) >= threshold``
    instead: that is what a regressor such as ISOUPTree needs, because it writes its output for
    label *j* into slot 1 and leaves slot 0 at zero, so MOA's rule would read "output > 0".

    Parameters
    ----------
    moa_class
        Fully qualified MOA class name.
    options
        MOA command-line options for it (``"-g 100 -c 0.01"``), as in MOA's GUI or CLI.
    threshold
        ``None`` for MOA's vote comparison, else a cut-off on ``vote(j, 1)``.
    seed
        Sets MOA's ``randomSeedOption`` when the learner has one.
    name
        The registered name, for error messages.
    """

    def __init__(self, moa_class: str, options: str = "", threshold: float | None = None,
                 seed: int | None = None, name: str | None = None) -> None:
        super().__init__()
        self.moa_class = moa_class
        self.options = options
        # None is MOA's own vote rule (see _decide); the base class' threshold rule is not used
        self.threshold = threshold  # type: ignore[assignment]
        self.seed = seed
        self.name = name
        self._nominal: dict[int, tuple[str, ...]] = {}
        self._sparse = False
        self._model: Any = None
        self._header: Any = None
        self._width = 0  # attributes in the MOA header: features + labels
        jpype = _start_jvm(name or moa_class)
        self._jpype = jpype
        self._JDouble = jpype.JArray(jpype.JDouble)
        self._JInt = jpype.JArray(jpype.JInt)
        self._new_model()  # bad options fail here, in one line, not at the first instance

    def _new_model(self) -> Any:
        """A MOA model of ``moa_class`` with ``options`` and the seed, prepared for use.

        MOA's refusal (an unknown option, a class ``-l`` names that does not exist, a value out
        of range) is a Java exception whose message sits on its cause chain: it becomes a
        ``ValueError`` naming the learner and the option string, with MOA's message.
        """
        jpype = self._jpype
        try:
            model = jpype.JClass(self.moa_class)()
            if self.options:
                model.getOptions().setViaCLIString(self.options)
            if self.seed is not None and hasattr(model, "randomSeedOption"):
                model.randomSeedOption.setValue(int(self.seed))
            model.prepareForUse()
        except jpype.JException as e:
            reasons, cause = [], e
            while cause is not None:  # the first line of each: nested ones list all options
                reasons.append(str(cause.getMessage() or cause.getClass().getName())
                               .splitlines()[0].strip().rstrip("."))
                cause = cause.getCause()
            raise ValueError(f"learner {self.name or self.moa_class!r}: MOA refuses the options "
                             f"{self.options!r}: {': '.join(reasons)}") from None
        return model

    # ------------------------------------------------------------------ set-up
    def bind(self, schema: Schema) -> Self:
        self._nominal = dict(schema.nominal)
        self._sparse = schema.sparse
        super().bind(schema)
        return self

    def _grow_features(self, n_features: int) -> None:
        self._refuse_growth("feature")

    def _grow_labels(self, n_labels: int) -> None:
        self._refuse_growth("label")

    def _refuse_growth(self, what: str) -> None:
        if self._model is not None:
            raise ValueError(f"{self.moa_class}: a new {what} appeared after learning started; "
                             "a MOA model's attribute header is fixed when it starts")

    def _start(self) -> None:
        """Build the MOA header from the vocabularies and instantiate the learner."""
        from com.yahoo.labs.samoa.instances import (
            Attribute,
            Instances,
            InstancesHeader,
            Range,
        )
        from java.util import ArrayList

        atts = ArrayList()
        for i, name in enumerate(self.feature_vocab.names):
            domain = self._nominal.get(i)
            if domain is None:
                atts.add(Attribute(str(name)))
            else:
                values = ArrayList()
                for v in domain:
                    values.add(str(v))
                atts.add(Attribute(str(name), values))
        for name in self.label_vocab.names:
            values = ArrayList()
            values.add("0")
            values.add("1")
            atts.add(Attribute(str(name), values))
        data = Instances("ihomer", atts, 0)
        outputs = Range(f"-{self._n_labels}")  # the last L attributes...
        outputs.setUpper(self._n_features + self._n_labels)  # ...of this many (MOA's ARFF loader)
        data.setRangeOutputIndices(outputs)
        self._header = InstancesHeader(data)
        self._width = self._n_features + self._n_labels
        model = self._new_model()
        model.setModelContext(self._header)
        model.resetLearning()
        self._model = model

    # ------------------------------------------------------------------ per instance
    def _instance(self, batch: Batch, i: int) -> Any:
        """Row ``i`` of ``batch`` as a MOA instance carrying its features and its labels."""
        from com.yahoo.labs.samoa.instances import DenseInstance, SparseInstance

        a, z = batch.indptr[i], batch.indptr[i + 1]
        labels = batch.label_ids[batch.label_indptr[i]: batch.label_indptr[i + 1]]
        if self._sparse:
            idx = np.concatenate([batch.indices[a:z], self._n_features + labels]).astype(np.int32)
            val = np.concatenate([batch.values[a:z], np.ones(len(labels))])
            inst = SparseInstance(1.0, self._JDouble(val), self._JInt(idx), self._width)
        else:
            row = np.zeros(self._width)
            row[batch.indices[a:z]] = batch.values[a:z]
            row[self._n_features + labels] = 1.0
            inst = DenseInstance(1.0, self._JDouble(row))
        inst.setDataset(self._header)
        return inst

    def _decide(self, pred: Any) -> np.ndarray:
        """Label ids switched on by one MOA prediction (see the class docstring)."""
        if pred is None:
            return np.zeros(0, INDEX_DTYPE)
        n = min(int(pred.numOutputAttributes()), self._n_labels)
        vote = pred.getVote
        if self.threshold is None:
            on = [j for j in range(n) if vote(j, 1) > vote(j, 0)]
        else:
            t = float(self.threshold)
            on = [j for j in range(n) if vote(j, 1) >= t]
        return np.asarray(on, dtype=INDEX_DTYPE)

    @property
    def _moa(self) -> Any:
        """The MOA model, started on first use (the header needs the bound vocabularies)."""
        if self._model is None:
            self._start()
        return self._model

    def _score(self, pred: Any, j: int) -> float:
        """A probability-like score of label ``j`` for ``predict_proba`` (decisions never use
        it): the share of ``vote(j, 1)`` in non-negative votes, else 1.0 or 0.0 by MOA's rule;
        with a threshold, the regressor's output clipped to [0, 1]."""
        v1 = float(pred.getVote(j, 1))
        if self.threshold is not None:
            return min(1.0, max(0.0, v1)) if v1 == v1 else 0.0
        v0 = float(pred.getVote(j, 0))
        if v0 >= 0.0 and v1 >= 0.0 and v0 + v1 > 0.0:
            return v1 / (v0 + v1)
        return float(v1 > v0)

    # ------------------------------------------------------------------ hooks
    def _learn_batch(self, batch: Batch) -> None:
        model = self._moa
        for i in range(len(batch)):
            model.trainOnInstance(self._instance(batch, i))

    def _predict_batch(self, batch: Batch) -> Predictions:
        model = self._moa
        return Predictions.from_rows([
            self._decide(model.getPredictionForInstance(self._instance(batch, i)))
            for i in range(len(batch))])

    def _scores_batch(self, batch: Batch) -> np.ndarray:
        model = self._moa
        out = np.zeros((len(batch), self._n_labels))
        for i in range(len(batch)):
            pred = model.getPredictionForInstance(self._instance(batch, i))
            if pred is not None:
                for j in range(min(int(pred.numOutputAttributes()), self._n_labels)):
                    out[i, j] = self._score(pred, j)
        return out

    def _test_then_train_batch(self, batch: Batch) -> Predictions:
        model, rows = self._moa, []
        for i in range(len(batch)):
            inst = self._instance(batch, i)  # one instance for both, as MOA's prequential loop
            rows.append(self._decide(model.getPredictionForInstance(inst)))
            model.trainOnInstance(inst)
        return Predictions.from_rows(rows)

    def params(self) -> dict[str, Any]:
        effective = self.options
        if self._model is not None:
            effective = str(self._model.getOptions().getAsCLIString())
        return {"moa_class": self.moa_class, "options": effective, "threshold": self.threshold,
                "seed": self.seed}


class RiverISOUPT(RiverAdapter):
    """river's ``ISOUPTreeRegressor`` on 0/1 targets; label on iff its output ``>= threshold``.

    iSOUP-Tree is a multi-target *regression* tree: on multi-label data it regresses the 0/1
    indicator of every label, and thresholding each output at 0.5 makes it a multi-label
    classifier (the same rule as ``moa-isoupt``, so the two implementations compare). The
    river adapter does the rest; only the targets (numbers, not booleans) and the decision
    (a threshold, not truthiness) differ. ``tree_params`` are river's keywords, checked first
    (:func:`check_isoupt_params`): river itself takes an unknown ``leaf_prediction`` as
    ``model`` and a negative ``grace_period`` as "split after every instance", silently.
    """

    def __init__(self, threshold: float = 0.5, **tree_params: Any) -> None:
        from river import tree

        cls = _isoupt_class(tree)
        check_isoupt_params(cls, tree_params)
        super().__init__(cls(**tree_params))
        self.threshold = threshold
        self.tree_params = tree_params

    def _y(self, batch: Batch, i: int) -> dict[Any, float]:  # type: ignore[override]
        return {name: float(on) for name, on in super()._y(batch, i).items()}

    def _ids(self, pred: dict[Any, Any]) -> np.ndarray:
        return super()._ids({k: v >= self.threshold for k, v in (pred or {}).items()})

    def params(self) -> dict[str, Any]:
        return {"threshold": self.threshold, **self.tree_params}


#: The ranges of the numeric keywords of river's ``ISOUPTreeRegressor`` outside which river's
#: documentation gives them no meaning (a count of instances, a probability, a decay factor,
#: a size), as :func:`~ihomer.learners.base.check_range`'s arguments: (low, high, open_low,
#: open_high, integer).
_ISOUPT_RANGES: dict[str, tuple[float, float | None, bool, bool, bool]] = {
    "grace_period": (1, None, False, False, True),
    "max_depth": (1, None, False, False, True),
    "min_samples_split": (0, None, False, False, True),
    "memory_estimate_period": (1, None, False, False, True),
    "delta": (0.0, 1.0, True, True, False),
    "tau": (0.0, None, False, False, False),
    "model_selector_decay": (0.0, 1.0, False, False, False),
    "max_size": (0.0, None, True, False, False),
}


def check_isoupt_params(cls: Any, params: dict[str, Any]) -> None:
    """Raise ``ValueError`` naming the first of ``params`` that river's ``ISOUPTreeRegressor``
    (``cls``) takes without being able to use it (see ``_ISOUPT_RANGES``; ``leaf_prediction``
    must be one of river's own choices). Unknown keywords are the registry's to refuse (the
    factory's signature is river's), or river's ``TypeError`` when built directly."""
    for key, value in params.items():
        if key == "leaf_prediction":
            choices = getattr(cls, "_VALID_LEAF_PREDICTION", ("mean", "model", "adaptive"))
            if value not in choices:
                raise ValueError(f"learner 'river-isoupt': parameter 'leaf_prediction' takes "
                                 f"{', '.join(map(repr, choices))}, not {value!r}")
        elif key in _ISOUPT_RANGES:
            low, high, open_low, open_high, integer = _ISOUPT_RANGES[key]
            try:
                check_range(key, value, low, high, open_low=open_low, open_high=open_high,
                            integer=integer, optional=key == "max_depth")
            except ValueError as e:
                raise ValueError(f"learner 'river-isoupt': {e}") from None


def _isoupt_class(tree: Any) -> Any:
    """river renamed ``iSOUPTreeRegressor`` to ``ISOUPTreeRegressor``; accept either."""
    return getattr(tree, "ISOUPTreeRegressor", None) or tree.iSOUPTreeRegressor


def _moa_factory(name: str, cls: str, default_options: str,
                 default_threshold: float | None) -> Callable[..., MultiLabelLearner]:
    def factory(options: str = default_options, threshold: float | None = default_threshold,
                seed: int | None = None) -> MultiLabelLearner:
        return MOALearner(cls, options=options, threshold=threshold, seed=seed, name=name)

    return factory


def _br_factory(kind: str) -> Callable[..., MultiLabelLearner]:
    def factory(seed: int | None = None) -> MultiLabelLearner:
        return b.BinaryRelevance(b.river_classifier(kind, seed))

    return factory


def _cc(base: str = "lr", seed: int | None = None) -> MultiLabelLearner:
    return b.RiverClassifierChain(b.river_classifier(base, seed))


class _ISOUPTFactory:
    """The factory of ``river-isoupt``, whose parameters are ``threshold`` and the keywords of
    river's ``ISOUPTreeRegressor``, with river's defaults and documentation.

    The registry reads a factory's parameters from ``inspect.signature`` and its docstring
    (to refuse an unknown one by name, check plain types, and list them in ``ihomer learners``);
    ``__signature__`` and ``__doc__`` give it river's, read when first asked for, since
    importing ``river.tree`` takes about a second that a replay of another learner must not
    pay.
    """

    def __call__(self, threshold: float = 0.5, **tree_params: Any) -> MultiLabelLearner:
        return RiverISOUPT(threshold=threshold, **tree_params)

    @property
    def __signature__(self) -> inspect.Signature:
        from river import tree

        own = inspect.Parameter("threshold", inspect.Parameter.KEYWORD_ONLY, default=0.5,
                                annotation="float")
        river = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY)
                 for p in inspect.signature(_isoupt_class(tree)).parameters.values()]
        return inspect.Signature([own, *river])

    @property
    def __doc__(self) -> str:  # type: ignore[override]
        from river import tree

        doc = inspect.getdoc(_isoupt_class(tree)) or ""
        # river's numpydoc Parameters section, its HTML line breaks dropped
        section = doc.partition("Parameters\n----------\n")[2].split("\n\n")[0]
        return ("river's ISOUPTreeRegressor on 0/1 targets.\n\nParameters\n----------\n"
                "threshold\n    A label is on iff the tree's output for it is >= threshold.\n"
                + section.replace("</br>", ""))


def _register() -> None:
    moa = {
        "moa-isoupt": ("moa.classifiers.multilabel.trees.ISOUPTree", "", 0.5,
                       "MOA ISOUPTree (multi-target regression tree), output >= 0.5"),
        "moa-mlht": ("moa.classifiers.multilabel.MultilabelHoeffdingTree", "", None,
                     "MOA MultilabelHoeffdingTree"),
        "moa-br-ht": ("moa.classifiers.multitarget.BasicMultiLabelClassifier",
                      "-l trees.HoeffdingTree", None,
                      "MOA binary relevance (BasicMultiLabelClassifier) over HoeffdingTree"),
    }
    for name, (cls, options, threshold, what) in moa.items():
        register(name, f"{what} (bench extra)")(_moa_factory(name, cls, options, threshold))
    for kind, what in (("ht", "Hoeffding tree"), ("hat", "Hoeffding adaptive tree"),
                       ("arf", "adaptive random forest"),
                       ("lr", "logistic regression on standardised features"),
                       ("nb", "Gaussian naive Bayes")):
        register(f"river-br-{kind}", f"river: binary relevance over {what}")(_br_factory(kind))
    register("river-cc", "river: classifier chain (base=lr|ht|hat|arf|nb)")(_cc)
    register("river-isoupt", "river: ISOUPTreeRegressor on 0/1 targets, output >= 0.5; "
             "takes river's tree keywords")(_ISOUPTFactory())


_register()
