"""Least privilege on the synthesized template: each role holds only the DynamoDB actions its code
calls, no role scans/deletes/batch-writes, every ``*`` resource is on an allow-list with its reason,
pinned photos are readable by version, and the account-wide API Gateway role is opt-in."""

from __future__ import annotations

import ast
import fnmatch
import json
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from vehicle_assessment.adapters.aws.dynamodb import TABLE_ACCESS

ROOT = Path(__file__).resolve().parents[2]

# The actions that may name "*" as their resource, and why no narrower resource exists.
STAR_ALLOWED: dict[str, str] = {
    "xray:PutTraceSegments": "X-Ray has no resource-level permissions (active tracing)",
    "xray:PutTelemetryRecords": "X-Ray has no resource-level permissions (active tracing)",
    "xray:GetSamplingRules": "X-Ray has no resource-level permissions (state machine tracing)",
    "xray:GetSamplingTargets": "X-Ray has no resource-level permissions (state machine tracing)",
    "ecr:GetAuthorizationToken": "the registry login token is account-wide by definition",
    "cloudwatch:PutMetricData": "no resource type; limited to SageMaker's namespace by a condition",
    # CDK's BucketDeployment handler (infra/constructs/site.py) invalidates the site's distribution
    # after a deployment; CDK writes that grant on '*' in its own singleton's role.
    "cloudfront:CreateInvalidation": "CDK's BucketDeployment: invalidates the web app's distribution",
    "cloudfront:GetInvalidation": "CDK's BucketDeployment: waits for that invalidation",
    **{
        f"logs:{action}": "Step Functions' log delivery actions have no resource-level permissions"
        for action in (
            "CreateLogDelivery",
            "GetLogDelivery",
            "UpdateLogDelivery",
            "DeleteLogDelivery",
            "ListLogDeliveries",
            "PutResourcePolicy",
            "DescribeResourcePolicies",
            "DescribeLogGroups",
        )
    },
}
# Item deletions and batch writes: allowed to these functions only. No code deletes items one by one;
# the analyse step batch-writes its photo's registry items (adapters/aws/photo_registry.py).
DESTRUCTIVE_ALLOWED: dict[str, set[str]] = {
    "dynamodb:DeleteItem": set(),
    "dynamodb:BatchWriteItem": {"analyse_photo"},
}
# boto3 Table method -> the IAM action it needs.
_TABLE_CALLS = {
    "get_item": "dynamodb:GetItem",
    "put_item": "dynamodb:PutItem",
    "update_item": "dynamodb:UpdateItem",
    "query": "dynamodb:Query",
    "scan": "dynamodb:Scan",
    "delete_item": "dynamodb:DeleteItem",
    "batch_writer": "dynamodb:BatchWriteItem",
    "batch_write_item": "dynamodb:BatchWriteItem",
    "batch_get_item": "dynamodb:BatchGetItem",
}


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _statements(template: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(role logical id, statement) for every identity policy statement in the template."""
    for resource in template["Resources"].values():
        if resource["Type"] == "AWS::IAM::Policy":
            document = resource["Properties"]["PolicyDocument"]
            for role in resource["Properties"].get("Roles", []):
                for statement in document["Statement"]:
                    yield role["Ref"], statement
        if resource["Type"] == "AWS::IAM::Role":
            for policy in resource["Properties"].get("Policies", []):
                for statement in policy["PolicyDocument"]["Statement"]:
                    yield "inline", statement


def _role_actions(template: dict[str, Any]) -> dict[str, set[str]]:
    actions: dict[str, set[str]] = defaultdict(set)
    for role, statement in _statements(template):
        if statement.get("Effect", "Allow") == "Allow":
            actions[role] |= set(_as_list(statement["Action"]))
    return actions


def _function_roles(template: dict[str, Any]) -> dict[str, str]:
    """Handler module ("upload_trigger", "api", ...) -> its role's logical id."""
    found = {}
    for resource in template["Resources"].values():
        props = resource.get("Properties", {})
        if resource["Type"] == "AWS::Lambda::Function" and props.get("Handler", "").startswith("functions."):
            found[props["Handler"].split(".")[1]] = props["Role"]["Fn::GetAtt"][0]
    return found


def _table_users(module: str) -> tuple[str, ...]:
    if module in {"upload_trigger", "sweeper", "api", "reference_feedback"}:
        return (module,)
    # The analyse step also keeps the photo registry (the reused-photo check).
    return ("workflow_step", "photo_registry") if module == "analyse_photo" else ("workflow_step",)


def _grants(granted: set[str], action: str) -> bool:
    return any(fnmatch.fnmatchcase(action, pattern) for pattern in granted)


def test_each_function_holds_exactly_its_listed_table_actions(template_json: dict[str, Any]) -> None:
    actions = _role_actions(template_json)
    functions = _function_roles(template_json)
    assert {"upload_trigger", "sweeper", "api", "decode_vin", "analyse_photo"} <= set(functions)
    for module, role in functions.items():
        dynamodb = {a for a in actions[role] if a.startswith("dynamodb:")}
        # The index build's batch function reads photos and writes the index: no table at all.
        expected = (
            set()
            if module == "index_build_batch"
            else {action for user in _table_users(module) for action in TABLE_ACCESS[user].actions}
        )
        assert dynamodb == expected, module


def test_no_role_scans_and_none_deletes_or_batch_writes(template_json: dict[str, Any]) -> None:
    functions = _function_roles(template_json)
    sweeper = functions["sweeper"]
    for role, granted in _role_actions(template_json).items():
        if role != sweeper:
            assert not _grants(granted, "dynamodb:Scan"), role
        for action, allowed in DESTRUCTIVE_ALLOWED.items():
            allowed_roles = {functions[module] for module in allowed}
            assert role in allowed_roles or not _grants(granted, action), (role, action)
    # The sweeper queries its sparse index; it has no reason to scan either.
    assert not _grants(_role_actions(template_json)[sweeper], "dynamodb:Scan")


def test_the_listed_actions_are_the_ones_the_repository_calls() -> None:
    adapters = ROOT / "vehicle_assessment" / "adapters" / "aws"
    trees = [ast.parse((adapters / name).read_text()) for name in ("dynamodb.py", "photo_registry.py")]
    called = {
        _TABLE_CALLS[node.func.attr]
        for tree in trees
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and isinstance(node.func.value, ast.Attribute)
        and node.func.value.attr == "table"
        and node.func.attr in _TABLE_CALLS
    }
    listed = {action for access in TABLE_ACCESS.values() for action in access.actions}
    assert called == listed  # nothing granted that no code calls, nothing called that no role may


def test_every_star_resource_is_allow_listed(template_json: dict[str, Any]) -> None:
    for role, statement in _statements(template_json):
        if "*" in _as_list(statement.get("Resource", [])):
            unexpected = set(_as_list(statement["Action"])) - set(STAR_ALLOWED)
            assert not unexpected, f"{role} grants {sorted(unexpected)} on '*'"
    # PutMetricData on "*" only under its namespace condition.
    for _, statement in _statements(template_json):
        if "cloudwatch:PutMetricData" in _as_list(statement["Action"]):
            assert "cloudwatch:namespace" in str(statement.get("Condition"))


def test_polly_is_scoped_to_this_accounts_lexicons(template_json: dict[str, Any]) -> None:
    scoped = [
        statement
        for _, statement in _statements(template_json)
        if "polly:SynthesizeSpeech" in _as_list(statement["Action"])
    ]
    assert len(scoped) == 2  # the speak step and the API
    for statement in scoped:
        [resource] = _as_list(statement["Resource"])
        assert ":lexicon/*" in str(resource) and "AWS::AccountId" in str(resource)


def test_readers_of_pinned_photos_may_read_object_versions(template_json: dict[str, Any]) -> None:
    actions = _role_actions(template_json)
    roles = _function_roles(template_json)
    for module in ("upload_trigger", "analyse_photo"):
        assert {"s3:GetObject", "s3:GetObjectVersion"} <= actions[roles[module]], module
    # Nobody may destroy evidence: no grant on the upload bucket (or on '*') deletes a version. (The
    # web app's BucketDeployment prunes old site files in the site bucket, which holds no evidence.)
    [uploads] = [
        k
        for k, r in template_json["Resources"].items()
        if r["Type"] == "AWS::S3::Bucket" and r["Properties"].get("VersioningConfiguration")
    ]
    for role, statement in _statements(template_json):
        resources = json.dumps(statement.get("Resource"))
        if statement.get("Effect", "Allow") == "Allow" and (uploads in resources or resources == '"*"'):
            assert not _grants(set(_as_list(statement["Action"])), "s3:DeleteObjectVersion"), role


def test_replaced_photos_are_kept_for_the_retention(template_json: dict[str, Any]) -> None:
    from infra.config import InfraConfig

    [bucket] = [
        r["Properties"]
        for r in template_json["Resources"].values()
        if r["Type"] == "AWS::S3::Bucket" and r["Properties"].get("VersioningConfiguration")
    ]
    rules = {rule["Id"]: rule for rule in bucket["LifecycleConfiguration"]["Rules"]}
    expected = InfraConfig().photo_retention_days  # replaced_photo_retention_days unset
    assert rules["expire-noncurrent"]["NoncurrentVersionExpiration"]["NoncurrentDays"] == expected
    assert InfraConfig(replaced_photo_retention_days=30).noncurrent_version_days == 30


def test_the_account_wide_api_gateway_role_is_opt_in(template_json: dict[str, Any]) -> None:
    from infra.config import InfraConfig

    kinds = {r["Type"] for r in template_json["Resources"].values()}
    assert "AWS::ApiGateway::Account" not in kinds
    assert InfraConfig().api_gateway_cloudwatch_role is False
    assert InfraConfig.model_validate({"api_gateway_cloudwatch_role": "true"}).api_gateway_cloudwatch_role


@pytest.mark.slow  # a second synth
def test_the_flag_creates_the_account_role(tmp_path: Path) -> None:
    import json

    from infra.app import build_app
    from tests.infra.conftest import STACK, TEST_CONTEXT

    build_app({**TEST_CONTEXT, "api_gateway_cloudwatch_role": True}, outdir=str(tmp_path)).synth()
    template = json.loads((tmp_path / f"{STACK}.template.json").read_text())
    assert "AWS::ApiGateway::Account" in {r["Type"] for r in template["Resources"].values()}


def _object_prefix(resource: Any) -> str:
    """'uploads/*' from the synthesized {"Fn::Join": ["", [<bucket arn>, "/uploads/*"]]}."""
    parts = resource["Fn::Join"][1] if isinstance(resource, dict) else [resource]
    return str(parts[-1]).lstrip("/")


def test_the_api_reads_exactly_what_its_media_links_name(template_json: dict[str, Any]) -> None:
    """GET /assessments/{id}/media presigns GETs with the API role: photos by version, audio and the
    reference display copies, nothing else in the bucket; and it may put only what it signs or writes."""
    role = _function_roles(template_json)["api"]
    granted: dict[str, set[str]] = defaultdict(set)
    for owner, statement in _statements(template_json):
        actions = [a for a in _as_list(statement["Action"]) if a.startswith("s3:")]
        if owner == role and actions and statement.get("Effect", "Allow") == "Allow":
            for resource in _as_list(statement["Resource"]):
                granted[_object_prefix(resource)] |= set(actions)
    assert dict(granted) == {
        "uploads/*": {"s3:PutObject", "s3:GetObject", "s3:GetObjectVersion"},
        "audio/*": {"s3:PutObject", "s3:GetObject", "s3:GetObjectVersion"},
        "references/*": {"s3:GetObject", "s3:GetObjectVersion"},
    }
