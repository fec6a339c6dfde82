"""The one place the Powertools logger, tracer and metrics are made, and the one entry decorator
(``lambda_entry``) that every handler wears.

Service name and metrics namespace come from POWERTOOLS_SERVICE_NAME and
POWERTOOLS_METRICS_NAMESPACE, set by the infrastructure (one namespace for all functions).

The tracer is built on first use, not at import: constructing a Powertools ``Tracer`` imports the
X-Ray SDK, which pulls in botocore — about 0.5 s of CPU measured here, half of a handler's import.
Deferring it keeps handler imports fast (tested) and costs nothing when tracing is never reached.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit, single_metric

from vehicle_assessment.adapters.aws.bedrock_models import DESCRIPTION_FALLBACK_METRIC

if TYPE_CHECKING:
    from aws_lambda_powertools import Tracer

Handler = Callable[[Any, Any], Any]
ENTRY_MARK = "__lambda_entry__"


class LazyTracer:
    """The subset of Powertools' Tracer the handlers use, building the real one on first call."""

    def __init__(self) -> None:
        self._tracer: Tracer | None = None

    def get(self) -> Tracer:
        if self._tracer is None:
            from aws_lambda_powertools import Tracer

            self._tracer = Tracer()
        return self._tracer

    def capture_lambda_handler(
        self, lambda_handler: Handler | None = None, *, capture_response: bool | None = None
    ) -> Any:
        def decorate(handler: Handler) -> Handler:
            traced: Handler | None = None

            @functools.wraps(handler)
            def wrapper(event: Any, context: Any) -> Any:
                nonlocal traced
                if traced is None:
                    traced = self.get().capture_lambda_handler(handler, capture_response=capture_response)
                return traced(event, context)

            return wrapper

        return decorate(lambda_handler) if lambda_handler is not None else decorate


logger = Logger()
tracer = LazyTracer()
metrics = Metrics()


def record_description_fallback(reason: str, code: str) -> None:
    """A description fell back to the template (the describer has logged why).

    Two data points of one metric: per function (dimension ``service``), which the alarm watches, and
    per function and reason (``reason``: throttled, model_not_found, access_denied, validation,
    timeout, other), written at once with the error code as a property, for the dashboard and Logs
    Insights. A reason dimension on the shared ``metrics`` object would stick to every other metric of
    the invocation, hence the single metric.
    """
    metrics.add_metric(name=DESCRIPTION_FALLBACK_METRIC, unit=MetricUnit.Count, value=1)
    with single_metric(
        name=DESCRIPTION_FALLBACK_METRIC,
        unit=MetricUnit.Count,
        value=1,
        default_dimensions={"reason": reason},
    ) as by_reason:
        by_reason.add_metadata("error_code", code)


def lambda_entry(handler: Handler | None = None, *, correlation_id_path: str | None = None) -> Any:
    """Logger context, metrics flush and tracing around a handler, in that order (outermost first).

    The same as stacking ``@logger.inject_lambda_context(log_event=False, clear_state=True)``,
    ``@metrics.log_metrics`` and ``@tracer.capture_lambda_handler(capture_response=False)``: events
    and responses are never logged or traced (they carry VINs and photo keys), and each invocation
    starts with a clean set of log keys. ``correlation_id_path``: a JMESPath into the event, e.g.
    ``correlation_paths.API_GATEWAY_REST``.
    """

    def decorate(inner: Handler) -> Handler:
        traced = tracer.capture_lambda_handler(inner, capture_response=False)
        measured = metrics.log_metrics(traced)
        entry: Handler = logger.inject_lambda_context(
            measured, log_event=False, correlation_id_path=correlation_id_path, clear_state=True
        )
        entry.__dict__[ENTRY_MARK] = True  # lets a test check that no handler goes without it
        return entry

    return decorate(handler) if handler is not None else decorate
