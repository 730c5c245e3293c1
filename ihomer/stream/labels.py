"""Label conventions: which columns of a benchmark file are the labels.

Multi-label benchmark files do not agree on where the labels live. Mulan ships an XML file that
lists the label attributes by name; MEKA writes ``-C n`` into the ARFF relation name (the first
``n`` attributes, or the last ``|n|`` when ``n`` is negative); some files carry no marker at all and
the labels are known to be the first or last ``N`` attributes; JSON-lines text streams keep a list
of tags in one field. A *label spec* string names the convention:

* ``xml:FILE`` -- a Mulan label file. Label ids follow the order of the ``<label>`` elements in the
  XML (document order, so nested hierarchical labels are included depth first), **not** the order
  of the attributes: in some files the two differ (enron), and the XML is what Mulan-based results
  are reported against. Label attributes may sit anywhere among the attributes.
* ``meka`` -- read ``-C n`` from the relation name; anything after the number (Weka filter
  histories such as ``-C 45 -I 0-weka.filters...``) is ignored.
* ``first:N`` / ``last:N`` -- the first or last ``N`` attributes, in attribute order.
* ``json:FIELD`` -- for JSON-lines streams: ``FIELD`` holds the list of label names.

For attribute-based conventions the label ids follow attribute order.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, cast

__all__ = [
    "LabelSpec",
    "label_attribute_indices",
    "meka_label_count",
    "meka_moved_by",
    "parse_label_spec",
    "read_mulan_xml",
]

SpecKind = Literal["xml", "meka", "first", "last", "json"]

_MEKA_C = re.compile(r"(?:^|\s|:)-C\s+(-?\d+)")
# Weka appends each filter to the relation name: an attribute filter moves or removes columns
_ATTRIBUTE_FILTER = re.compile(r"weka\.filters\.(?:un)?supervised\.attribute\.([A-Za-z]+)([^\s_]*)")


@dataclass(frozen=True)
class LabelSpec:
    """A parsed label spec.

    ``arg`` is the XML path (``xml``), the attribute count (``first``/``last``), the field name
    (``json``) or ``None`` (``meka``, whose count comes from the file itself).
    """

    kind: SpecKind
    arg: str | int | None = None

    def __str__(self) -> str:
        return self.kind if self.arg is None else f"{self.kind}:{self.arg}"


def parse_label_spec(spec: str) -> LabelSpec:
    """Parse a label spec string (see the module docstring); raise ``ValueError`` if malformed.

    Examples
    --------
    >>> parse_label_spec("last:6")
    LabelSpec(kind='last', arg=6)
    >>> parse_label_spec("xml:emotions.xml")
    LabelSpec(kind='xml', arg='emotions.xml')

    """
    valid = "expected one of xml:FILE, meka, first:N, last:N, json:FIELD"
    if not isinstance(spec, str):
        raise ValueError(f"label spec must be a string, got {type(spec).__name__}; {valid}")
    kind, sep, arg = spec.strip().partition(":")
    kind = kind.lower()
    if kind == "meka":
        if sep:
            raise ValueError(f"label spec {spec!r}: 'meka' takes no argument; {valid}")
        return LabelSpec("meka")
    if kind in ("xml", "json"):
        if not arg.strip():
            what = "a file name" if kind == "xml" else "a field name"
            raise ValueError(f"label spec {spec!r}: '{kind}:' needs {what}; {valid}")
        return LabelSpec(cast(SpecKind, kind), arg.strip() if kind == "json" else arg)
    if kind in ("first", "last"):
        try:
            n = int(arg)
        except ValueError:
            raise ValueError(
                f"label spec {spec!r}: '{kind}:' needs a positive integer; {valid}"
            ) from None
        if n <= 0:
            raise ValueError(f"label spec {spec!r}: the label count must be positive; {valid}")
        return LabelSpec(cast(SpecKind, kind), n)
    raise ValueError(f"unknown label spec {spec!r}; {valid}")


def read_mulan_xml(path: str | Path) -> list[str]:
    """Label names from a Mulan XML label file, in document order.

    Mulan files use the ``http://mulan.sourceforge.net/labels`` namespace, but files written by
    other tools sometimes omit it, so elements are matched on their local name. Hierarchical
    files nest ``<label>`` elements; every one of them is a label attribute.
    """
    path = Path(path)
    try:
        root = ET.parse(path).getroot()
    except FileNotFoundError:
        raise ValueError(f"label file {str(path)!r} does not exist") from None
    except ET.ParseError as exc:
        raise ValueError(f"label file {str(path)!r} is not valid XML: {exc}") from None
    if _local_name(root.tag) != "labels":
        raise ValueError(
            f"label file {str(path)!r}: root element is <{_local_name(root.tag)}>, "
            "expected <labels>"
        )
    names: list[str] = []
    for elem in root.iter():
        if elem is root or _local_name(elem.tag) != "label":
            continue
        name = elem.get("name")
        if not name:
            raise ValueError(f"label file {str(path)!r}: a <label> element has no name")
        names.append(name)
    if not names:
        raise ValueError(f"label file {str(path)!r} lists no labels")
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise ValueError(f"label file {str(path)!r} lists label {name!r} twice")
        seen.add(name)
    return names


def meka_label_count(relation: str) -> int | None:
    """The ``n`` of a MEKA ``-C n`` option in a relation name, or ``None`` if there is none.

    Only the first occurrence counts: Weka filters append the relation name to itself, so a
    file can repeat ``-C`` (medical), and whatever follows the number is filter history.

    >>> meka_label_count("MEDC: -C 45 -I 0-weka.filters.unsupervised.attribute.Remove-R1-45")
    45
    >>> meka_label_count("VirusGO: -C -6")
    -6
    >>> meka_label_count("scene") is None
    True

    """
    match = _MEKA_C.search(relation)
    return None if match is None else int(match.group(1))


def meka_moved_by(relation: str) -> str | None:
    """The Weka attribute filter that the relation name records after its first MEKA ``-C``
    (``"Remove-R1-45"``), or ``None``: such a filter moved or removed attributes after MEKA
    wrote the ``-C``, which then may no longer count the labels (medical, langlog).

    >>> meka_moved_by("MEDC: -C 45 -I 0-weka.filters.unsupervised.attribute.Remove-R1-45_MEDC")
    'Remove-R1-45'
    >>> meka_moved_by("slashdot: -C 20-weka.filters.unsupervised.instance.Randomize-S42") is None
    True
    """
    match = _MEKA_C.search(relation)
    if match is None:
        return None
    moved = _ATTRIBUTE_FILTER.search(relation, match.end())
    return None if moved is None else moved.group(1) + moved.group(2)


def label_attribute_indices(
    spec: LabelSpec,
    attribute_names: Sequence[str],
    relation: str = "",
    base_dir: str | Path | None = None,
) -> list[int]:
    """Attribute positions of the labels, in label-id order.

    ``relation`` is needed by ``meka``; ``base_dir`` (the data file's folder) is where a relative
    ``xml:`` path is looked up first, so a spec written next to the data (as in a manifest) works
    from any working directory; the path is then tried as given. Raises ``ValueError`` when the
    convention does not fit the attributes.
    """
    n_attrs = len(attribute_names)
    if spec.kind == "json":
        raise ValueError(f"label spec '{spec}' applies to JSON-lines streams only")
    if spec.kind == "xml":
        names = read_mulan_xml(_resolve_xml(str(spec.arg), base_dir))
        position = {name: i for i, name in enumerate(attribute_names)}
        missing = [name for name in names if name not in position]
        if missing:
            shown = ", ".join(repr(m) for m in missing[:5])
            more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
            raise ValueError(
                f"label file {spec.arg!r} names labels that are not attributes: {shown}{more}"
            )
        return [position[name] for name in names]
    if spec.kind == "meka":
        n = meka_label_count(relation)
        if n is None or n == 0:
            raise ValueError(
                f"relation {relation!r} has no MEKA '-C n' option; "
                "give the labels explicitly (xml:FILE, first:N or last:N)"
            )
        kind, count = ("first", n) if n > 0 else ("last", -n)
    else:
        assert isinstance(spec.arg, int)
        kind, count = spec.kind, spec.arg
    if count > n_attrs:
        raise ValueError(f"label spec '{spec}' asks for {count} labels but there are only "
                         f"{n_attrs} attributes")
    return list(range(count)) if kind == "first" else list(range(n_attrs - count, n_attrs))


def _resolve_xml(name: str, base_dir: str | Path | None) -> Path:
    path = Path(name)
    if base_dir is not None and not path.is_absolute():
        beside = Path(base_dir) / path
        if beside.exists():
            return beside
    return path


def _local_name(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]
