"""What comes in at the learners' door: batches that break the CSR contract and unusable
feature values are refused with the row and the field named, a refused call leaves the model
as it was, and missing values are read as absent."""

from __future__ import annotations

import json
import re
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ihomer.cli import main
from ihomer.evaluate.prequential import prequential
from ihomer.learners.base import RowError
from ihomer.learners.hierarchy import IHOMER
from ihomer.learners.mlhat import MLHAT
from ihomer.learners.registry import make
from ihomer.stream.arff import read_arff
from ihomer.stream.base import (
    INDEX_DTYPE,
    MAX_ABS_VALUE,
    MAX_FEATURES,
    PTR_DTYPE,
    Batch,
    InMemoryStream,
    Schema,
)

LEARNERS = ["mlhat", "ihomer", "majority", "river-br-nb"]


def stream(n: int, seed: int, n_features: int = 4) -> Batch:
    """A small dense stream whose two labels follow the first two features."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, n_features))
    y = np.column_stack([x[:, 0] > 0, x[:, 1] > 0.5])
    return Batch(np.arange(0, n * n_features + 1, n_features, dtype=PTR_DTYPE),
                 np.tile(np.arange(n_features, dtype=INDEX_DTYPE), n), x.ravel(),
                 np.concatenate([[0], np.cumsum(y.sum(axis=1))]).astype(PTR_DTYPE),
                 np.concatenate([np.flatnonzero(r) for r in y]).astype(INDEX_DTYPE))


def with_nans(batch: Batch, where: np.ndarray) -> Batch:
    values = batch.values.copy()
    values[where] = np.nan
    return Batch(batch.indptr, batch.indices, values, batch.label_indptr, batch.label_ids)


def without(batch: Batch, where: np.ndarray) -> Batch:
    """``batch`` with the entries ``where`` left out (what a missing value should mean)."""
    keep = np.ones(len(batch.values), np.bool_)
    keep[where] = False
    rows = np.repeat(np.arange(len(batch)), np.diff(batch.indptr))[keep]
    indptr = np.zeros(len(batch) + 1, PTR_DTYPE)
    np.cumsum(np.bincount(rows, minlength=len(batch)), out=indptr[1:])
    return Batch(indptr, batch.indices[keep], batch.values[keep], batch.label_indptr,
                 batch.label_ids)


def fresh(name: str, n_features: int = 4):
    model = make(name)
    for j in range(n_features):
        model.feature_vocab.add(f"x{j}")
    model.label_vocab.add("a")
    model.label_vocab.add("b")
    return model


def answers(model, batch: Batch) -> list[list[int]]:
    pred = model.predict_many(batch)
    return [pred.row(i).tolist() for i in range(len(pred))]


@pytest.mark.parametrize("name", ["mlhat", "ihomer"])
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**16), rate=st.sampled_from([0.05, 0.3, 1.0]))
def test_a_missing_value_is_the_entry_left_out(name, seed, rate):
    data = stream(400, seed)
    where = np.flatnonzero(np.random.default_rng(seed + 1).random(len(data.values)) < rate)
    gappy, reference = fresh(name), fresh(name)
    with pytest.warns(UserWarning, match="missing feature values") as caught:
        got = gappy.test_then_train_many(with_nans(data, where))
    assert len(caught) == 1  # once, not per batch or per value
    want = reference.test_then_train_many(without(data, where))
    assert got.indptr.tolist() == want.indptr.tolist()
    assert got.label_ids.tolist() == want.label_ids.tolist()
    assert gappy.n_missing == len(where)
    probe = stream(50, seed + 2)
    assert answers(gappy, probe) == answers(reference, probe)


@pytest.mark.parametrize("name", LEARNERS)
def test_the_river_face_reads_none_and_nan_as_absent(name):
    data = stream(120, 3)
    one, ref = fresh(name), fresh(name)
    nan_at = {5, 17, 40, 41, 90}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        for i in range(len(data)):
            a, b = data.indptr[i], data.indptr[i + 1]
            x = {f"x{j}": float(v) for j, v in zip(data.indices[a:b], data.values[a:b],
                                                   strict=True)}
            present = data.label_ids[data.label_indptr[i]:data.label_indptr[i + 1]].tolist()
            y = {"a": 0 in present, "b": 1 in present}
            kept = dict(x)
            if i in nan_at:
                x["x0"] = None if i % 2 else float("nan")
                del kept["x0"]
            assert one.predict_one(x) == ref.predict_one(kept)
            one.learn_one(x, y)
            ref.learn_one(kept, y)
    assert one.n_missing == 2 * len(nan_at)  # each row came in twice: predicted, then learned


@pytest.mark.parametrize("name", LEARNERS)
@pytest.mark.parametrize(("value", "message"), [
    (np.inf, "inf is not a finite number"),
    (-np.inf, "-inf is not a finite number"),
    (2e101, "beyond ±1e+100"),
    (-MAX_ABS_VALUE * 1.5, "beyond ±1e+100"),
])
def test_an_unusable_value_is_refused_and_the_model_kept(name, value, message):
    data = stream(200, 11)
    model, twin = fresh(name), fresh(name)
    model.test_then_train_many(data.slice(0, 150))
    twin.test_then_train_many(data.slice(0, 150))
    bad = data.slice(150, 200)
    values = bad.values.copy()
    values[4 * 7 + 2] = value  # row 7, feature x2
    poisoned = Batch(bad.indptr, bad.indices, values, bad.label_indptr, bad.label_ids)
    for call in (model.test_then_train_many, model.learn_many, model.predict_many,
                 model.predict_proba_many):
        with pytest.raises(ValueError,
                           match=f"row 7 of the batch, feature 'x2': .*{re.escape(message)}"):
            call(poisoned)
    x = {"x0": 0.5, "x2": float(value)}
    for one in (model.predict_one, model.predict_proba_one,
                lambda x: model.learn_one(x, {"a"})):
        with pytest.raises(ValueError, match=f"feature 'x2': .*{re.escape(message)}"):
            one(x)
    with pytest.raises(ValueError, match="feature 'new': "):
        model.learn_one({"x0": 0.5, "new": float(value)}, {"a"})
    assert "new" not in model.feature_vocab  # refused before the vocabulary grew
    probe = stream(60, 12)
    assert answers(model, probe) == answers(twin, probe)
    model.test_then_train_many(bad)
    twin.test_then_train_many(bad)
    assert answers(model, probe) == answers(twin, probe)


@pytest.mark.parametrize("name", ["mlhat", "ihomer"])
def test_a_prediction_checks_the_values_of_features_it_does_not_know(name):
    """As predict_one refuses {"unknown": inf}, predict_many refuses an unusable value in a
    column beyond the vocabulary (it used to drop the column unread and answer)."""
    model = fresh(name, n_features=1)
    bad = Batch.from_dense([[1.0, 0.0], [1.0, np.inf]])
    for call in (model.predict_many, model.predict_proba_many):
        with pytest.raises(ValueError, match="row 1 of the batch, feature id 1: inf is not"):
            call(bad)
    with pytest.raises(ValueError, match="feature 'zzz': inf is not"):
        model.predict_one({"x0": 1.0, "zzz": float("inf")})
    assert len(model.feature_vocab) == 1  # nothing grew
    with pytest.warns(UserWarning, match="missing feature values"):
        model.predict_many(Batch.from_dense([[1.0, np.nan]]))
    assert model.n_missing == 1  # counted once


def test_an_event_id_names_the_refused_row():
    data = stream(10, 1)
    values = data.values.copy()
    values[9] = np.inf
    bad = Batch(data.indptr, data.indices, values, data.label_indptr, data.label_ids,
                event_ids=[f"e{i}" for i in range(10)])
    with pytest.raises(ValueError, match="event 'e2', feature 'x1': inf"):
        fresh("mlhat").test_then_train_many(bad)


@pytest.mark.parametrize("events", [False, True])
@pytest.mark.parametrize("kw", [{}, {"batch_size": 1000}, {"batch_size": 7}, {"batched": True}])
def test_a_replay_names_the_stream_record_of_an_unusable_value(kw, events):
    """The evaluator hands the learner its stream in parts (one per curve point, or per
    budget chunk): the error names the record of the stream, not its row in the part."""
    data = stream(1000, 3)
    values = data.values.copy()
    values[4 * 600 + 1] = np.inf  # record 600, feature x1
    ids = [f"e{i}" for i in range(1000)] if events else None
    bad = Batch(data.indptr, data.indices, values, data.label_indptr, data.label_ids,
                event_ids=ids)
    schema = Schema(tuple(f"x{j}" for j in range(4)), ("a", "b"), source="mine.arff")
    where = "mine.arff, record 600" + (" (event 'e600')" if events else "")
    with pytest.raises(RowError, match=re.escape(f"{where}, feature 'x1': inf is not")) as e:
        prequential(InMemoryStream(schema, bad), make("mlhat"), **kw)
    assert e.value.row == 600


@pytest.mark.parametrize("name", ["mlhat", "ihomer", "majority"])
def test_a_refused_schema_leaves_the_model_as_it_was(name):
    model = make(name)
    model.learn_one({"f": 1.0}, {"x"})
    before = (list(model.feature_vocab.names), list(model.label_vocab.names), model.n_labels,
              model.predict_proba_one({"f": 1.0}))
    for schema, message in (
            (Schema(("f",), ("jazz", "x")), "schema label 'jazz' is id 0 in the stream"),
            (Schema(("g", "f"), ("x",)), "schema feature 'g' is id 0 in the stream"),
            (Schema(("f", "g"), ("x", 2.5)), "label name 2.5 is a float")):
        with pytest.raises((ValueError, TypeError), match=re.escape(message)):
            model.bind(schema)
        after = (list(model.feature_vocab.names), list(model.label_vocab.names),
                 model.n_labels, model.predict_proba_one({"f": 1.0}))
        assert after == before
    model.bind(Schema(("f", "g"), ("x", "y")))  # an extension is adopted
    assert model.label_vocab.names == ["x", "y"] and model.n_labels == 2


@pytest.mark.parametrize(("x", "y", "error", "message"), [
    ({"x0": "red"}, {"a"}, ValueError, "feature 'x0': 'red' is not a number"),
    ({"x0": [1.0]}, {"a"}, ValueError, r"feature 'x0': \[1.0\] is not a number"),
    ({"x0": 10**400}, {"a"}, ValueError, "feature 'x0': an integer beyond float64"),
    ({"x0": 1.0}, None, TypeError, "not NoneType"),
    ({"x0": 1.0}, 3, TypeError, "not int"),
    ([("x0", 1.0)], {"a"}, TypeError, "x must be a {feature: value} dict, not list"),
])
def test_the_river_face_names_what_it_cannot_read(x, y, error, message):
    model = fresh("ihomer")
    model.learn_one({"x0": 1.0, "x1": 0.0}, {"a"})
    before = len(model.feature_vocab), len(model.label_vocab)
    with pytest.raises(error, match=message):
        model.learn_one(x, y)
    assert (len(model.feature_vocab), len(model.label_vocab)) == before


def test_a_file_with_missing_values_replays(tmp_path):
    path = tmp_path / "gappy.arff"
    rows = [f"{'?' if i % 5 == 0 else i % 3},{(i * 7) % 4},{i % 2},{(i // 2) % 2}"
            for i in range(300)]
    path.write_text("@relation gappy\n@attribute a numeric\n@attribute b numeric\n"
                    "@attribute y1 {0,1}\n@attribute y2 {0,1}\n@data\n" + "\n".join(rows) + "\n")
    s = read_arff(path, "last:2")
    assert np.isnan(s.data.values).sum() == 60
    model = make("ihomer").bind(s.schema)
    with pytest.warns(UserWarning, match="the first in feature 'a'"):
        pred = model.test_then_train_many(s.data)
    assert len(pred) == 300 and model.n_missing == 60
    with pytest.warns(UserWarning, match="missing feature values"):
        assert main(["replay", str(path), "--labels", "last:2", "--quiet",
                     "--out", str(tmp_path / "run")]) == 0
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["instances"] == 300 and summary["missing_values"] == 60


@st.composite
def csr_batches(draw: st.DrawFn) -> Batch:
    """A valid batch: per row, sorted distinct feature ids and label ids."""
    n = draw(st.integers(1, 6))
    feats = [sorted(draw(st.sets(st.integers(0, 30), max_size=5))) for _ in range(n)]
    labs = [sorted(draw(st.sets(st.integers(0, 9), max_size=4))) for _ in range(n)]
    return Batch(np.concatenate([[0], np.cumsum([len(f) for f in feats])]),
                 np.asarray([i for f in feats for i in f], INDEX_DTYPE),
                 np.ones(sum(len(f) for f in feats)),
                 np.concatenate([[0], np.cumsum([len(c) for c in labs])]),
                 np.asarray([i for c in labs for i in c], INDEX_DTYPE))


@settings(max_examples=200, deadline=None)
@given(batch=csr_batches(), data=st.data())
def test_every_break_of_the_csr_contract_is_named(batch, data):
    batch.check()  # a valid batch passes
    which = data.draw(st.sampled_from(["feature", "label"]))
    ptr, ids = ((batch.indptr, batch.indices) if which == "feature"
                else (batch.label_indptr, batch.label_ids))
    rows = [r for r in range(len(batch)) if ptr[r + 1] > ptr[r]]
    if not rows:
        return
    r = data.draw(st.sampled_from(rows))
    a, b = int(ptr[r]), int(ptr[r + 1])
    kind = data.draw(st.sampled_from(["negative", "repeat", "swap", "pointer"]))
    if kind in ("swap", "repeat") and b - a < 2:
        kind = "negative"
    if kind == "negative":
        ids[a] = -1 - ids[a]
        message = f"row {r} of the batch, {which} id {ids[a]} is negative"
    elif kind == "repeat":
        ids[a + 1] = ids[a]
        message = (f"row {r} of the batch, {which} ids must increase within a row "
                   f"({ids[a]}, then {ids[a]})")
    elif kind == "swap":
        ids[a], ids[a + 1] = ids[a + 1], ids[a]
        message = (f"row {r} of the batch, {which} ids must increase within a row "
                   f"({ids[a]}, then ")
    else:
        ptr[-1] += 1
        message = f"{which} pointers end at {ptr[-1]}"
    with pytest.raises(ValueError, match=re.escape(message)):
        batch.check()
    model = fresh("mlhat")
    with pytest.raises(ValueError, match=re.escape(message)):
        model.test_then_train_many(batch)
    assert (len(model.feature_vocab), len(model.label_vocab)) == (4, 2)  # nothing grew


@pytest.mark.parametrize(("name", "params", "message"), [
    ("mlhat", {"grace_period": 0}, "grace_period must be an integer in [1, inf), not 0"),
    ("mlhat", {"delta": 0.0}, "delta must be in (0, 1), not 0.0"),  # was a ZeroDivisionError
    ("mlhat", {"delta": 2}, "delta must be in (0, 1), not 2"),
    ("mlhat", {"tau": -1}, "tau must be in [0, inf)"),
    ("mlhat", {"n_thresholds": 0}, "n_thresholds must be an integer in [1, inf)"),
    ("mlhat", {"learning_rate": -1.0}, "learning_rate must be in (0, inf)"),
    ("mlhat", {"nb_alpha": 0.0}, "nb_alpha must be in (0, inf)"),
    ("mlhat", {"adwin_delta": 1.0}, "adwin_delta must be in (0, 1)"),
    ("mlhat", {"drift_window": 0}, "drift_window must be an integer in [1, inf)"),
    ("mlhat", {"max_nodes": 0}, "max_nodes must be None or an integer in [1, inf)"),
    ("mlhat", {"threshold": 1.0}, "threshold must be in (0, 1)"),
    ("mlhat", {"tau": float("nan")}, "tau must be in [0, inf), not nan"),
    # was an endless loop
    ("ihomer", {"handover_min": -1}, "handover_min must be an integer in [1, inf)"),
    ("ihomer", {"handover_min": 300, "handover_max": 200},
     "handover_max (200) must be at least handover_min (300)"),
    # the default handover_max is not to blame when only handover_min was set
    ("ihomer", {"handover_min": 10000}, "handover_max (5000) must be at least handover_min"),
    ("ihomer", {"route_from": 0}, "route_from must be an integer in [1, inf)"),
    ("ihomer", {"tree": {"grace_period": 0}}, "tree: grace_period must be an integer in [1, inf)"),
    ("ihomer", {"tree": {"bogus": 1}}, "tree: MLHAT.__init__() got an unexpected keyword"),
])
def test_a_bad_parameter_fails_at_once_by_name(name, params, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        make(name, params)


@pytest.mark.parametrize(("name", "params", "message"), [
    ("mlhat", {"no_change": "false"}, "no_change must be True or False, not 'false'"),
    ("mlhat", {"nonempty": 0}, "nonempty must be True or False, not 0"),
    ("mlhat", {"poisson": "yes"}, "poisson must be True or False"),
    ("mlhat", {"seed": "a"}, "seed must be an integer, not 'a'"),
    ("mlhat", {"seed": 1.5}, "seed must be an integer, not 1.5"),
    ("ihomer", {"no_change": "false"}, "no_change must be True or False"),
    ("ihomer", {"warm_start": "False"}, "warm_start must be True or False"),
    ("ihomer", {"handover": None}, "handover must be True or False, not None"),
    ("ihomer", {"seed": True}, "seed must be an integer, not True"),
    # infinite rates gave NaN probabilities, then "negative dimensions" from the decoder
    ("mlhat", {"learning_rate": float("inf")}, "learning_rate must be in (0, inf), not inf"),
    ("mlhat", {"leaf_mixing": float("inf")}, "leaf_mixing must be None or in [0, inf), not inf"),
    ("ihomer", {"tree": {"nb_alpha": float("inf")}}, "tree: nb_alpha must be in (0, inf)"),
    # integer parameters took fractions; other types failed in a comparison naming nothing
    ("mlhat", {"grace_period": 2.5}, "grace_period must be an integer in [1, inf), not 2.5"),
    ("mlhat", {"max_depth": 2.5}, "max_depth must be an integer in [0, inf)"),
    ("mlhat", {"max_labelsets": "x"}, "max_labelsets must be an integer in [1, inf), not 'x'"),
    ("mlhat", {"model_fading": "x"}, "model_fading must be in (0, 1], not 'x'"),
    ("mlhat", {"labelset_prior": "x"}, "labelset_prior must be in [0, inf), not 'x'"),
    ("mlhat", {"vote_weight": [1]}, "vote_weight must be 'auto' or in [0, 1], not [1]"),
    ("ihomer", {"route_from": 1.5}, "route_from must be an integer in [1, inf), not 1.5"),
    ("ihomer", {"n_min": "x"}, "n_min must be an integer in [1, inf), not 'x'"),
    ("ihomer", {"max_size": 1}, "max_size must be None or an integer in [2, inf), not 1"),
])
def test_a_constructor_refuses_a_flag_or_seed_of_another_type(name, params, message):
    """Built directly (not through ``make``, which parses strings and checks types), a yes/no
    option given a string such as "false" would be truthy and switch the option on, and a
    value of another kind failed later, or never."""
    cls = {"mlhat": MLHAT, "ihomer": IHOMER}[name]
    with pytest.raises(ValueError, match=re.escape(message)):
        cls(**params)


def test_numpy_flags_and_integers_are_taken() -> None:
    MLHAT(no_change=np.bool_(True), poisson=np.bool_(False), seed=np.int64(3),
          grace_period=np.int64(50), max_nodes=np.int32(100), learning_rate=np.float32(0.5))
    IHOMER(handover=np.bool_(True), warm_start=np.bool_(False), n_min=np.int64(50),
           seed=np.int64(3))


@pytest.mark.parametrize(("field", "message"), [
    ("feature", f"row 1 of the batch, feature id {MAX_FEATURES} is beyond the 16,777,216"),
    ("label", f"row 1 of the batch, label id {2**31 - 1} is beyond the 1,048,576"),
])
def test_an_id_far_beyond_the_vocabulary_is_refused_not_built(field, message):
    # Without the bound, one stray id (a raw hash) made the learner build a placeholder name
    # for every id below it: billions, for the label id here.
    data = stream(3, 0)
    if field == "feature":
        data.indices[4 + 3] = MAX_FEATURES
    else:
        data.label_ids[-1] = 2**31 - 1
        data = Batch(data.indptr, data.indices, data.values, np.array([0, 0, 1, 1]),
                     data.label_ids[-1:])
    model = fresh("mlhat")
    with pytest.raises(ValueError, match=re.escape(message)):
        model.test_then_train_many(data)
    assert (len(model.feature_vocab), len(model.label_vocab)) == (4, 2)


@pytest.mark.parametrize("name", ["mlhat", "ihomer", "majority"])
def test_the_count_of_missing_values_survives_a_checkpoint(name):
    model = fresh(name)
    data = stream(50, 4)
    with pytest.warns(UserWarning):
        model.test_then_train_many(with_nans(data, np.array([1, 9, 30])))
    state = model.state_dict()
    back = type(model).from_state_dict(state)
    assert back.n_missing == 3
    del state["n_missing"]  # a state saved before the count existed
    assert type(model).from_state_dict(state).n_missing == 0


_ROW = st.tuples(st.lists(st.integers(0, 50), max_size=6, unique=True),
                 st.lists(st.integers(0, 9), max_size=4, unique=True),
                 st.one_of(st.none(), st.text(max_size=5)),
                 st.one_of(st.none(), st.integers(0, 99)))


@given(st.lists(_ROW, max_size=8))
def test_batch_from_rows_keeps_every_row(rows: list) -> None:
    # the one constructor behind Batch.from_instances and the Kafka service's batches
    from ihomer.stream.base import INDEX_DTYPE, VALUE_DTYPE

    feats = [np.asarray(sorted(f), dtype=INDEX_DTYPE) for f, _, _, _ in rows]
    vals = [np.arange(1, len(f) + 1, dtype=VALUE_DTYPE) for f in feats]
    labels = [np.asarray(sorted(y), dtype=INDEX_DTYPE) for _, y, _, _ in rows]
    texts = [t for _, _, t, _ in rows]
    times = [t for _, _, _, t in rows]
    b = Batch.from_rows(feats, vals, labels, event_ids=[f"e{k}" for k in range(len(rows))],
                        event_times=times, texts=texts)
    assert len(b) == len(rows)
    for k in range(len(rows)):
        a, z = b.indptr[k], b.indptr[k + 1]
        assert b.indices[a:z].tolist() == feats[k].tolist()
        assert b.values[a:z].tolist() == vals[k].tolist()
        assert b.label_ids[b.label_indptr[k]: b.label_indptr[k + 1]].tolist() == labels[k].tolist()
    assert b.event_ids == ([f"e{k}" for k in range(len(rows))] if rows else None)
    # a column of nothing but None is left out; else a missing text reads as ""
    assert b.texts == (None if all(t is None for t in texts) else [t or "" for t in texts])
    assert (b.event_times is None) == all(t is None for t in times)
    if b.event_times is not None:
        assert b.event_times.tolist() == [-1 if t is None else t for t in times]
