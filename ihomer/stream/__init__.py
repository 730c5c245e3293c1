"""Streams: core types, benchmark-file readers and the Arrow recorded-stream format."""

from ihomer.stream.base import Batch, InMemoryStream, Instance, Schema, Stream, StreamError

__all__ = ["Batch", "InMemoryStream", "Instance", "Schema", "Stream", "StreamError"]
