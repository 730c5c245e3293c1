"""Core data types shared by every reader, learner and evaluator.

A multi-label stream is a sequence of instances ``(x, Y)``. ``x`` is a feature vector that may be
dense (a few hundred numeric attributes) or very sparse (thousands of binary attributes, a handful
set per instance); ``Y`` is a subset of the label set. To serve both without ever densifying a
sparse row, every instance is stored in *compressed sparse row* (CSR) form: sorted feature
indices with their values, plus sorted label ids. Only non-zero values are stored, for dense
rows too: an absent feature means 0, exactly as in sparse ARFF, so learners have one meaning
and one code path.

A :class:`Batch` holds many rows as flat NumPy arrays (``indptr``/``indices``/``values`` for the
features, ``label_indptr``/``label_ids`` for the labels). This is the struct-of-arrays form that
numba kernels consume directly, and it is also what the Arrow recorded-stream format stores.

A :class:`Schema` names the columns: feature names, label names, the domain of nominal features
(their values are stored as the index into the domain) and where the stream came from.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence, Sized
from dataclasses import dataclass, field
from decimal import Decimal
from numbers import Real
from typing import Any, Protocol, runtime_checkable

import numpy as np

INDEX_DTYPE = np.int32
VALUE_DTYPE = np.float64
PTR_DTYPE = np.int64
#: The largest magnitude a feature value may have. The trees keep sums of squared values (the
#: variances of their Gaussian estimators), which overflow to infinity, and then turn every
#: probability they enter into NaN, for values near 1e154; 1e100 leaves them ample room.
MAX_ABS_VALUE = 1e100
#: Feature and label ids a learner takes: below these. A learner keeps state for every id up to
#: the largest it has seen (a name, and its trees' per-feature or per-label arrays), so ids are
#: positions in a vocabulary, not raw hashes: one stray id near 2**31 would otherwise have it
#: build two billion placeholders. Hash a wider feature space down first (the hashing
#: featurizer's ``n_features``).
MAX_FEATURES = 2**24
MAX_LABELS = 2**20


def unusable_value(value: float) -> str:
    """Why a feature value no learner can take is refused (an infinite one, or one beyond
    :data:`MAX_ABS_VALUE`); NaN is a missing value and is never refused."""
    if np.isinf(value):
        return f"{value} is not a finite number (a missing value is NaN, or None in a dict)"
    return (f"{value:g} is beyond ±{MAX_ABS_VALUE:g}, the largest magnitude the learners' "
            "statistics hold (rescale the feature)")


def text_problem(text: str) -> str | None:
    """Why ``text`` cannot be featurized, or ``None``. JSON's ``"\\ud800"`` escape decodes to
    a lone surrogate, which is no Unicode character: UTF-8 (the featurizers' input, and the
    output topics') cannot encode it.

    >>> text_problem("fine"), text_problem("bad \\ud800 text")
    (None, "'\\\\ud800' at character 4 is a lone surrogate, not a Unicode character")
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        return (f"{text[e.start]!r} at character {e.start} is a lone surrogate, not a Unicode "
                "character")
    return None


def first_unusable(values: np.ndarray) -> int | None:
    """The position of the first value of ``values`` that :func:`unusable_value` refuses."""
    bad = np.flatnonzero(~(np.abs(values) <= MAX_ABS_VALUE) & ~np.isnan(values))
    return int(bad[0]) if len(bad) else None


class RowError(ValueError):
    """Bad input in one row of a batch (handed to a learner, or read from a table).

    ``row`` is the row's place in that batch, so that a caller who knows where the batch
    starts in its stream (the prequential evaluator, a recorded stream's reader) can name the
    stream's record instead; ``detail`` is the message after the place (the field and what is
    wrong with it)."""

    def __init__(self, row: int, where: str, detail: str) -> None:
        self.row = row
        self.where = where
        self.detail = detail
        super().__init__(f"{where}, {detail}")

    @classmethod
    def in_batch(cls, batch: Batch, row: int, detail: str) -> RowError:
        """The error at ``row`` of ``batch``, placed by the row's event id when it has one."""
        where = (f"event {batch.event_ids[row]!r}" if batch.event_ids is not None
                 else f"row {row} of the batch")
        return cls(row, where, detail)

    def in_stream(self, first_record: int, source: str = "") -> RowError:
        """The same error placed in a stream whose record ``first_record`` was the batch's
        first row (its event id, when it has one, kept)."""
        record = first_record + self.row
        where = f"{source + ', ' if source else ''}record {record}"
        if self.where.startswith("event "):
            where += f" ({self.where})"
        return RowError(record, where, self.detail)


#: A feature or label name: a string, or an integer (what a checkpoint stores as JSON; see
#: :func:`ihomer.learners.base.checked_name`).
Name = str | int


class StreamError(ValueError):
    """Malformed input: the message names the source, the line (or record) and the field."""

    def __init__(self, source: str, line: int | None, field: str | None, reason: str) -> None:
        self.source = source
        self.line = line
        self.field = field
        self.reason = reason
        where = source
        if line is not None:
            where += f", line {line}"
        if field is not None:
            where += f", field {field!r}"
        super().__init__(f"{where}: {reason}")


def first_repeat(names: Sequence[Name]) -> Name | None:
    """The first name that occurs again in ``names`` (None when all differ)."""
    seen: set[Name] = set()
    for n in names:
        if n in seen:
            return n
        seen.add(n)
    return None


@dataclass(frozen=True)
class Schema:
    """Names and kinds of a stream's columns.

    Attributes
    ----------
    feature_names
        One name per feature column, in index order.
    label_names
        One name per label, in label-id order.
    nominal
        ``{feature index: domain}`` for nominal features; the stored value is the index of the
        category in ``domain``.
    sparse
        Whether the source stored rows sparsely (a hint for learners and for the Arrow layout).
    source
        Where the stream came from (a path or a topic), for reports.
    text
        True for raw-text streams whose features come from a featurizer.
    dropped
        Attributes the reader removed (identifier columns), for the record.
    labels_from
        How the reader told labels from features (``"xml:emotions.xml"``, ``"meka (-C 28)"``
        for a relation's ``-C``, ``"last:45"``, ``"json:tags"``), for the record; a recording
        keeps its source's, and it is empty where nothing had to tell them apart (events).
    limit
        When the stream is only the first ``limit`` instances of its source (``--limit``, or a
        recording made with ``ihomer convert --limit``): its numbers are a prefix's, never a
        full-stream result. ``None`` for a whole stream.
    whole_instances
        With ``limit``: how many instances the whole source has, where known.
    """

    feature_names: tuple[Name, ...]
    label_names: tuple[Name, ...]
    nominal: dict[int, tuple[str, ...]] = field(default_factory=dict)
    sparse: bool = False
    source: str = ""
    text: bool = False
    dropped: tuple[str, ...] = ()
    labels_from: str = ""
    limit: int | None = None
    whole_instances: int | None = None

    def __post_init__(self) -> None:
        # a name is a column's identity: twice in one list, two columns would share it and a
        # model bound to the schema could not tell them apart
        for names, what in ((self.feature_names, "feature"), (self.label_names, "label")):
            twice = first_repeat(names)
            if twice is not None:
                raise ValueError(f"schema: {what} name {twice!r} occurs more than once")

    @property
    def n_features(self) -> int:
        return len(self.feature_names)

    @property
    def n_labels(self) -> int:
        return len(self.label_names)


@dataclass
class Instance:
    """One event: sparse features, label ids, optional id, time and raw text."""

    indices: np.ndarray
    values: np.ndarray
    labels: np.ndarray
    event_id: str | None = None
    event_time: int | None = None
    text: str | None = None


def _integers(data: Any, dtype: Any, what: str, ptr: np.ndarray | None) -> np.ndarray:
    """``data`` as a contiguous array of ``dtype``, or a ValueError naming the row (when
    ``ptr`` locates it) of the first value that is not an integer or does not fit: NumPy's own
    cast would wrap an id of 2**32 + 3 round to 3, or cut 1.5 to 1, and the learner would
    then learn the wrong feature or label without a word."""
    arr = np.asarray(data)
    if arr.dtype == dtype:
        return _writable(arr)
    if arr.size == 0:
        return np.zeros(0, dtype)
    if arr.dtype.kind == "O":  # Python integers beyond int64
        if not all(isinstance(v, int | np.integer) and not isinstance(v, bool) for v in
                   arr.ravel()):
            raise TypeError(f"{what}s must be integers")
        arr = np.array([int(v) for v in arr.ravel()], dtype=object)
    elif arr.dtype.kind not in "iuf":
        raise TypeError(f"{what}s must be integers, not {arr.dtype}")
    info = np.iinfo(dtype)
    with np.errstate(invalid="ignore"):
        bad = ~((arr >= info.min) & (arr <= info.max))
        if arr.dtype.kind == "f":
            bad |= arr != np.trunc(arr)
    bad = np.asarray(bad, bool)
    if bad.any():
        k = int(np.argmax(bad))
        where = "" if ptr is None else \
            f"row {int(np.searchsorted(ptr, k, side='right')) - 1}: "
        limit = (f"ids are positions in a vocabulary, below {MAX_FEATURES:,} for features "
                 f"and {MAX_LABELS:,} for labels") if ptr is not None else "pointers are offsets"
        value = arr.ravel()[k]
        value = value.item() if isinstance(value, np.generic) else value
        raise ValueError(f"{where}{what} {value!r} is not an integer that fits "
                         f"{np.dtype(dtype).name} ({limit})")
    return np.ascontiguousarray(arr.astype(dtype))


def _writable(arr: np.ndarray) -> np.ndarray:
    """``arr`` contiguous and writable. Arrow-backed and memory-mapped arrays are read-only,
    and numba compiles a separate copy of every kernel for read-only arrays: the first replay
    of a recorded stream then compiled inside the evaluator's clock (yeast from Parquet at 11
    instances/s against 367 from ARFF with a cold cache). A batch's copy is cheap."""
    arr = np.ascontiguousarray(arr)
    return arr if arr.flags.writeable else arr.copy()


def as_numbers(X: Any, what: str = "X") -> np.ndarray:
    """``X`` as float64; a DataFrame's nullable columns (``pd.NA``) give NaN, a missing value,
    as does ``None``. A TypeError names the first column (or entry) that holds something else:
    numeric strings, dates and complex numbers were cast before (a date to its epoch count).
    """
    if hasattr(X, "columns") and hasattr(X, "to_numpy"):  # a pandas DataFrame
        for c in X.columns:
            kind = getattr(X[c].dtype, "kind", "O")
            if kind not in "biufO":
                raise TypeError(f"{what} must hold numbers only: column {c!r} is {X[c].dtype}")
            if kind == "O":
                _only_numbers(X[c].to_numpy(dtype=object, na_value=None), f"{what}, column {c!r}")
        return np.asarray(X.to_numpy(dtype=VALUE_DTYPE, na_value=np.nan))
    try:
        a = np.asarray(X)
    except ValueError as e:  # ragged rows
        raise TypeError(f"{what} must be a rectangle of numbers: {e}") from None
    if a.dtype.kind == "O":
        _only_numbers(a, what)
    elif a.dtype.kind not in "biuf":
        raise TypeError(f"{what} must hold numbers only, not {a.dtype} values (strings, dates "
                        "and complex numbers are not cast)")
    return np.asarray(a, dtype=VALUE_DTYPE)


def _only_numbers(a: np.ndarray, what: str) -> None:
    """A TypeError naming the first entry of the object array ``a`` that is neither a real
    number (a ``Decimal`` too: Arrow's decimal columns) nor a missing value (``None``, NaN)."""
    for pos, v in np.ndenumerate(a):
        if v is not None and not isinstance(v, Real | np.bool_ | Decimal):
            where = ", ".join(map(str, pos))
            raise TypeError(f"{what} must hold numbers only: [{where}] is {v!r} "
                            f"({type(v).__name__})")


@dataclass
class Batch:
    """Many instances in CSR form (see the module docstring).

    Build one from CSR arrays (a SciPy CSR matrix's ``indptr``, ``indices`` and ``data`` fit
    as they are), from dense arrays with :meth:`from_dense`, or from an Arrow table with
    :func:`ihomer.stream.recorded.batch_from_arrow`. Feature and label ids index the learner's
    vocabularies: ``bind`` a :class:`Schema` to the learner to give them names.
    """

    indptr: np.ndarray
    indices: np.ndarray
    values: np.ndarray
    label_indptr: np.ndarray
    label_ids: np.ndarray
    event_ids: list[str] | None = None
    event_times: np.ndarray | None = None
    texts: list[str] | None = None
    #: The names of the columns the feature (label) ids stand for, where the batch was built
    #: from named columns (batch_from_arrow's wide form): a learner then reads each column as
    #: the feature of its name, wherever it stands, instead of as the id of its position.
    feature_names: list[Name] | None = None
    label_names: list[Name] | None = None

    def __post_init__(self) -> None:
        self.indptr = _integers(self.indptr, PTR_DTYPE, "feature pointers", None)
        self.indices = _integers(self.indices, INDEX_DTYPE, "feature id", self.indptr)
        self.values = _writable(as_numbers(self.values, "feature values"))
        self.label_indptr = _integers(self.label_indptr, PTR_DTYPE, "label pointers", None)
        self.label_ids = _integers(self.label_ids, INDEX_DTYPE, "label id", self.label_indptr)
        if len(self.indptr) != len(self.label_indptr):
            raise ValueError(
                f"feature rows ({len(self.indptr) - 1}) and label rows "
                f"({len(self.label_indptr) - 1}) differ"
            )

    def __len__(self) -> int:
        return len(self.indptr) - 1

    def check(self) -> None:
        """Raise a ValueError naming the first row that breaks the CSR contract: pointers that
        start at 0, never decrease and end at their arrays' length; ids that are not negative
        and increase within each row (sorted, none repeated). The jitted kernels take all of it
        on trust: there a negative id or a pointer past the end reads or writes outside an
        array, which can crash the process.

        >>> Batch([0, 2], [3, 1], [1.0, 1.0], [0, 0], []).check()  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ihomer.stream.base.RowError: row 0 of the batch, feature ids must increase ... (3, then 1)
        """
        for what, ptr, ids, names in (("feature", self.indptr, self.indices, self.feature_names),
                                      ("label", self.label_indptr, self.label_ids,
                                       self.label_names)):
            if len(ptr) == 0 or ptr[0] != 0:
                raise ValueError(f"{what} pointers must start at 0")
            down = np.flatnonzero(np.diff(ptr) < 0)
            if len(down):
                r = int(down[0])
                raise RowError.in_batch(self, r, f"{what} pointers decrease ({ptr[r]}, then "
                                                 f"{ptr[r + 1]})")
            if ptr[-1] != len(ids):
                raise ValueError(f"{what} pointers end at {ptr[-1]}, but there are {len(ids)} "
                                 f"{what} ids")
            neg = np.flatnonzero(ids < 0)
            if len(neg):
                r = int(np.searchsorted(ptr, neg[0], side="right")) - 1
                raise RowError.in_batch(self, r, f"{what} id {ids[neg[0]]} is negative")
            if len(ids) > 1:
                bad = np.diff(ids) <= 0
                starts = ptr[1:-1]
                bad[starts[(starts > 0) & (starts < len(ids))] - 1] = False  # across rows
                at = np.flatnonzero(bad)
                if len(at):
                    j = int(at[0])
                    r = int(np.searchsorted(ptr, j, side="right")) - 1
                    raise RowError.in_batch(self, r, f"{what} ids must increase within a row "
                                                     f"({ids[j]}, then {ids[j + 1]})")
            twice = None if names is None else first_repeat(names)
            if twice is not None:  # two columns would be one feature (label) to a learner
                raise ValueError(f"{what} name {twice!r} names two columns of the batch")
            if names is not None and len(ids) and int(ids.max()) >= len(names):
                k = int(np.argmax(ids >= len(names)))
                r = int(np.searchsorted(ptr, k, side="right")) - 1
                raise RowError.in_batch(self, r, f"{what} id {ids[k]} has no name: the batch "
                                                 f"names {len(names)} {what} columns")
        if len(self.values) != len(self.indices):
            raise ValueError(f"{len(self.values)} feature values for {len(self.indices)} "
                             "feature ids")

    def check_ids(self, n_features: int, n_labels: int) -> None:
        """Raise a :class:`RowError` naming the first row with a feature id not below
        ``n_features`` or a label id not below ``n_labels``: the ids a schema names. (A learner
        takes ids beyond its vocabulary, naming them by placeholders; a recorded stream whose
        schema lists its columns has no such ids.)"""
        for what, n, ptr, ids in (("feature", n_features, self.indptr, self.indices),
                                  ("label", n_labels, self.label_indptr, self.label_ids)):
            over = np.flatnonzero(ids >= n)
            if len(over):
                r = int(np.searchsorted(ptr, over[0], side="right")) - 1
                raise RowError.in_batch(self, r, f"{what} id {ids[over[0]]} is beyond the "
                                                 f"{n} {what}s the schema names")

    def row(self, i: int) -> Instance:
        a, b = self.indptr[i], self.indptr[i + 1]
        c, d = self.label_indptr[i], self.label_indptr[i + 1]
        return Instance(
            indices=self.indices[a:b],
            values=self.values[a:b],
            labels=self.label_ids[c:d],
            event_id=None if self.event_ids is None else self.event_ids[i],
            event_time=None if self.event_times is None else int(self.event_times[i]),
            text=None if self.texts is None else self.texts[i],
        )

    def __iter__(self) -> Iterator[Instance]:
        for i in range(len(self)):
            yield self.row(i)

    def slice(self, start: int, stop: int) -> Batch:
        """Rows ``start:stop`` as a new batch sharing no state with this one."""
        stop = min(stop, len(self))
        a, b = self.indptr[start], self.indptr[stop]
        c, d = self.label_indptr[start], self.label_indptr[stop]
        return Batch(
            indptr=self.indptr[start : stop + 1] - a,
            indices=self.indices[a:b],
            values=self.values[a:b],
            label_indptr=self.label_indptr[start : stop + 1] - c,
            label_ids=self.label_ids[c:d],
            event_ids=None if self.event_ids is None else self.event_ids[start:stop],
            event_times=None if self.event_times is None else self.event_times[start:stop],
            texts=None if self.texts is None else self.texts[start:stop],
            feature_names=self.feature_names, label_names=self.label_names,
        )

    def take(self, rows: np.ndarray) -> Batch:
        """The given rows (any order, repeats allowed) as a new batch."""
        rows = np.asarray(rows, dtype=np.int64)

        def gather(ptr: np.ndarray, data: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            starts = ptr[rows]
            lens = ptr[rows + 1] - starts
            out_ptr = np.zeros(len(rows) + 1, dtype=PTR_DTYPE)
            np.cumsum(lens, out=out_ptr[1:])
            src = np.repeat(starts - out_ptr[:-1], lens) + np.arange(out_ptr[-1])
            return out_ptr, src

        indptr, fsrc = gather(self.indptr, self.indices)
        label_indptr, lsrc = gather(self.label_indptr, self.label_ids)
        pick = rows.tolist()
        return Batch(
            indptr=indptr,
            indices=self.indices[fsrc],
            values=self.values[fsrc],
            label_indptr=label_indptr,
            label_ids=self.label_ids[lsrc],
            event_ids=None if self.event_ids is None else [self.event_ids[i] for i in pick],
            event_times=None if self.event_times is None else self.event_times[rows],
            texts=None if self.texts is None else [self.texts[i] for i in pick],
            feature_names=self.feature_names, label_names=self.label_names,
        )

    @classmethod
    def from_instances(cls, rows: Sequence[Instance]) -> Batch:
        return cls.from_rows([r.indices for r in rows], [r.values for r in rows],
                             [r.labels for r in rows], event_ids=[r.event_id for r in rows],
                             event_times=[r.event_time for r in rows],
                             texts=[r.text for r in rows])

    @classmethod
    def from_rows(cls, indices: Sequence[np.ndarray], values: Sequence[np.ndarray],
                  labels: Sequence[np.ndarray], *,
                  event_ids: Sequence[str | int | None] | None = None,
                  event_times: Sequence[int | None] | None = None,
                  texts: Sequence[str | None] | None = None) -> Batch:
        """A batch from per-row arrays (feature ids, their values, label ids) and optional
        per-row ids, times and texts; a column whose rows are all ``None`` is left out."""

        def ptr(parts: Sequence[np.ndarray]) -> np.ndarray:
            out = np.zeros(len(parts) + 1, dtype=PTR_DTYPE)
            np.cumsum([len(p) for p in parts], out=out[1:])
            return out

        def cat(parts: Sequence[np.ndarray], dtype: Any) -> np.ndarray:
            return (np.concatenate(parts).astype(dtype, copy=False) if len(parts)
                    else np.zeros(0, dtype))

        def given(col: Sequence[Any] | None) -> bool:
            return col is not None and any(x is not None for x in col)

        return cls(
            indptr=ptr(indices),
            indices=cat(indices, INDEX_DTYPE),
            values=cat(values, VALUE_DTYPE),
            label_indptr=ptr(labels),
            label_ids=cat(labels, INDEX_DTYPE),
            event_ids=[str(e) for e in event_ids] if given(event_ids) else None,  # type: ignore[union-attr]
            event_times=np.array([-1 if t is None else t for t in event_times],  # type: ignore[union-attr]
                                 dtype=np.int64) if given(event_times) else None,
            texts=[t or "" for t in texts] if given(texts) else None,  # type: ignore[union-attr]
        )

    def check_values(self, feature_names: Sequence[Name], where: str,
                     first_record: int = 0) -> None:
        """Raise a :class:`StreamError` naming the record (``first_record`` is this batch's
        first row's place in ``where``) and the feature of the first value no learner can
        take (:func:`unusable_value`); a NaN, a missing value, passes."""
        k = first_unusable(self.values)
        if k is None:
            return
        row = int(np.searchsorted(self.indptr, k, side="right")) - 1
        fid = int(self.indices[k])
        name = str(feature_names[fid]) if fid < len(feature_names) else f"#{fid}"
        raise StreamError(f"{where}, record {first_record + row}", None, name,
                          unusable_value(float(self.values[k])))

    def keep_entries(self, keep: np.ndarray) -> Batch:
        """The same rows, with only the feature entries where ``keep`` is true (labels, ids,
        times and texts as they are)."""
        rows = np.repeat(np.arange(len(self)), np.diff(self.indptr))[keep]
        indptr = np.zeros(len(self) + 1, PTR_DTYPE)
        np.cumsum(np.bincount(rows, minlength=len(self)), out=indptr[1:])
        return Batch(indptr, self.indices[keep], self.values[keep], self.label_indptr,
                     self.label_ids, event_ids=self.event_ids, event_times=self.event_times,
                     texts=self.texts, feature_names=self.feature_names,
                     label_names=self.label_names)

    def without_labels(self) -> Batch:
        """The same rows with no labels: what a prediction reads (the features, and the ids
        and times that name the rows), so that scoring can never grow a model's label set."""
        return Batch(self.indptr, self.indices, self.values, np.zeros(len(self) + 1, PTR_DTYPE),
                     np.zeros(0, INDEX_DTYPE), event_ids=self.event_ids,
                     event_times=self.event_times, texts=self.texts,
                     feature_names=self.feature_names)

    @classmethod
    def from_dense(cls, X: Any, Y: Any = None) -> Batch:
        """Rows of a dense ``(n, F)`` feature matrix and, optionally, of an ``(n, L)`` label
        indicator matrix (1 or True: present), e.g. NumPy arrays or DataFrames.

        Zeros are left out of the rows (absent means 0, as everywhere here) and NaN stays, as
        a missing value the learners read as absent. Column ``j`` is feature (label) id ``j``.

        >>> b = Batch.from_dense([[0.5, 0.0, 2.0], [0.0, 0.0, 1.0]], [[1, 0], [1, 1]])
        >>> b.indices.tolist(), b.label_ids.tolist()
        ([0, 2, 2], [0, 0, 1])
        """
        x = as_numbers(X)
        if x.ndim != 2:
            raise ValueError(f"X must be 2-D (rows, features), not of shape {x.shape}")
        mask = x != 0  # NaN too: a missing value is kept for the learner to count
        indptr = np.zeros(len(x) + 1, PTR_DTYPE)
        np.cumsum(mask.sum(axis=1), out=indptr[1:])
        indices = np.nonzero(mask)[1].astype(INDEX_DTYPE)
        values = x[mask]
        label_indptr = np.zeros(len(x) + 1, PTR_DTYPE)
        label_ids = np.zeros(0, INDEX_DTYPE)
        if Y is not None:
            y = np.asarray(Y)
            if y.ndim != 2 or len(y) != len(x):
                raise ValueError(f"Y must be 2-D with one row per row of X ({len(x)}), not of "
                                 f"shape {y.shape}")
            if y.dtype.kind not in "biuf":
                raise TypeError(f"Y must hold 0/1 or booleans, not {y.dtype}")
            on = y == 1
            wrong = np.flatnonzero(~(on | (y == 0)))
            if len(wrong):
                r, c = divmod(int(wrong[0]), y.shape[1])
                raise ValueError(f"row {r}, label {c}: {y[r, c].item()!r} is not 0/1 (Y is an "
                                 "indicator matrix: 1 or True means present)")
            np.cumsum(on.sum(axis=1), out=label_indptr[1:])
            label_ids = np.nonzero(on)[1].astype(INDEX_DTYPE)
        return cls(indptr, indices, values, label_indptr, label_ids)

    @classmethod
    def empty(cls) -> Batch:
        z = np.zeros(1, dtype=PTR_DTYPE)
        return cls(z, np.zeros(0, INDEX_DTYPE), np.zeros(0, VALUE_DTYPE), z.copy(),
                   np.zeros(0, INDEX_DTYPE))


@runtime_checkable
class Stream(Protocol):
    """Anything that can be replayed: a schema plus batches (and instances) in stream order."""

    schema: Schema

    def batches(self, batch_size: int = 1024) -> Iterator[Batch]: ...

    def __iter__(self) -> Iterator[Instance]: ...


def stream_length(stream: Stream) -> int | None:
    """The number of instances of ``stream`` where it knows it (a file read whole does; a
    consumer of an unbounded source does not)."""
    return len(stream) if isinstance(stream, Sized) else None


class InMemoryStream:
    """A whole stream held as one :class:`Batch` (what the file readers return)."""

    def __init__(self, schema: Schema, data: Batch) -> None:
        self.schema = schema
        self.data = data

    def __len__(self) -> int:
        return len(self.data)

    def batches(self, batch_size: int = 1024) -> Iterator[Batch]:
        for start in range(0, len(self.data), batch_size):
            yield self.data.slice(start, start + batch_size)

    def __iter__(self) -> Iterator[Instance]:
        return iter(self.data)

    def head(self, n: int) -> InMemoryStream:
        return InMemoryStream(self.schema, self.data.slice(0, n))
