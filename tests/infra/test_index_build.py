"""The distributed index build in the synthesized template: the Distributed Map's contract, its
roles' exact grants, and the batch function's time budget computed from the template itself."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.infra.cfn import (
    ACCOUNT,
    REGION,
    placeholder,
    resolve_value,
    resources_of,
    state_machine_definition,
)
from tests.infra.conftest import TEST_CONTEXT
from tests.infra.test_stack import our_functions
from vehicle_assessment.domain import limits, upload_keys

REPO_ROOT = Path(__file__).resolve().parents[2]
ASL_VALIDATOR = REPO_ROOT / "node_modules" / ".bin" / "asl-validator"
BATCH_HANDLER = "functions.index_build_batch.handler"


def _definition(template_json: dict[str, Any]) -> dict[str, Any]:
    return json.loads(state_machine_definition(template_json, construct="IndexBuild"))


def _batch_function(template_json: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    [(logical_id, fn)] = [
        (k, v) for k, v in our_functions(template_json).items() if v["Properties"]["Handler"] == BATCH_HANDLER
    ]
    return logical_id, fn


def _grants(template_json: dict[str, Any], role_logical_id: str) -> dict[str, list[Any]]:
    """action -> the resources granted to the role (its default policy and any attached policy)."""
    resolver = placeholder(template_json)
    granted: dict[str, list[Any]] = {}
    for policy in resources_of(template_json, "AWS::IAM::Policy").values():
        if {"Ref": role_logical_id} not in policy["Properties"].get("Roles", []):
            continue
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            assert statement.get("Effect", "Allow") == "Allow"
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            resources = resolve_value(statement["Resource"], resolver)
            for action in actions:
                granted.setdefault(action, []).extend(
                    resources if isinstance(resources, list) else [resources]
                )
    return granted


def _bucket_arn(template_json: dict[str, Any]) -> str:
    [bucket] = [k for k in resources_of(template_json, "AWS::S3::Bucket") if k.startswith("IngestUploads")]
    return placeholder(template_json)(bucket, "Arn")


@pytest.mark.slow
def test_index_build_definition_is_valid_asl(template_json: dict[str, Any], tmp_path: Path) -> None:
    if not ASL_VALIDATOR.exists():
        pytest.skip("node_modules missing: run `npm ci` (make test does) to install asl-validator")
    assert shutil.which("node"), "node is required for asl-validator"
    definition = tmp_path / "index-build.asl.json"
    definition.write_text(state_machine_definition(template_json, construct="IndexBuild"))
    result = subprocess.run(
        [str(ASL_VALIDATOR), "--json-path", str(definition)], capture_output=True, text=True, cwd=REPO_ROOT
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_distributed_map_reads_the_manifest_csv_in_batches_and_writes_its_results(
    template_json: dict[str, Any],
) -> None:
    definition = _definition(template_json)
    assert definition["StartAt"] == "IndexPhotos"
    photos = definition["States"]["IndexPhotos"]
    bucket = placeholder(template_json)(
        next(k for k in template_json["Resources"] if k.startswith("IngestUploads")), "Ref"
    )
    assert photos["ItemProcessor"]["ProcessorConfig"] == {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"}
    # The header row names the columns; the key comes from the execution's input.
    assert photos["ItemReader"] == {
        "Resource": "arn:aws:states:::s3:getObject",
        "ReaderConfig": {"InputType": "CSV", "CSVHeaderLocation": "FIRST_ROW"},
        "Parameters": {"Bucket": bucket, "Key.$": "$.manifest_key"},
    }
    assert photos["ItemSelector"] == {
        "row.$": "$$.Map.Item.Value",
        "index.$": "$$.Map.Item.Index",
        "manifest_key.$": "$.manifest_key",
    }
    assert photos["ItemBatcher"] == {"MaxItemsPerBatch": limits.DEFAULT_INDEX_BUILD_BATCH_SIZE}
    # Sized to the endpoint: the default 2 instances it may scale to, 4 batches each.
    assert "encoder_max_instances" not in TEST_CONTEXT
    assert photos["MaxConcurrency"] == 2 * limits.INDEX_BUILD_BATCHES_PER_ENDPOINT_INSTANCE
    assert photos["ToleratedFailurePercentage"] == 5
    assert photos["ResultWriter"] == {
        "Resource": "arn:aws:states:::s3:putObject",
        "Parameters": {"Bucket": bucket, "Prefix": upload_keys.INDEX_BUILD_RESULTS_PREFIX},
    }
    batch = photos["ItemProcessor"]["States"]["IndexBatch"]
    logical_id, _ = _batch_function(template_json)
    assert batch["Resource"] == f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{logical_id}:live"
    retried = {error for retry in batch["Retry"] for error in retry["ErrorEquals"]}
    assert {
        "Lambda.TooManyRequestsException",
        "Lambda.Unknown",
        "Lambda.SnapStartNotReadyException",
    } <= retried


def test_the_build_results_expire_with_their_noncurrent_versions(template_json: dict[str, Any]) -> None:
    """The ResultWriter's prefix has its own lifecycle rule on the (versioned) bucket it writes to."""
    from infra.config import InfraConfig

    [bucket] = [
        v for k, v in resources_of(template_json, "AWS::S3::Bucket").items() if k.startswith("IngestUploads")
    ]
    assert bucket["Properties"]["VersioningConfiguration"] == {"Status": "Enabled"}
    rules = [
        rule
        for rule in bucket["Properties"]["LifecycleConfiguration"]["Rules"]
        if rule.get("Prefix") == upload_keys.INDEX_BUILD_RESULTS_PREFIX
    ]
    assert "index_build_results_retention_days" not in TEST_CONTEXT
    assert rules == [
        {
            "Id": "expire-index-builds",
            "Prefix": upload_keys.INDEX_BUILD_RESULTS_PREFIX,
            "ExpirationInDays": InfraConfig().index_build_results_retention_days,
            # Expiring a current version in a versioned bucket leaves it noncurrent: gone a day later.
            "NoncurrentVersionExpiration": {"NoncurrentDays": 1},
            "Status": "Enabled",
        }
    ]


def test_the_machine_role_holds_exactly_what_its_definition_uses(template_json: dict[str, Any]) -> None:
    [(machine_id, machine)] = [
        (k, v)
        for k, v in resources_of(template_json, "AWS::StepFunctions::StateMachine").items()
        if k.startswith("IndexBuild")
    ]
    role = machine["Properties"]["RoleArn"]["Fn::GetAtt"][0]
    granted = _grants(template_json, role)
    bucket = _bucket_arn(template_json)
    logical_id, _ = _batch_function(template_json)
    machine_arn = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{machine_id}"
    executions = f"arn:aws:states:{REGION}:{ACCOUNT}:execution:{machine_id.lower()}-name"
    star = ["*"]
    assert granted == {
        "lambda:InvokeFunction": [f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{logical_id}:live"],
        # The manifest, under reference-sets/ only (CDK's reader would grant every object).
        "s3:GetObject": [f"{bucket}/{upload_keys.REFERENCE_SET_PREFIX}*"],
        # The Map Run's results, under index-builds/ only.
        **{
            action: [f"{bucket}/{upload_keys.INDEX_BUILD_RESULTS_PREFIX}*"]
            for action in ("s3:PutObject", "s3:ListMultipartUploadParts", "s3:AbortMultipartUpload")
        },
        # Child workflows: itself, and its own executions.
        "states:StartExecution": [machine_arn],
        "states:DescribeExecution": [f"{executions}:*"],
        "states:StopExecution": [f"{executions}:*"],
        "states:RedriveExecution": [f"{executions}/*:*"],
        **{a: star for a in granted if a.startswith(("logs:", "xray:"))},
    }
    assert len([a for a in granted if a.startswith("logs:")]) == 8


def test_the_batch_function_reads_reference_sets_and_writes_display_copies_only(
    template_json: dict[str, Any],
) -> None:
    _, fn = _batch_function(template_json)
    granted = _grants(template_json, fn["Properties"]["Role"]["Fn::GetAtt"][0])
    bucket = _bucket_arn(template_json)
    assert granted["s3:GetObject"] == [f"{bucket}/{upload_keys.REFERENCE_SET_PREFIX}*"]
    assert granted["s3:PutObject"] == [f"{bucket}/{upload_keys.REFERENCE_IMAGE_PREFIX}*"]
    assert len(granted["sagemaker:InvokeEndpoint"]) == 1 and len(granted["aoss:APIAccessAll"]) == 1
    assert not [a for a in granted if a.startswith(("dynamodb:", "states:"))]
    assert set(granted) == {
        "logs:CreateLogStream",
        "logs:PutLogEvents",
        "xray:PutTraceSegments",
        "xray:PutTelemetryRecords",
        "s3:GetObject",
        "s3:PutObject",
        "sagemaker:InvokeEndpoint",
        "aoss:APIAccessAll",
    }


def test_a_batch_fits_the_function_timeout_at_every_client_worst_case(
    template_json: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Batch size (from the definition) × per-photo cost + the fixed calls, every client at its
    worst case, within the share of the function's timeout clients may use; the state's timeout
    outlasts the function's. The function's own environment builds the config the budget uses."""
    from vehicle_assessment.aws_runtime.index_build import IndexBuildConfig, batch_worst_case_s

    _, fn = _batch_function(template_json)
    props = fn["Properties"]
    env = resolve_value(props["Environment"]["Variables"], placeholder(template_json))
    for name, value in env.items():
        monkeypatch.setenv(name, str(value))
    config = IndexBuildConfig()
    assert config.opensearch.index_name == "reference-photos" and config.sagemaker.identity.dimension == 768

    batch_size = _definition(template_json)["States"]["IndexPhotos"]["ItemBatcher"]["MaxItemsPerBatch"]
    timeout_s = props["Timeout"]
    worst_s = batch_worst_case_s(batch_size, config)
    assert worst_s <= timeout_s * limits.CLIENT_SHARE_OF_TIMEOUT <= limits.LAMBDA_MAX_TIMEOUT_S
    # The timeout is sized to this batch, not a blanket maximum: twice the batch would not fit.
    assert batch_worst_case_s(2 * batch_size, config) > timeout_s * limits.CLIENT_SHARE_OF_TIMEOUT
    task = _definition(template_json)["States"]["IndexPhotos"]["ItemProcessor"]["States"]["IndexBatch"]
    assert task["TimeoutSeconds"] > timeout_s
    assert props["MemorySize"] >= 1769  # a whole vCPU: the budget counts photos' CPU on one core


def test_the_stack_outputs_the_index_build_state_machine(template_json: dict[str, Any]) -> None:
    output = template_json["Outputs"]["IndexBuildStateMachineArn"]["Value"]
    assert output["Ref"].startswith("IndexBuildStateMachine")
