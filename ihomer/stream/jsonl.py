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
from ihomer.stream.base import Batch, InMemoryStream, Schema, StreamError
from ihomer.stream.labels import parse_label_spec

__all__ = ["read_jsonl"]


def read_jsonl(
    path: str | Path,
    labels: str = "json:tags",
    text_fields: Sequence[str] = ("description",),
    id_field: str | None = "package",
) -> InMemoryStream:
    """Read a JSON-lines text stream (plain, ``.gz`` or ``.bz2``) into memory.

    Parameters
    ----------
    path
        The file: one JSON object per line; blank lines are skipped.
    labels
        ``json:FIELD``: the field holding the list of label names of each record.
    text_fields
        Fields whose string values make up the text, joined by a newline in this order.
    id_field
        Field used as the event id (a string or an integer). A record without it, or every
        record when ``id_field`` is ``None``, gets its line number as id, so ids are always
        present and stable across replays.

    """
    spec = parse_label_spec(labels)
    if spec.kind != "json":
        raise ValueError(f"label spec {labels!r}: JSON-lines streams take json:FIELD")
    label_field = str(spec.arg)
    source = str(path)

    label_of: dict[str, int] = {}
    texts: list[str] = []
    event_ids: list[str] = []
    label_ids: list[int] = []
    label_counts: list[int] = []
    for number, line in enumerate(read_text(path).split("\n"), 1):
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
    schema = Schema(feature_names=(), label_names=tuple(label_of), source=source, text=True)
    return InMemoryStream(schema, data)


def _field(record: dict[str, object], name: str, source: str, number: int) -> object:
    if name not in record:
        raise StreamError(source, number, name, "field is missing")
    return record[name]
