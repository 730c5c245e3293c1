"""Reader for JSON-lines text streams (one JSON object per line, e.g. Debian's debtags).

Such a stream carries raw text, not features: the returned stream has ``Schema.text = True``,
no feature columns (every CSR feature row is empty) and the text in ``Batch.texts``, so a
featurizer can turn it into features online, as it would for a live topic. Labels come from a
list-of-strings field (``json:FIELD``); label names are numbered in order of first appearance,
which is what an online learner discovering the label set as the stream goes would do.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ihomer.stream.arff import read_text
from ihomer.stream.base import Batch, InMemoryStream, Instance, Schema, StreamError, text_problem
from ihomer.stream.labels import parse_label_spec

__all__ = ["read_jsonl"]


#: Field names looked for, in this order, when none is given: the Kafka service's event
#: contract (``id``, ``text``, ``labels``) first, then Debian debtags' (``package``,
#: ``description``, ``tags``).
AUTO_LABELS = ("labels", "tags")
AUTO_TEXT = ("text", "description")
AUTO_ID = ("id", "package")


def read_jsonl(
    path: str | Path,
    labels: str | None = None,
    text_fields: Sequence[str] | None = None,
    id_field: str | None = "auto",
) -> InMemoryStream:
    """Read a JSON-lines text stream (plain, ``.gz`` or ``.bz2``) into memory.

    Parameters
    ----------
    path
        The file: one JSON object per line; blank lines are skipped.
    labels
        ``json:FIELD``: the field holding the list of label names of each record (default:
        the first of :data:`AUTO_LABELS` the first record has).
    text_fields
        Fields whose string values make up the text, joined by a newline in this order
        (default: the first of :data:`AUTO_TEXT` the first record has).
    id_field
        Field used as the event id (a string or an integer); ``"auto"``: the first of
        :data:`AUTO_ID` the first record has. A record without it, or every record when
        ``id_field`` is ``None`` (or ``"auto"`` finds none), gets its line number as id, so
        ids are always present and stable across replays.

    """
    source = str(path)
    text = read_text(path)
    first = _first_record(text, source)
    if text_fields is None and "features" in first:
        return _read_events(text, source, labels)
    if labels is None:
        label_field = _auto(first, AUTO_LABELS, "labels", source)
    else:
        spec = parse_label_spec(labels)
        if spec.kind != "json":
            raise ValueError(f"label spec {labels!r}: JSON-lines streams take json:FIELD")
        label_field = str(spec.arg)
    if text_fields is None:
        text_fields = (_auto(first, AUTO_TEXT, "text", source),)
    if id_field == "auto":
        id_field = next((f for f in AUTO_ID if f in first), None)

    label_of: dict[str, int] = {}
    texts: list[str] = []
    event_ids: list[str] = []
    label_ids: list[int] = []
    label_counts: list[int] = []
    for number, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise StreamError(source, number, None, f"invalid JSON: {exc.msg}") from None
        if not isinstance(record, dict):
            raise StreamError(source, number, None,
                              f"expected a JSON object, got {type(record).__name__}")

        parts = []
        for name in text_fields:
            value = _field(record, name, source, number)
            if not isinstance(value, str):
                raise StreamError(source, number, name,
                                  f"text must be a string, got {type(value).__name__}")
            problem = text_problem(value)
            if problem is not None:
                raise StreamError(source, number, name, problem)
            parts.append(value)
        texts.append("\n".join(parts))

        tags = _field(record, label_field, source, number)
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            raise StreamError(source, number, label_field, "labels must be a list of strings")
        ids = sorted({label_of.setdefault(t, len(label_of)) for t in tags})
        label_ids.extend(ids)
        label_counts.append(len(ids))

        event_id = record.get(id_field) if id_field is not None else None
        if event_id is None:
            event_ids.append(str(number))
        elif isinstance(event_id, str | int) and not isinstance(event_id, bool):
            event_ids.append(str(event_id))
        else:
            raise StreamError(source, number, id_field,
                              f"id must be a string or an integer, got {type(event_id).__name__}")

    n = len(texts)
    label_indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(label_counts, out=label_indptr[1:])
    data = Batch(
        indptr=np.zeros(n + 1, dtype=np.int64),
        indices=np.zeros(0, dtype=np.int32),
        values=np.zeros(0, dtype=np.float64),
        label_indptr=label_indptr,
        label_ids=np.asarray(label_ids, dtype=np.int32),
        event_ids=event_ids,
        texts=texts,
    )
    schema = Schema(feature_names=(), label_names=tuple(label_of), source=source, text=True,
                    labels_from=f"json:{label_field}")
    return InMemoryStream(schema, data)


def _read_events(text: str, source: str, labels: str | None) -> InMemoryStream:
    """A file of the Kafka service's events (``{"id", "features", "labels"}``, one per line),
    read by the service's own parser, so a file replays as its messages would be served.

    Every event must get its labels in the file: with them, or in a later labels-only line
    ``{"id", "labels"}`` (joined to its event here; a replay scores every instance at once,
    whatever the delay). Features given as a list or as ``{index: value}`` are named ``f0``,
    ``f1``, ... (the names a learner gives ids it has no name for); ``{name: value}`` keep
    their names.
    """
    from ihomer.connectors.events import EventParser, Rejected  # the contract lives there
    from ihomer.learners.base import Vocabulary

    if labels not in (None, "json:labels"):
        raise StreamError(source, None, "labels", f"a file of events carries its labels in "
                          f"'labels' (the event contract), not as {labels!r}")
    features, label_vocab = Vocabulary(), Vocabulary()
    parser = EventParser(features, label_vocab, unknown_features="add")
    rows: list[tuple[np.ndarray, np.ndarray, np.ndarray | None, str | None]] = []
    where: dict[str, int] = {}  # event id -> its row
    lines: list[int] = []
    dense: tuple[int, int] | None = None  # (line, length) of the first dense row
    for number, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        try:
            ev = parser.parse(line.encode("utf-8"))
        except Rejected as r:
            raise StreamError(source, number, None, f"{r.reason}: {r.detail}") from None
        dense = _check_dense_width(parser.dense_width, number, dense, source)
        row = where.get(ev.event_id)
        if ev.indices is None:  # delayed labels
            if row is None or rows[row][2] is not None:
                raise StreamError(source, number, "id", f"labels for event {ev.event_id!r}, "
                                  "which no earlier line of the file left waiting for them")
            ids = parser.label_ids(ev.label_names or [])
            rows[row] = (rows[row][0], rows[row][1], ids, rows[row][3])
            continue
        if row is not None:
            raise StreamError(source, number, "id", f"event {ev.event_id!r} occurs twice "
                              f"(first on line {lines[row]})")
        where[ev.event_id] = len(rows)
        lines.append(number)
        assert ev.values is not None  # an event with features
        rows.append((ev.indices, ev.values, ev.labels, ev.text))
    unlabelled = next((i for i, r in enumerate(rows) if r[2] is None), None)
    if unlabelled is not None:
        eid = next(e for e, i in where.items() if i == unlabelled)
        raise StreamError(source, lines[unlabelled], "labels", f"event {eid!r} gets no labels "
                          "in the file: a replay scores every event (give them, with it or in a "
                          "later {\"id\", \"labels\"} line)")
    width = max([len(features), *(int(r[0].max()) + 1 for r in rows if len(r[0]))], default=0)
    names = [*features.names, *(f"f{i}" for i in range(len(features), width))]
    data = Batch.from_instances([
        Instance(indices, values, np.asarray(labels), event_id, None, text)
        for (indices, values, labels, text), event_id in zip(rows, where, strict=True)])
    schema = Schema(feature_names=tuple(names), label_names=tuple(label_vocab.names),
                    sparse=True, source=source, labels_from="json:labels")
    return InMemoryStream(schema, data)


def _check_dense_width(width: int | None, number: int, first: tuple[int, int] | None,
                       source: str) -> tuple[int, int] | None:
    """``first``, or this line's ``(number, width)`` when it holds the file's first dense
    row; a ``StreamError`` naming the line and ``features`` when its dense row's width
    differs from the first's.

    The parser takes a dense row of any length when it has no schema (a topic's first events
    set the width), so a row that is short by one would read as a sparse row with its last
    features absent, and a long one would add features in silence: in a file, every dense
    row has one value per feature, the first's count."""
    if width is None:
        return first
    if first is None:
        return number, width
    if width != first[1]:
        raise StreamError(source, number, "features",
                          f"a dense row of {width} values where the first dense row "
                          f"(line {first[0]}) has {first[1]}: every dense row holds one value "
                          "per feature (give a sparse row as {\"index\": value})")
    return first


def _field(record: dict[str, object], name: str, source: str, number: int) -> object:
    if name not in record:
        raise StreamError(source, number, name, "field is missing")
    return record[name]


def _first_record(text: str, source: str) -> dict[str, object]:
    for number, line in enumerate(text.split("\n"), 1):
        if line.strip():
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise StreamError(source, number, None, f"invalid JSON: {exc.msg}") from None
            return record if isinstance(record, dict) else {}
    return {}


def _auto(record: dict[str, object], names: Sequence[str], what: str, source: str) -> str:
    """The first of ``names`` that ``record`` (the stream's first) has; any of them for a
    stream without records."""
    if not record:
        return names[0]
    for name in names:
        if name in record:
            return name
    raise StreamError(source, 1, None, f"no {what} field: the first record has none of "
                      f"{', '.join(names)} (name it: --labels json:FIELD for labels, "
                      "read_jsonl(text_fields=...) for text)")
