"""What a Lambda container builds once (config, clients, services), and the one way to forget it all.

Every handler getter is ``@per_container``: ``functools.lru_cache(maxsize=1)`` that also joins a
registry, so ``reset_all()`` (tests: each test is a fresh container) clears every getter there is,
including ones added later, instead of a hand-kept list that can miss one.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

_GETTERS: list[functools._lru_cache_wrapper[object]] = []


def per_container(getter: Callable[[], T]) -> functools._lru_cache_wrapper[T]:
    """Build on first call, then return the same object for the life of the container."""
    cached = functools.lru_cache(maxsize=1)(getter)
    _GETTERS.append(cached)
    return cached


def registered() -> tuple[functools._lru_cache_wrapper[object], ...]:
    return tuple(_GETTERS)


def reset_all() -> None:
    """Forget every per-container object, so the next call reads the environment again."""
    for getter in _GETTERS:
        getter.cache_clear()
