"""Streams: core types, benchmark-file readers and the Arrow recorded-stream format."""

from ihomer.stream.arff import read_arff
from ihomer.stream.base import Batch, InMemoryStream, Instance, Schema, Stream, StreamError
from ihomer.stream.jsonl import read_jsonl
from ihomer.stream.recorded import RecordedStream, batch_from_arrow, write_recorded
from ihomer.stream.sources import open_stream

__all__ = [
    "Batch",
    "InMemoryStream",
    "Instance",
    "RecordedStream",
    "Schema",
    "Stream",
    "StreamError",
    "batch_from_arrow",
    "open_stream",
    "read_arff",
    "read_jsonl",
    "write_recorded",
]
