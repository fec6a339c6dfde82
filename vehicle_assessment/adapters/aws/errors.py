"""Reading AWS errors without importing botocore: handler modules stay cheap to import."""

from __future__ import annotations

from collections.abc import Mapping


def error_code(exc: BaseException) -> str | None:
    """The ``Error.Code`` of a botocore ``ClientError`` (e.g. ``ConditionalCheckFailedException``).

    Read from the exception's ``response`` as botocore builds it, so callers need not import
    botocore to tell one AWS error from another; None for anything that is not such an error.
    """
    response = getattr(exc, "response", None)
    if not isinstance(response, Mapping):
        return None
    error = response.get("Error")
    code = error.get("Code") if isinstance(error, Mapping) else None
    return str(code) if code else None
