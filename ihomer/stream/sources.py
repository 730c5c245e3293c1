"""One entry point from a path (or nothing) to a replayable stream.

``open_stream`` picks the reader from the file name, so the CLI, the benchmarks and user code
all accept the same sources: ARFF benchmark files (optionally gzip/bz2), recorded streams
(Parquet or Arrow IPC) and JSON-lines text streams. With no source it opens the small dataset
shipped inside the package, so ``ihomer replay`` works out of the box.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from importlib import resources
from pathlib import Path

from ihomer.stream.base import Batch, InMemoryStream, Instance, Schema, Stream, stream_length
from ihomer.stream.recorded import IPC_SUFFIXES, PARQUET_SUFFIXES, RecordedStream

DEFAULT_DATASET = "emotions.arff.gz"


def default_source() -> Path:
    """Path of the dataset embedded in the package (Mulan's *emotions*, 593 instances)."""
    return Path(str(resources.files("ihomer") / "data" / DEFAULT_DATASET))


def _kind(path: Path) -> str:
    name = path.name.lower()
    for comp in (".gz", ".bz2"):
        if name.endswith(comp):
            name = name[: -len(comp)]
    if name.endswith(".arff"):
        return "arff"
    if name.endswith((".jsonl", ".json", ".ndjson")):
        return "jsonl"
    if name.endswith(PARQUET_SUFFIXES + IPC_SUFFIXES):
        return "recorded"
    raise ValueError(
        f"{path}: cannot tell the format from the name; expected .arff[.gz|.bz2], "
        f".jsonl[.gz], .parquet or .arrow"
    )


def open_stream(source: str | Path | None = None, labels: str | None = None) -> Stream:
    """Open ``source`` (``None`` = the embedded dataset) with the label convention ``labels``.

    ``labels`` is ``xml:FILE``, ``meka``, ``first:N``, ``last:N`` (ARFF) or ``json:FIELD``
    (JSON lines); ``None`` lets the reader decide (a sibling ``NAME.xml`` wins for ARFF, and a
    spec that disagrees with it is refused: ``xml:FILE`` names another label set).
    Recorded streams carry their labels and refuse ``labels``.
    """
    path = default_source() if source is None else Path(source)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    kind = _kind(path)
    if kind == "arff":
        from ihomer.stream.arff import read_arff

        return read_arff(path, labels=labels)
    if kind == "jsonl":
        from ihomer.stream.jsonl import read_jsonl

        return read_jsonl(path, labels=labels)
    if labels is not None:
        raise ValueError(f"{path}: a recorded stream carries its labels, so --labels "
                         f"{labels} would be ignored (choose the labels when converting)")
    return RecordedStream(path)


def limit_stream(stream: Stream, limit: int | None) -> Stream:
    """The first ``limit`` instances of ``stream`` (all of it when ``limit`` is None, or when
    it has no more).

    A cut stream's schema records the cut (``Schema.limit``, and ``whole_instances``: the
    whole source's length where known), so that its numbers, and a recording made of it,
    are never taken for a full stream's. Cutting a stream that is already a prefix keeps the
    whole source's length.
    """
    n = stream_length(stream)
    if limit is None or (n is not None and n <= limit):
        return stream
    schema = stream.schema
    whole = schema.whole_instances if schema.limit is not None else n
    schema = replace(schema, limit=limit, whole_instances=whole)
    if isinstance(stream, InMemoryStream):
        return InMemoryStream(schema, stream.data.slice(0, limit))
    return _Limited(stream, limit, schema)


class _Limited:
    def __init__(self, inner: Stream, limit: int, schema: Schema) -> None:
        self.inner = inner
        self.schema = schema
        self.limit = limit

    def __len__(self) -> int:
        n = stream_length(self.inner)
        return self.limit if n is None else min(self.limit, n)

    def batches(self, batch_size: int = 1024) -> Iterator[Batch]:
        left = self.limit
        for b in self.inner.batches(batch_size):
            if left <= 0:
                return
            if len(b) > left:
                b = b.slice(0, left)
            left -= len(b)
            yield b

    def __iter__(self) -> Iterator[Instance]:
        for b in self.batches(65536):
            yield from b
