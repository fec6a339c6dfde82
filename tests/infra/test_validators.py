"""External validators on the synthesized output: cfn-lint, asl-validator, and the functions' own config."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.infra.cfn import placeholder, resolve_value, state_machine_definition
from tests.infra.test_stack import our_functions
from vehicle_assessment.adapters.aws.bedrock_models import DEFAULT_BEDROCK_MODEL_ID

pytestmark = pytest.mark.slow  # synthesizes the CDK app and runs cfn-lint and asl-validator

REPO_ROOT = Path(__file__).resolve().parents[2]
ASL_VALIDATOR = REPO_ROOT / "node_modules" / ".bin" / "asl-validator"


def test_cfn_lint(template_path: Path) -> None:
    cfn_lint = Path(sys.executable).with_name("cfn-lint")
    command = [str(cfn_lint)] if cfn_lint.exists() else [sys.executable, "-m", "cfnlint"]
    result = subprocess.run(
        [*command, "--format", "parseable", str(template_path)], capture_output=True, text=True
    )
    # cfn-lint exit codes are bit flags: 2 errors, 4 warnings, 8 informational. Errors fail.
    assert result.returncode & 2 == 0 and result.returncode & 1 == 0, result.stdout + result.stderr


def test_state_machine_definition_is_valid_asl(template_json: dict[str, Any], tmp_path: Path) -> None:
    if not ASL_VALIDATOR.exists():
        pytest.skip("node_modules missing: run `npm ci` (make test does) to install asl-validator")
    definition = tmp_path / "definition.asl.json"
    definition.write_text(state_machine_definition(template_json))
    json.loads(definition.read_text())  # plain JSON: every intrinsic resolved
    node = shutil.which("node")
    assert node, "node is required for asl-validator"
    result = subprocess.run(
        [str(ASL_VALIDATOR), "--json-path", str(definition)], capture_output=True, text=True, cwd=REPO_ROOT
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_each_function_environment_builds_its_config(template_json: dict[str, Any], monkeypatch) -> None:
    """The variables the stack sets are exactly what config.py validates (names, JSON shapes)."""
    from vehicle_assessment.aws_runtime import config as runtime_config

    config_for = {
        "functions.upload_trigger.handler": runtime_config.UploadConfig,
        "functions.sweeper.handler": runtime_config.SweeperConfig,
        "functions.api.handler": runtime_config.ApiConfig,
        **{
            f"functions.{m}.handler": runtime_config.WorkflowConfig
            for m in ("decode_vin", "analyse_photo", "value", "describe", "speak", "store", "mark_failed")
        },
    }
    resolver = placeholder(template_json)
    for fn in our_functions(template_json).values():
        handler = fn["Properties"]["Handler"]
        if handler not in config_for:
            continue
        env = resolve_value(fn["Properties"]["Environment"]["Variables"], resolver)
        with monkeypatch.context() as patch:
            for name, value in env.items():
                patch.setenv(name, str(value))
            config = config_for[handler]()
        assert config.table_name, handler
        if handler == "functions.analyse_photo.handler":
            assert (
                config.sagemaker is not None
                and config.sagemaker.endpoint_name == "vehicleassessmentstack-encoder"
            )
            assert config.sagemaker.identity.dimension == 768
            assert config.opensearch is not None and config.opensearch.index_name == "reference-photos"
        if handler == "functions.describe.handler":
            assert config.bedrock.model_id == DEFAULT_BEDROCK_MODEL_ID
        if handler.startswith("functions.") and config_for[handler] is runtime_config.WorkflowConfig:
            assert config.rules.verdict.damaged_threshold == 0.5
