"""Per-container getters: every cached getter in functions/ is registered, and one reset clears all."""

from __future__ import annotations

import functools
import importlib
import pkgutil

import pytest

import functions
from functions import container_cache


def _cached_callables() -> dict[str, object]:
    """Every functools.lru_cache-wrapped callable defined in a functions/ module."""
    found: dict[str, object] = {}
    for info in pkgutil.iter_modules(functions.__path__):
        module = importlib.import_module(f"functions.{info.name}")
        for name, value in vars(module).items():
            if isinstance(value, functools._lru_cache_wrapper) and value.__module__ == module.__name__:
                found[f"{module.__name__}.{name}"] = value
    return found


def test_every_cached_getter_in_functions_is_registered() -> None:
    cached = _cached_callables()
    registered = set(map(id, container_cache.registered()))
    assert len(cached) >= 14  # config, services, repository, ... of the ten handlers
    assert [name for name, getter in cached.items() if id(getter) not in registered] == []


def test_reset_all_makes_every_getter_read_the_environment_again(monkeypatch: pytest.MonkeyPatch) -> None:
    from functions import api, sweeper, workflow_deps

    monkeypatch.setenv("SWEEP_TIMEOUT_MINUTES", "30")
    container_cache.reset_all()
    first = (api.get_config(), sweeper.get_config(), workflow_deps.get_config())
    assert sweeper.get_config().sweep_timeout_minutes == 30
    monkeypatch.setenv("SWEEP_TIMEOUT_MINUTES", "45")
    assert sweeper.get_config() is first[1]  # cached for the container's life
    container_cache.reset_all()
    assert sweeper.get_config().sweep_timeout_minutes == 45
    assert api.get_config() is not first[0] and workflow_deps.get_config() is not first[2]
