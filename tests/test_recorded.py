"""Recorded-stream format: round trips through Parquet and Arrow IPC, metadata, errors."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import random_stream, shared_dataset
from hypothesis import given, settings
from hypothesis import strategies as st

from ihomer.stream.base import Batch, StreamError
from ihomer.stream.recorded import RecordedStream, write_recorded
from ihomer.stream.sources import open_stream


def assert_same_instances(a, b) -> None:
    rows_a, rows_b = list(a), list(b)
    assert len(rows_a) == len(rows_b)
    for x, y in zip(rows_a, rows_b, strict=True):
        nz = x.values != 0  # the dense layout cannot tell an explicit zero from an absent one
        np.testing.assert_array_equal(x.indices[nz], y.indices)
        np.testing.assert_array_equal(x.values[nz], y.values)
        np.testing.assert_array_equal(x.labels, y.labels)
        assert x.event_id == y.event_id
        assert x.event_time == y.event_time


@pytest.mark.parametrize("suffix", [".parquet", ".arrow"])
@pytest.mark.parametrize("layout", ["sparse", "dense"])
@pytest.mark.parametrize("sparse_data", [True, False])
def test_round_trip(tmp_path: Path, suffix: str, layout: str, sparse_data: bool) -> None:
    stream = random_stream(n=257, sparse=sparse_data)
    path = tmp_path / f"s{suffix}"
    assert write_recorded(stream, path, layout=layout, batch_size=50) == 257
    back = RecordedStream(path)
    assert len(back) == 257
    assert back.schema.feature_names == stream.schema.feature_names
    assert back.schema.label_names == stream.schema.label_names
    assert back.recorded_from == "synthetic" and back.schema.source == str(path)
    assert back.layout == layout
    assert_same_instances(stream, back)
    # Re-batching at any size gives the same rows.
    assert sum(len(b) for b in back.batches(33)) == 257
    assert_same_instances(stream, (r for b in back.batches(33) for r in b))


@settings(max_examples=25, deadline=None)
@given(n=st.integers(0, 40), nf=st.integers(1, 9), nl=st.integers(1, 6), seed=st.integers(0, 10**6),
       bs=st.integers(1, 17))
def test_round_trip_property(tmp_path_factory, n, nf, nl, seed, bs) -> None:
    stream = random_stream(n=n, n_features=nf, n_labels=nl, seed=seed)
    path = tmp_path_factory.mktemp("rt") / "s.parquet"
    write_recorded(stream, path, batch_size=bs)
    assert_same_instances(stream, RecordedStream(path))


def test_arff_to_parquet_to_replay_is_identical(tmp_path: Path) -> None:
    src = shared_dataset("enron.arff.gz")
    arff = open_stream(src)
    out = tmp_path / "enron.parquet"
    write_recorded(arff, out)
    back = open_stream(out)
    assert back.schema.label_names == arff.schema.label_names
    assert back.schema.feature_names == arff.schema.feature_names
    assert back.schema.sparse
    assert_same_instances(arff, back)


def test_embedded_default_round_trip(tmp_path: Path) -> None:
    arff = open_stream(None)
    out = tmp_path / "emotions.arrow"
    write_recorded(arff, out)
    assert not RecordedStream(out).schema.sparse
    assert_same_instances(arff, open_stream(out))


def test_plain_parquet_is_refused_with_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "other.parquet"
    pq.write_table(pa.table({"a": [1, 2]}), path)
    with pytest.raises(StreamError, match="not an ihomer recorded stream"):
        RecordedStream(path)


def test_garbage_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "junk.arrow"
    path.write_bytes(b"definitely not arrow")
    with pytest.raises(StreamError, match=r"junk\.arrow"):
        RecordedStream(path)


def test_newer_format_is_refused(tmp_path: Path) -> None:
    stream = random_stream(n=3)
    path = tmp_path / "s.parquet"
    write_recorded(stream, path)
    table = pq.read_table(path)
    meta = dict(table.schema.metadata)
    meta[b"ihomer.format"] = b"999"
    pq.write_table(table.replace_schema_metadata(meta), path)
    with pytest.raises(StreamError, match="newer"):
        RecordedStream(path)


@pytest.mark.parametrize(("layout", "dropped"), [("sparse", "labels"),
                                                  ("sparse", "feature_values"),
                                                  ("dense", "features")])
def test_a_recording_without_a_column_its_layout_needs_is_refused_by_name(
        tmp_path: Path, layout: str, dropped: str) -> None:
    # it failed at the first batch, with batch_from_arrow's message for API callers
    # ("features=..., labels=...") and no file name
    path = tmp_path / "cut.parquet"
    write_recorded(random_stream(n=3), path, layout=layout)
    table = pq.read_table(path)
    pq.write_table(table.drop_columns([dropped]).replace_schema_metadata(table.schema.metadata),
                   path)
    with pytest.raises(StreamError, match=rf"cut\.parquet.*{dropped}.*needs the column "
                                          rf"'{dropped}'"):
        RecordedStream(path)


@pytest.mark.parametrize("layout", ["sparse", "dense"])
def test_an_unusable_value_is_named_by_record_and_a_missing_one_kept(
        tmp_path: Path, layout: str, monkeypatch: pytest.MonkeyPatch) -> None:
    stream = random_stream(n=120, sparse=False)
    stream.schema = dataclasses.replace(stream.schema, source="src.arff")
    values = stream.data.values.copy()
    values[3] = np.nan  # record 0: missing, kept as NaN (the learners read it as absent)
    k = int(stream.data.indptr[70]) + 5  # record 70, feature 5
    values[k] = -np.inf
    stream.data.values = values
    path = tmp_path / "s.parquet"
    name = stream.schema.feature_names[5]
    # the writer refuses what the reader would, naming the source's record, and leaves nothing
    with pytest.raises(StreamError, match=rf"src.arff, record 70, field '{name}': -inf is not"):
        write_recorded(stream, path, layout=layout, batch_size=50)
    assert list(tmp_path.iterdir()) == []
    # a file written by another tool: the reader names the record of the recording
    with monkeypatch.context() as m:
        m.setattr(Batch, "check_values", lambda *a, **k: None)
        write_recorded(stream, path, layout=layout, batch_size=50)
    back = RecordedStream(path)
    first = next(iter(back.batches(50)))
    assert np.isnan(first.values[3])
    with pytest.raises(StreamError, match=rf"s.parquet, record 70, field '{name}': -inf is not"):
        for _ in back.batches(50):
            pass


def _with_row(table: pa.Table, column: str, row: int, edit) -> pa.Table:
    """``table`` with ``column``'s list at ``row`` replaced by ``edit(list)`` (metadata kept)."""
    values = table.column(column).to_pylist()
    values[row] = edit(values[row])
    i = table.schema.get_field_index(column)
    field = table.schema.field(column)
    if pa.types.is_fixed_size_list(field.type):  # a dense layout's rows of another width
        field = field.with_type(pa.list_(field.type.value_type))
    return table.set_column(i, field, pa.array(values, type=field.type)).replace_schema_metadata(
        table.schema.metadata)


@pytest.mark.parametrize(("layout", "column", "edit", "message"), [
    ("sparse", "labels", lambda v: [99], "label id 99 is beyond the 5 labels the schema names"),
    ("sparse", "labels", lambda v: [-1], "label id -1 is negative"),
    ("sparse", "labels", lambda v: [3, 1], "label ids must increase within a row (3, then 1)"),
    ("sparse", "feature_indices", lambda v: [*v[:-1], 500],
     "feature id 500 is beyond the 12 features the schema names"),
    ("sparse", "feature_indices", lambda v: [*v, v[-1]],
     "3 feature values for 4 feature indices"),
    ("sparse", "feature_values", lambda v: v[:-1], "2 feature values for 3 feature indices"),
    ("dense", "features", lambda v: v[:-1], "'features' holds 11 values where row 0 holds 12"),
])
def test_bad_ids_in_a_recording_are_refused_by_record(tmp_path: Path, layout: str, column: str,
                                                      edit, message: str) -> None:
    """A recording written by another tool: an id the schema does not name, or rows whose
    values and ids disagree, are refused naming the file and the record; never read as
    another label, or as values shifted onto the next rows."""
    stream = random_stream(n=120, seed=4)
    data = stream.data
    row = next(r for r in range(70, 120) if data.indptr[r + 1] - data.indptr[r] == 3)
    path = tmp_path / "s.parquet"
    write_recorded(stream, path, layout=layout)
    pq.write_table(_with_row(pq.read_table(path), column, row, edit), path)
    with pytest.raises(StreamError, match=re.escape(f"s.parquet, record {row}: {message}")):
        for _ in RecordedStream(path).batches(50):
            pass


def test_stream_length_and_limits_of_a_stream_that_does_not_know_its_length() -> None:
    """A consumer of an unbounded source has no ``len``: its length is unknown (None), a
    limit over it is the limit, and the limited stream yields exactly that prefix."""
    from ihomer.stream.base import stream_length
    from ihomer.stream.sources import limit_stream

    whole = random_stream(50)

    class Unsized:
        schema = whole.schema

        def batches(self, batch_size: int = 1024):  # type: ignore[no-untyped-def]
            return whole.batches(batch_size)

        def __iter__(self):  # type: ignore[no-untyped-def]
            return iter(whole)

    assert stream_length(whole) == 50
    assert stream_length(Unsized()) is None
    limited = limit_stream(Unsized(), 20)
    assert stream_length(limited) == 20
    rows = [b for b in limited.batches(7)]
    assert [len(b) for b in rows] == [7, 7, 6]
    assert np.array_equal(rows[2].label_ids, whole.data.slice(14, 20).label_ids)
    assert stream_length(limit_stream(Unsized(), 500)) == 500  # not known to be shorter
    assert stream_length(limit_stream(whole, 500)) == 50
