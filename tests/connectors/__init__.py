"""Tests of the Kafka service (real broker started by the fixtures)."""
