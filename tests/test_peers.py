"""Peer learners: registration without Java, and MOA driven by us == MOA driving itself.

The MOA equivalence test runs each MOA learner twice on the same ARFF file: once through our
reader, our ``MOALearner`` bridge and our evaluator, and once entirely inside MOA (MOA's own
``MultiTargetArffFileStream`` reader, ``getPredictionForInstance`` / ``trainOnInstance`` and
``BasicMultiLabelPerformanceEvaluator``). The per-instance label sets must be identical and our
subset accuracy and Hamming loss must equal MOA's "Exact Match" and 1 - "Hamming Score". That
pins down the instance layout (attribute order, dense vs sparse, labels), the thresholding and
the metric definitions in one go.
"""

from __future__ import annotations

import gzip
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import random_stream, shared_dataset

from ihomer.evaluate.metrics import MultiLabelMetrics
from ihomer.evaluate.prequential import prequential
from ihomer.learners.registry import available, make
from ihomer.stream.sources import limit_stream, open_stream

EMOTIONS = Path(__file__).resolve().parents[1] / "ihomer" / "data" / "emotions.arff.gz"
PEERS = ("moa-isoupt", "moa-mlht", "moa-br-ht", "river-br-ht", "river-br-hat", "river-br-arf",
         "river-br-lr", "river-cc", "river-isoupt")


def test_peers_are_registered_and_importing_ihomer_starts_no_jvm() -> None:
    assert set(PEERS) <= set(available())
    code = ("import sys, ihomer, ihomer.cli; from ihomer.learners.registry import available, "
            "make; available(); make('river-isoupt'); "
            "print(sorted({'capymoa', 'jpype'} & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"


def test_moa_peer_without_the_extra_names_the_install_line() -> None:
    code = ("import sys; sys.modules['capymoa'] = None; from ihomer.cli import main; "
            "sys.exit(main(['replay', '--learner', 'moa-isoupt', '--limit', '5']))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "learner 'moa-isoupt' needs `pip install ihomer[bench]`" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("name", [p for p in PEERS if p.startswith("river-")])
def test_river_peers_run_through_the_evaluator(name: str) -> None:
    result = prequential(random_stream(n=120, seed=3), make(name, seed=1))
    s = result.summary
    assert s["instances"] == 120
    assert 0.0 <= s["hamming_loss"] <= 1.0 and 0.0 <= s["micro_f1"] <= 1.0


def test_river_isoupt_is_rivers_tree_thresholded_at_half() -> None:
    from river import tree

    stream = limit_stream(open_stream(EMOTIONS), 150)
    learner = make("river-isoupt").bind(stream.schema)
    ours = [learner.test_then_train_many(b) for b in stream.batches(64)]
    ours_rows = [p.row(i).tolist() for p in ours for i in range(len(p))]
    isoupt = getattr(tree, "ISOUPTreeRegressor", None) or tree.iSOUPTreeRegressor  # renamed
    ref, ref_rows = isoupt(), []
    names = stream.schema.feature_names
    labels = stream.schema.label_names
    for batch in stream.batches(64):
        for inst in batch:
            x = {names[j]: v for j, v in zip(inst.indices.tolist(), inst.values.tolist(),
                                             strict=True)}
            pred = ref.predict_one(x)
            ref_rows.append([k for k, lab in enumerate(labels) if pred.get(lab, 0.0) >= 0.5])
            on = set(inst.labels.tolist())
            ref.learn_one(x, {lab: float(k in on) for k, lab in enumerate(labels)})
    assert ours_rows == ref_rows


@pytest.mark.parametrize("param, message", [
    ("bogus=1", "learner 'river-isoupt' has no parameter 'bogus'; it takes: threshold, "
                "grace_period, max_depth"),
    ("leaf_prediction='bogus'", "parameter 'leaf_prediction' takes 'mean', 'model', "
                                "'adaptive', not 'bogus'"),
    ("grace_period=-1", "learner 'river-isoupt': grace_period must be an integer in [1, inf), "
                        "not -1"),
    ("grace_period=0", "grace_period must be an integer in [1, inf), not 0"),
    ("grace_period=1.5", "parameter 'grace_period' takes int, not 1.5"),
    ("max_depth=0", "max_depth must be None or an integer in [1, inf), not 0"),
    ("delta=2", "delta must be in (0, 1), not 2"),
    ("model_selector_decay=1.5", "model_selector_decay must be in [0, 1], not 1.5"),
])
def test_river_isoupt_refuses_what_river_would_not_use_by_name(param: str, message: str,
                                                                capsys) -> None:
    """river's tree took ``bogus=1`` as a TypeError traceback, and ``leaf_prediction='bogus'``
    (as 'model') or ``grace_period=-1`` (a split attempt after every instance) silently."""
    from ihomer.cli import main

    assert main(["replay", "--quiet", "--limit", "20", "--learner", "river-isoupt", "--param",
                 param]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.splitlines()) == 1


def test_river_isoupt_takes_rivers_tree_keywords_and_lists_them() -> None:
    from ihomer.learners.registry import parameters

    learner = make("river-isoupt", {"leaf_prediction": "model", "grace_period": 50,
                                    "max_depth": None})
    assert learner.params() == {"threshold": 0.5, "leaf_prediction": "model",
                                "grace_period": 50, "max_depth": None}
    assert learner.model.leaf_prediction == "model" and learner.model.grace_period == 50
    rows = {key: (default, text) for key, default, text in parameters("river-isoupt")}
    assert rows["threshold"][0] == "0.5" and "threshold" in rows["threshold"][1]
    assert rows["grace_period"] == ("200", "Number of instances a leaf should observe "
                                           "between split attempts.")
    assert rows["leaf_prediction"][0] == "'adaptive'" and "'mean'" in rows["leaf_prediction"][1]
    assert "</br>" not in rows["leaf_prediction"][1]


# ---------------------------------------------------------------------------------------- MOA
def _moa_own_run(arff: Path, moa_class: str, options: str, n_labels: int, limit: int,
                 threshold: float | None) -> tuple[list[list[int]], list[bool], dict[str, float]]:
    """MOA reading the ARFF and evaluating itself: label sets, counted flags, measurements."""
    import jpype
    from moa.core import InstanceExample
    from moa.evaluation import BasicMultiLabelPerformanceEvaluator
    from moa.streams import MultiTargetArffFileStream

    stream = MultiTargetArffFileStream(str(arff), f"-{n_labels}")
    stream.prepareForUse()
    model = jpype.JClass(moa_class)()
    if options:
        model.getOptions().setViaCLIString(options)
    model.prepareForUse()
    model.setModelContext(stream.getHeader())
    model.resetLearning()
    evaluator = BasicMultiLabelPerformanceEvaluator()
    rows, counted = [], []
    for _ in range(limit):
        inst = stream.nextInstance().getData()
        pred = model.getPredictionForInstance(inst)
        on: list[int] = []
        if pred is not None:
            for j in range(pred.numOutputAttributes()):
                v1 = pred.getVote(j, 1)
                if (v1 > pred.getVote(j, 0)) if threshold is None else (v1 >= threshold):
                    on.append(j)
        rows.append(on)
        # MOA's evaluator ignores a null prediction (a tree before its first instance).
        counted.append(pred is not None)
        if pred is not None:
            evaluator.addResult(InstanceExample(inst), pred)
        model.trainOnInstance(inst)
    measures = {str(m.getName()): float(m.getValue())
                for m in evaluator.getPerformanceMeasurements()}
    return rows, counted, measures


CASES = [
    # (dataset, learner, MOA class, options, threshold)
    ("emotions", "moa-mlht", "moa.classifiers.multilabel.MultilabelHoeffdingTree", "", None),
    ("emotions", "moa-br-ht", "moa.classifiers.multitarget.BasicMultiLabelClassifier",
     "-l trees.HoeffdingTree", None),
    ("emotions", "moa-isoupt", "moa.classifiers.multilabel.trees.ISOUPTree", "", None),
    ("flags", "moa-mlht", "moa.classifiers.multilabel.MultilabelHoeffdingTree", "", None),
    ("flags", "moa-br-ht", "moa.classifiers.multitarget.BasicMultiLabelClassifier",
     "-l trees.HoeffdingTree", None),
    ("medical", "moa-mlht", "moa.classifiers.multilabel.MultilabelHoeffdingTree", "", None),
    ("medical", "moa-isoupt", "moa.classifiers.multilabel.trees.ISOUPTree", "", 0.5),
]


@pytest.mark.parametrize(("dataset", "name", "moa_class", "options", "threshold"), CASES)
def test_moa_peer_through_our_evaluator_equals_moa_itself(
        tmp_path: Path, dataset: str, name: str, moa_class: str, options: str,
        threshold: float | None) -> None:
    pytest.importorskip("capymoa", reason="needs the bench extra (capymoa)")
    limit = 300 if dataset == "emotions" else 200
    src = EMOTIONS if dataset == "emotions" else shared_dataset(f"{dataset}.arff.gz")
    stream = limit_stream(open_stream(src), limit)
    n_labels = stream.schema.n_labels

    learner = make(name, {"threshold": threshold}).bind(stream.schema)
    preds = [learner.test_then_train_many(b) for b in stream.batches(97)]
    ours = [p.row(i).tolist() for p in preds for i in range(len(p))]
    truth = [inst.labels.tolist() for b in stream.batches(97) for inst in b]

    arff = tmp_path / f"{dataset}.arff"
    with gzip.open(src, "rb") as f, arff.open("wb") as g:
        shutil.copyfileobj(f, g)
    moa_rows, counted, moa = _moa_own_run(arff, moa_class, options, n_labels, len(truth),
                                          threshold)

    assert ours == moa_rows
    assert sum(any(r) for r in ours) > 0, "a learner that never predicts proves little"
    if threshold is not None:
        return  # MOA's evaluator only knows its own vote rule; the label sets matched above
    metrics = MultiLabelMetrics()
    for t, p, c in zip(truth, ours, counted, strict=True):
        if c:
            metrics.update_one(t, p, n_labels)
    got = metrics.get()
    assert got["subset_accuracy"] == pytest.approx(moa["Exact Match"], abs=1e-12)
    assert 1.0 - got["hamming_loss"] == pytest.approx(moa["Hamming Score"], abs=1e-12)


@pytest.mark.parametrize("name", ["moa-br-ht", "moa-mlht", "moa-isoupt"])
def test_moa_peer_faces_scores_and_params(name: str) -> None:
    pytest.importorskip("capymoa", reason="needs the bench extra (capymoa)")
    stream = limit_stream(open_stream(EMOTIONS), 80)
    learner = make(name, seed=7)
    result = prequential(stream, learner, learner_name=name)
    assert result.summary["instances"] == 80
    params = result.summary["params"]
    assert params["moa_class"].startswith("moa.classifiers.")
    if name == "moa-br-ht":
        assert "trees.HoeffdingTree" in params["options"]
    x = {f: 0.1 for f in stream.schema.feature_names}
    proba = learner.predict_proba_one(x)
    assert set(proba) == set(stream.schema.label_names)
    p = np.array([v[True] for v in proba.values()])
    assert np.isfinite(p).all() and (p >= 0).all() and (p <= 1).all()
    assert set(learner.predict_one(x)) == set(stream.schema.label_names)
    with pytest.raises(ValueError, match="header is fixed"):
        learner.learn_one({"a feature the header lacks": 1.0}, [])


@pytest.mark.parametrize("options, message", [
    ("-zzz", "learner 'moa-br-ht': MOA refuses the options '-zzz': Unknown option: -zzz"),
    ("-l bogus.Tree", "MOA refuses the options '-l bogus.Tree': Problems with option: "
                      "baseLearner: Class not found: bogus.Tree"),
    ("-l (trees.HoeffdingTree -g -5)", "Option gracePeriod cannot be less than 0"),
])
def test_moa_options_it_refuses_are_one_line_naming_them(options: str, message: str,
                                                         capsys) -> None:
    """They were a 33-line Java traceback, at the first instance."""
    pytest.importorskip("capymoa", reason="needs the bench extra (capymoa)")
    from ihomer.cli import main

    assert main(["replay", "--quiet", "--limit", "5", "--learner", "moa-br-ht", "--param",
                 f"options={options}"]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.splitlines()) == 1
