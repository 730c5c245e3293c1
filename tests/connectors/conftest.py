"""Fixtures of the Kafka service tests (helpers in :mod:`connectors.kafka_harness`)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from connectors.kafka_harness import CONSUMER_TEST_OPTIONS, Broker, Service


@pytest.fixture
def processes() -> Iterator[list[Any]]:
    """Things with ``stop()``; stopped in reverse order at teardown, whatever happened."""
    started: list[Any] = []
    yield started
    for p in reversed(started):
        try:
            p.stop()
        except Exception:  # keep stopping the others
            pass


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    """One in-memory broker for the tests that do not restart it (fresh topics per test)."""
    b = Broker(tmp_path_factory.mktemp("tansu"))
    try:
        yield b
    finally:
        b.stop()


@pytest.fixture(scope="session")
def compiled_kernels() -> None:
    """Compile the jitted learners' kernels once, into numba's on-disk cache, before a service
    starts. On a fresh installation the first process to run them compiles them (a minute and
    a half for iHOMER's on two cores, as an import would take); the services' time limits
    below are about serving, not about that."""
    from ihomer.learners.registry import make

    for name in ("mlhat", "ihomer"):
        make(name).warm_up()


@pytest.fixture
def start_service(processes: list[Any], tmp_path: Path,
                  compiled_kernels: None) -> Callable[..., Service]:
    counter = iter(range(1000))

    def start(bootstrap: str, topics: tuple[str, str, str], *args: str,
              env: dict[str, str] | None = None, group: str | None = None) -> Service:
        inp, out, dlq = topics
        base = ["--bootstrap-servers", bootstrap, "--input-topic", inp, "--output-topic", out,
                "--dead-letter-topic", dlq, "--group-id", group or f"g-{inp}",
                "--metrics-port", "0", "--poll-timeout-ms", "200"]
        for opt in CONSUMER_TEST_OPTIONS:
            base += ["--consumer-option", opt]
        svc = Service([*base, *args], tmp_path / f"service-{next(counter)}.log", env)
        processes.append(svc)
        return svc

    return start
