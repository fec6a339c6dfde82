"""Every handler wears the one Powertools entry decorator, and it does what the three did."""

from __future__ import annotations

import importlib
import io
import json
import pkgutil
from typing import Any

import pytest
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit

import functions
from functions.observability import ENTRY_MARK, lambda_entry, logger, metrics


def _handler_modules() -> list[str]:
    names = [f"functions.{m.name}" for m in pkgutil.iter_modules(functions.__path__)]
    return [n for n in names if hasattr(importlib.import_module(n), "handler")]


def test_the_handlers_are_the_twelve_functions() -> None:
    assert len(_handler_modules()) == 12  # the reference feedback function included


@pytest.mark.parametrize("module", _handler_modules())
def test_every_handler_wears_the_entry_decorator(module: str) -> None:
    assert getattr(importlib.import_module(module).handler, ENTRY_MARK, False), module


def test_entry_logs_with_context_flushes_metrics_and_clears_keys(lambda_context, capsys) -> None:
    @lambda_entry(correlation_id_path=correlation_paths.API_GATEWAY_REST)
    def handler(event: dict[str, Any], context: Any) -> str:
        if event.get("tag"):
            logger.append_keys(tag=event["tag"])
        logger.info("inside")
        metrics.add_metric(name="Probe", unit=MetricUnit.Count, value=1)
        return "ok"

    # The logger's handler holds the stream it was built with; read what it writes from a buffer.
    log_stream = io.StringIO()
    previous = logger.registered_handler.setStream(log_stream)
    try:
        assert handler({"requestContext": {"requestId": "req-1"}, "tag": "first"}, lambda_context) == "ok"
        assert handler({"requestContext": {"requestId": "req-2"}}, lambda_context) == "ok"
    finally:
        logger.registered_handler.setStream(previous)
    logs = [json.loads(line) for line in log_stream.getvalue().splitlines()]
    assert [log["correlation_id"] for log in logs] == ["req-1", "req-2"]
    assert all(log["function_name"] == lambda_context.function_name for log in logs)
    assert "tag" in logs[0] and "tag" not in logs[1]  # clear_state: no key leaks into the next call
    assert [log["message"] for log in logs] == ["inside", "inside"]  # the events themselves are not logged
    flushed = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    assert [line["Probe"] for line in flushed] == [[1.0], [1.0]]  # one metrics blob per invocation
