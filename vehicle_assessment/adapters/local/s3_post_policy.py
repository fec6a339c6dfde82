"""What S3 checks when a browser POSTs an upload form (SigV4): the contract tests' model of S3, and the
check `vehicle-assessment serve` applies to the forms it issues itself (S3's rules, the local server's
URL: ``path_style_bucket``).

moto accepts any POST form; S3 does not. This evaluator follows the AWS docs instead:
  * "POST Policy" (AmazonS3/latest/API/sigv4-HTTPPOSTConstructPolicy.html): expiration, the condition
    types (exact match as {"name": value} or ["eq", "$name", value], ["starts-with", "$name", prefix],
    ["content-length-range", min, max]) and "each form field that you specify in a form (except
    x-amz-signature, file, policy, and field names that have an x-ignore- prefix) must appear in the
    list of conditions".
  * "Authenticating Requests: Browser-Based Uploads Using POST (AWS Signature Version 4)"
    (AmazonS3/latest/API/sigv4-authentication-HTTPPOST.html) and "Calculating a Signature"
    (sigv4-UsingHTTPPOST.html#sigv4-post-signature-calc): the string to sign is the base64 policy; the
    signing key is HMAC-SHA256 chained over "AWS4"+secret, date, region, "s3", "aws4_request".
  * "Request routing" (userguide/UsingRouting.html): the regional virtual-hosted name
    <bucket>.s3.<region>.amazonaws.com avoids the global name's 307 redirects for new buckets.
It returns every violation it finds (an empty list means S3 would accept the form), so a failing test
says all that is wrong at once.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

ALGORITHM = "AWS4-HMAC-SHA256"
SIGV2_FIELDS = ("AWSAccessKeyId", "signature")
# Fields S3 does not look for in the policy.
UNCONDITIONED_FIELDS = frozenset({"policy", "x-amz-signature", "file"})
_AMZ_DATE = re.compile(r"(?P<date>\d{8})T\d{6}Z")
_SIGNATURE = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class Credentials:
    access_key: str
    secret_key: str
    token: str | None = None


@dataclass(frozen=True)
class PostedForm:
    """What a client sends: the URL and the multipart fields in order (``file`` among them, last)."""

    url: str
    fields: Sequence[tuple[str, str | bytes]]


def sigv4_signature(string_to_sign: str, secret_key: str, date: str, region: str, service: str = "s3") -> str:
    def sign(key: bytes, message: str) -> bytes:
        return hmac.new(key, message.encode("utf-8"), hashlib.sha256).digest()

    key = sign(("AWS4" + secret_key).encode("utf-8"), date)
    for part in (region, service, "aws4_request"):
        key = sign(key, part)
    return hmac.new(key, string_to_sign.encode("utf-8"), hashlib.sha256).hexdigest()


def _parse_expiration(text: str) -> datetime:
    for layout in ("%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%dT%H:%M:%S.%fZ"):
        try:
            return datetime.strptime(text, layout).replace(tzinfo=UTC)
        except ValueError:
            continue
    raise ValueError(f"expiration {text!r} is not ISO 8601 GMT")


# Which bucket a form's URL names, given the region; appends what is wrong with the URL to the list.
BucketOfUrl = Callable[[str, str, list[str]], str | None]


def regional_bucket(url: str, region: str, problems: list[str]) -> str | None:
    """S3's: the bucket's regional virtual-hosted name over https."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.scheme != "https":
        problems.append(f"url {url!r} is not https")
    if parts.path not in ("", "/"):
        problems.append(f"url {url!r} is path-style; the form must go to the bucket's own host")
    regional = f".s3.{region}.amazonaws.com"
    if host.endswith(".s3.amazonaws.com") or host == "s3.amazonaws.com":
        problems.append(f"url {url!r} uses the global endpoint, not the regional {regional[1:]}")
        return host.removesuffix(".s3.amazonaws.com") or None
    if not host.endswith(regional):
        problems.append(f"url {url!r} is not the regional virtual-hosted endpoint *{regional}")
        return None
    return host.removesuffix(regional)


def _check_condition(
    condition: Any, form: dict[str, str], bucket: str | None, file_size: int, problems: list[str]
) -> set[str]:
    """Checks one condition; returns the form field names it covers."""
    if isinstance(condition, dict):
        if len(condition) != 1:
            problems.append(f"condition {condition!r} must name exactly one field")
            return set()
        [(name, expected)] = condition.items()
        operator, field, argument = "eq", name, expected
    elif isinstance(condition, list) and len(condition) == 3:
        operator, field, argument = condition
        if operator == "content-length-range":
            low, high = field, argument
            if not (isinstance(low, int) and isinstance(high, int) and 0 <= low <= high):
                problems.append(f"content-length-range {condition!r} is malformed")
            elif not low <= file_size <= high:
                problems.append(f"file of {file_size} bytes is outside content-length-range {low}..{high}")
            return set()
        if not (isinstance(field, str) and field.startswith("$")):
            problems.append(f"condition {condition!r} must name a field as '$name'")
            return set()
        field = field[1:]
    else:
        problems.append(f"condition {condition!r} is neither {{name: value}} nor [operator, $name, value]")
        return set()
    if not isinstance(argument, str):
        problems.append(f"condition {condition!r} must compare with a string")
        return set()
    key = field.lower()
    actual = bucket if key == "bucket" else form.get(key)
    if actual is None:
        problems.append(f"condition {condition!r} names {field!r}, which the form does not send")
    elif operator == "eq" and actual != argument:
        problems.append(f"{field!r} is {actual!r}; the policy requires exactly {argument!r}")
    elif operator == "starts-with" and not actual.startswith(argument):
        problems.append(f"{field!r} is {actual!r}; the policy requires it to start with {argument!r}")
    elif operator not in ("eq", "starts-with"):
        problems.append(f"condition operator {operator!r} is not one S3 supports")
    return {key}


def path_style_bucket(base_url: str) -> BucketOfUrl:
    """A local server's: ``{base_url}/{bucket}`` (what botocore signs for an ``endpoint_url`` with
    path-style addressing), the bucket being the one path segment."""
    base = base_url.rstrip("/")

    def bucket_of(url: str, region: str, problems: list[str]) -> str | None:
        if not url.startswith(base + "/"):
            problems.append(f"url {url!r} is not on this server ({base})")
            return None
        bucket = url.removeprefix(base + "/").rstrip("/")
        if not bucket or "/" in bucket:
            problems.append(f"url {url!r} names no bucket (one path segment)")
            return None
        return bucket

    return bucket_of


def violations(
    posted: PostedForm,
    region: str,
    credentials: Credentials,
    now: datetime,
    max_expires_in_s: int,
    bucket_of_url: BucketOfUrl = regional_bucket,
) -> list[str]:
    """Everything S3 (SigV4, regional endpoint) would refuse in ``posted``; empty when it would accept it."""
    problems: list[str] = []
    names = [name for name, _ in posted.fields]
    # S3 matches form field names without regard to case, and ignores anything after the file.
    if "file" not in names:
        return ["the form has no file field"]
    if names[-1] != "file":
        problems.append(f"file must be the last field; {names[names.index('file') + 1 :]} follow it")
    before_file = posted.fields[: names.index("file")]
    lowered = [name.lower() for name, _ in before_file]
    if duplicates := sorted({n for n in lowered if lowered.count(n) > 1}):
        problems.append(f"fields sent more than once: {duplicates}")
    form = {name.lower(): value for name, value in before_file if isinstance(value, str)}
    file_value = posted.fields[names.index("file")][1]
    file_size = len(file_value.encode() if isinstance(file_value, str) else file_value)

    for legacy in SIGV2_FIELDS:
        if legacy.lower() in form:
            problems.append(
                f"SigV2 field {legacy!r} present: S3 refuses SigV2 for buckets made after June 2020"
            )
    bucket = bucket_of_url(posted.url, region, problems)

    # --- the SigV4 fields
    algorithm = form.get("x-amz-algorithm")
    if algorithm != ALGORITHM:
        problems.append(f"x-amz-algorithm is {algorithm!r}, not {ALGORITHM!r}")
    amz_date = form.get("x-amz-date", "")
    date_match = _AMZ_DATE.fullmatch(amz_date)
    if date_match is None:
        problems.append(f"x-amz-date {amz_date!r} is not YYYYMMDDTHHMMSSZ")
    scope_date = date_match["date"] if date_match else now.strftime("%Y%m%d")
    expected_credential = f"{credentials.access_key}/{scope_date}/{region}/s3/aws4_request"
    if form.get("x-amz-credential") != expected_credential:
        problems.append(
            f"x-amz-credential is {form.get('x-amz-credential')!r}, not {expected_credential!r} "
            "(<key>/<date of x-amz-date>/<region>/s3/aws4_request)"
        )
    if credentials.token is not None and form.get("x-amz-security-token") != credentials.token:
        problems.append("temporary credentials need x-amz-security-token with the session token")
    policy_b64 = form.get("policy")
    signature = form.get("x-amz-signature", "")
    if policy_b64 is None:
        return [*problems, "the form has no policy"]
    if not _SIGNATURE.fullmatch(signature):
        problems.append(f"x-amz-signature {signature!r} is not 64 lowercase hex digits")
    elif not hmac.compare_digest(
        signature, sigv4_signature(policy_b64, credentials.secret_key, scope_date, region)
    ):
        problems.append("x-amz-signature does not match the policy signed with these credentials")

    # --- the policy
    try:
        policy = json.loads(base64.b64decode(policy_b64, validate=True))
    except (binascii.Error, ValueError) as exc:
        return [*problems, f"policy is not base64 JSON: {exc}"]
    try:
        expiration = _parse_expiration(str(policy.get("expiration")))
    except ValueError as exc:
        problems.append(str(exc))
    else:
        if expiration <= now:
            problems.append(f"policy expired at {expiration.isoformat()}")
        elif (expiration - now).total_seconds() > max_expires_in_s:
            problems.append(
                f"policy expires {expiration.isoformat()}, later than {max_expires_in_s}s from now"
            )
    conditions = policy.get("conditions")
    if not isinstance(conditions, list):
        return [*problems, "policy has no conditions list"]
    covered: set[str] = set()
    for condition in conditions:
        covered |= _check_condition(condition, form, bucket, file_size, problems)
    for name in ("bucket", "key", "x-amz-algorithm", "x-amz-credential", "x-amz-date"):
        if name not in covered:
            problems.append(f"the policy has no condition on {name!r}")
    for name in form:
        if name not in covered and name not in UNCONDITIONED_FIELDS and not name.startswith("x-ignore-"):
            problems.append(f"form field {name!r} is not named by any policy condition")
    return problems
