"""What a handler logged and which metrics it emitted, for tests that assert both."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from functions.observability import logger, metrics


@dataclass
class Observed:
    records: list[logging.LogRecord] = field(default_factory=list)
    metrics: Counter[str] = field(default_factory=Counter)

    def levels(self) -> list[str]:
        return [r.levelname for r in self.records]

    def messages(self, level: str | None = None) -> list[str]:
        return [r.getMessage() for r in self.records if level is None or r.levelname == level]


class _Collect(logging.Handler):
    def __init__(self, into: list[logging.LogRecord]) -> None:
        super().__init__(level=logging.DEBUG)
        self.into = into

    def emit(self, record: logging.LogRecord) -> None:
        self.into.append(record)


def observe(monkeypatch: pytest.MonkeyPatch) -> Iterator[Observed]:
    """The ``observed`` fixture's body (conftest.py): logs and metrics for one test."""
    seen = Observed()
    add_metric = metrics.add_metric

    def counting(*args: Any, **kwargs: Any) -> None:
        seen.metrics[kwargs.get("name", args[0] if args else "")] += kwargs.get("value", 1)
        add_metric(*args, **kwargs)

    monkeypatch.setattr(metrics, "add_metric", counting)
    handler = _Collect(seen.records)
    underlying = logging.getLogger(logger.name)
    underlying.addHandler(handler)
    try:
        yield seen
    finally:
        underlying.removeHandler(handler)
