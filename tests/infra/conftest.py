"""Synthesize the stack ONCE per session (≈15 s), with cdk-nag on, and share the template."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

# jsii starts its Node runtime on the first aws_cdk import; Node 20 prints a banner otherwise.
os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")

# Context the template tests pin (anything not set keeps its default from infra/config.py).
TEST_CONTEXT: dict[str, Any] = {
    "bundling": "skip",  # sources only: no pip, no network
    "encoder_instance_type": "ml.g5.2xlarge",  # not the default: proves the context is read
    "map_max_concurrency": 3,
    "removal_policy": "destroy",
    "index_loader_principal_arns": ["arn:aws:iam::123456789012:role/reference-loader"],
    # A browser origin and hosted sign-in redirects: the preflights and the code flow exist.
    "cors_allowed_origins": ["https://yard.example.com"],
    "cognito_callback_urls": ["https://yard.example.com/signin", "vehicleyard://signin"],
}
STACK = "VehicleAssessmentStack"


@pytest.fixture(scope="session")
def cloud_assembly(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from infra.app import build_app

    outdir = tmp_path_factory.mktemp("cdk.out")
    # With cdk-nag registered, synth() raises on any unacknowledged finding.
    build_app(dict(TEST_CONTEXT), outdir=str(outdir)).synth()
    return outdir


@pytest.fixture(scope="session")
def template_path(cloud_assembly: Path) -> Path:
    return cloud_assembly / f"{STACK}.template.json"


@pytest.fixture(scope="session")
def template_json(template_path: Path) -> dict[str, Any]:
    return json.loads(template_path.read_text())


@pytest.fixture(scope="session")
def template(template_json: dict[str, Any]):
    from aws_cdk.assertions import Template

    return Template.from_json(template_json)
