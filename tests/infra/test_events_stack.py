"""The completion events' infrastructure in the synthesized template: bus, archive, grants, output."""

from __future__ import annotations

from typing import Any

import pytest
from aws_cdk.assertions import Template

from tests.infra.cfn import resources_of
from vehicle_assessment.domain.events import EVENT_SOURCE

pytestmark = pytest.mark.slow  # synthesizes the CDK app

PUBLISHERS = {"functions.store.handler", "functions.mark_failed.handler", "functions.sweeper.handler"}


def _bus_id(template_json: dict[str, Any]) -> str:
    [bus_id] = resources_of(template_json, "AWS::Events::EventBus")
    return bus_id


def test_one_custom_bus_with_an_archive_of_our_events_and_its_name_as_output(template_json) -> None:
    bus_id = _bus_id(template_json)
    [archive] = resources_of(template_json, "AWS::Events::Archive").values()
    assert archive["Properties"]["SourceArn"] == {"Fn::GetAtt": [bus_id, "Arn"]}
    assert archive["Properties"]["EventPattern"] == {"source": [EVENT_SOURCE]}
    assert archive["Properties"]["RetentionDays"] == 30
    assert template_json["Outputs"]["EventBusName"]["Value"] == {"Ref": bus_id}


def test_only_the_publishers_get_the_bus_name_and_put_events_on_that_bus_only(template_json) -> None:
    bus_id = _bus_id(template_json)
    functions = {
        fn["Properties"]["Handler"]: fn
        for fn in resources_of(template_json, "AWS::Lambda::Function").values()
        if str(fn["Properties"].get("Handler", "")).startswith("functions.")
    }
    assert set(functions) >= PUBLISHERS
    put_events_roles: dict[str, list[Any]] = {}
    for policy in resources_of(template_json, "AWS::IAM::Policy").values():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            if any(a.startswith("events:") for a in actions):
                assert actions == ["events:PutEvents"]
                for role in policy["Properties"]["Roles"]:
                    put_events_roles.setdefault(role["Ref"], []).append(statement["Resource"])
    for handler, fn in functions.items():
        variables = fn["Properties"].get("Environment", {}).get("Variables", {})
        role_id = fn["Properties"]["Role"]["Fn::GetAtt"][0]
        if handler in PUBLISHERS:
            assert variables["EVENT_BUS_NAME"] == {"Ref": bus_id}, handler
            assert put_events_roles.pop(role_id) == [{"Fn::GetAtt": [bus_id, "Arn"]}], handler
        else:
            assert "EVENT_BUS_NAME" not in variables, handler
    assert put_events_roles == {}  # no other role may publish


def test_a_failing_sweeper_alarms(template: Template, template_json) -> None:
    sweeper_id = next(
        k
        for k, fn in resources_of(template_json, "AWS::Lambda::Function").items()
        if fn["Properties"].get("Handler") == "functions.sweeper.handler"
    )
    [alarm] = [
        a
        for a in resources_of(template_json, "AWS::CloudWatch::Alarm").values()
        if a["Properties"].get("MetricName") == "Errors"
    ]
    assert alarm["Properties"]["Dimensions"] == [{"Name": "FunctionName", "Value": {"Ref": sweeper_id}}]
    assert alarm["Properties"]["AlarmActions"]
