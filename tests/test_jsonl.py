"""JSON-lines text streams: texts, ids, labels in order of first appearance, precise errors."""

from __future__ import annotations

import bz2
import gzip
import json
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ihomer.stream.base import StreamError
from ihomer.stream.jsonl import read_jsonl


def write(path: Path, lines: list[str]) -> Path:
    data = ("\n".join(lines) + "\n").encode("utf-8")
    if path.suffix == ".gz":
        data = gzip.compress(data)
    elif path.suffix == ".bz2":
        data = bz2.compress(data)
    path.write_bytes(data)
    return path


RECORDS = [
    {"package": "zsh", "section": "shells", "description": "Z shell", "tags": ["role::program",
                                                                               "interface::shell"]},
    {"package": "vim", "section": "editors", "description": "Vi IMproved", "tags": []},
    {"package": "emacs", "section": "editors", "description": "GNU Emacs",
     "tags": ["use::editing", "role::program", "use::editing"]},
]


@pytest.mark.parametrize("suffix", ["", ".gz", ".bz2"])
def test_read_records(tmp_path, suffix):
    path = write(tmp_path / f"tags.jsonl{suffix}", [json.dumps(r) for r in RECORDS])
    stream = read_jsonl(path)
    schema = stream.schema
    assert schema.text and schema.n_features == 0 and schema.feature_names == ()
    assert schema.label_names == ("role::program", "interface::shell", "use::editing")
    batch = stream.data
    assert batch.texts == ["Z shell", "Vi IMproved", "GNU Emacs"]
    assert batch.event_ids == ["zsh", "vim", "emacs"]
    assert batch.indptr.tolist() == [0, 0, 0, 0] and len(batch.indices) == 0
    # Sorted ids, repeated tags counted once.
    assert [r.labels.tolist() for r in stream] == [[0, 1], [], [0, 2]]


def test_text_fields_ids_and_blank_lines(tmp_path):
    lines = [json.dumps(RECORDS[0]), "", json.dumps({"description": "x", "section": "s",
                                                     "tags": ["a"]})]
    path = write(tmp_path / "t.jsonl", lines)
    stream = read_jsonl(path, text_fields=("section", "description"))
    assert stream.data.texts == ["shells\nZ shell", "s\nx"]
    # The record without a package gets its line number (blank lines count).
    assert stream.data.event_ids == ["zsh", "3"]
    assert read_jsonl(path, id_field=None).data.event_ids == ["1", "3"]
    assert read_jsonl(path, id_field="section").data.event_ids == ["shells", "s"]


def test_other_label_field(tmp_path):
    path = write(tmp_path / "t.jsonl", ['{"description": "d", "cats": ["x", "y"]}'])
    stream = read_jsonl(path, labels="json:cats")
    assert stream.schema.label_names == ("x", "y")
    with pytest.raises(ValueError, match="json:FIELD"):
        read_jsonl(path, labels="first:2")


@pytest.mark.parametrize(
    ("line", "field", "reason"),
    [
        ('{"description": "d", "tags": [}', None, "invalid JSON"),
        ('["description", "tags"]', None, "expected a JSON object"),
        ('{"tags": []}', "description", "missing"),
        ('{"description": "d"}', "tags", "missing"),
        ('{"description": 3, "tags": []}', "description", "must be a string"),
        ('{"description": "d", "tags": "a"}', "tags", "list of strings"),
        ('{"description": "d", "tags": ["a", 1]}', "tags", "list of strings"),
        ('{"description": "d", "tags": [], "package": ["p"]}', "package", "string or an integer"),
    ],
)
def test_malformed_lines(tmp_path, line, field, reason):
    path = write(tmp_path / "bad.jsonl", [json.dumps(RECORDS[0]), line])
    with pytest.raises(StreamError) as info:
        read_jsonl(path)
    err = info.value
    assert (err.line, err.field) == (2, field)
    assert "bad.jsonl" in str(err) and "line 2" in str(err) and reason in str(err)


tag_lists = st.lists(st.lists(st.text(max_size=4), max_size=4), max_size=8)


@settings(max_examples=60, deadline=None)
@given(tags=tag_lists)
def test_labels_numbered_by_first_appearance(tmp_path_factory, tags):
    path = tmp_path_factory.mktemp("j") / "p.jsonl"
    write(path, [json.dumps({"description": str(i), "tags": t}) for i, t in enumerate(tags)])
    stream = read_jsonl(path)
    expected_names = list(dict.fromkeys(tag for t in tags for tag in t))
    assert stream.schema.label_names == tuple(expected_names)
    for inst, t in zip(stream, tags, strict=True):
        assert inst.labels.tolist() == sorted({expected_names.index(x) for x in t})


def test_the_service_events_own_fields_are_found_without_naming_them(tmp_path):
    # the Kafka event contract's fields (id, text, labels): a file of such events replays as
    # it is; before, only debtags' field names were read without options
    path = write(tmp_path / "events.jsonl", ['{"id": "e1", "text": "a b", "labels": ["x"]}',
                                             '{"id": 7, "text": "c", "labels": []}'])
    stream = read_jsonl(path)
    assert stream.schema.label_names == ("x",)
    assert stream.data.event_ids == ["e1", "7"] and stream.data.texts == ["a b", "c"]
    other = write(tmp_path / "other.jsonl", ['{"body": "a", "cats": ["x"]}'])
    with pytest.raises(StreamError, match="no labels field: the first record has none of "
                                          "labels, tags"):
        read_jsonl(other)
    with pytest.raises(StreamError, match="no text field"):
        read_jsonl(other, labels="json:cats")
    assert read_jsonl(other, labels="json:cats", text_fields=("body",)).data.event_ids == ["1"]


# --- files of the Kafka service's feature events ----------------------------------------------


@pytest.mark.parametrize(("features", "delay"), [("dense", 0), ("sparse", 0), ("named", 0),
                                                 ("sparse", 7)])
def test_produced_events_replay_as_the_stream_they_came_from(tmp_path, features, delay):
    """What `ihomer produce` writes, saved as JSON lines, reads back to the same rows (delayed
    labels joined to their events), through the service's own parser."""
    from ihomer.connectors.producer import event_messages
    from ihomer.stream.sources import open_stream

    source = open_stream(None)  # the embedded emotions
    lines = [json.dumps(m) for _, m in event_messages(source, features=features,
                                                      delay_labels=delay)]
    stream = read_jsonl(write(tmp_path / "events.jsonl", lines))
    assert stream.schema.labels_from == "json:labels" and not stream.schema.text
    if features == "named":
        assert stream.schema.feature_names == source.schema.feature_names
    else:
        assert stream.schema.feature_names[:2] == ("f0", "f1")
    names = stream.schema.label_names
    assert len(stream) == len(source)
    for got, want in zip(stream, source, strict=True):
        assert got.indices.tolist() == want.indices.tolist()
        assert got.values.tolist() == want.values.tolist()
        assert sorted(names[i] for i in got.labels) == sorted(
            source.schema.label_names[i] for i in want.labels)


@pytest.mark.parametrize(("lines", "line", "message"), [
    (['{"id": "a", "features": [1.0]}'], 1, "event 'a' gets no labels in the file"),
    (['{"id": "a", "features": [1.0], "labels": []}', '{"id": "b", "labels": ["x"]}'], 2,
     "labels for event 'b', which no earlier line of the file left waiting"),
    (['{"id": "a", "features": [1.0]}', '{"id": "a", "labels": ["x"]}',
      '{"id": "a", "labels": ["y"]}'], 3, "labels for event 'a', which no earlier line"),
    (['{"id": "a", "features": [1.0], "labels": []}', '{"id": "a", "features": [2.0]}'], 2,
     "event 'a' occurs twice (first on line 1)"),
    (['{"id": "a", "features": [1.0, "x"], "labels": []}'], 1,
     "wrong_type: event 'a', field 'features'[1]: expected a number"),
])
def test_a_bad_events_file_names_its_line(tmp_path, lines, line, message):
    with pytest.raises(StreamError, match=rf"events\.jsonl, line {line}.*{re.escape(message)}"):
        read_jsonl(write(tmp_path / "events.jsonl", lines))


@settings(max_examples=60, deadline=None)
@given(rows=st.lists(st.one_of(st.integers(1, 4), st.just("sparse")), min_size=1, max_size=8))
def test_dense_rows_of_an_events_file_all_have_the_first_dense_rows_length(tmp_path_factory,
                                                                            rows):
    """``[1, 2]`` then ``[1, 2, 3]`` replayed as three features, silently: a dense row's length
    is its feature count, so every one must be the first's (sparse rows may come between)."""
    lines = [json.dumps({"id": i, "labels": ["x"],
                         "features": {"0": 1.0} if r == "sparse" else [1.0] * r})
             for i, r in enumerate(rows)]
    path = write(tmp_path_factory.mktemp("ev") / "events.jsonl", lines)
    widths = [(i + 1, r) for i, r in enumerate(rows) if r != "sparse"]
    bad = next(((line, r) for line, r in widths if r != widths[0][1]), None)
    if bad is None:
        stream = read_jsonl(path)
        assert stream.schema.n_features == max([1, *(r for _, r in widths)])
        return
    with pytest.raises(StreamError, match=re.escape(
            f"events.jsonl, line {bad[0]}, field 'features': a dense row of {bad[1]} values "
            f"where the first dense row (line {widths[0][0]}) has {widths[0][1]}")):
        read_jsonl(path)
