"""boto3 clients built one way: retries and timeouts come from botocore's Config, never a loop of ours."""

from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from vehicle_assessment.adapters.aws.errors import error_code
from vehicle_assessment.adapters.aws.settings import AwsClientSettings
from vehicle_assessment.domain.text import one_line

__all__ = ["botocore_config", "error_code", "make_boto3_client", "one_line_reason"]


def botocore_config(settings: AwsClientSettings) -> Config:
    # In Config, "max_attempts" counts retries only (the first call not included), unlike the
    # AWS_MAX_ATTEMPTS variable; "total_max_attempts" says what our setting means: calls in all.
    return Config(
        retries={"mode": settings.retry_mode, "total_max_attempts": settings.max_attempts},
        connect_timeout=settings.connect_timeout_s,
        read_timeout=settings.read_timeout_s,
    )


def make_boto3_client(
    service: str, region: str, settings: AwsClientSettings, session: boto3.Session | None = None
) -> Any:
    """A client for ``service``; pass a session to reuse credentials (e.g. one per Lambda container)."""
    # boto3-stubs types `client` per literal service name; this one factory serves every service.
    new_client: Any = (session or boto3.Session()).client
    return new_client(service, region_name=region, config=botocore_config(settings))


def one_line_reason(exc: BaseException, limit: int = 300) -> str:
    """`Code: message` on one line, short enough for a log line or an assessment record."""
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        text = f"{error.get('Code') or 'Unknown'}: {error.get('Message') or exc}"
    elif isinstance(exc, BotoCoreError):
        text = f"{type(exc).__name__}: {exc}"
    else:
        text = str(exc)
    return one_line(text, limit)
