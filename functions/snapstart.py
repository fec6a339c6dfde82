"""Lambda SnapStart runtime hooks: warm what a snapshot may keep, forget what must be unique.

With SnapStart, Lambda runs a function's init once when a version is published, snapshots the
initialized environment and resumes every new environment from that one snapshot
(https://docs.aws.amazon.com/lambda/latest/dg/snapstart.html). So:

- before the snapshot, do the import work a first invocation would otherwise pay: the Powertools
  tracer (the X-Ray SDK and botocore, deferred at import by ``functions/observability.py``) and boto3's
  client machinery. Nothing here opens a connection or resolves credentials.
- after a restore, forget everything per container (config, clients, services: ``container_cache``) and
  the shared boto3 session, whose credentials belong to the environment that resolved them, and reseed
  ``random`` (botocore's retry jitter draws from it): "Handling uniqueness with Lambda SnapStart"
  (https://docs.aws.amazon.com/lambda/latest/dg/snapstart-uniqueness.html) asks for unique state and
  random seeds to be made after init or in an after-restore hook.

The hooks come from ``snapshot_restore_py``, which Lambda's Python 3.12+ managed runtimes provide
("Lambda SnapStart runtime hooks for Python",
https://docs.aws.amazon.com/lambda/latest/dg/snapstart-runtime-hooks-python.html). Lambda only runs
hooks registered by modules the handler file imports: ``functions/__init__.py`` imports this module, so
every ``functions.<module>.handler`` registers them. Elsewhere (tests, local mode) the module is absent
and nothing is registered. The after-restore hook must finish within Lambda's 10 s restore limit
(SnapStartTimeoutException otherwise): it only clears caches.
"""

from __future__ import annotations

import importlib
import logging
import os
import random
from collections.abc import Callable
from types import ModuleType

from functions import container_cache

_log = logging.getLogger(__name__)
HOOKS_MODULE = "snapshot_restore_py"


def before_snapshot() -> None:
    """Import work moved into the snapshot: the tracer and boto3's client machinery."""
    import boto3  # noqa: F401  (imported for the snapshot)
    import botocore.client  # noqa: F401

    from functions.observability import tracer
    from vehicle_assessment.adapters.aws import clients  # noqa: F401

    tracer.get()  # builds Powertools' Tracer: imports and patches, no network


def after_restore() -> None:
    """Forget per-container state so a restored environment builds its own clients and credentials."""
    from vehicle_assessment.aws_runtime import factory

    container_cache.reset_all()
    factory.boto3_session.cache_clear()
    random.seed()  # from os.urandom: each restored environment draws its own jitter


def register(hooks: ModuleType | None) -> bool:
    """Register both hooks with ``hooks`` (the runtime's ``snapshot_restore_py``); False without it."""
    if hooks is None:
        # SnapStart functions carry AWS_LAMBDA_INITIALIZATION_TYPE=snap-start (Lambda's defined runtime
        # environment variables, lambda/latest/dg/configuration-envvars.html): without the hooks
        # there, restored environments would share the snapshot's caches. Elsewhere it is expected.
        level = (
            logging.WARNING
            if os.environ.get("AWS_LAMBDA_INITIALIZATION_TYPE") == "snap-start"
            else logging.DEBUG
        )
        _log.log(level, "%s is not available: SnapStart runtime hooks not registered", HOOKS_MODULE)
        return False
    register_before: Callable[[Callable[[], None]], object] = hooks.register_before_snapshot
    register_after: Callable[[Callable[[], None]], object] = hooks.register_after_restore
    register_before(before_snapshot)
    register_after(after_restore)
    return True


def _runtime_hooks() -> ModuleType | None:
    try:
        return importlib.import_module(HOOKS_MODULE)  # Lambda's runtime provides it; no PyPI pin
    except ImportError:
        return None


REGISTERED = register(_runtime_hooks())
