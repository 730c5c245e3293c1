"""Every docstring example of the package runs and answers as written (river's doctest-sized
examples are documentation: one that no longer holds misleads)."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import ihomer

MODULES = sorted(m.name for m in pkgutil.walk_packages(ihomer.__path__, "ihomer."))


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0, name


def test_the_examples_cover_the_learners_and_the_decoders() -> None:
    attempted = {name: doctest.testmod(importlib.import_module(name)).attempted
                 for name in ("ihomer.learners.mlhat.tree", "ihomer.learners.hierarchy",
                              "ihomer.learners.decoding", "ihomer.learners.clustering")}
    assert all(attempted.values()), attempted
