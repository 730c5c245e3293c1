"""The recorded-stream format: a multi-label stream as an Apache Arrow table.

Why Arrow: a benchmark replay reads the same stream many times, and parsing ARFF text each time
costs far more than the learners we want to measure. An Arrow file keeps the CSR arrays as they
are in memory, so a replay reads record batches and hands their buffers to the learners without
building one Python object per value.

Layout (one row per instance)
-----------------------------
``labels``            ``list<int32>``   sorted label ids
``feature_indices``   ``list<int32>``   sorted feature ids      (sparse layout)
``feature_values``    ``list<float64>`` values of those ids     (sparse layout)
``features``          ``fixed_size_list<float64>[F]``           (dense layout, instead)
``event_id``          ``string``        optional
``event_time``        ``int64``         optional (the producer's clock, e.g. ms since epoch)
``text``              ``string``        optional raw text of text events

Schema metadata (UTF-8 JSON values under ``ihomer.*`` keys): ``format`` (version), ``layout``,
``feature_names``, ``label_names``, ``nominal``, ``source``, ``text``, ``dropped``,
``labels_from``, and ``limit`` / ``whole_instances`` for a recording of only the first
``limit`` instances of ``source`` (``ihomer convert --limit``): a replay of it is a prefix's.

Both containers work: Parquet (``.parquet``, compressed, for storage) and Arrow IPC files
(``.arrow``/``.feather``/``.ipc``, memory-mappable, for the fastest replays).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

from ihomer.stream.base import (
    PTR_DTYPE,
    VALUE_DTYPE,
    Batch,
    Instance,
    RowError,
    Schema,
    Stream,
    StreamError,
    as_numbers,
    first_repeat,
)

FORMAT_VERSION = 1
PARQUET_SUFFIXES = (".parquet", ".pq")
IPC_SUFFIXES = (".arrow", ".feather", ".ipc")


def _meta(schema: Schema, layout: str) -> dict[bytes, bytes]:
    items = {
        "format": FORMAT_VERSION,
        "layout": layout,
        "feature_names": list(schema.feature_names),
        "label_names": list(schema.label_names),
        "nominal": {str(k): list(v) for k, v in schema.nominal.items()},
        "source": schema.source,
        "text": schema.text,
        "dropped": list(schema.dropped),
        "labels_from": schema.labels_from,
        "limit": schema.limit,
        "whole_instances": schema.whole_instances,
    }
    return {f"ihomer.{k}".encode(): json.dumps(v).encode() for k, v in items.items()}


def _schema_from_meta(meta: dict[bytes, bytes] | None, where: str) -> tuple[Schema, str]:
    if not meta or b"ihomer.format" not in meta:
        raise StreamError(where, None, "schema metadata", "not an ihomer recorded stream "
                          "(no ihomer.* metadata); write it with `ihomer convert`")
    try:
        m = {k.decode()[len("ihomer."):]: json.loads(v) for k, v in meta.items()
             if k.startswith(b"ihomer.")}
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise StreamError(where, None, "schema metadata", f"unreadable metadata: {e}") from e
    if m["format"] > FORMAT_VERSION:
        raise StreamError(where, None, "ihomer.format",
                          f"format version {m['format']} is newer than this ihomer "
                          f"({FORMAT_VERSION}); upgrade ihomer")
    schema = Schema(
        feature_names=tuple(m["feature_names"]),
        label_names=tuple(m["label_names"]),
        nominal={int(k): tuple(v) for k, v in m.get("nominal", {}).items()},
        sparse=m["layout"] == "sparse",
        source=m.get("source", ""),
        text=bool(m.get("text", False)),
        dropped=tuple(m.get("dropped", ())),
        labels_from=m.get("labels_from", ""),
        limit=m.get("limit"),
        whole_instances=m.get("whole_instances"),
    )
    return schema, m["layout"]


def arrow_schema(schema: Schema, layout: str, *, event_ids: bool, event_times: bool,
                 texts: bool) -> pa.Schema:
    """The Arrow schema a stream with these columns is written with."""
    fields = [pa.field("labels", pa.list_(pa.int32()))]
    if layout == "sparse":
        fields += [pa.field("feature_indices", pa.list_(pa.int32())),
                   pa.field("feature_values", pa.list_(pa.float64()))]
    else:
        fields.append(pa.field("features", pa.list_(pa.float64(), schema.n_features)))
    if event_ids:
        fields.append(pa.field("event_id", pa.string()))
    if event_times:
        fields.append(pa.field("event_time", pa.int64()))
    if texts:
        fields.append(pa.field("text", pa.string()))
    return pa.schema(fields, metadata=_meta(schema, layout))


def batch_to_record_batch(batch: Batch, target: pa.Schema, n_features: int) -> pa.RecordBatch:
    """Encode a CSR batch as an Arrow record batch in ``target``'s layout (no copy if possible)."""
    cols: list[pa.Array] = [
        pa.ListArray.from_arrays(pa.array(batch.label_indptr.astype(np.int32)),
                                 pa.array(batch.label_ids))
    ]
    names = target.names
    if "feature_indices" in names:
        offsets = pa.array(batch.indptr.astype(np.int32))
        cols.append(pa.ListArray.from_arrays(offsets, pa.array(batch.indices)))
        cols.append(pa.ListArray.from_arrays(offsets, pa.array(batch.values)))
    else:
        dense = np.zeros((len(batch), n_features), dtype=VALUE_DTYPE)
        rows = np.repeat(np.arange(len(batch)), np.diff(batch.indptr))
        dense[rows, batch.indices] = batch.values
        cols.append(pa.FixedSizeListArray.from_arrays(pa.array(dense.ravel()), n_features))
    if "event_id" in names:
        cols.append(pa.array(batch.event_ids if batch.event_ids is not None
                             else [None] * len(batch), pa.string()))
    if "event_time" in names:
        cols.append(pa.array(batch.event_times if batch.event_times is not None
                             else [None] * len(batch), pa.int64()))
    if "text" in names:
        cols.append(pa.array(batch.texts if batch.texts is not None
                             else [None] * len(batch), pa.string()))
    return pa.RecordBatch.from_arrays(cols, schema=target)


def write_recorded(stream: Stream, path: str | Path, *, layout: str = "auto",
                   batch_size: int = 65536, compression: str = "zstd") -> int:
    """Write ``stream`` to ``path`` (Parquet or Arrow IPC by suffix); return the row count.

    ``layout`` is ``"sparse"``, ``"dense"`` or ``"auto"`` (sparse when the source was sparse).
    """
    path = Path(path)
    schema = stream.schema
    if layout == "auto":
        layout = "sparse" if schema.sparse or schema.text else "dense"
    if layout not in ("sparse", "dense"):
        raise ValueError(f"layout must be sparse, dense or auto, not {layout!r}")
    batches = stream.batches(batch_size)
    first = next(batches, None) or Batch.empty()
    target = arrow_schema(
        schema, layout,
        event_ids=first.event_ids is not None,
        event_times=first.event_times is not None,
        texts=first.texts is not None,
    )
    suffix = path.suffix.lower()
    n = 0
    tmp = path.with_name(path.name + ".tmp")
    if suffix in PARQUET_SUFFIXES:
        writer: pq.ParquetWriter | ipc.RecordBatchFileWriter = pq.ParquetWriter(
            tmp, target, compression=compression)
        write = writer.write_batch
    elif suffix in IPC_SUFFIXES:
        writer = ipc.new_file(tmp, target)
        write = writer.write_batch
    else:
        raise ValueError(f"{path}: unknown recorded-stream suffix {suffix!r} "
                         f"(use {', '.join(PARQUET_SUFFIXES + IPC_SUFFIXES)})")
    try:
        for b in _chain(first, batches):
            if len(b):
                # what RecordedStream would refuse is refused here, naming the source's record
                b.check_values(schema.feature_names, schema.source or "stream", n)
                write(batch_to_record_batch(b, target, schema.n_features))
                n += len(b)
    except BaseException:
        writer.close()
        tmp.unlink(missing_ok=True)  # nothing half written is left behind
        raise
    writer.close()
    tmp.replace(path)
    return n


def _chain(first: Batch, rest: Iterator[Batch]) -> Iterator[Batch]:
    yield first
    yield from rest


class RecordedStream:
    """Replay a recorded stream written by :func:`write_recorded`.

    ``batches()`` yields CSR :class:`Batch` objects whose arrays are views of Arrow buffers
    (sparse layout) or a cheap dense-to-CSR conversion (dense layout); iterating yields
    :class:`Instance` objects.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        suffix = self.path.suffix.lower()
        where = str(self.path)
        if not self.path.exists():
            raise FileNotFoundError(f"{where}: no such recorded stream")
        try:
            if suffix in PARQUET_SUFFIXES:
                self._pq: pq.ParquetFile | None = pq.ParquetFile(self.path)
                arrow = self._pq.schema_arrow
                self._rows = self._pq.metadata.num_rows
            elif suffix in IPC_SUFFIXES:
                self._pq = None
                self._reader = ipc.open_file(pa.memory_map(str(self.path)))
                arrow = self._reader.schema
                self._rows = sum(self._reader.get_batch(i).num_rows
                                 for i in range(self._reader.num_record_batches))
            else:
                raise StreamError(where, None, None, f"unknown recorded-stream suffix {suffix!r}")
        except (pa.ArrowInvalid, OSError) as e:
            raise StreamError(where, None, None, f"not a readable Arrow/Parquet file: {e}") from e
        schema, self.layout = _schema_from_meta(arrow.metadata, where)
        # the columns its layout needs, checked now: at the first batch, batch_from_arrow's
        # message for API callers (features=..., labels=...) did not name the file
        features = ("features",) if self.layout == "dense" else ("feature_indices",
                                                                  "feature_values")
        missing = [c for c in ("labels", *features) if c not in arrow.names]
        if missing:
            raise StreamError(where, None, missing[0], f"the recording's {self.layout} layout "
                              f"needs the column {missing[0]!r}; it has {arrow.names}")
        #: the source the recording was made from (its schema's source is the recording)
        self.recorded_from = schema.source
        self.schema = dataclasses.replace(schema, source=where)

    def __len__(self) -> int:
        return self._rows

    def record_batches(self, batch_size: int = 65536) -> Iterator[pa.RecordBatch]:
        """The raw Arrow record batches, for tools that work on Arrow directly."""
        if self._pq is not None:
            yield from self._pq.iter_batches(batch_size=batch_size)
            return
        for i in range(self._reader.num_record_batches):
            rb = self._reader.get_batch(i)
            for start in range(0, rb.num_rows, batch_size):
                yield rb.slice(start, batch_size)

    def batches(self, batch_size: int = 1024) -> Iterator[Batch]:
        done = 0
        for rb in self.record_batches(batch_size):
            try:
                batch = self._to_batch(rb)
                batch.check()
                batch.check_ids(self.schema.n_features, self.schema.n_labels)
            except RowError as e:  # named by its row in the record batch: name the record
                raise StreamError(f"{self.path}, record {done + e.row}", None, None,
                                  e.detail) from None
            batch.check_values(self.schema.feature_names, str(self.path), done)
            done += len(batch)
            yield batch

    def __iter__(self) -> Iterator[Instance]:
        for b in self.batches(65536):
            yield from b

    def _to_batch(self, rb: pa.RecordBatch) -> Batch:
        return batch_from_arrow(rb)


def _column(data: pa.Table | pa.RecordBatch, name: str) -> pa.Array:
    col = data.column(name)
    return col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col


def _list_parts(arr: pa.Array, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(offsets rebased to 0, flat values) of the list column ``name``, honouring slicing; a
    null row is refused (it would read as an empty list: for ``labels``, as "no label" rather
    than "not labelled")."""
    if arr.null_count:
        row = int(np.argmax(np.asarray(arr.is_null())))
        raise RowError(row, f"row {row}", f"{name} is null (each row holds a list, empty for "
                                          "none)")
    arr = arr.cast(pa.large_list(arr.type.value_type)) if not pa.types.is_large_list(
        arr.type) else arr
    offsets = np.asarray(arr.offsets)
    flat = np.asarray(arr.values)[offsets[0]: offsets[-1]]
    return (offsets - offsets[0]).astype(PTR_DTYPE), flat


def batch_from_arrow(data: pa.Table | pa.RecordBatch, features: Sequence[str] | None = None,
                     labels: Sequence[str] | None = None) -> Batch:
    """The rows of an Arrow table or record batch as a :class:`Batch`.

    Two shapes are read:

    * the recorded-stream layout (the module docstring: a ``labels`` list column, and
      ``feature_indices`` with ``feature_values``, or ``features``), as :class:`RecordedStream`
      reads it, ``event_id``, ``event_time`` and ``text`` included;
    * a wide table, one column per feature and one per label: name them with ``features``
      (numbers; a null is a missing value) and ``labels`` (0/1 or booleans). The batch keeps
      the names (``feature_names``, ``label_names``), and a learner reads each column as the
      feature or label of its name, in whatever order they are given: a new name joins its
      vocabulary when it learns, and scoring leaves out a feature it has no name for. An
      ``event_id`` column names the rows in error messages, as in the recorded layout.

    >>> t = pa.table({"a": [0.5, None], "b": [1, 0], "rock": [True, False]})
    >>> b = batch_from_arrow(t, features=["a", "b"], labels=["rock"])
    >>> b.indices.tolist(), b.values.tolist(), b.label_ids.tolist()
    ([0, 1, 0], [0.5, 1.0, nan], [0])
    """
    names = data.schema.names
    if features is not None or labels is not None:
        cols = [*(features or ()), *(labels or ())]
        missing = [c for c in cols if c not in names]
        if missing:
            raise ValueError(f"no column {missing[0]!r} in the table (it has {names})")
        twice = first_repeat(cols)  # twice a feature, or a label read as a feature too
        if twice is not None:
            raise ValueError(f"column {twice!r} is named more than once in features and labels")

        def matrix(cols: Sequence[str], what: str) -> np.ndarray:
            out = np.zeros((data.num_rows, len(cols)))
            for j, c in enumerate(cols):
                col = _column(data, c)
                if what == "label" and col.null_count:
                    raise ValueError(f"label column {c!r} has a null (a label is 0/1)")
                try:
                    out[:, j] = as_numbers(col.to_numpy(zero_copy_only=False), "it")
                except (TypeError, ValueError, pa.ArrowInvalid) as e:
                    raise TypeError(f"{what} column {c!r} ({col.type}) is not numeric: {e}") \
                        from None
                wrong = np.flatnonzero((out[:, j] != 0) & (out[:, j] != 1))
                if what == "label" and len(wrong):
                    r = int(wrong[0])
                    raise RowError(r, f"row {r}", f"label column {c!r}: {out[r, j]:g} is not 0/1")
            return out

        batch = Batch.from_dense(matrix(features or (), "feature"),
                                 matrix(labels or (), "label") if labels else None)
        batch.feature_names = list(features or ())  # a learner reads the columns by name
        batch.label_names = list(labels) if labels else None
        if "event_id" in names and "event_id" not in cols:  # errors name the event
            batch.event_ids = [str(e) for e in _column(data, "event_id").to_pylist()]
        return batch
    if "labels" not in names or not ({"feature_indices", "features"} & set(names)):
        raise ValueError("a table without the recorded-stream columns ('labels' and "
                         "'feature_indices'/'feature_values' or 'features') needs the names "
                         f"of its feature and label columns (features=..., labels=...); it has "
                         f"{names}")
    label_indptr, label_ids = _list_parts(_column(data, "labels"), "labels")
    if "feature_indices" in names:
        indptr, indices = _list_parts(_column(data, "feature_indices"), "feature_indices")
        vptr, values = _list_parts(_column(data, "feature_values"), "feature_values")
        if not np.array_equal(vptr, indptr):  # else every later row would read others' values
            row = int(np.argmax(np.diff(vptr) != np.diff(indptr)))
            raise RowError(row, f"row {row}", f"{int(vptr[row + 1] - vptr[row])} feature "
                           f"values for {int(indptr[row + 1] - indptr[row])} feature indices")
    else:
        ptr, flat = _list_parts(_column(data, "features"), "features")
        width = np.diff(ptr)
        f = int(width[0]) if len(width) else 0
        if (width != f).any():  # dense rows: one value per feature, every row alike
            row = int(np.argmax(width != f))
            raise RowError(row, f"row {row}", f"'features' holds {int(width[row])} values where "
                           f"row 0 holds {f} (dense rows have one per feature; record sparse "
                           "rows as feature_indices/feature_values)")
        dense = np.asarray(flat, VALUE_DTYPE).reshape(len(data), f)
        rows = Batch.from_dense(dense)
        indptr, indices, values = rows.indptr, rows.indices, rows.values
    return Batch(
        indptr=indptr,
        indices=indices,
        values=values.astype(VALUE_DTYPE, copy=False),
        label_indptr=label_indptr,
        label_ids=label_ids,
        event_ids=_column(data, "event_id").to_pylist() if "event_id" in names else None,
        event_times=_column(data, "event_time").to_numpy(zero_copy_only=False)
        if "event_time" in names else None,
        texts=_column(data, "text").to_pylist() if "text" in names else None,
    )
