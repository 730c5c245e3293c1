"""Streams: core types, benchmark-file readers and the Arrow recorded-stream format."""

from ihomer.stream.arff import read_arff
from ihomer.stream.base import Batch, InMemoryStream, Instance, Schema, Stream, StreamError
from ihomer.stream.jsonl import read_jsonl
from ihomer.stream.recorded import RecordedStream, write_recorded
from ihomer.stream.sources import open_stream

__all__ = [
    "Batch",
    "InMemoryStream",
    "Instance",
    "RecordedStream",
    "Schema",
    "Stream",
    "StreamError",
    "open_stream",
    "read_arff",
    "read_jsonl",
    "write_recorded",
]
