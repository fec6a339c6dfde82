"""The committed OpenAPI schema is current; handler modules import fast and without torch."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from functions.api import openapi_json

ROOT = Path(__file__).resolve().parents[2]
HANDLERS = [
    "functions.upload_trigger",
    "functions.api",
    "functions.sweeper",
    "functions.decode_vin",
    "functions.analyse_photo",
    "functions.value",
    "functions.describe",
    "functions.speak",
    "functions.store",
    "functions.mark_failed",
    "functions.index_build_batch",
]
# CPU seconds: wall time on a shared 2-core machine swings 2-3x with other processes' load.
IMPORT_CPU_BUDGET_S = 1.0
IMPORT_WALL_LIMIT_S = 3.0  # only catches gross regressions (torch alone takes several seconds)

_PROBE = """
import json, sys, time
wall, cpu = time.perf_counter(), time.process_time()
import {module}
wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
heavy = sorted(m for m in ("torch", "open_clip", "torchvision", "faiss") if m in sys.modules)
print(json.dumps({{"wall": wall, "cpu": cpu, "heavy": heavy, "boto3": "boto3" in sys.modules}}))
"""


def test_committed_openapi_schema_is_current() -> None:
    committed = (ROOT / "functions" / "openapi.json").read_text(encoding="utf-8")
    generated = json.dumps(json.loads(openapi_json()), indent=2, ensure_ascii=False) + "\n"
    assert committed == generated, "run: python scripts/export_openapi.py"


@pytest.mark.parametrize("module", HANDLERS)
def test_handler_module_imports_fast_without_torch(module: str) -> None:
    env = {
        "PATH": "/usr/bin:/bin",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_SERVICE_NAME": "import-probe",
        "POWERTOOLS_METRICS_NAMESPACE": "ImportProbe",
    }
    out = subprocess.run(
        [sys.executable, "-c", _PROBE.format(module=module)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    probe = json.loads(out.stdout.strip().splitlines()[-1])
    print(
        f"{module}: imported in {probe['wall'] * 1000:.0f} ms wall, {probe['cpu'] * 1000:.0f} ms CPU"
        f" (boto3 loaded: {probe['boto3']})"
    )
    assert probe["heavy"] == []
    assert probe["cpu"] < IMPORT_CPU_BUDGET_S
    assert probe["wall"] < IMPORT_WALL_LIMIT_S
