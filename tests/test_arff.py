"""ARFF reader and label conventions: generated files round-trip, malformed files fail precisely."""

from __future__ import annotations

import bz2
import gzip
import math
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ihomer.stream.arff import read_arff, read_text
from ihomer.stream.base import MAX_ABS_VALUE, StreamError
from ihomer.stream.labels import (
    LabelSpec,
    label_attribute_indices,
    meka_label_count,
    parse_label_spec,
    read_mulan_xml,
)

MULAN_NS = "http://mulan.sourceforge.net/labels"
_BARE = re.compile(r"[A-Za-z0-9_.+-]+")


# ---------------------------------------------------------------------------------------------
# Writing ARFF files from a description, as the generator and the error tests need


def quote(text: str) -> str:
    """Weka-style single quoting: backslash-escape backslashes, quotes and line breaks."""
    escaped = text.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n")
    return f"'{escaped}'"


def write_bytes(path: Path, text: str) -> Path:
    data = text.encode("utf-8")
    if path.suffix == ".gz":
        data = gzip.compress(data)
    elif path.suffix == ".bz2":
        data = bz2.compress(data)
    path.write_bytes(data)
    return path


def write_xml(path: Path, names: list[str], nested: bool = False, namespace: bool = True) -> None:
    """A Mulan label file; ``nested`` puts every second label inside the one before it."""
    ns = f"{{{MULAN_NS}}}" if namespace else ""
    root = ET.Element(f"{ns}labels")
    parent = root
    for i, name in enumerate(names):
        elem = ET.SubElement(parent if not nested or i % 2 else root, f"{ns}label", name=name)
        parent = elem
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)


@dataclass
class Attr:
    name: str
    domain: tuple[str, ...] | None  # None: numeric


@dataclass
class GeneratedFile:
    attrs: list[Attr]
    label_attrs: list[int]  # in label-id order
    rows: list[list[float]]  # per attribute: a float, a nominal index, or NaN for missing
    n_sparse: int  # rows written in the sparse layout
    text: str


def header(relation: str, attrs: list[Attr]) -> str:
    lines = [f"% generated\n@RELATION {quote(relation)}", ""]
    for a in attrs:
        kind = "NUMERIC" if a.domain is None else "{" + ", ".join(quote(v) for v in a.domain) + "}"
        lines.append(f"@attribute {quote(a.name)} {kind}")
    lines += ["", "@DATA"]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# Hypothesis: generated files parse back to exactly the generated values

# Names must survive XML too: no control characters, no non-characters.
printable = st.characters(
    codec="utf-8", exclude_categories=("Cc", "Cs"), exclude_characters="\ufffe\uffff"
)
tricky = st.sampled_from("',{}%? \\\"")
names = st.text(printable | tricky, min_size=1, max_size=8)
nominal_values = st.text(printable | tricky, max_size=5)


@st.composite
def arff_files(draw: st.DrawFn) -> tuple[GeneratedFile, str]:
    """A random multi-label ARFF file and the label spec that describes it."""
    n_features = draw(st.integers(0, 5))
    n_labels = draw(st.integers(1, 4))
    all_names = draw(st.lists(names, min_size=n_features + n_labels,
                              max_size=n_features + n_labels, unique=True))
    features = []
    for name in all_names[:n_features]:
        domain = draw(st.none() | st.lists(nominal_values, min_size=1, max_size=4, unique=True))
        features.append(Attr(name, None if domain is None else tuple(domain)))
    labels = [
        Attr(name, draw(st.sampled_from([None, ("0", "1"), ("1", "0")])))
        for name in all_names[n_features:]
    ]
    convention = draw(st.sampled_from(["first", "last", "meka+", "meka-", "xml"]))
    if convention in ("first", "meka+"):
        attrs, label_attrs = labels + features, list(range(n_labels))
    elif convention in ("last", "meka-"):
        attrs = features + labels
        label_attrs = list(range(n_features, n_features + n_labels))
    else:
        attrs = draw(st.permutations(features + labels))
        label_order = draw(st.permutations(labels))
        label_attrs = [attrs.index(a) for a in label_order]
    spec = {"first": f"first:{n_labels}", "last": f"last:{n_labels}", "xml": "xml"}.get(
        convention, "meka"
    )
    count = -n_labels if convention == "meka-" else n_labels
    relation = draw(st.sampled_from(["r", f"r: -C {count}", f"r: -C {count}-weka.filters.x"]))
    if convention.startswith("meka"):
        relation = f"r: -C {count}" + draw(st.sampled_from(["", " -I 0-weka.filters.A-R1"]))

    is_label = {id(a) for a in labels}
    # every value a learner can take (beyond MAX_ABS_VALUE the reader refuses it, tested apart)
    finite = (st.floats(-MAX_ABS_VALUE, MAX_ABS_VALUE, allow_nan=False)
              | st.integers(-3, 3).map(float))
    rows = []
    for _ in range(draw(st.integers(0, 6))):
        row = []
        for a in attrs:
            if id(a) in is_label:
                row.append(float(draw(st.integers(0, 1))))  # a 0/1 value or domain index
            elif a.domain is None:
                row.append(draw(finite | st.just(math.nan)))
            else:
                row.append(draw(st.integers(0, len(a.domain) - 1).map(float) | st.just(math.nan)))
        rows.append(row)

    layout = draw(st.sampled_from(["dense", "sparse", "mixed"]))
    lines = []
    n_sparse = 0
    for row in rows:
        sparse = layout == "sparse" or (layout == "mixed" and draw(st.booleans()))
        n_sparse += sparse
        tokens = [_token(draw, a, v) for a, v in zip(attrs, row, strict=True)]
        if not sparse:
            lines.append(",".join(tokens))
            continue
        # Omit entries whose value is 0 (the first category for nominal), but keep a few
        # explicit zeros, and write the entries in a random order.
        entries = [f"{i} {t}" for i, (t, v) in enumerate(zip(tokens, row, strict=True))
                   if v != 0 or draw(st.booleans())]
        if draw(st.booleans()):
            entries = draw(st.permutations(entries))
        lines.append("{" + ", ".join(entries) + "}")
    text = header(relation, attrs) + "\n".join(lines)
    return GeneratedFile(attrs, label_attrs, rows, n_sparse, text), spec


def _token(draw: st.DrawFn, attr: Attr, value: float) -> str:
    if math.isnan(value):
        return "?"
    if attr.domain is None:
        return repr(value) if value != int(value) or draw(st.booleans()) else str(int(value))
    text = attr.domain[int(value)]
    bare = _BARE.fullmatch(text) is not None and text != "?"
    return text if bare and draw(st.booleans()) else quote(text)


def expected_rows(gen: GeneratedFile) -> list[tuple[list[int], list[float], list[int]]]:
    """Per row: sorted feature indices, their values (non-zero only) and sorted label ids."""
    label_id = {a: i for i, a in enumerate(gen.label_attrs)}
    feature_attrs = [a for a in range(len(gen.attrs)) if a not in label_id]
    out = []
    for row in gen.rows:
        idx, val = [], []
        for f, a in enumerate(feature_attrs):
            if row[a] != 0:
                idx.append(f)
                val.append(row[a])
        labels = []
        for a, i in label_id.items():
            domain = gen.attrs[a].domain
            present = row[a] == 1 if domain is None else domain[int(row[a])] == "1"
            if present:
                labels.append(i)
        out.append((idx, val, sorted(labels)))
    return out


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(generated=arff_files(), suffix=st.sampled_from(["", ".gz", ".bz2"]))
def test_generated_files_round_trip(tmp_path_factory, generated, suffix):
    gen, spec = generated
    folder = tmp_path_factory.mktemp("gen")
    path = write_bytes(folder / f"data.arff{suffix}", gen.text)
    if spec == "xml":
        write_xml(folder / "data.xml", [gen.attrs[a].name for a in gen.label_attrs])
        spec_arg = None  # found next to the file
    else:
        spec_arg = None if spec == "meka" else spec

    stream = read_arff(path, spec_arg, drop_identifiers=False)

    schema = stream.schema
    feature_attrs = [a for a in range(len(gen.attrs)) if a not in gen.label_attrs]
    assert schema.label_names == tuple(gen.attrs[a].name for a in gen.label_attrs)
    assert schema.feature_names == tuple(gen.attrs[a].name for a in feature_attrs)
    assert schema.nominal == {
        f: gen.attrs[a].domain for f, a in enumerate(feature_attrs)
        if gen.attrs[a].domain is not None
    }
    assert schema.dropped == ()
    assert schema.sparse == (2 * gen.n_sparse > len(gen.rows))
    assert len(stream) == len(gen.rows)
    for inst, (idx, val, labels) in zip(stream, expected_rows(gen), strict=True):
        assert inst.indices.tolist() == idx
        np.testing.assert_array_equal(inst.values, np.array(val, dtype=np.float64))
        assert inst.labels.tolist() == labels


# ---------------------------------------------------------------------------------------------
# Hand-written files

DENSE = """\
@relation 'toy: -C 2'
@attribute y1 {0,1}
@attribute y2 numeric
@attribute x1 numeric
@attribute colour {red,green,'dark blue'}
@data
1,0,1.5,green
0,1,0,red
% a comment row
1,1,?,'dark blue'
"""


@pytest.mark.parametrize("suffix", ["", ".gz", ".bz2"])
def test_dense_file(tmp_path, suffix):
    stream = read_arff(write_bytes(tmp_path / f"toy.arff{suffix}", DENSE))
    assert stream.schema.label_names == ("y1", "y2")
    assert stream.schema.feature_names == ("x1", "colour")
    assert stream.schema.nominal == {1: ("red", "green", "dark blue")}
    assert not stream.schema.sparse
    rows = list(stream)
    assert [r.labels.tolist() for r in rows] == [[0], [1], [0, 1]]
    # Zeros are not stored, whatever the layout: "red" is category 0 and x1 = 0 is absent.
    assert rows[0].indices.tolist() == [0, 1] and rows[0].values.tolist() == [1.5, 1.0]
    assert rows[1].indices.tolist() == []
    assert rows[2].indices.tolist() == [0, 1]
    assert math.isnan(rows[2].values[0]) and rows[2].values[1] == 2.0


def test_sparse_file_and_keywords_in_any_case(tmp_path):
    text = """\
% comment
@Relation sp
@ATTRIBUTE a REAL
@Attribute "b c" Integer
@attribute lab1 {0,1}
@attribute lab2 {0,1}
@Data
{0 2.5,3 1}
{}
{ 2 1 , 1 -4 }
"""
    stream = read_arff(write_bytes(tmp_path / "sp.arff", text), "last:2")
    assert stream.schema.sparse
    assert stream.schema.feature_names == ("a", "b c")
    rows = list(stream)
    assert rows[0].indices.tolist() == [0] and rows[0].labels.tolist() == [1]
    assert rows[1].indices.tolist() == [] and rows[1].labels.tolist() == []
    assert rows[2].indices.tolist() == [1] and rows[2].values.tolist() == [-4.0]
    assert rows[2].labels.tolist() == [0]


def test_quoted_names_with_escapes(tmp_path):
    text = """\
@relation q
@attribute 'Swainson\\'s Thrush' {0,1}
@attribute "say \\"hi\\"" {'a,b', "c'd"}
@data
1,'a,b'
0,"c'd"
"""
    stream = read_arff(write_bytes(tmp_path / "q.arff", text), "first:1")
    assert stream.schema.label_names == ("Swainson's Thrush",)
    assert stream.schema.feature_names == ('say "hi"',)
    assert stream.schema.nominal == {0: ("a,b", "c'd")}
    assert [r.values.tolist() for r in stream] == [[], [1.0]]


def test_quoted_question_mark_is_a_value_not_missing(tmp_path):
    text = "@relation q\n@attribute y {0,1}\n@attribute v {x,'?'}\n@data\n1,'?'\n0,?\n"
    rows = list(read_arff(write_bytes(tmp_path / "q.arff", text), "first:1"))
    assert rows[0].values.tolist() == [1.0]
    assert math.isnan(rows[1].values[0])


def test_xml_label_order_is_kept_when_it_differs_from_attribute_order(tmp_path):
    text = "@relation x\n@attribute a {0,1}\n@attribute f numeric\n@attribute b {0,1}\n" \
           "@data\n1,3,0\n0,4,1\n"
    path = write_bytes(tmp_path / "x.arff", text)
    write_xml(tmp_path / "labels.xml", ["b", "a"], namespace=False)
    stream = read_arff(path, "xml:labels.xml")
    assert stream.schema.label_names == ("b", "a")
    assert [r.labels.tolist() for r in stream] == [[1], [0]]


def test_xml_wins_over_a_stale_meka_option(tmp_path):
    # The relation claims the first two attributes are labels; the XML knows they are the last.
    text = "@relation 'stale: -C 2'\n@attribute f1 numeric\n@attribute f2 numeric\n" \
           "@attribute y1 {0,1}\n@attribute y2 {0,1}\n@data\n{0 1,3 1}\n"
    path = write_bytes(tmp_path / "stale.arff.gz", text)
    write_xml(tmp_path / "stale.xml", ["y1", "y2"])
    assert read_arff(path).schema.label_names == ("y1", "y2")
    # an explicit spec that disagrees with the XML is refused (below); another XML decides
    write_xml(tmp_path / "by_meka.xml", ["f1", "f2"])
    assert read_arff(path, "xml:by_meka.xml").schema.label_names == ("f1", "f2")


def test_a_label_spec_that_disagrees_with_the_xml_beside_the_file_is_refused(tmp_path):
    """``--labels last:1`` on a file whose XML names two labels made a label a feature,
    silently (emotions with last:5); a spec that agrees with the XML reads as the XML does."""
    text = ("@relation 'r: -C 2'\n@attribute f1 numeric\n@attribute f2 numeric\n"
            "@attribute y1 {0,1}\n@attribute y2 {0,1}\n@data\n1,0,0,1\n")
    path = write_bytes(tmp_path / "d.arff", text)
    write_xml(tmp_path / "d.xml", ["y2", "y1"])
    for spec, wrong in [("last:1", "labels read as features: 'y1'"),
                        ("meka", "labels read as features: 'y1', 'y2'; features read as "
                                 "labels: 'f1', 'f2'"),
                        ("first:3", "labels read as features: 'y2'; features read as labels: "
                                    "'f1', 'f2'")]:
        with pytest.raises(StreamError, match=re.escape(
                f"d.arff, field 'labels': --labels {spec} disagrees with d.xml beside the "
                f"file, which names 2 labels ({wrong}); leave --labels out to use the XML, or "
                "give another label set as --labels xml:FILE")):
            read_arff(path, spec)
    agreed = read_arff(path, "last:2").schema  # the same labels, in attribute order
    assert agreed.label_names == ("y1", "y2") and agreed.labels_from == "last:2"
    write_xml(tmp_path / "other.xml", ["f1"])  # the explicit way to another label set
    assert read_arff(path, "xml:other.xml").schema.label_names == ("f1",)
    (tmp_path / "d.xml").write_text("not xml")  # an XML that names nothing: the spec decides
    assert read_arff(path, "last:1").schema.label_names == ("y2",)


@pytest.mark.parametrize(("relation", "f_type", "field", "reason"), [
    # medical: all attributes {0,1}, but a Remove filter ran after MEKA wrote -C
    ("MEDC: -C 2 -I 0-weka.filters.unsupervised.attribute.Remove-R1-2_MEDC: -C 2", "{0,1}",
     "labels", "MEKA -C 2 was written before the Weka filter Remove-R1-2 moved or removed"),
    # langlog: the labels were reordered to the end
    ("LangLog: -C 2-weka.filters.unsupervised.attribute.Reorder-R3-last,first-2", "numeric",
     "labels", "the Weka filter Reorder-R3-last,first-2"),
    # slashdot: only an instance filter, but the -C points at numeric features
    ("slashdot: -C 2-weka.filters.unsupervised.instance.Randomize-S42", "numeric", "f2",
     "label value must be 0 or 1, got '3'; this attribute is a label by the relation's MEKA "
     "-C 2 (there is no XML beside the file), which may be stale"),
])
def test_a_stale_meka_option_alone_is_refused(tmp_path, relation, f_type, field, reason):
    """Without an XML beside the file, a -C that no longer counts the labels would silently
    take features for labels (the shared medical, langlog and slashdot files)."""
    text = (f"@relation {quote(relation)}\n@attribute f1 {f_type}\n@attribute f2 {f_type}\n"
            "@attribute y1 {0,1}\n@attribute y2 {0,1}\n@data\n{0 1,3 1}\n"
            + ("1,3,0,1\n" if f_type == "numeric" else "1,1,0,1\n"))
    path = write_bytes(tmp_path / "stale.arff.gz", text)
    with pytest.raises(StreamError, match=rf"stale\.arff\.gz.*'{field}'.*{re.escape(reason)}"
                                          r".*--labels meka to trust"):
        read_arff(path)
    assert read_arff(path, "last:2").schema.label_names == ("y1", "y2")
    assert read_arff(path, "last:2").schema.labels_from == "last:2"
    if f_type != "numeric":
        trusted = read_arff(path, "meka").schema  # the user's call
        assert trusted.label_names == ("f1", "f2") and trusted.labels_from == "meka (-C 2)"
    write_xml(tmp_path / "stale.xml", ["y1", "y2"])
    assert read_arff(path).schema.labels_from == "xml:stale.xml"


def test_a_meka_option_alone_still_counts_labels(tmp_path):
    text = "@relation 'IMDB: -C -2'\n@attribute f1 numeric\n@attribute y1 {0,1}\n" \
           "@attribute y2 {0,1}\n@data\n{0 1,2 1}\n"
    schema = read_arff(write_bytes(tmp_path / "i.arff", text)).schema
    assert schema.label_names == ("y1", "y2") and schema.labels_from == "meka (-C -2)"


def test_no_convention_asks_for_labels(tmp_path):
    path = write_bytes(tmp_path / "plain.arff", "@relation p\n@attribute a numeric\n@data\n1\n")
    with pytest.raises(StreamError, match=r"plain\.arff.*--labels"):
        read_arff(path)


def test_identifier_attribute_is_dropped_with_a_warning(tmp_path):
    ids = [f"P{i}" for i in range(12)]
    rows = [f"{p},{'NO' if i % 2 else 'YES'},1" for i, p in enumerate(ids)]
    text = f"@relation protein\n@attribute protein {{{','.join(ids)}}}\n" \
           "@attribute motif {YES,NO}\n@attribute y {0,1}\n@data\n" + "\n".join(rows)
    path = write_bytes(tmp_path / "ids.arff", text)
    with pytest.warns(UserWarning, match="'protein'"):
        stream = read_arff(path, "last:1")
    assert stream.schema.dropped == ("protein",)
    assert stream.schema.feature_names == ("motif",)
    assert stream.schema.nominal == {0: ("YES", "NO")}
    assert [r.indices.tolist() for r in stream] == [[], [0]] * 6

    kept = read_arff(path, "last:1", drop_identifiers=False)
    assert kept.schema.dropped == ()
    assert kept.schema.feature_names == ("protein", "motif")


def test_sparse_identifier_counts_absent_as_first_category(tmp_path):
    domain = ",".join(f"v{i}" for i in range(10))
    rows = ["{1 1}"] + [f"{{0 v{i}}}" for i in range(1, 10)]
    text = f"@relation s\n@attribute id {{{domain}}}\n@attribute y {{0,1}}\n@data\n" + \
        "\n".join(rows)
    path = write_bytes(tmp_path / "s.arff", text)
    with pytest.warns(UserWarning, match="'id'"):
        assert read_arff(path, "last:1").schema.dropped == ("id",)
    # One row repeating a value, or too few rows, and it is an ordinary feature.
    repeated = text.replace("{0 v9}", "{0 v8}")
    assert read_arff(write_bytes(tmp_path / "r.arff", repeated), "last:1").schema.dropped == ()
    short = text.rsplit("\n", 1)[0]
    assert read_arff(write_bytes(tmp_path / "t.arff", short), "last:1").schema.dropped == ()


def test_sparse_nominal_label_whose_first_category_is_one(tmp_path):
    # Omitted from a sparse row, such a label takes its first category, "1": present.
    text = "@relation s\n@attribute y {1,0}\n@attribute x numeric\n@data\n{1 2}\n{0 0}\n0,0\n"
    stream = read_arff(write_bytes(tmp_path / "s.arff", text), "first:1")
    assert [r.labels.tolist() for r in stream] == [[0], [], []]


def test_unsorted_sparse_entries_are_sorted(tmp_path):
    text = "@relation s\n@attribute a numeric\n@attribute b numeric\n@attribute y {0,1}\n" \
           "@data\n{2 1,1 5,0 7}\n"
    row = next(iter(read_arff(write_bytes(tmp_path / "s.arff", text), "last:1")))
    assert row.indices.tolist() == [0, 1] and row.values.tolist() == [7.0, 5.0]


def test_read_text_sniffs_compression_not_suffix(tmp_path):
    path = tmp_path / "misnamed.arff"
    path.write_bytes(gzip.compress(b"hello"))
    assert read_text(path) == "hello"
    latin = tmp_path / "latin.arff"
    latin.write_bytes("caf\xe9".encode("latin-1"))
    assert read_text(latin) == "caf\xe9"


# ---------------------------------------------------------------------------------------------
# Malformed input: StreamError naming file, line and field

HEAD = "@relation bad\n@attribute x numeric\n@attribute c {u,v}\n@attribute y {0,1}\n@data\n"


@pytest.mark.parametrize(
    ("data", "line", "field", "reason"),
    [
        ("1,u,1\n2,v\n", 7, "y", "truncated"),
        ("1,u,1,5\n", 6, "y", "too many values"),
        ("1,u,1\n'1',u\n", 7, "y", "truncated"),
        ("{0 1, 7 1}\n", 6, "#7", "unknown attribute index"),
        ("{0 1}\n{-1 1}\n", 7, "#-1", "unknown attribute index"),
        ("{0 1, 1 'u', 9 1}\n", 6, "#9", "unknown attribute index"),
        ("{0 1, x 1}\n", 6, "x", "not an integer"),
        ("{0 1, 2}\n", 6, "2", "not 'index value'"),
        ("{0 1, 0 2}\n", 6, "x", "twice"),
        ("1,u,1\n2,w,0\n", 7, "c", "not in the nominal domain"),
        ("1,'w w',1\n", 6, "c", "not in the nominal domain"),
        ("1,u,1\nabc,u,0\n", 7, "x", "not a number"),
        ("{0 1e}\n", 6, "x", "not a number"),
        ("1,u,1\ninf,u,0\n", 7, "x", "not a finite number"),
        ("-Infinity,u,0\n", 6, "x", "not a finite number"),
        ("nan,u,0\n", 6, "x", "a missing value is '?'"),
        ("1e400,u,0\n", 6, "x", "not a finite number"),
        ("{0 -2e101}\n", 6, "x", "within ±1e+100"),
        ("1,u,2\n", 6, "y", "not in the nominal domain"),
        ("1,u,?\n", 6, "y", "label value cannot be missing"),
        ("1,,1\n", 6, "c", "empty value"),
        ("1,u v,1\n", 6, "c", "unexpected text"),
    ],
)
def test_malformed_rows(tmp_path, data, line, field, reason):
    path = write_bytes(tmp_path / "broken.arff", HEAD + data)
    with pytest.raises(StreamError) as info:
        read_arff(path, "last:1")
    err = info.value
    assert (err.line, err.field) == (line, field)
    message = str(err)
    assert "broken.arff" in message and f"line {line}" in message and repr(field) in message
    assert reason in message


def test_numeric_label_must_be_zero_or_one(tmp_path):
    text = "@relation n\n@attribute x numeric\n@attribute y numeric\n@data\n1,1\n1,0.5\n"
    with pytest.raises(StreamError, match=r"n\.arff, line 6, field 'y': label value must be 0"):
        read_arff(write_bytes(tmp_path / "n.arff", text), "last:1")


@pytest.mark.parametrize(
    ("text", "line", "field", "reason"),
    [
        ("", None, None, "empty"),
        ("% only a comment\n\n", None, None, "empty"),
        ("@relation r\n@attribute a numeric\n", 3, "@data", "no @data"),
        ("@relation r\n\n@data\n1\n", 3, "@attribute", "no attributes"),
        ("@relation r\n@attribute s string\n@data\n", 2, "s", "string attributes"),
        ("@relation r\n@attribute d date 'yyyy'\n@data\n", 2, "d", "date attributes"),
        ("@relation r\n@attribute a blob\n@data\n", 2, "a", "unknown attribute type"),
        ("@relation\n@attribute a\n@data\n", 2, "a", "has no type"),
        ("@relation r\n@attribute a {x,y\n@data\n", 2, "a", "does not end with"),
        ("@relation r\n@attribute a {x,x}\n@data\n", 2, "a", "repeats"),
        ("@relation r\n@attribute a numeric\n@attribute a numeric\n@data\n", 3, "a", "twice"),
        ("@relation r\n@attribute 'a numeric\n@data\n", 2, "@attribute", "unterminated"),
        ("@relation r\n@frobnicate\n", 2, "@frobnicate", "unknown header keyword"),
        ("@relation r\nattribute a numeric\n", 2, None, "expected an @-keyword"),
        ("@relation r\n@attribute y {0,2}\n@data\n", 2, "y", "must be binary"),
    ],
)
def test_malformed_headers(tmp_path, text, line, field, reason):
    path = write_bytes(tmp_path / "head.arff", text)
    with pytest.raises(StreamError) as info:
        read_arff(path, "first:1")
    err = info.value
    assert (err.line, err.field) == (line, field)
    assert "head.arff" in str(err) and reason in str(err)


@pytest.mark.parametrize(
    ("spec", "reason"),
    [("first:3", "only 2 attributes"), ("xml:missing.xml", "does not exist"),
     ("meka", "no MEKA")],
)
def test_label_convention_that_does_not_fit(tmp_path, spec, reason):
    text = "@relation r\n@attribute a numeric\n@attribute y {0,1}\n@data\n1,1\n"
    with pytest.raises(StreamError) as info:
        read_arff(write_bytes(tmp_path / "fit.arff", text), spec)
    assert info.value.field == "labels" and "fit.arff" in str(info.value)
    assert reason in str(info.value)


def test_xml_naming_an_unknown_attribute(tmp_path):
    path = write_bytes(tmp_path / "u.arff", "@relation r\n@attribute y {0,1}\n@data\n1\n")
    write_xml(tmp_path / "u.xml", ["y", "z"])
    with pytest.raises(StreamError, match=r"u\.arff, field 'labels'.*'z'"):
        read_arff(path)


def test_broken_compression(tmp_path):
    path = tmp_path / "cut.arff.gz"
    path.write_bytes(gzip.compress(HEAD.encode())[:20])
    with pytest.raises(StreamError, match=r"cut\.arff\.gz: cannot decompress"):
        read_arff(path, "last:1")


# ---------------------------------------------------------------------------------------------
# Label specs and Mulan XML


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("xml:a/b.xml", LabelSpec("xml", "a/b.xml")),
        ("meka", LabelSpec("meka")),
        ("MEKA", LabelSpec("meka")),
        ("first:3", LabelSpec("first", 3)),
        ("last:14", LabelSpec("last", 14)),
        ("json:tags", LabelSpec("json", "tags")),
    ],
)
def test_parse_label_spec(spec, expected):
    assert parse_label_spec(spec) == expected
    assert parse_label_spec(str(expected)) == expected


@pytest.mark.parametrize(
    "spec", ["", "xml:", "json:", "meka:3", "first", "first:x", "last:0", "last:-2", "top:3"]
)
def test_bad_label_specs(spec):
    with pytest.raises(ValueError, match="xml:FILE, meka, first:N, last:N, json:FIELD"):
        parse_label_spec(spec)


@pytest.mark.parametrize(
    ("relation", "count"),
    [
        ("IMDB: -C 28", 28),
        ("VirusGO: -C -6", -6),
        ("MEDC: -C 45 -I 0-weka.filters.unsupervised.attribute.Remove-R1-45_MEDC: -C 45", 45),
        ("LangLog: -C 75-weka.filters.unsupervised.attribute.Reorder-R76-last,first-75", 75),
        ("scene", None),
        ("ABC-C 3", None),
    ],
)
def test_meka_label_count(relation, count):
    assert meka_label_count(relation) == count


def test_meka_convention_reads_sign():
    names = ["a", "b", "c", "d"]
    assert label_attribute_indices(LabelSpec("meka"), names, "r: -C 2") == [0, 1]
    assert label_attribute_indices(LabelSpec("meka"), names, "r: -C -3") == [1, 2, 3]
    with pytest.raises(ValueError, match="json"):
        label_attribute_indices(LabelSpec("json", "tags"), names)


@pytest.mark.parametrize("namespace", [True, False])
def test_read_mulan_xml_nested(tmp_path, namespace):
    write_xml(tmp_path / "h.xml", ["top", "child", "other", "leaf"], nested=True,
              namespace=namespace)
    assert read_mulan_xml(tmp_path / "h.xml") == ["top", "child", "other", "leaf"]


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("<labels><label name='a'/><label name='a'/></labels>", "twice"),
        ("<labels><label/></labels>", "no name"),
        ("<labels></labels>", "no labels"),
        ("<tags><label name='a'/></tags>", "expected <labels>"),
        ("<labels><label name='a'>", "not valid XML"),
    ],
)
def test_bad_mulan_xml(tmp_path, content, reason):
    (tmp_path / "bad.xml").write_text(content)
    with pytest.raises(ValueError, match=reason):
        read_mulan_xml(tmp_path / "bad.xml")
