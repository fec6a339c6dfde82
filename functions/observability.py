"""The one place the Powertools logger, tracer and metrics are made; every handler imports these.

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

if TYPE_CHECKING:
    from aws_lambda_powertools import Tracer

Handler = Callable[[Any, Any], Any]


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
