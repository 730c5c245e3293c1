"""Service settings from four layers: flags > environment (``IHOMER_*``) > TOML file > defaults.

Operators set what differs per deployment (brokers, topics, group) in a file or in the
environment of a container, and override a value for one run with a flag. Every field of
:class:`ServiceConfig` is reachable from each layer under the same name: ``group_id`` is
``group_id = "x"`` in the file, ``IHOMER_GROUP_ID=x`` in the environment and ``--group-id x`` on
the command line. The tables (``consumer``, ``producer``, ``params``, ``featurizer_params``)
merge key by key across the layers; in the environment they are JSON objects
(``IHOMER_CONSUMER='{"fetch_max_bytes": 1048576}'``), on the command line repeatable
``KEY=VALUE`` options.

``consumer`` and ``producer`` are passed to kafka-python's ``KafkaConsumer`` and
``KafkaProducer`` as they are, so any client setting (security, SASL, timeouts) works against
any Kafka-protocol cluster without code here knowing about it.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ihomer.learners.registry import DEFAULT_SEED

ENV_PREFIX = "IHOMER_"
TABLES = ("consumer", "producer", "params", "featurizer_params")


def _consumer_defaults() -> dict[str, Any]:
    # Offsets are committed by the service after each durable checkpoint, never automatically.
    # kafka-python's own assignors, named so that the log shows them: eager, they revoke every
    # partition at every rebalance (every event waiting for its labels makes a round trip
    # through the input topic), but a commit is never refused mid-rebalance, as it is under
    # cooperative-sticky, which loses a stopping instance's last commit (README, Scaling out).
    return {"auto_offset_reset": "earliest", "max_poll_records": 1000,
            "partition_assignment_strategy": "range,roundrobin"}


def _producer_defaults() -> dict[str, Any]:
    return {"acks": "all", "linger_ms": 5}


@dataclass
class ServiceConfig:
    """Everything ``ihomer serve`` needs (see the README section "Kafka service")."""

    bootstrap_servers: str = "127.0.0.1:9092"
    input_topic: str = "ihomer-events"
    output_topic: str = "ihomer-predictions"
    dead_letter_topic: str = "ihomer-dead-letters"
    group_id: str = "ihomer"
    learner: str = "ihomer"
    seed: int = DEFAULT_SEED
    schema_from: str | None = None
    labels: str | None = None
    featurizer: str | None = None
    checkpoint_dir: str | None = None
    checkpoint_every: int = 10_000
    allow_pickle: bool = False
    join_buffer: int = 100_000
    unknown_features: str | None = None
    feature_keys: str = "auto"
    max_message_bytes: int = 1_000_000
    max_labels_per_event: int = 1000
    metrics_host: str = "127.0.0.1"
    metrics_port: int = 9464
    poll_timeout_ms: int = 500
    idle_exit: float | None = None
    log_level: str = "info"
    consumer: dict[str, Any] = field(default_factory=_consumer_defaults)
    producer: dict[str, Any] = field(default_factory=_producer_defaults)
    params: dict[str, Any] = field(default_factory=dict)
    featurizer_params: dict[str, Any] = field(default_factory=dict)

    def unknown_feature_policy(self) -> str:
        """``add`` without a schema (the vocabulary must grow), ``reject`` with one."""
        if self.unknown_features is not None:
            return self.unknown_features
        return "reject" if self.schema_from else "add"


_FIELDS = {f.name: f for f in dataclasses.fields(ServiceConfig)}


def _coerce(name: str, value: Any, where: str) -> Any:
    """``value`` (a string from the environment, or a TOML value) as the type of field ``name``."""
    if name in TABLES:
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except json.JSONDecodeError as e:
                raise ValueError(f"{where}: {name} must be a JSON object ({e})") from None
        if not isinstance(value, dict):
            raise ValueError(f"{where}: {name} must be a table / JSON object")
        return value
    default = _FIELDS[name].default
    kind = str(_FIELDS[name].type)
    if value is None:
        return None
    if isinstance(default, bool) or kind == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("1", "true", "yes", "on", "0", "false",
                                                         "no", "off"):
            return value.lower() in ("1", "true", "yes", "on")
        raise ValueError(f"{where}: {name} must be a boolean, got {value!r}")
    try:
        if kind.startswith("int"):
            return int(value)
        if kind.startswith("float"):
            return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: {name} must be a number, got {value!r}") from None
    return str(value)


def _apply(cfg: ServiceConfig, values: Mapping[str, Any], where: str) -> None:
    for name, value in values.items():
        if name not in _FIELDS:
            raise ValueError(f"{where}: unknown setting {name!r}; known: {', '.join(_FIELDS)}")
        value = _coerce(name, value, where)
        if name in TABLES:
            getattr(cfg, name).update(value)
        else:
            setattr(cfg, name, value)


def read_toml(path: str | Path) -> dict[str, Any]:
    """The settings of a TOML file: its top-level keys and those of a ``[serve]`` table, the
    table's winning where both name a setting (before, a file with both read the table only,
    and silently fell back to the defaults for the rest)."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        try:
            import tomli as tomllib  # type: ignore[no-redef]
        except ModuleNotFoundError:
            raise ValueError("--config needs Python 3.11+ (tomllib) or the tomli package") from None
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{p}: no such config file") from None
    except tomllib.TOMLDecodeError as e:
        raise ValueError(f"{p}: invalid TOML: {e}") from None
    serve = data.pop("serve", None)
    if serve is None:
        return data
    if not isinstance(serve, dict):
        raise ValueError(f"{p}: 'serve' must be a table of settings")
    for name in TABLES:  # the client tables merge key by key, as across the layers
        if isinstance(data.get(name), dict) and isinstance(serve.get(name), dict):
            serve[name] = {**data[name], **serve[name]}
    return {**data, **serve}


#: ``IHOMER_*`` variables that are not service settings (the benchmarks' shared folder, the
#: crash tests' pauses): not reported as unknown.
OTHER_ENV = frozenset({"IHOMER_SHARED", "IHOMER_DEBUG_PAUSE"})


def unknown_environment(environ: Mapping[str, str] | None = None) -> list[str]:
    """The ``IHOMER_*`` variables that name no setting (``IHOMER_GRUOP_ID``): the service
    logs them at start, as a misspelt variable is otherwise ignored without a word."""
    env = os.environ if environ is None else environ
    return sorted(k for k in env if k.startswith(ENV_PREFIX) and k not in OTHER_ENV
                  and k[len(ENV_PREFIX):].lower() not in _FIELDS)


def load_config(
    flags: Mapping[str, Any] | None = None,
    config_file: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> ServiceConfig:
    """Build the configuration: ``flags`` (only those the user gave) > env > file > defaults."""
    cfg = ServiceConfig()
    if config_file is not None:
        _apply(cfg, read_toml(config_file), str(config_file))
    env = os.environ if environ is None else environ
    from_env = {k[len(ENV_PREFIX):].lower(): v for k, v in env.items()
                if k.startswith(ENV_PREFIX) and k[len(ENV_PREFIX):].lower() in _FIELDS}
    _apply(cfg, from_env, "environment")
    _apply(cfg, {k: v for k, v in (flags or {}).items() if v is not None}, "command line")
    return cfg
