"""SnapStart runtime hooks (functions/snapstart.py), with a fake of the runtime's snapshot_restore_py."""

from __future__ import annotations

import importlib
import json
import logging
import random
import subprocess
import sys
import types
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from functions import container_cache, snapstart

REPO = Path(__file__).resolve().parents[2]


class FakeHooks(types.ModuleType):
    """What Lambda's snapshot_restore_py offers: register_before_snapshot / register_after_restore."""

    def __init__(self) -> None:
        super().__init__(snapstart.HOOKS_MODULE)
        self.before: list[Callable[[], None]] = []
        self.after: list[Callable[[], None]] = []

    def register_before_snapshot(self, func: Callable[[], None]) -> Callable[[], None]:
        self.before.append(func)
        return func

    def register_after_restore(self, func: Callable[[], None]) -> Callable[[], None]:
        self.after.append(func)
        return func


@pytest.fixture
def runtime_hooks(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHooks]:
    """The Lambda runtime's module, then functions.snapstart imported afresh as a handler would."""
    fake = FakeHooks()
    monkeypatch.setitem(sys.modules, snapstart.HOOKS_MODULE, fake)
    importlib.reload(snapstart)
    yield fake
    monkeypatch.delitem(sys.modules, snapstart.HOOKS_MODULE)
    importlib.reload(snapstart)


def test_importing_a_handler_registers_both_hooks(runtime_hooks: FakeHooks) -> None:
    assert snapstart.REGISTERED
    assert runtime_hooks.before == [snapstart.before_snapshot]
    assert runtime_hooks.after == [snapstart.after_restore]


def test_every_handler_module_imports_the_hooks() -> None:
    # Lambda runs only hooks registered by modules the handler file imports: the package does.
    import functions

    assert functions._snapstart is snapstart


def test_after_restore_forgets_clients_config_and_session(
    runtime_hooks: FakeHooks, monkeypatch: pytest.MonkeyPatch
) -> None:
    from functions import workflow_deps
    from vehicle_assessment.aws_runtime import factory

    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    container_cache.reset_all()
    config_in_snapshot = workflow_deps.get_config()
    session_in_snapshot = factory.boto3_session()  # credentials resolve through it
    [restore] = runtime_hooks.after
    restore()
    assert workflow_deps.get_config() is not config_in_snapshot
    assert factory.boto3_session() is not session_in_snapshot
    assert all(
        getter.cache_info().currsize == 0
        for getter in container_cache.registered()
        if getter is not workflow_deps.get_config
    )


def test_after_restore_reseeds_random(runtime_hooks: FakeHooks) -> None:
    # Two environments restored from one snapshot share its random state; each must draw its own.
    random.seed(1234)
    snapshot_state = random.getstate()
    [restore] = runtime_hooks.after
    restore()
    first = random.random()
    random.setstate(snapshot_state)
    restore()
    assert random.random() != first


def test_without_the_runtime_module_nothing_registers_and_a_snapstart_function_warns(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("AWS_LAMBDA_INITIALIZATION_TYPE", "snap-start")
    with caplog.at_level(logging.WARNING, logger=snapstart.__name__):
        assert snapstart.register(None) is False
    assert "SnapStart runtime hooks not registered" in caplog.text


_PROBE = """
import json, os, sys
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
import functions.api
heavy = ("boto3", "aws_xray_sdk")
imported_by_handler = [m for m in heavy if m in sys.modules]
from functions import snapstart
snapstart.before_snapshot()
print(json.dumps({"handler": imported_by_handler, "snapshot": [m for m in heavy if m in sys.modules]}))
"""


def test_before_snapshot_does_the_import_work_a_first_invocation_would() -> None:
    # Fresh interpreter: the handler import leaves boto3 and the X-Ray SDK to the first invocation
    # (cheap imports); the hook moves them into the snapshot.
    done = subprocess.run(
        [sys.executable, "-c", _PROBE], capture_output=True, text=True, cwd=REPO, check=True
    )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result == {"handler": [], "snapshot": ["boto3", "aws_xray_sdk"]}
