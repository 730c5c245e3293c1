"""Checkpoints that survive crashes and never run code from the disk unless asked to.

A checkpoint is one *generation* in a directory, two files::

    ckpt-00000042.npz    every NumPy array of the state (loaded with allow_pickle=False)
    ckpt-00000042.json   the manifest: format, version, learner, the offsets the state covers,
                         the JSON part of the state, the npz's SHA-256, and its own checksum

The state is a nested dict of JSON scalars, lists and NumPy arrays (the *learner state
protocol*, :class:`SupportsState`): arrays go to the ``.npz`` and are replaced in the JSON by
``{"__ndarray__": key}``. Nothing in either file can execute code when loaded. A learner that
cannot describe its state that way (the river-based baselines) can only be checkpointed as a
pickle, stored as a byte array in the ``.npz`` and unpickled only when the user opts in
(``allow_pickle``), because unpickling a file runs whatever code it names.

Writes are atomic: each file is written to a temporary name, fsynced and renamed, the ``.npz``
first, then the manifest, then the directory is fsynced. The manifest's rename is the commit
point: a crash before it leaves a stray temporary or an ``.npz`` without manifest, which the next
start ignores and deletes, so the newest manifest always names a complete generation. A manifest
whose checksum does not match, or whose ``.npz`` does not, is damage from outside (a disk, a
hand edit) and is refused with an error naming the file; the service never silently falls back
to an older generation, which would re-learn events it already answered for.

The directory is locked (``flock``) by the process that writes it, so two service instances
cannot interleave generations.
"""

from __future__ import annotations

import fcntl
import hashlib
import io
import json
import os
import pickle
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from ihomer import __version__
from ihomer.learners.base import MultiLabelLearner, is_learner

FORMAT = "ihomer-checkpoint"
#: Bumped on any change an older reader would misread; a reader refuses other versions.
#: 2: the service's join buffer keeps each waiting event's message, and labels held while a
#: partition is taken over (see ``ihomer.connectors.service.Service.hand_over``).
VERSION = 2
KEEP_GENERATIONS = 2
_GEN = re.compile(r"^ckpt-(\d{8})\.json$")
_ARRAY_KEY = "__ndarray__"


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be written or must not be loaded; the message says why."""


@runtime_checkable
class SupportsState(Protocol):
    """The learner state protocol of the safe format.

    ``state_dict()`` returns a nested dict of JSON scalars, lists and NumPy arrays (no object
    arrays) that holds the *whole* model; ``from_state_dict(d)`` (a classmethod) rebuilds an equal
    learner from it. The class to call is chosen by the service's configured learner name, never
    by the file.
    """

    def state_dict(self) -> dict[str, Any]: ...

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> Any: ...


def supports_state(learner: object) -> bool:
    """Whether ``learner`` implements the protocol for its whole state.

    :class:`MultiLabelLearner` defines both methods for its vocabularies only; a subclass opts in
    by overriding them, so inheriting the base versions does not count.
    """
    if is_learner(learner):
        own = getattr(type(learner), "state_dict", None)
        return own is not None and own is not MultiLabelLearner.state_dict
    return isinstance(learner, SupportsState)


def flatten(tree: Any, arrays: dict[str, np.ndarray], path: str = "state") -> Any:
    """``tree`` with every array moved into ``arrays`` and replaced by a reference."""
    if isinstance(tree, np.ndarray):
        if tree.dtype.hasobject:
            raise CheckpointError(f"{path}: object arrays cannot be stored safely")
        key = f"a{len(arrays)}"
        arrays[key] = tree
        return {_ARRAY_KEY: key}
    if isinstance(tree, dict):
        out = {}
        for k, v in tree.items():
            if not isinstance(k, str):
                raise CheckpointError(f"{path}: dict key {k!r} is not a string")
            out[k] = flatten(v, arrays, f"{path}.{k}")
        return out
    if isinstance(tree, list | tuple):
        return [flatten(v, arrays, f"{path}[{i}]") for i, v in enumerate(tree)]
    if isinstance(tree, np.generic):
        return tree.item()
    if tree is None or isinstance(tree, bool | int | float | str):
        return tree
    raise CheckpointError(f"{path}: {type(tree).__name__} is not a JSON value or an array")


def unflatten(tree: Any, arrays: Any) -> Any:
    """Inverse of :func:`flatten`."""
    if isinstance(tree, dict):
        if set(tree) == {_ARRAY_KEY}:
            return arrays[tree[_ARRAY_KEY]]
        return {k: unflatten(v, arrays) for k, v in tree.items()}
    if isinstance(tree, list):
        return [unflatten(v, arrays) for v in tree]
    return tree


def _checksum(body: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def _write_atomic(path: Path, data: bytes, before_rename: Callable[[], None] | None = None) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    if before_rename is not None:
        before_rename()
    os.replace(tmp, path)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass
class Loaded:
    """A verified checkpoint: the manifest, the service's state, and the learner (or ``None``
    when the caller must rebuild it from ``learner_state``)."""

    path: Path
    manifest: dict[str, Any]
    state: dict[str, Any]
    learner_state: dict[str, Any] | None
    learner: Any


class CheckpointStore:
    """The checkpoints of one service instance, in one directory it locks.

    Parameters
    ----------
    directory
        Created when missing.
    allow_pickle
        Permit writing and reading pickled learners (see the module docstring).
    pause
        Test hook: called between writing the manifest's temporary file and renaming it, the
        moment a crash hurts most.
    """

    def __init__(self, directory: str | Path, allow_pickle: bool = False,
                 pause: Callable[[], None] | None = None) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.allow_pickle = allow_pickle
        self.pause = pause
        self._lock = open(self.directory / ".lock", "a+")
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._lock.close()
            raise CheckpointError(
                f"{self.directory}: checkpoint directory is in use by another process; give each "
                f"service instance its own --checkpoint-dir") from None
        for stray in self.directory.glob("*.tmp"):
            stray.unlink()
        for npz in self.directory.glob("ckpt-*.npz"):
            if not npz.with_suffix(".json").exists():
                npz.unlink()  # a write that crashed before its manifest was committed

    def close(self) -> None:
        self._lock.close()

    def generations(self) -> list[int]:
        out = []
        for p in self.directory.iterdir():
            m = _GEN.match(p.name)
            if m:
                out.append(int(m.group(1)))
        return sorted(out)

    # ------------------------------------------------------------------ write
    def save(self, meta: dict[str, Any], state: dict[str, Any], learner: Any) -> Path:
        """Write a new generation holding ``state`` and ``learner``; return the manifest path.

        ``meta`` (JSON: learner name, parameters, offsets...) is stored as it is in the manifest.
        """
        gens = self.generations()
        gen = gens[-1] + 1 if gens else 1
        arrays: dict[str, np.ndarray] = {}
        if supports_state(learner):
            codec = "state_dict"
            learner_tree = flatten(learner.state_dict(), arrays, "learner")
        elif self.allow_pickle:
            codec = "pickle"
            arrays["learner_pickle"] = np.frombuffer(
                pickle.dumps(learner, protocol=pickle.HIGHEST_PROTOCOL), dtype=np.uint8)
            learner_tree = None
        else:
            raise CheckpointError(
                f"learner {type(learner).__name__} has no state_dict/from_state_dict, so it can "
                "only be checkpointed with pickle: CheckpointStore(..., allow_pickle=True) "
                "(ihomer serve --allow-pickle) accepts that")
        state_tree = flatten(state, arrays, "state")
        in_meta: dict[str, np.ndarray] = {}
        meta = flatten(meta, in_meta, "meta")  # NumPy scalars read as Python's
        if in_meta:
            raise CheckpointError("meta: arrays belong in state, not in the manifest's meta")
        buf = io.BytesIO()
        # keys are a0, a1, ...: none binds to a keyword of savez (the stubs fear one would)
        np.savez(buf, **arrays)  # type: ignore[arg-type]
        npz = buf.getvalue()
        name = f"ckpt-{gen:08d}"
        body = {
            "format": FORMAT,
            "version": VERSION,
            "generation": gen,
            "created": time.time(),
            "ihomer_version": __version__,
            "learner_codec": codec,
            "learner_state": learner_tree,
            "state": state_tree,
            "meta": meta,
            "arrays": {"file": f"{name}.npz", "sha256": hashlib.sha256(npz).hexdigest()},
        }
        manifest = {"checksum": _checksum(body), **body}
        _write_atomic(self.directory / f"{name}.npz", npz)
        path = self.directory / f"{name}.json"
        _write_atomic(path, json.dumps(manifest, indent=1).encode(), before_rename=self.pause)
        _fsync_dir(self.directory)
        for old in gens[: max(0, len(gens) + 1 - KEEP_GENERATIONS)]:
            for suffix in (".json", ".npz"):
                (self.directory / f"ckpt-{old:08d}{suffix}").unlink(missing_ok=True)
        return path

    # ------------------------------------------------------------------ read
    def load_latest(self) -> Loaded | None:
        """The newest generation, verified; ``None`` when the directory has none."""
        gens = self.generations()
        if not gens:
            return None
        return self.load(self.directory / f"ckpt-{gens[-1]:08d}.json")

    def load(self, path: Path) -> Loaded:
        hint = "; move it out of the directory to restart from the previous generation"
        try:
            manifest = json.loads(path.read_bytes())
        except (OSError, ValueError) as e:
            raise CheckpointError(f"{path}: unreadable checkpoint manifest ({e}){hint}") from None
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            raise CheckpointError(f"{path}: not an ihomer checkpoint manifest{hint}")
        version = manifest.get("version")
        if version != VERSION:
            raise CheckpointError(
                f"{path}: checkpoint format version {version!r} (written by ihomer "
                f"{manifest.get('ihomer_version')}); this ihomer ({__version__}) reads version "
                f"{VERSION} only")
        body = {k: v for k, v in manifest.items() if k != "checksum"}
        if manifest.get("checksum") != _checksum(body):
            raise CheckpointError(f"{path}: manifest checksum mismatch, the file is corrupt{hint}")
        npz_path = path.with_name(manifest["arrays"]["file"])
        try:
            npz = npz_path.read_bytes()
        except OSError as e:
            raise CheckpointError(f"{npz_path}: cannot read checkpoint arrays ({e}){hint}") \
                from None
        if hashlib.sha256(npz).hexdigest() != manifest["arrays"]["sha256"]:
            raise CheckpointError(f"{npz_path}: SHA-256 mismatch, the file is corrupt{hint}")
        with np.load(io.BytesIO(npz), allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
        learner = None
        learner_state = None
        if manifest["learner_codec"] == "pickle":
            if not self.allow_pickle:
                raise CheckpointError(
                    f"{path}: the learner in this checkpoint is a pickle, and loading a pickle "
                    f"can execute arbitrary code; pass --allow-pickle only if you trust "
                    f"{self.directory}")
            learner = pickle.loads(arrays["learner_pickle"].tobytes())  # the user opted in
        else:
            learner_state = unflatten(manifest["learner_state"], arrays)
        return Loaded(path, manifest, unflatten(manifest["state"], arrays), learner_state, learner)
