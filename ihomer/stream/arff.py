"""Reader for multi-label ARFF files (Mulan and MEKA benchmarks).

An ARFF file is a header (``@relation``, one ``@attribute`` per column, ``@data``) followed by
rows that are either *dense* (``v1,v2,...``: one value per attribute) or *sparse*
(``{index value, ...}``: attributes not listed are 0, or the first category of a nominal
attribute). Which attributes are labels is not part of the format; see
:mod:`ihomer.stream.labels`.

Conventions of the returned :class:`~ihomer.stream.base.InMemoryStream`:

* Features are the non-label attributes, renumbered ``0..F-1`` in attribute order. Only
  non-zero values are stored, for dense rows too, so "absent means 0" holds whatever the file
  layout was and a learner never has to know it.
* A nominal value is stored as its index in the attribute's domain (the domain is kept in
  ``Schema.nominal``); index 0 is therefore absent, exactly as in sparse ARFF.
* A missing value ``?`` of a feature is stored explicitly as NaN (the learners read it as absent;
  see :mod:`ihomer.learners.base`); a missing label is an error,
  because "not present" and "unknown" must not be silently merged.
* Label attributes must be binary (nominal ``{0,1}`` or numeric 0/1); value 1 means present.
  ``label_ids`` holds the sorted ids of the present labels.
* A nominal feature that takes a different value in every row (an identifier such as genbase's
  ``protein``) can only let a learner memorise rows, so it is dropped with a warning and
  recorded in ``Schema.dropped``. Files of fewer than 10 rows are exempt: there, distinct
  values are as likely to be chance.
* ``Schema.sparse`` says whether most rows used the sparse layout (a file may mix both).
* ``string``, ``date`` and ``relational`` attributes are rejected: none of the benchmarks use
  them and there is no sensible numeric encoding to pick silently.

Parsing is vectorised: quote-free rows (every row of every benchmark) are split in bulk with
string methods and converted with NumPy, so the cost per value is a few C-level operations.
Rows containing quotes, and any bulk batch that fails a consistency check, go through a careful
row-by-row tokenizer, which is also what produces precise error messages: every malformed input
raises :class:`~ihomer.stream.base.StreamError` naming the file, the line and the attribute.
"""

from __future__ import annotations

import bz2
import gzip
import re
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ihomer.stream.base import MAX_ABS_VALUE, Batch, InMemoryStream, Schema, StreamError
from ihomer.stream.labels import (
    LabelSpec,
    label_attribute_indices,
    meka_label_count,
    meka_moved_by,
    parse_label_spec,
)

__all__ = ["read_arff", "read_text"]

_NUMERIC_TYPES = ("numeric", "real", "integer")
_UNSUPPORTED_TYPES = ("string", "date", "relational")
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r"}
_IDENTIFIER_MIN_ROWS = 10

# One lexical item of a data row or a nominal domain: a comma, a quoted word or a bare word.
_LEX = re.compile(
    r"""\s*(?:(,)|'((?:[^'\\]|\\.)*)'|"((?:[^"\\]|\\.)*)"|([^\s,'"]+))""", re.DOTALL
)
_ESCAPE = re.compile(r"\\(.)", re.DOTALL)
_KEYWORD = re.compile(r"@([A-Za-z]+)(.*)$", re.DOTALL)
# Whitespace between two characters of one comma-separated value: not a valid bare value.
_INNER_SPACE = re.compile(r"[^\s,]\s+[^\s,]")


def read_text(path: str | Path) -> str:
    """The decoded text of a plain, gzip or bzip2 file (shared by the file readers).

    The compression is recognised from the file's magic bytes rather than its suffix, so a
    mis-named file still loads. Text is UTF-8; files that are not valid UTF-8 are read as
    Latin-1, the encoding of older ARFF exports (every byte sequence is valid Latin-1).
    """
    source = str(path)
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise StreamError(source, None, None, f"cannot read the file: {exc}") from None
    try:
        if raw.startswith(b"\x1f\x8b"):
            raw = gzip.decompress(raw)
        elif raw.startswith(b"BZh"):
            raw = bz2.decompress(raw)
    except (OSError, EOFError, ValueError, zlib.error) as exc:
        raise StreamError(source, None, None, f"cannot decompress the file: {exc}") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


@dataclass(frozen=True)
class _Attribute:
    name: str
    domain: tuple[str, ...] | None  # None for numeric attributes
    line: int


def read_arff(
    path: str | Path, labels: str | None = None, *, drop_identifiers: bool = True
) -> InMemoryStream:
    """Read a multi-label ARFF file (plain, ``.gz`` or ``.bz2``) into memory.

    Parameters
    ----------
    path
        The ARFF file.
    labels
        A label spec (see :mod:`ihomer.stream.labels`). ``None`` picks the convention from the
        file: a Mulan ``NAME.xml`` next to ``NAME.arff[.gz|.bz2]`` if there is one, else MEKA's
        ``-C n`` from the relation name. The XML wins because several files keep a stale ``-C``
        in their relation name after their labels were moved (medical, slashdot, langlog);
        for the same reason a ``meka``, ``first:N`` or ``last:N`` spec that disagrees with
        that XML is refused (``xml:FILE`` names another label set explicitly).
    drop_identifiers
        Drop nominal features that take a different value in every row (see the module
        docstring). Turn off to keep every attribute.

    """
    source = str(path)
    lines = read_text(path).split("\n")
    relation, attributes, data_start = _parse_header(lines, source)

    spec = _default_spec(Path(path), relation, source) if labels is None else \
        parse_label_spec(labels)
    try:
        label_attrs = label_attribute_indices(
            spec, [a.name for a in attributes], relation, Path(path).parent
        )
    except ValueError as exc:
        raise StreamError(source, None, "labels", str(exc)) from None
    if spec.kind != "xml":
        _check_against_xml(Path(path), spec, label_attrs, attributes, source)
    lone_meka = labels is None and spec.kind == "meka"
    if lone_meka:
        _check_stale_meka(relation, source)
    for a in label_attrs:
        attr = attributes[a]
        if attr.domain is not None and not set(attr.domain) <= {"0", "1"}:
            raise StreamError(
                source, attr.line, attr.name,
                f"label attributes must be binary ({{0,1}} or numeric 0/1), "
                f"this one has domain {{{','.join(attr.domain)}}}",
            )

    rows = _parse_rows(lines, data_start, attributes, source)
    values = _convert(rows, attributes, source)
    is_feature = np.ones(len(attributes), dtype=bool)
    is_feature[label_attrs] = False
    dropped = _identifiers(rows, values, attributes, is_feature) if drop_identifiers else []
    for a in dropped:
        is_feature[a] = False
        warnings.warn(
            f"{source}: dropping attribute {attributes[a].name!r}: it takes a different value "
            "in every row (an identifier), which a learner can only memorise",
            stacklevel=2,
        )
    try:
        data = _assemble(rows, values, attributes, label_attrs, is_feature, source)
    except StreamError as e:
        if not lone_meka or e.field not in {attributes[a].name for a in label_attrs}:
            raise
        # slashdot: its -C counts the first attributes, but the labels were moved last
        raise StreamError(e.source, e.line, e.field,
                          f"{e.reason}; this attribute is a label by the relation's MEKA "
                          f"-C {meka_label_count(relation)} (there is no XML beside the file), "
                          f"which may be stale: {_EXPLICIT_LABELS}") from None

    kept = np.flatnonzero(is_feature).tolist()
    nominal: dict[int, tuple[str, ...]] = {}
    for f, a in enumerate(kept):
        domain = attributes[a].domain
        if domain is not None:
            nominal[f] = domain
    schema = Schema(
        feature_names=tuple(attributes[a].name for a in kept),
        label_names=tuple(attributes[a].name for a in label_attrs),
        nominal=nominal,
        sparse=2 * int(rows.sparse.sum()) > len(rows.sparse),
        source=source,
        dropped=tuple(attributes[a].name for a in dropped),
        labels_from=str(spec) + (f" (-C {meka_label_count(relation)})" if spec.kind == "meka"
                                 else ""),
    )
    return InMemoryStream(schema, data)


def _sibling_xml(path: Path) -> Path:
    """``NAME.xml`` beside ``NAME.arff[.gz|.bz2]``: the Mulan label file that names the labels."""
    name = path.name
    for suffix in (".gz", ".bz2"):
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
    if name.lower().endswith(".arff"):
        name = name[: -len(".arff")]
    return path.with_name(name + ".xml")


def _default_spec(path: Path, relation: str, source: str) -> LabelSpec:
    xml = _sibling_xml(path)
    if xml.exists():
        return LabelSpec("xml", xml.name)  # looked up next to the data file
    if meka_label_count(relation):
        return LabelSpec("meka")
    raise StreamError(
        source, None, "labels",
        f"cannot tell which attributes are labels: there is no {xml.name} next to the file and "
        "the relation has no MEKA '-C n'; pass the labels explicitly "
        "(--labels xml:FILE, meka, first:N or last:N)",
    )


def _check_against_xml(path: Path, spec: LabelSpec, label_attrs: list[int],
                       attributes: list[_Attribute], source: str) -> None:
    """Refuse ``--labels meka|first:N|last:N`` that takes other attributes for labels than the
    Mulan XML beside the file names: the XML is what the labels are (it wins by default, and
    results on the file are reported against it), so such a spec would silently learn a label
    as a feature or a feature as a label. ``--labels xml:FILE`` is the explicit way to choose
    another label set (the order of the labels, which is the XML's, is not compared)."""
    xml = _sibling_xml(path)
    if not xml.exists():
        return
    try:
        named = label_attribute_indices(LabelSpec("xml", xml.name),
                                        [a.name for a in attributes], "", path.parent)
    except ValueError:
        return  # an XML that does not fit the file names nothing: the spec given decides
    if set(named) == set(label_attrs):
        return
    as_features = [attributes[a].name for a in sorted(set(named) - set(label_attrs))]
    as_labels = [attributes[a].name for a in sorted(set(label_attrs) - set(named))]
    wrong = "; ".join(f"{what} {', '.join(map(repr, names[:3]))}"
                      f"{f' and {len(names) - 3} more' if len(names) > 3 else ''}"
                      for what, names in (("labels read as features:", as_features),
                                          ("features read as labels:", as_labels)) if names)
    raise StreamError(source, None, "labels",
                      f"--labels {spec} disagrees with {xml.name} beside the file, which names "
                      f"{len(named)} labels ({wrong}); leave --labels out to use the XML, or "
                      "give another label set as --labels xml:FILE")


def _check_stale_meka(relation: str, source: str) -> None:
    """Refuse a ``-C`` found on its own (no XML beside the file) when the relation name records
    a Weka attribute filter after it: the filter moved or removed attributes, so the ``-C`` may
    no longer count the labels (medical, langlog), and reading it would silently take features
    for labels."""
    moved = meka_moved_by(relation)
    if moved is not None:
        raise StreamError(source, None, "labels",
                          f"the relation's MEKA -C {meka_label_count(relation)} was written "
                          f"before the Weka filter {moved} moved or removed attributes, so it "
                          f"may not count the labels any more; {_EXPLICIT_LABELS}")


_EXPLICIT_LABELS = ("pass the labels explicitly: --labels xml:FILE (the Mulan XML), last:N or "
                    "first:N, or --labels meka to trust the -C")


# ---------------------------------------------------------------------------------------------
# Header


def _parse_header(lines: list[str], source: str) -> tuple[str, list[_Attribute], int]:
    """Relation name, attributes and the index of the first line after ``@data``."""
    relation = ""
    attributes: list[_Attribute] = []
    names: set[str] = set()
    content_seen = False
    for i, line in enumerate(lines):
        number = i + 1
        text = line.strip()
        if not text or text[0] == "%":
            continue
        content_seen = True
        match = _KEYWORD.match(text)
        if match is None:
            raise StreamError(source, number, None, f"expected an @-keyword, got {text[:40]!r}")
        keyword, rest = match.group(1).lower(), match.group(2).strip()
        if keyword == "relation":
            quoted = rest[:1] in ("'", '"')
            relation = _read_word(rest, source, number, "@relation")[0] if quoted else rest
        elif keyword == "attribute":
            attr = _parse_attribute(rest, source, number)
            if attr.name in names:
                raise StreamError(source, number, attr.name, "attribute declared twice")
            names.add(attr.name)
            attributes.append(attr)
        elif keyword == "data":
            if not attributes:
                raise StreamError(source, number, "@attribute", "no attributes before @data")
            return relation, attributes, i + 1
        else:
            raise StreamError(source, number, f"@{match.group(1)}", "unknown header keyword")
    if not content_seen:
        raise StreamError(source, None, None, "the file is empty")
    raise StreamError(source, len(lines), "@data", "no @data section")


def _parse_attribute(rest: str, source: str, number: int) -> _Attribute:
    if not rest:
        raise StreamError(source, number, "@attribute", "attribute without a name")
    name, kind = _read_word(rest, source, number, "@attribute")
    kind = kind.strip()
    if kind.startswith("{"):
        if not kind.endswith("}"):
            raise StreamError(source, number, name, "nominal domain does not end with '}'")
        domain: list[str] = []
        for words in _split_values(kind[1:-1], source, number, name):
            if len(words) != 1:
                raise StreamError(source, number, name, "malformed nominal domain")
            domain.append(words[0][0])
        if len(set(domain)) != len(domain):
            raise StreamError(source, number, name, "nominal domain repeats a value")
        return _Attribute(name, tuple(domain), number)
    if not kind:
        raise StreamError(source, number, name, "attribute has no type")
    word = kind.split(maxsplit=1)[0].lower()
    if word in _NUMERIC_TYPES:
        return _Attribute(name, None, number)
    if word in _UNSUPPORTED_TYPES:
        raise StreamError(
            source, number, name,
            f"{word} attributes are not supported; convert it to nominal or remove it",
        )
    raise StreamError(source, number, name, f"unknown attribute type {kind[:40]!r}")


def _read_word(text: str, source: str, number: int, field: str) -> tuple[str, str]:
    """Split a possibly quoted word off the front of ``text``: ``(word, rest)``."""
    quote = text[0]
    if quote not in "'\"":
        head = text.split(maxsplit=1)
        return head[0], head[1] if len(head) > 1 else ""
    pattern = r"'((?:[^'\\]|\\.)*)'" if quote == "'" else r'"((?:[^"\\]|\\.)*)"'
    match = re.match(pattern, text, re.DOTALL)
    if match is None:
        raise StreamError(source, number, field, "unterminated quote")
    return _unescape(match.group(1)), text[match.end() :]


def _unescape(text: str) -> str:
    if "\\" not in text:
        return text
    return _ESCAPE.sub(lambda m: _ESCAPES.get(m.group(1), m.group(1)), text)


def _split_values(
    text: str, source: str, number: int, field: str | None
) -> list[list[tuple[str, bool]]]:
    """Split at the commas outside quotes; each value is a list of ``(word, was_quoted)``."""
    values: list[list[tuple[str, bool]]] = [[]]
    pos, end = 0, len(text)
    while pos < end:
        match = _LEX.match(text, pos)
        if match is None:
            if text[pos:].strip():
                raise StreamError(source, number, field, "unterminated quote")
            break
        comma, single, double, bare = match.groups()
        if comma:
            values.append([])
        elif bare is not None:
            values[-1].append((bare, False))
        else:
            values[-1].append((_unescape(single if single is not None else double), True))
        pos = match.end()
    return values


# ---------------------------------------------------------------------------------------------
# Data rows


@dataclass
class _Rows:
    """All data entries in COO form, sorted by (row, attribute)."""

    line: np.ndarray  # line number of each row
    sparse: np.ndarray  # whether each row was written sparsely
    row: np.ndarray  # row of each entry
    attr: np.ndarray  # attribute of each entry
    token: np.ndarray  # raw text of each entry (object array)
    quoted: np.ndarray  # whether the entry was quoted (a quoted '?' is not missing)


def _parse_rows(lines: list[str], start: int, attributes: list[_Attribute], source: str) -> _Rows:
    n_attrs = len(attributes)
    line_of_row: list[int] = []
    groups: dict[str, tuple[list[int], list[str]]] = {
        "dense": ([], []), "sparse": ([], []), "quoted": ([], [])
    }
    for number, raw in enumerate(lines[start:], start + 1):
        text = raw.strip()
        if not text or text[0] == "%":
            continue
        if "'" in text or '"' in text:
            kind = "quoted"
        else:
            kind = "sparse" if text[0] == "{" else "dense"
        rows, texts = groups[kind]
        rows.append(len(line_of_row))
        texts.append(text)
        line_of_row.append(number)
    line = np.asarray(line_of_row, dtype=np.int64)

    parts = []
    fast = {"dense": _dense_bulk, "sparse": _sparse_bulk}
    for kind, (rows, texts) in groups.items():
        if not rows:
            continue
        part = fast[kind](rows, texts, n_attrs) if kind in fast else None
        if part is None:
            part = _rows_one_by_one(rows, texts, line, attributes, source)
        parts.append(part)

    sparse = np.zeros(len(line), dtype=bool)
    sparse[groups["sparse"][0]] = True
    sparse[[r for r, t in zip(*groups["quoted"], strict=True) if t[0] == "{"]] = True
    if not parts:
        empty = np.zeros(0, dtype=np.int64)
        return _Rows(line, sparse, empty, empty, np.zeros(0, dtype=object),
                     np.zeros(0, dtype=bool))
    row = np.concatenate([p[0] for p in parts])
    attr = np.concatenate([p[1] for p in parts])
    token = np.concatenate([p[2] for p in parts])
    quoted = np.concatenate([p[3] for p in parts])

    # Sparse rows may list their attributes in any order and mixed layouts interleave rows, so
    # sort by (row, attribute) unless already sorted; equal keys are repeated attributes.
    key = row * n_attrs + attr
    if len(key) > 1 and not bool(np.all(key[1:] > key[:-1])):
        order = np.argsort(key, kind="stable")
        row, attr, token, quoted, key = row[order], attr[order], token[order], quoted[order], \
            key[order]
        repeated = np.flatnonzero(key[1:] == key[:-1])
        if len(repeated):
            k = repeated[np.argmin(row[repeated])]
            raise StreamError(source, int(line[row[k]]), attributes[attr[k]].name,
                              "attribute given twice in one row")
    return _Rows(line, sparse, row, attr, token, quoted)


_Part = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def _dense_bulk(rows: list[int], texts: list[str], n_attrs: int) -> _Part | None:
    """Quote-free dense rows in bulk; ``None`` sends them to the careful tokenizer."""
    if any(t.count(",") + 1 != n_attrs for t in texts):
        return None
    joined = ",".join(texts)
    if _INNER_SPACE.search(joined):
        return None
    tokens = [t.strip() for t in joined.split(",")]
    if "" in tokens:
        return None
    n = len(rows)
    return (
        np.repeat(np.asarray(rows, dtype=np.int64), n_attrs),
        np.tile(np.arange(n_attrs, dtype=np.int64), n),
        _object_array(tokens),
        np.zeros(n * n_attrs, dtype=bool),
    )


def _sparse_bulk(rows: list[int], texts: list[str], n_attrs: int) -> _Part | None:
    """Quote-free sparse rows in bulk; ``None`` sends them to the careful tokenizer.

    Separating the commas into tokens of their own lets one ``str.split`` produce
    ``index value , index value , ...``; checking that every third token is a comma and that
    the count matches the commas per row proves every entry had exactly two words.
    """
    if any(t[-1] != "}" for t in texts):
        return None
    contents = [t[1:-1] for t in texts]
    counts = np.fromiter(
        (0 if not c or c.isspace() else c.count(",") + 1 for c in contents),
        dtype=np.int64, count=len(contents),
    )
    total = int(counts.sum())
    tokens = ",".join(c for c in contents if c and not c.isspace()).replace(",", " , ").split()
    if total == 0:
        if tokens:
            return None
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, np.zeros(0, dtype=object), np.zeros(0, dtype=bool)
    if len(tokens) != 3 * total - 1 or (total > 1 and set(tokens[2::3]) != {","}):
        return None
    try:
        attr = np.array(tokens[0::3], dtype=np.int64)
    except (ValueError, OverflowError):
        return None
    if attr.min() < 0 or attr.max() >= n_attrs:
        return None
    return (
        np.repeat(np.asarray(rows, dtype=np.int64), counts),
        attr,
        _object_array(tokens[1::3]),
        np.zeros(total, dtype=bool),
    )


def _rows_one_by_one(
    rows: list[int], texts: list[str], line: np.ndarray, attributes: list[_Attribute],
    source: str,
) -> _Part:
    """The careful row tokenizer: handles quotes and pinpoints every structural error."""
    n_attrs = len(attributes)
    out_row: list[int] = []
    out_attr: list[int] = []
    out_token: list[str] = []
    out_quoted: list[bool] = []
    for r, text in zip(rows, texts, strict=True):
        number = int(line[r])
        if text[0] == "{":
            if text[-1] != "}":
                raise StreamError(source, number, None, "sparse row does not end with '}'")
            values = _split_values(text[1:-1], source, number, None)
            if values == [[]]:
                continue
            for words in values:
                if len(words) != 2 or words[0][1]:
                    shown = " ".join(w for w, _ in words)
                    raise StreamError(source, number, shown or None,
                                      "sparse entry is not 'index value'")
                index_text, (token, quoted) = words[0][0], words[1]
                try:
                    a = int(index_text)
                except ValueError:
                    raise StreamError(source, number, index_text,
                                      "attribute index is not an integer") from None
                if not 0 <= a < n_attrs:
                    raise StreamError(source, number, f"#{a}",
                                      f"unknown attribute index {a} (there are {n_attrs} "
                                      f"attributes, indexed from 0)")
                out_row.append(r)
                out_attr.append(a)
                out_token.append(token)
                out_quoted.append(quoted)
        else:
            values = _split_values(text, source, number, None)
            if len(values) < n_attrs:
                raise StreamError(source, number, attributes[len(values)].name,
                                  f"row is truncated: {len(values)} values for {n_attrs} "
                                  f"attributes")
            if len(values) > n_attrs:
                raise StreamError(source, number, attributes[-1].name,
                                  f"too many values: {len(values)} for {n_attrs} attributes")
            for a, words in enumerate(values):
                if len(words) != 1:
                    reason = "empty value" if not words else "unexpected text in the value"
                    raise StreamError(source, number, attributes[a].name, reason)
                out_row.append(r)
                out_attr.append(a)
                out_token.append(words[0][0])
                out_quoted.append(words[0][1])
    return (
        np.asarray(out_row, dtype=np.int64),
        np.asarray(out_attr, dtype=np.int64),
        _object_array(out_token),
        np.asarray(out_quoted, dtype=bool),
    )


def _object_array(tokens: list[str]) -> np.ndarray:
    # Filling a pre-sized object array never lets NumPy try to interpret the strings.
    array = np.empty(len(tokens), dtype=object)
    array[:] = tokens
    return array


# ---------------------------------------------------------------------------------------------
# Values


def _convert(rows: _Rows, attributes: list[_Attribute], source: str) -> np.ndarray:
    """Numeric value of every entry: a float, a nominal index, or NaN for ``?``."""
    values = np.empty(len(rows.token), dtype=np.float64)
    numeric_attr = np.array([a.domain is None for a in attributes], dtype=bool)
    missing = (rows.token == "?") & ~rows.quoted
    values[missing] = np.nan

    numeric = numeric_attr[rows.attr] & ~missing
    if numeric.any():
        try:
            values[numeric] = rows.token[numeric].astype(np.float64)
        except ValueError:
            for j in np.flatnonzero(numeric).tolist():
                try:
                    float(rows.token[j])
                except ValueError:
                    raise StreamError(
                        source, int(rows.line[rows.row[j]]), attributes[rows.attr[j]].name,
                        f"{rows.token[j]!r} is not a number",
                    ) from None
            raise  # float() accepted every token after all: a NumPy quirk worth seeing
        # NumPy also reads 'inf', 'nan' and 1e400 (as inf): no learner can use those
        unusable = ~(np.abs(values[numeric]) <= MAX_ABS_VALUE)
        if unusable.any():
            k = int(np.flatnonzero(numeric)[np.argmax(unusable)])
            raise StreamError(source, int(rows.line[rows.row[k]]), attributes[rows.attr[k]].name,
                              f"{rows.token[k]!r} is not a finite number within "
                              f"±{MAX_ABS_VALUE:g} (a missing value is '?')")

    nominal = np.flatnonzero(~numeric_attr[rows.attr] & ~missing)
    if len(nominal):
        # One group per attribute: map each distinct token once, then broadcast the codes.
        nominal = nominal[np.argsort(rows.attr[nominal], kind="stable")]
        bounds = np.flatnonzero(np.diff(rows.attr[nominal])) + 1
        for group in np.split(nominal, bounds):
            attr = attributes[rows.attr[group[0]]]
            assert attr.domain is not None
            code_of = {v: i for i, v in enumerate(attr.domain)}
            distinct, inverse = np.unique(rows.token[group], return_inverse=True)
            codes = np.array([code_of.get(v, -1) for v in distinct], dtype=np.int64)[inverse]
            if (codes < 0).any():
                k = group[np.flatnonzero(codes < 0)[0]]
                raise StreamError(
                    source, int(rows.line[rows.row[k]]), attr.name,
                    f"{rows.token[k]!r} is not in the nominal domain "
                    f"{{{','.join(attr.domain)}}}",
                )
            values[group] = codes
    return values


def _assemble(
    rows: _Rows, values: np.ndarray, attributes: list[_Attribute], label_attrs: list[int],
    is_feature: np.ndarray, source: str,
) -> Batch:
    """Split the entries into the feature CSR (``is_feature`` attributes) and the label CSR."""
    n_rows, n_attrs = len(rows.line), len(attributes)
    label_of = np.full(n_attrs, -1, dtype=np.int64)
    label_of[label_attrs] = np.arange(len(label_attrs))
    entry_label = label_of[rows.attr]
    is_label = entry_label >= 0

    bad = is_label & np.isnan(values)
    if bad.any():
        k = np.flatnonzero(bad)[0]
        raise StreamError(source, int(rows.line[rows.row[k]]), attributes[rows.attr[k]].name,
                          "a label value cannot be missing ('?')")
    # The value that means "present": 1 for numeric labels, the index of "1" for nominal ones.
    one = np.ones(n_attrs, dtype=np.float64)
    for a in label_attrs:
        domain = attributes[a].domain
        if domain is not None:
            one[a] = domain.index("1") if "1" in domain else -1.0
    numeric_label = is_label & np.array([a.domain is None for a in attributes])[rows.attr]
    bad = numeric_label & (values != 0) & (values != 1)
    if bad.any():
        k = np.flatnonzero(bad)[0]
        raise StreamError(source, int(rows.line[rows.row[k]]), attributes[rows.attr[k]].name,
                          f"label value must be 0 or 1, got {rows.token[k]!r}")
    present = is_label & (values == one[rows.attr])
    label_row = [rows.row[present]]
    label_id = [entry_label[present]]
    # A sparse row that omits a nominal label means its first category: "present" if that is "1".
    sparse_rows = np.flatnonzero(rows.sparse)
    for a in label_attrs:
        domain = attributes[a].domain
        if domain is not None and domain[0] == "1" and len(sparse_rows):
            implicit = np.setdiff1d(sparse_rows, rows.row[rows.attr == a])
            label_row.append(implicit)
            label_id.append(np.full(len(implicit), label_of[a]))
    label_row_all = np.concatenate(label_row)
    label_id_all = np.concatenate(label_id)
    order = np.lexsort((label_id_all, label_row_all))
    label_indptr = np.zeros(n_rows + 1, dtype=np.int64)
    np.cumsum(np.bincount(label_row_all, minlength=n_rows), out=label_indptr[1:])

    feature_of = np.full(n_attrs, -1, dtype=np.int64)
    feature_of[is_feature] = np.arange(int(is_feature.sum()))
    keep = is_feature[rows.attr] & (values != 0)
    indptr = np.zeros(n_rows + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows.row[keep], minlength=n_rows), out=indptr[1:])
    return Batch(
        indptr=indptr,
        indices=feature_of[rows.attr[keep]],
        values=values[keep],
        label_indptr=label_indptr,
        label_ids=label_id_all[order],
    )


def _identifiers(
    rows: _Rows, values: np.ndarray, attributes: list[_Attribute], is_feature: np.ndarray
) -> list[int]:
    """Nominal features with a distinct, non-missing value in every row.

    In a handful of rows, all-distinct values happen by chance (three rows of a colour), so
    files with fewer than ``_IDENTIFIER_MIN_ROWS`` rows are never searched.
    """
    n_rows = len(rows.line)
    if n_rows < _IDENTIFIER_MIN_ROWS:
        return []
    found = []
    for a, attr in enumerate(attributes):
        if attr.domain is None or not is_feature[a] or len(attr.domain) < n_rows:
            continue
        column = np.zeros(n_rows)  # absent from a sparse row means category 0
        mine = rows.attr == a
        column[rows.row[mine]] = values[mine]
        if not np.isnan(column).any() and len(np.unique(column)) == n_rows:
            found.append(a)
    return found
