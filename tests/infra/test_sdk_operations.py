"""The AWS SDK the Lambda layer pins has every operation and parameter the adapters use.

The pins live in functions/requirements-sdk.txt, the lock file of the one SDK layer every function
attaches (so the Lambda runtime's own boto3, whose version differs by region, is never what runs).
This test reads botocore's service models, the same files the layer's botocore loads, and checks
each client call found in ``adapters/aws/*.py``: the operation exists and every keyword it passes
is a member of the operation's input. The environment running it
must have the pinned version (requirements-dev.txt pins the same), or the check would be of another SDK.
"""

from __future__ import annotations

import ast
import importlib.metadata
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ADAPTERS = ROOT / "vehicle_assessment" / "adapters" / "aws"
PINNED = ("boto3", "botocore", "s3transfer")
# Which service each adapter's ``client`` / ``table`` talks to; None: not a botocore client.
SERVICE_OF_ADAPTER: dict[str, str | None] = {
    "bedrock_describer.py": "bedrock-runtime",
    "dynamodb.py": "dynamodb",
    "photo_registry.py": "dynamodb",
    "eventbridge.py": "events",
    "opensearch_index.py": None,  # opensearch-py (the SigV4 signer is botocore's; no operations)
    "polly_speaker.py": "polly",
    "s3_object_probe.py": "s3",
    "s3_object_store.py": "s3",
    "s3_upload_forms.py": "s3",
    "s3_media_links.py": "s3",
    "sagemaker_encoder.py": "sagemaker-runtime",
    "step_functions.py": "stepfunctions",
    # No calls of their own: client construction, settings and error helpers.
    "__init__.py": None,
    "bedrock_models.py": None,
    "clients.py": None,
    "errors.py": None,
    "settings.py": None,
}
# Client methods that are no service operation: boto3's injected helpers. (generate_presigned_url's
# Params are validated by botocore against the named operation's input shape when it signs.)
HELPERS = {"generate_presigned_post", "generate_presigned_url"}
# Table resource methods that are no service operation: batch_writer sends BatchWriteItem (and resends
# its UnprocessedItems) with the put_item/delete_item requests given to it.
TABLE_HELPERS = {"batch_writer"}
# What the code must keep calling (so the scan below cannot silently find nothing).
REQUIRED = {
    ("bedrock-runtime", "converse"),
    ("dynamodb", "update_item"),
    ("s3", "get_object"),
    ("sagemaker-runtime", "invoke_endpoint"),
    ("polly", "synthesize_speech"),
    ("stepfunctions", "start_execution"),
}


@dataclass(frozen=True)
class Call:
    file: str
    line: int
    service: str
    method: str
    keywords: tuple[str, ...]  # keyword names, with the keys of the dicts any ** splat names
    receiver: str  # "table" (a boto3 Table resource), "client" or "<name>_client"


SDK_LOCK_FILE = ROOT / "functions" / "requirements-sdk.txt"


def _pins() -> dict[str, str]:
    pins = {}
    for line in SDK_LOCK_FILE.read_text().splitlines():
        name, _, version = line.partition("==")
        if version and name.strip() in PINNED:
            pins[name.strip()] = version.strip()
    return pins


def adapter_calls() -> list[Call]:
    """Every ``<...>.client.<method>(...)``, ``<...>.table.<method>(...)`` and ``*_client.<method>(...)``."""
    calls = []
    for path in sorted(ADAPTERS.glob("*.py")):
        assert path.name in SERVICE_OF_ADAPTER, f"{path.name}: say which AWS service it calls"
        service = SERVICE_OF_ADAPTER[path.name]
        if service is None:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        dict_keys = _dict_keys_by_name(tree)
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            receiver = node.func.value
            name = (
                receiver.attr
                if isinstance(receiver, ast.Attribute)
                else receiver.id
                if isinstance(receiver, ast.Name)
                else ""
            )
            if name in {"client", "table"} or name.endswith("_client"):
                keywords = tuple(
                    name for keyword in node.keywords for name in _keyword_names(keyword, dict_keys)
                )
                calls.append(Call(path.name, node.lineno, service, node.func.attr, keywords, name))
    return calls


def _literal_keys(node: ast.AST) -> set[str]:
    """Top-level string keys of a dict literal, or of both branches of ``{...} if v else {}``."""
    if isinstance(node, ast.IfExp):
        return _literal_keys(node.body) | _literal_keys(node.orelse)
    if not isinstance(node, ast.Dict):
        return set()
    return {key.value for key in node.keys if isinstance(key, ast.Constant) and isinstance(key.value, str)}


def _dict_keys_by_name(tree: ast.Module) -> dict[str, set[str]]:
    """For each variable name: the keys of dict literals assigned to it, and of ``name["Key"] = ...``."""
    found: dict[str, set[str]] = {}
    for node in ast.walk(tree):
        if isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                if isinstance(target, ast.Name):
                    found.setdefault(target.id, set()).update(_literal_keys(node.value))
                elif (
                    isinstance(target, ast.Subscript)
                    and isinstance(target.value, ast.Name)
                    and isinstance(target.slice, ast.Constant)
                    and isinstance(target.slice.value, str)
                ):
                    found.setdefault(target.value.id, set()).add(target.slice.value)
    return found


def _keyword_names(keyword: ast.keyword, dict_keys: dict[str, set[str]]) -> set[str]:
    if keyword.arg is not None:
        return {keyword.arg}
    if isinstance(keyword.value, ast.Name):  # **kwargs: what was put into that dict
        return dict_keys.get(keyword.value.id, set())
    return _literal_keys(keyword.value)


def test_the_environment_runs_the_pinned_sdk() -> None:
    pins = _pins()
    assert set(pins) == set(PINNED), "functions/requirements-sdk.txt must pin boto3, botocore and s3transfer"
    installed = {name: importlib.metadata.version(name) for name in PINNED}
    assert installed == pins, "install the pinned SDK (requirements-dev.txt) to check against it"


def test_the_sdk_is_pinned_in_the_layer_only() -> None:
    """One lock file for the SDK: a second pin in a function's lock file would be shadowing the layer
    (/var/task precedes /opt/python) and could drift from what this test checks."""
    for name in ("requirements.txt", "requirements-photo.txt"):
        lines = (ROOT / "functions" / name).read_text().splitlines()
        assert [line for line in lines if line.partition("==")[0].strip() in PINNED] == [], name


def test_every_adapter_call_is_an_operation_of_the_pinned_sdk() -> None:
    import botocore.session
    from botocore import xform_name

    session = botocore.session.get_session()
    calls = adapter_calls()
    assert {(c.service, c.method) for c in calls} >= REQUIRED
    problems = []
    for call in calls:
        if call.method in HELPERS or (call.service == "dynamodb" and call.method in TABLE_HELPERS):
            continue
        model = session.get_service_model(call.service)
        operations = {xform_name(name): name for name in model.operation_names}
        if call.method not in operations:
            problems.append(f"{call.file}:{call.line} {call.service}.{call.method}: no such operation")
            continue
        members = set(model.operation_model(operations[call.method]).input_shape.members)
        if call.service == "dynamodb" and call.receiver == "table":  # the Table resource fills in TableName
            members.discard("TableName")
        unknown = set(call.keywords) - members
        if unknown:
            problems.append(f"{call.file}:{call.line} {call.service}.{call.method}: no parameter {unknown}")
    assert problems == []


def test_pinned_versioned_reads_and_conditional_writes_exist() -> None:
    """The newest features the code relies on: each is in the pinned models (what the runtime's older
    copy may lack)."""
    import botocore.session

    session = botocore.session.get_session()
    update = session.get_service_model("dynamodb").operation_model("UpdateItem").input_shape.members
    assert "ReturnValuesOnConditionCheckFailure" in update
    assert "VersionId" in session.get_service_model("s3").operation_model("GetObject").input_shape.members
    assert "Converse" in session.get_service_model("bedrock-runtime").operation_names


@pytest.mark.parametrize("helper", sorted(HELPERS))
def test_helpers_exist_on_the_pinned_client(helper: str) -> None:
    import boto3

    client = boto3.session.Session(
        aws_access_key_id="x", aws_secret_access_key="x", region_name="us-east-1"
    ).client("s3")
    assert callable(getattr(client, helper))


@pytest.mark.parametrize("helper", sorted(TABLE_HELPERS))
def test_table_helpers_exist_on_the_pinned_resource(helper: str) -> None:
    import boto3

    resource = boto3.session.Session(
        aws_access_key_id="x", aws_secret_access_key="x", region_name="us-east-1"
    ).resource("dynamodb")
    assert callable(getattr(resource.Table("t"), helper))
