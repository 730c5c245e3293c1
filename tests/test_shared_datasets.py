"""Every shared benchmark file loads and matches the counts recorded in its manifest.

The manifest (``shared/datasets/MANIFEST.csv``, next to the repository) records, per file, the
label convention and the instance, feature and label counts and the label cardinality that the
literature reports, so this is the end-to-end check that the readers pick the right columns.
"""

from __future__ import annotations

import csv
import re
import warnings
from pathlib import Path

import numpy as np
import pytest

from ihomer.stream.arff import read_arff, read_text
from ihomer.stream.base import InMemoryStream
from ihomer.stream.jsonl import read_jsonl
from ihomer.stream.labels import read_mulan_xml

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"
MANIFEST = SHARED / "MANIFEST.csv"
ROWS = list(csv.DictReader(MANIFEST.open(newline=""))) if MANIFEST.exists() else []

pytestmark = pytest.mark.skipif(
    not MANIFEST.exists(), reason=f"shared datasets not available at {SHARED}"
)


def load(row: dict[str, str], labels: str | None) -> InMemoryStream:
    path = SHARED / row["file"]
    if row["labels"].startswith("json:"):
        return read_jsonl(path, labels=row["labels"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the identifier drop is checked through Schema.dropped
        return read_arff(path, labels)


def test_manifest_lists_every_file():
    assert len(ROWS) == 26
    assert sum(r["file"].endswith(".jsonl.gz") for r in ROWS) == 1


@pytest.mark.parametrize("row", ROWS, ids=[r["name"] for r in ROWS])
def test_counts_match_the_manifest(row):
    stream = load(row, row["labels"])
    schema, batch = stream.schema, stream.data
    assert len(batch) == int(row["instances"])
    assert schema.n_labels == int(row["n_labels"])
    if row["features"] == "text":
        assert schema.text and schema.n_features == 0
        assert batch.texts is not None and len(batch.texts) == len(batch)
    else:
        assert schema.n_features == int(row["features"]) - len(schema.dropped)
    cardinality = len(batch.label_ids) / len(batch)
    assert cardinality == pytest.approx(float(row["cardinality"]), abs=5e-4)

    # CSR invariants: indices in range and strictly increasing within each row, no stored zeros.
    for ptr, ids, bound in ((batch.indptr, batch.indices, schema.n_features),
                            (batch.label_indptr, batch.label_ids, schema.n_labels)):
        assert ptr[0] == 0 and ptr[-1] == len(ids) and np.all(np.diff(ptr) >= 0)
        assert len(ids) == 0 or (ids.min() >= 0 and ids.max() < bound)
        row_of = np.repeat(np.arange(len(batch)), np.diff(ptr))
        same_row = row_of[1:] == row_of[:-1]
        assert np.all(np.diff(ids.astype(np.int64))[same_row] > 0)
    assert not np.any(batch.values == 0)


@pytest.mark.parametrize(
    "row",
    [r for r in ROWS if r["labels"].startswith("xml:") or r["labels"] == "meka"],
    ids=lambda r: r["name"],
)
def test_default_convention_agrees_with_the_manifest(row):
    # Without --labels the reader must find the XML itself, and prefer it to a stale -C.
    assert load(row, None).schema.label_names == load(row, row["labels"]).schema.label_names


def test_genbase_drops_its_protein_identifier():
    row = next(r for r in ROWS if r["name"] == "genbase")
    with pytest.warns(UserWarning, match="'protein'"):
        stream = read_arff(SHARED / row["file"], row["labels"])
    assert stream.schema.dropped == ("protein",)
    assert "protein" not in stream.schema.feature_names


def test_enron_label_ids_follow_the_xml_not_the_attributes():
    stream = load(next(r for r in ROWS if r["name"] == "enron"), "xml:enron.xml")
    xml_order = read_mulan_xml(SHARED / "enron.xml")
    assert stream.schema.label_names == tuple(xml_order)
    header = read_text(SHARED / "enron.arff.gz").split("@data", 1)[0]
    attribute_order = [n for n in re.findall(r"^@attribute (\S+)", header, re.M)
                       if n in set(xml_order)]
    assert sorted(attribute_order) == sorted(xml_order) and attribute_order != xml_order
