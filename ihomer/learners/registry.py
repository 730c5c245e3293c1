"""Learners by name, for the CLI, the service and the benchmarks.

A learner registers a factory ``factory(seed=..., **params)`` under a short name. The CLI's
``--param KEY=VALUE`` pairs are parsed with :func:`parse_params` (Python literals where they
parse, strings otherwise) and passed to the factory, so every constructor argument of a
registered learner is reachable from the command line without extra code.
"""

from __future__ import annotations

import ast
import inspect
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from ihomer.learners.base import MultiLabelLearner


@dataclass(frozen=True)
class Entry:
    name: str
    factory: Callable[..., MultiLabelLearner]
    description: str


_REGISTRY: dict[str, Entry] = {}

#: The seed ``ihomer replay``, ``ihomer serve`` and the benchmarks build learners with (a
#: learner's own default applies only when it is built directly).
DEFAULT_SEED = 42


def register(name: str, description: str) -> Callable[[Callable[..., MultiLabelLearner]],
                                                     Callable[..., MultiLabelLearner]]:
    """Decorator: register ``factory`` under ``name``."""

    def deco(factory: Callable[..., MultiLabelLearner]) -> Callable[..., MultiLabelLearner]:
        if name in _REGISTRY:
            raise ValueError(f"learner {name!r} is registered twice")
        _REGISTRY[name] = Entry(name, factory, description)
        return factory

    return deco


def available() -> dict[str, Entry]:
    _load_builtins()
    return dict(sorted(_REGISTRY.items()))


def _entry(name: str) -> Entry:
    entries = available()
    if name not in entries:
        raise ValueError(f"unknown learner {name!r}; available: {', '.join(entries)}")
    return entries[name]


def parse_params(pairs: Iterable[str]) -> dict[str, Any]:
    """``["grace_period=200", "mode=flat"]`` -> ``{"grace_period": 200, "mode": "flat"}``.

    Values are Python literals; ``true`` and ``false`` in any case are booleans too (a shell
    user's spelling, which would otherwise be a non-empty, truthy string)."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--param {pair!r}: expected KEY=VALUE")
        if raw.strip().lower() in ("true", "false"):
            out[key.strip()] = raw.strip().lower() == "true"
            continue
        try:
            value: Any = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            value = raw
        out[key.strip()] = value
    return out


def make(name: str, params: dict[str, Any] | None = None,
         seed: int | None = None) -> MultiLabelLearner:
    """Build the learner registered as ``name`` with ``params`` (and ``seed`` when it takes one)."""
    factory = _entry(name).factory
    params = dict(params or {})
    sig = inspect.signature(factory)
    accepts_any = any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values())
    unknown = [k for k in params if k not in sig.parameters and not accepts_any]
    if unknown:
        allowed = [k for k in sig.parameters if k != "seed"]
        raise ValueError(f"learner {name!r} has no parameter {', '.join(map(repr, unknown))}; "
                         f"it takes: {', '.join(allowed) or 'none'}")
    for key, value in params.items():
        if key in sig.parameters:
            _check_type(name, key, value, sig.parameters[key].annotation)
    if "seed" in sig.parameters and seed is not None:  # None: the learner's own default
        if "seed" in params and params["seed"] != seed:  # one of them would be ignored
            raise ValueError(f"learner {name!r}: seed={params['seed']!r} among its parameters "
                             f"disagrees with the seed it is built with ({seed!r}, the command "
                             "line's --seed): set the seed once, with --seed")
        params["seed"] = seed
    return factory(**params)


def parameters(name: str) -> list[tuple[str, str, str]]:
    """``(parameter, default, its documentation)`` of the learner registered as ``name``, in
    the constructor's order: what ``ihomer learners NAME`` shows, so that every switch (the
    ablations' ``partition="random"``, ``warm_start=False``, ...) and every value a choice
    takes can be found without reading the source."""
    factory = _entry(name).factory
    sig = inspect.signature(factory)
    docs = _parameter_docs(inspect.getdoc(factory) or "", set(sig.parameters))
    return [(key, "" if p.default is p.empty else repr(p.default), docs.get(key, ""))
            for key, p in sig.parameters.items() if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)]


def _parameter_docs(doc: str, names: set[str]) -> dict[str, str]:
    """The text per parameter of a numpydoc ``Parameters`` section, Sphinx roles reduced to
    their names (an entry may name several parameters, ``a, b``); the section ends at the
    first line that names none."""
    lines = doc.splitlines()
    start = next((i + 2 for i in range(len(lines) - 1) if lines[i].strip() == "Parameters"
                  and set(lines[i + 1].strip()) == {"-"}), None)
    if start is None:
        return {}
    out: dict[str, str] = {}
    keys: list[str] = []
    text: list[str] = []

    def flush() -> None:
        body = re.sub(r":[a-z]+:`~?(?:[\w.]+\.)?([\w]+)`", r"\1", " ".join(text))
        body = body.replace("``", "").strip()
        out.update({k: body for k in keys})

    for line in lines[start:]:
        if line and not line[0].isspace():
            head = [k.strip() for k in line.split(":")[0].split(",")]
            flush()
            if not all(k in names for k in head):
                return out
            keys, text = head, []
        elif line.strip():
            text.append(line.strip())
    flush()
    return out


#: The plain annotations :func:`make` checks a parameter's value against (others pass as
#: they are: the learner's own checks apply).
_PLAIN: dict[str, tuple[type, ...]] = {
    "int": (int,), "float": (int, float), "bool": (bool,), "str": (str,), "None": (type(None),),
}


def _check_type(learner: str, key: str, value: Any, annotation: Any) -> None:
    """A ValueError when ``value`` is not of the plain types ``annotation`` names (as a
    string, ``from __future__ import annotations``): ``--param cluster_delta=abc`` is then
    refused by name, not by a TypeError from deep inside the learner."""
    if not isinstance(annotation, str):
        return
    names = [a.strip() for a in annotation.split("|")]
    if not all(n in _PLAIN for n in names):
        return
    ok = any(isinstance(value, t) and not (isinstance(value, bool) and t is not bool)
             for n in names for t in _PLAIN[n])
    if not ok:
        raise ValueError(f"learner {learner!r}: parameter {key!r} takes {annotation}, not "
                         f"{value!r}")


_loaded = False


def _load_builtins() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    from ihomer.learners import baselines as b

    register("noop", "predicts nothing, learns nothing (measures the harness)")(lambda: b.NoOp())
    register("majority", "majority labelset seen so far")(lambda: b.MajorityLabelset())
    # Binary relevance and classifier chains over river's classifiers (``river-br-*``,
    # ``river-cc``) and MOA's learners are the benchmark peers (peers.py). They are always
    # listed; a MOA peer imports capymoa only when built and otherwise says which extra to
    # install, so `import ihomer` never starts a JVM.
    from ihomer.learners import peers  # noqa: F401  (registers itself)
    from ihomer.learners.hierarchy import IHOMER
    from ihomer.learners.mlhat import MLHAT

    register("mlhat", "multi-label Hoeffding adaptive tree over all labels")(MLHAT)
    register("ihomer", "iHOMER: one MLHAT per online cluster of co-occurring labels")(IHOMER)
