"""boto3 clients built one way: retries and timeouts come from botocore's Config, never a loop of ours."""

from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from vehicle_assessment.adapters.aws.settings import AwsClientSettings
from vehicle_assessment.domain.text import one_line


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


def make_s3_presigning_client(
    region: str, settings: AwsClientSettings, session: boto3.Session | None = None
) -> Any:
    """The S3 client that signs browser upload forms: SigV4, the bucket's regional virtual-hosted URL.

    botocore 1.44 left to itself signs POST forms with SigV2 (``AWSAccessKeyId``/``signature``) in
    us-east-1 and us-west-2, which S3 refuses for buckets created after June 2020, and hands out the
    global ``https://<bucket>.s3.amazonaws.com/`` in every region, which for a bucket outside us-east-1
    may answer 307 redirects for up to a day after the bucket is created: a hop browsers' cross-origin
    uploads do not survive reliably.
    AWS docs: "Browser-Based Uploads Using POST (AWS Signature Version 4)"
    (AmazonS3/latest/API/sigv4-UsingHTTPPOST.html); "AWS Signature Version 2 turned off (deprecated)
    for Amazon S3" (AmazonS3/latest/API/specify-signature-version.html); "Request routing"
    (AmazonS3/latest/userguide/UsingRouting.html, knowledge-center/s3-http-307-response).

    ``us_east_1_regional_endpoint="regional"`` turns us-east-1's global name into
    ``s3.us-east-1.amazonaws.com`` (botocore 1.44.8 keeps the global name there even with virtual
    addressing; other regions get their regional name from virtual addressing alone), and lets botocore's
    endpoint rules still pick each partition's domain (China, GovCloud), which a hand-written
    ``endpoint_url`` would not.
    """
    config = botocore_config(settings).merge(
        Config(
            signature_version="s3v4",
            s3={"addressing_style": "virtual", "us_east_1_regional_endpoint": "regional"},
        )
    )
    new_client: Any = (session or boto3.Session()).client
    return new_client("s3", region_name=region, config=config)


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
