"""Shared fixtures: synthetic streams and the location of the shared benchmark files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ihomer.stream.base import Batch, InMemoryStream, Instance, Schema

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"


def shared_dataset(name: str) -> Path:
    """Path of a shared benchmark file, skipping the test when the folder is absent."""
    path = SHARED / name
    if not path.exists():
        pytest.skip(f"shared dataset {path} not available")
    return path


def random_stream(n: int = 300, n_features: int = 12, n_labels: int = 5, seed: int = 0,
                  sparse: bool = True) -> InMemoryStream:
    """A stream whose labels depend on the features, so learners have something to learn."""
    rng = np.random.default_rng(seed)
    w = rng.normal(size=(n_features, n_labels))
    rows = []
    for i in range(n):
        if sparse:
            idx = np.sort(rng.choice(n_features, size=rng.integers(0, n_features // 2 + 1),
                                     replace=False)).astype(np.int32)
            val = np.ones(len(idx))
        else:
            idx = np.arange(n_features, dtype=np.int32)
            val = rng.normal(size=n_features)
        x = np.zeros(n_features)
        x[idx] = val
        labels = np.flatnonzero(x @ w > 0.5).astype(np.int32)
        rows.append(Instance(idx, val, labels, event_id=f"e{i}", event_time=1_000 + i))
    schema = Schema(
        feature_names=tuple(f"f{j}" for j in range(n_features)),
        label_names=tuple(f"L{j}" for j in range(n_labels)),
        sparse=sparse,
        source="synthetic",
    )
    return InMemoryStream(schema, Batch.from_instances(rows))


@pytest.fixture
def small_stream() -> InMemoryStream:
    return random_stream()
