"""Connectors to message brokers: the Kafka service behind ``ihomer serve`` / ``ihomer produce``.

* :mod:`~ihomer.connectors.events`: the event contract and its validation;
* :mod:`~ihomer.connectors.checkpoint`: crash-safe, code-free checkpoints and the learner state
  protocol (``state_dict`` / ``from_state_dict``);
* :mod:`~ihomer.connectors.service`: the consumer loop and its commit protocol;
* :mod:`~ihomer.connectors.producer`: files to topics (the replay tool);
* :mod:`~ihomer.connectors.metrics`: the Prometheus endpoint;
* :mod:`~ihomer.connectors.config`: settings from flags, environment and TOML.

Only the plain Kafka protocol (kafka-python) is used, so any Kafka-compatible cluster works.
"""
