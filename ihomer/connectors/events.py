"""The event contract of the Kafka service: what a message on the input topic may carry.

A message is one JSON object (UTF-8)::

    {"id": "e17", "features": [0.1, 0.0, 3.2], "labels": ["rock", "happy"]}
    {"id": "e18", "features": {"3": 1.0, "907": 2.0}}             # sparse {index: value}
    {"id": "e19", "features": {"tempo": 0.4, "energy": 0.9}, "text": "..."}   # named
    {"id": "e18", "labels": ["sad"]}                               # the labels of e18, later

* ``id`` (string or integer): the event id, echoed in the prediction and used to join labels
  that arrive later. Producers should also use it as the Kafka key, so that an event and its
  delayed labels land in the same partition (and so at the same service instance).
* ``features``: a dense list (one value per feature, in schema order), a sparse object whose
  keys are decimal feature indices, or an object keyed by feature name. ``feature_keys`` decides
  how an object's keys are read: ``auto`` (indices when every key is a decimal integer),
  ``index`` or ``name``. Values are finite numbers within ±1e100, or ``null`` for a missing
  value. Zeros and missing values are dropped ("absent means 0", the convention of every
  reader and of the learners, which read an ARFF ``?`` the same way), so a dense and a sparse
  message of one instance give the same row, and the rows equal those of an offline replay.
* ``text`` (optional string): raw text. When the service has a featurizer, the features of an
  event with text are computed from it (see :mod:`ihomer.stream.featurize`), so an event may
  carry text instead of features; without one, the text is carried along unused.
* ``labels`` (optional list of label names): present means "learn this event" (test-then-train
  when features came too); absent or ``null`` means "predict only".

Other top-level fields are ignored, so producers may add their own. Anything that does not fit
is rejected with one of the :data:`REASONS`, which the service sends to the dead-letter topic
with the original bytes. Parsing is strict on purpose: a string where a number belongs is a
producer bug to surface, not a value to guess.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import numpy as np

from ihomer.learners.base import Vocabulary
from ihomer.stream.base import INDEX_DTYPE, MAX_ABS_VALUE, VALUE_DTYPE, text_problem

#: Why a message was dead-lettered (each has a counter in the service's metrics).
REASONS: tuple[str, ...] = (
    "oversized",          # more bytes than max_message_bytes
    "empty",              # a record with no value (a tombstone)
    "malformed_json",     # not UTF-8 JSON
    "not_an_object",      # JSON, but not an object
    "missing_field",      # no id, or neither features, text nor labels
    "wrong_type",         # a field of the wrong JSON type
    "non_finite",         # NaN or an infinity among the feature values
    "out_of_range",       # a feature value beyond ±MAX_ABS_VALUE (1e100)
    "wrong_dimension",    # a dense row whose length differs from the schema's feature count
    "bad_feature_index",  # a sparse index that is negative, too large or repeated
    "unknown_feature",    # a feature name or index the model does not know (policy: reject)
    "unknown_event",      # labels for an id that is not waiting for labels
    "duplicate_event",    # features for an id already waiting for its labels
    "too_many_labels",    # more distinct labels than max_labels_per_event
    "unreadable",         # the parser failed on it in a way it did not foresee (a bug to report)
)

UNKNOWN_FEATURE_POLICIES = ("add", "ignore", "reject")
FEATURE_KEY_MODES = ("auto", "index", "name")


class Rejected(ValueError):
    """A message that breaks the contract: ``reason`` is one of :data:`REASONS`."""

    def __init__(self, reason: str, detail: str) -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}")


@dataclass
class Event:
    """One parsed message. ``indices is None`` for a labels-only message."""

    event_id: str
    indices: np.ndarray | None
    values: np.ndarray | None
    labels: np.ndarray | None
    text: str | None = None
    #: a labels-only message's label names: they join the label set only once its event is
    #: found waiting (:meth:`EventParser.label_ids`), so a dead-lettered one adds none
    label_names: list[str] | None = None

    @property
    def kind(self) -> str:
        """``full`` (test-then-train), ``predict`` (no labels yet) or ``labels`` (join)."""
        if self.indices is None:
            return "labels"
        return "predict" if self.labels is None else "full"


def _number(value: object, where: str) -> float:
    if value is None:  # a missing value: absent, as the learners read one
        return 0.0
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Rejected("wrong_type", f"{where}: expected a number, got {type(value).__name__}")
    try:
        x = float(value)
    except OverflowError:  # an integer of hundreds of digits: finite, beyond any float
        digits = len(str(abs(int(value))))
        raise Rejected("out_of_range", f"{where}: an integer of {digits} digits is beyond "
                       f"±{MAX_ABS_VALUE:g}, the largest magnitude the learners' statistics "
                       "hold") from None
    if not math.isfinite(x):
        raise Rejected("non_finite", f"{where}: {x} is not finite")
    if abs(x) > MAX_ABS_VALUE:
        raise Rejected("out_of_range", f"{where}: {x:g} is beyond ±{MAX_ABS_VALUE:g}, the "
                       "largest magnitude the learners' statistics hold")
    return x


def _plain_numbers(values: list[object]) -> np.ndarray | None:
    """``values`` as floats when all are ints or floats (not bools) within ±MAX_ABS_VALUE,
    else ``None``."""
    if not all(type(v) is float or type(v) is int for v in values):
        return None
    try:
        arr = np.asarray(values, dtype=VALUE_DTYPE)
    except OverflowError:
        return None
    return arr if (np.abs(arr) <= MAX_ABS_VALUE).all() else None


def _decimal_key(key: str) -> bool:
    """Whether ``key`` reads as a feature index under ``feature_keys="auto"`` ("-1" too: a
    negative index, refused as such, not a feature name)."""
    return key.isdecimal() or (key[:1] == "-" and key[1:].isdecimal())


class EventParser:
    """Turns message bytes into :class:`Event` rows with the model's feature and label ids.

    Parameters
    ----------
    feature_vocab, label_vocab
        The learner's vocabularies. New label names are added (a label may appear at any time);
        new feature names follow ``unknown_features``.
    n_features
        The schema's feature count when the service was started with a schema: dense rows must
        have exactly this length and indices must be below it. ``None``: no schema, any length.
    unknown_features
        ``add`` a new name (or index) to the vocabulary, ``ignore`` it (it is counted in
        :attr:`ignored_features`), or ``reject`` the message (``unknown_feature``).
    feature_keys
        How to read the keys of a ``features`` object (see the module docstring).
    max_message_bytes
        Larger messages are rejected unread (``oversized``).
    max_feature_index
        Without a schema, the largest sparse index accepted, so that one bad message cannot
        make a learner allocate a billion columns.
    featurizer
        Whether the service computes features from text: without one, an event that carries
        text but no features is refused (``missing_field``) instead of being answered from
        an empty row.
    max_labels_per_event
        Most distinct labels one event may carry (``too_many_labels`` beyond): the label
        clustering's pair statistics grow with the square of an instance's labels, so one
        message with 30,000 new labels would take gigabytes. Benchmark streams carry at most a
        few dozen.
    """

    def __init__(
        self,
        feature_vocab: Vocabulary,
        label_vocab: Vocabulary,
        *,
        n_features: int | None = None,
        unknown_features: str = "add",
        feature_keys: str = "auto",
        max_message_bytes: int = 1_000_000,
        max_feature_index: int = 1 << 20,
        featurizer: bool = False,
        max_labels_per_event: int = 1000,
    ) -> None:
        if unknown_features not in UNKNOWN_FEATURE_POLICIES:
            raise ValueError(f"unknown_features must be one of {UNKNOWN_FEATURE_POLICIES}, "
                             f"got {unknown_features!r}")
        if feature_keys not in FEATURE_KEY_MODES:
            raise ValueError(f"feature_keys must be one of {FEATURE_KEY_MODES}, "
                             f"got {feature_keys!r}")
        if feature_keys == "auto" and n_features is not None:
            numeric = next((n for n in feature_vocab.names[:n_features]
                            if isinstance(n, str) and _decimal_key(n)), None)
            if numeric is not None:
                # {"1": 1.0} would be read as index 1, not as the feature named "1"
                raise ValueError(f"the schema has feature names that are numbers ({numeric!r}), "
                                 "so a features object's keys could be indices or names: set "
                                 "--feature-keys name (what `ihomer produce --features named` "
                                 "writes) or --feature-keys index")
        self.feature_vocab = feature_vocab
        self.label_vocab = label_vocab
        self.n_features = n_features
        self.unknown_features = unknown_features
        self.feature_keys = feature_keys
        self.max_message_bytes = max_message_bytes
        self.featurizer = featurizer
        self.max_labels_per_event = max_labels_per_event
        self.max_feature_index = max_feature_index if n_features is None else n_features - 1
        self.ignored_features = 0
        #: null feature values read as absent (missing values), over the accepted messages
        self.missing_values = 0
        #: how many values the last parsed message's dense features row held (None: sparse,
        #: named or none), for a reader that holds every dense row to one width
        self.dense_width: int | None = None

    def parse(self, value: bytes | None) -> Event:
        """Parse one message; raise :class:`Rejected` naming the field that breaks the contract."""
        self.dense_width = None
        if value is None or len(value) == 0:
            raise Rejected("empty", "the record has no value")
        if len(value) > self.max_message_bytes:
            raise Rejected("oversized", f"{len(value)} bytes > max_message_bytes "
                                        f"{self.max_message_bytes}")
        try:
            record = json.loads(value)
        except UnicodeDecodeError as e:
            raise Rejected("malformed_json", f"not UTF-8: {e}") from None
        except ValueError as e:  # JSONDecodeError, or an integer of over 4,300 digits
            raise Rejected("malformed_json", str(e)) from None
        except RecursionError:
            raise Rejected("malformed_json", "nested too deeply") from None
        if not isinstance(record, dict):
            raise Rejected("not_an_object", f"expected a JSON object, got {type(record).__name__}")

        raw_id = record.get("id")
        if raw_id is None:
            raise Rejected("missing_field", "field 'id' is missing")
        if isinstance(raw_id, bool) or not isinstance(raw_id, str | int):
            raise Rejected("wrong_type", f"field 'id': expected a string or an integer, "
                                         f"got {type(raw_id).__name__}")
        event_id = str(raw_id)
        if not event_id:
            raise Rejected("wrong_type", "field 'id': an empty string names no event")

        for name in ("features", "text", "labels"):
            if name in record and record[name] is None:  # else read as absent: a full event
                raise Rejected("wrong_type", f"event {event_id!r}, field {name!r}: null (leave "
                                             "the field out when there is none)")
        text = record.get("text")
        if text is not None and not isinstance(text, str):
            raise Rejected("wrong_type", f"event {event_id!r}, field 'text': expected a string, "
                                         f"got {type(text).__name__}")
        problem = None if text is None else text_problem(text)
        if problem is not None:
            raise Rejected("wrong_type", f"event {event_id!r}, field 'text': {problem}")
        raw_labels = record.get("labels")
        if raw_labels is not None:
            self.check_label_names(raw_labels, f"event {event_id!r}, field 'labels'")
        raw_features = record.get("features")
        if raw_features is None and text is None and raw_labels is None:
            raise Rejected("missing_field", f"event {event_id!r}: no 'features', 'text' or "
                                            f"'labels'")

        indices: np.ndarray | None = None
        values: np.ndarray | None = None
        if raw_features is not None:
            indices, values = self._features(raw_features, event_id)
        elif text is not None:
            if not self.featurizer:
                raise Rejected("missing_field", f"event {event_id!r}: text but no 'features', "
                                                "and the service computes none from text (start "
                                                "it with --featurizer)")
            indices, values = np.zeros(0, INDEX_DTYPE), np.zeros(0, VALUE_DTYPE)
        # Labels last: a rejected message must not grow the label vocabulary, nor a labels-only
        # one whose event is not waiting (the service resolves those once it finds the event).
        if raw_labels is not None and indices is None:
            return Event(event_id, None, None, None, text, label_names=raw_labels)
        labels = None if raw_labels is None else self.label_ids(raw_labels)
        return Event(event_id, indices, values, labels, text)

    def check_label_names(self, names: object, where: str) -> None:
        """Raise :class:`Rejected` unless ``names`` is a list of at most
        ``max_labels_per_event`` distinct label names (strings)."""
        if not isinstance(names, list) or not all(isinstance(x, str) for x in names):
            raise Rejected("wrong_type", f"{where}: expected a list of label names (strings)")
        if len(set(names)) > self.max_labels_per_event:
            raise Rejected("too_many_labels", f"{where}: {len(set(names))} labels > "
                                              f"max_labels_per_event {self.max_labels_per_event}")

    def label_ids(self, names: list[str]) -> np.ndarray:
        """Sorted ids of ``names``, new ones added to the label set."""
        return np.asarray(sorted({self.label_vocab.add(x) for x in names}), dtype=INDEX_DTYPE)

    def _features(self, raw: object, event_id: str) -> tuple[np.ndarray, np.ndarray]:
        where = f"event {event_id!r}, field 'features'"
        self.dense_width = len(raw) if isinstance(raw, list) else None
        if isinstance(raw, list):
            if self.n_features is not None and len(raw) != self.n_features:
                raise Rejected("wrong_dimension", f"{where}: {len(raw)} values, the schema has "
                                                  f"{self.n_features} features")
            if self.n_features is None and len(raw) > self.max_feature_index + 1:
                raise Rejected("bad_feature_index", f"{where}: {len(raw)} values > "
                                                    f"{self.max_feature_index + 1}")
            vals = _plain_numbers(raw)
            if vals is None:
                vals = np.asarray([_number(v, f"{where}[{i}]") for i, v in enumerate(raw)],
                                  dtype=VALUE_DTYPE)
                self.missing_values += sum(v is None for v in raw)
            keep = np.flatnonzero(vals)
            return keep.astype(INDEX_DTYPE), vals[keep]
        if not isinstance(raw, dict):
            raise Rejected("wrong_type", f"{where}: expected a list or an object, "
                                         f"got {type(raw).__name__}")
        # "-1" reads as an index too (a negative one, refused as such), not as a feature name
        decimal = self.feature_keys != "name" and all(_decimal_key(k) for k in raw)
        by_index = self.feature_keys == "index" or (self.feature_keys == "auto" and decimal)
        if by_index and decimal:
            fast = self._fast_sparse(raw)
            if fast is not None:
                return fast
        pairs: dict[int, float] = {}
        for key, v in raw.items():
            x = _number(v, f"{where}[{key!r}]")
            fid = self._index(key, where) if by_index else self._name(key, where)
            if fid is None:
                continue
            if fid in pairs:
                raise Rejected("bad_feature_index", f"{where}: feature {key!r} given twice")
            pairs[fid] = x
        self.missing_values += sum(v is None for v in raw.values())
        ids = sorted(i for i, x in pairs.items() if x != 0.0)
        return (np.asarray(ids, dtype=INDEX_DTYPE),
                np.asarray([pairs[i] for i in ids], dtype=VALUE_DTYPE))

    def _fast_sparse(self, raw: dict[str, object]) -> tuple[np.ndarray, np.ndarray] | None:
        """The common valid ``{index: value}`` row, vectorised; ``None`` sends anything unusual
        (a bad value, an index out of range or repeated) to the loop that names the culprit."""
        vals = _plain_numbers(list(raw.values()))
        digits = len(str(self.max_feature_index))
        if vals is None or any(len(k.lstrip("0")) > digits or not k.isdecimal() for k in raw):
            return None  # an index beyond any feature (or not one): named by the loop
        ids = np.fromiter(map(int, raw), dtype=np.int64, count=len(raw))
        if len(ids) and (ids.max() > self.max_feature_index or len(np.unique(ids)) != len(ids)):
            return None
        order = np.argsort(ids, kind="stable")
        ids, vals = ids[order], vals[order]
        keep = vals != 0.0
        return ids[keep].astype(INDEX_DTYPE), vals[keep]

    def _index(self, key: str, where: str) -> int | None:
        if not key.isdecimal():
            raise Rejected("bad_feature_index", f"{where}: key {key!r} is not a feature index")
        fid = int(key) if len(key.lstrip("0")) <= len(str(self.max_feature_index)) else None
        if fid is None or fid > self.max_feature_index:
            shown = key if len(key) <= 30 else f"{key[:12]}...({len(key)} digits)"
            self._unknown(f"{where}: index {shown} is beyond the last feature "
                          f"({self.max_feature_index})", allow_add=False)
            return None
        return fid

    def _name(self, key: str, where: str) -> int | None:
        fid = self.feature_vocab.get(key)
        if fid is not None:
            return fid
        if self.unknown_features == "add":
            return self.feature_vocab.add(key)
        self._unknown(f"{where}: unknown feature {key!r}", allow_add=True)
        return None

    def _unknown(self, detail: str, allow_add: bool) -> None:
        """Refuse the event for an unknown feature, or count the feature as ignored."""
        if self.unknown_features == "reject" or (self.unknown_features == "add" and not allow_add):
            raise Rejected("unknown_feature", detail)
        self.ignored_features += 1
