"""SnapStart on the synthesized template: every function has it (or a stated exclusion), and every
caller invokes a published version through its alias, never $LATEST, which has no snapshot."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from infra.constructs.lambdas import LIVE_ALIAS
from tests.infra.cfn import placeholder, resolve_value, resources_of, state_machine_definition
from tests.infra.test_stack import our_functions

pytestmark = pytest.mark.slow  # synthesizes the CDK app

# Handler → why it runs without SnapStart (the reason lives on its FunctionSpec).
EXCLUDED = {"infra_lambda.aoss_index.handler"}
# A Lambda ARN qualified by the alias: arn:aws:lambda:<region>:<account>:function:<name>:live
ALIAS_ARN = re.compile(rf"^arn:aws:lambda:[^:]+:\d+:function:[^:]+:{LIVE_ALIAS}$")


def _aliases(template_json: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return resources_of(template_json, "AWS::Lambda::Alias")


def test_every_pipeline_function_has_snapstart_or_is_excluded(template_json: dict[str, Any]) -> None:
    functions = our_functions(template_json)
    with_snapstart = {
        fn["Properties"]["Handler"]
        for fn in functions.values()
        if fn["Properties"].get("SnapStart") == {"ApplyOn": "PublishedVersions"}
    }
    handlers = {fn["Properties"]["Handler"] for fn in functions.values()}
    assert with_snapstart == handlers - EXCLUDED
    assert len(with_snapstart) == 12  # the reference feedback function included
    for fn in functions.values():  # what SnapStart refuses (AWS: "Supported features and limitations")
        props = fn["Properties"]
        assert props["Runtime"] in ("python3.12", "python3.13", "python3.14")
        assert "FileSystemConfigs" not in props
        assert props.get("EphemeralStorage", {"Size": 512})["Size"] <= 512


def test_each_snapstart_function_has_a_live_alias_on_a_published_version(
    template_json: dict[str, Any],
) -> None:
    resources = template_json["Resources"]
    snapstart_functions = {
        logical_id
        for logical_id, fn in our_functions(template_json).items()
        if fn["Properties"].get("SnapStart")
    }
    aliased = {}
    for alias in _aliases(template_json).values():
        props = alias["Properties"]
        assert props["Name"] == LIVE_ALIAS
        [version_id, attribute] = props["FunctionVersion"]["Fn::GetAtt"]
        version = resources[version_id]
        assert (version["Type"], attribute) == ("AWS::Lambda::Version", "Version")
        assert version["Properties"]["FunctionName"] == props["FunctionName"]
        # A replaced version (and its billed snapshot) goes when the alias moves on.
        assert version["DeletionPolicy"] == "Delete"
        aliased[props["FunctionName"]["Ref"]] = alias
    assert set(aliased) == snapstart_functions and len(aliased) == 12


def test_state_machine_tasks_invoke_aliases(template_json: dict[str, Any]) -> None:
    definition = json.loads(state_machine_definition(template_json))
    resources = []

    def collect(states: dict[str, Any]) -> None:
        for state in states.values():
            if state["Type"] == "Task":
                resources.append(state["Resource"])
            if "ItemProcessor" in state:
                collect(state["ItemProcessor"]["States"])
            if "Iterator" in state:
                collect(state["Iterator"]["States"])

    collect(definition["States"])
    assert len(resources) == 7
    assert [r for r in resources if not ALIAS_ARN.match(r)] == []


def test_state_machine_may_invoke_only_the_aliases(template_json: dict[str, Any]) -> None:
    aliases = set(_aliases(template_json))
    invoked = [
        statement["Resource"]
        for logical_id, policy in resources_of(template_json, "AWS::IAM::Policy").items()
        if logical_id.startswith("WorkflowStateMachineRole")
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
        if "lambda:InvokeFunction" in json.dumps(statement["Action"])
    ]
    assert len(invoked) == 7
    # Exactly an alias's ARN: neither the unqualified function ($LATEST) nor "<function>:*".
    assert [r for r in invoked if not (isinstance(r, dict) and r.get("Ref") in aliases)] == []


def test_event_source_schedule_and_api_target_aliases(template_json: dict[str, Any]) -> None:
    resolve = placeholder(template_json)
    [mapping] = resources_of(template_json, "AWS::Lambda::EventSourceMapping").values()
    # CDK names the function of a mapping to an alias "<function name>:<alias>".
    assert str(resolve_value(mapping["Properties"]["FunctionName"], resolve)).endswith(f":{LIVE_ALIAS}")

    aliases = set(_aliases(template_json))
    permissions = resources_of(template_json, "AWS::Lambda::Permission").values()
    by_principal: dict[str, set[str]] = {}
    for permission in permissions:
        target = permission["Properties"]["FunctionName"]
        principal = permission["Properties"]["Principal"]
        if principal in ("apigateway.amazonaws.com", "events.amazonaws.com"):
            by_principal.setdefault(principal, set()).add(target.get("Ref", json.dumps(target)))
    assert set(by_principal) == {"apigateway.amazonaws.com", "events.amazonaws.com"}
    assert all(targets <= aliases for targets in by_principal.values()), by_principal

    [rule] = [
        r
        for r in resources_of(template_json, "AWS::Events::Rule").values()
        if "ScheduleExpression" in r["Properties"]
    ]
    [target] = rule["Properties"]["Targets"]
    assert target["Arn"].get("Ref") in aliases

    api_integrations = [
        json.dumps(method["Properties"]["Integration"])
        for method in resources_of(template_json, "AWS::ApiGateway::Method").values()
        if method["Properties"].get("Integration", {}).get("Type") == "AWS_PROXY"
    ]
    assert api_integrations
    assert all(any(f'"Ref": "{alias}"' in uri for alias in aliases) for uri in api_integrations)


def test_every_task_retries_snapstart_errors_for_minutes(template_json: dict[str, Any]) -> None:
    states = json.loads(state_machine_definition(template_json))["States"]
    tasks = {n: s for n, s in states.items() if s["Type"] == "Task"}
    tasks["AnalysePhoto"] = states["AnalysePhotos"]["ItemProcessor"]["States"]["AnalysePhoto"]
    assert len(tasks) == 7
    for name, task in tasks.items():
        [retry] = [r for r in task["Retry"] if "Lambda.SnapStartNotReadyException" in r["ErrorEquals"]]
        assert "Lambda.SnapStartTimeoutException" in retry["ErrorEquals"], name
        waits = [
            min(retry["IntervalSeconds"] * retry["BackoffRate"] ** n, retry["MaxDelaySeconds"])
            for n in range(retry["MaxAttempts"])
        ]
        assert sum(waits) >= 180, (name, waits)  # an Inactive version has minutes to become Active


def test_synth_leaves_no_warning(cloud_assembly: Path) -> None:
    # CDK warns on every SnapStart function that it needs a published version (ours have one, the
    # alias's); the stack acknowledges exactly that and leaves every other warning visible.
    metadata = json.loads((cloud_assembly / "VehicleAssessmentStack.metadata.json").read_text())
    warnings = [
        (path, entry["data"])
        for path, entries in metadata.items()
        for entry in entries
        if entry["type"] == "aws:cdk:warning"
    ]
    assert warnings == []
