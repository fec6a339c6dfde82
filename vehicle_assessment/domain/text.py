"""Text helpers shared by the domain and the adapters."""

from __future__ import annotations

ELLIPSIS = "…"


def one_line(text: object, limit: int | None = None) -> str:
    """``text`` on one line (whitespace runs become one space), cut to ``limit`` characters with "…".

    For reasons that go into a log line, an error message or an assessment record: a stack trace
    or a multi-line service answer must not spill over several lines or grow without bound.
    """
    flat = " ".join(str(text).split())
    if limit is None or len(flat) <= limit:
        return flat
    return flat[: limit - len(ELLIPSIS)] + ELLIPSIS
