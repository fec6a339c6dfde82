"""The rule that records executions that timed out or were stopped (no Catch runs for those).

The rule's input transformer is evaluated here, from the synthesized template, on events shaped as
the AWS docs' example (tests/stopped_executions.py): its output must be a FailureInput that
MarkFailed turns into a FAILED assessment with a readable reason.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from tests.infra.cfn import placeholder, resolve_value, resources_of
from tests.services.conftest import NOW, VIN
from tests.stopped_executions import STATE_MACHINE_ARN, execution_status_change, failure_input
from vehicle_assessment.adapters.memory import InMemoryAssessmentRepository, InMemoryEventPublisher
from vehicle_assessment.aws_runtime import workflow_steps
from vehicle_assessment.aws_runtime.uploads import open_assessment
from vehicle_assessment.domain.models import AssessmentInputs, AssessmentStatus


def _the_rule(template_json: dict[str, Any]) -> dict[str, Any]:
    [rule] = [
        resource["Properties"]
        for resource in resources_of(template_json, "AWS::Events::Rule").values()
        if resource["Properties"].get("EventPattern", {}).get("source") == ["aws.states"]
    ]
    resolved: dict[str, Any] = resolve_value(rule, placeholder(template_json))
    return resolved


def _path(event: dict[str, Any], path: str) -> Any:
    """An InputPathsMap path: this rule uses plain ``$.a.b`` paths only."""
    assert re.fullmatch(r"\$(\.[A-Za-z_-]+)+", path), path
    value: Any = event
    for key in path.split(".")[1:]:
        value = value[key]
    return value


def _transform(transformer: dict[str, Any], event: dict[str, Any]) -> Any:
    """EventBridge's input transformer: each ``<name>`` outside quotes becomes the path's JSON value
    (a string keeps its quotes). AWS docs: "Amazon EventBridge input transformation"
    (eventbridge/latest/userguide/eb-transform-target-input.html)."""
    values = {name: _path(event, path) for name, path in transformer["InputPathsMap"].items()}
    text = re.sub(
        r"<([A-Za-z0-9_.-]+)>", lambda m: json.dumps(values[m.group(1)]), transformer["InputTemplate"]
    )
    return json.loads(text)


def _matches(pattern: dict[str, Any], event: dict[str, Any]) -> bool:
    """Exact-value matching, the only kind this pattern uses."""
    return all(
        _matches(expected, event.get(key, {})) if isinstance(expected, dict) else event.get(key) in expected
        for key, expected in pattern.items()
    )


def _state_machine_arn(template_json: dict[str, Any]) -> str:
    [logical_id] = [
        k
        for k in resources_of(template_json, "AWS::StepFunctions::StateMachine")
        if k.startswith("WorkflowStateMachine")
    ]
    arn: str = placeholder(template_json)(logical_id, "Ref")
    return arn


def _sample(template_json: dict[str, Any], name: str, status: str) -> dict[str, Any]:
    event = execution_status_change(name, status)
    event["detail"]["stateMachineArn"] = _state_machine_arn(template_json)
    return event


def test_the_rule_matches_this_state_machine_timing_out_or_being_stopped(template_json) -> None:
    pattern = _the_rule(template_json)["EventPattern"]
    assert pattern == {
        "source": ["aws.states"],
        "detail-type": ["Step Functions Execution Status Change"],
        "detail": {
            "stateMachineArn": [_state_machine_arn(template_json)],
            "status": ["TIMED_OUT", "ABORTED"],
        },
    }
    for status in ("TIMED_OUT", "ABORTED"):
        assert _matches(pattern, _sample(template_json, "a-1", status))
    for status in ("SUCCEEDED", "FAILED", "RUNNING"):  # FAILED: the Catch already ran MarkFailed
        assert not _matches(pattern, _sample(template_json, "a-1", status))
    other_machine = execution_status_change("a-1", "TIMED_OUT")
    assert other_machine["detail"]["stateMachineArn"] == STATE_MACHINE_ARN
    assert not _matches(pattern, other_machine)


def test_its_target_is_mark_failed_s_live_alias_with_a_dead_letter_queue(template_json) -> None:
    [target] = _the_rule(template_json)["Targets"]
    functions = resources_of(template_json, "AWS::Lambda::Function")
    [mark_failed] = [
        k for k, f in functions.items() if f["Properties"]["Handler"] == "functions.mark_failed.handler"
    ]
    assert target["Arn"].endswith(f":function:{mark_failed}:live")
    [queue] = [
        k
        for k in resources_of(template_json, "AWS::SQS::Queue")
        if k.startswith("WorkflowStoppedExecutionsDlq")
    ]
    assert target["DeadLetterConfig"]["Arn"].endswith(f":{queue.lower()}")
    # The function's own failures (after Lambda's two retries of an async invoke) land there too.
    [invoke_config] = [
        resolve_value(c["Properties"], placeholder(template_json))
        for c in resources_of(template_json, "AWS::Lambda::EventInvokeConfig").values()
        if c["Properties"]["FunctionName"] == {"Ref": mark_failed}
    ]
    assert invoke_config["Qualifier"] == "live" and invoke_config["MaximumRetryAttempts"] == 2
    assert invoke_config["DestinationConfig"]["OnFailure"]["Destination"].endswith(f":{queue.lower()}")
    # EventBridge may send to the queue for this rule only.
    [policy] = [
        p["Properties"]
        for p in resources_of(template_json, "AWS::SQS::QueuePolicy").values()
        if p["Properties"]["Queues"] == [{"Ref": queue}]
    ]
    [send] = [s for s in policy["PolicyDocument"]["Statement"] if s["Effect"] == "Allow"]
    assert send["Principal"] == {"Service": "events.amazonaws.com"} and send["Action"] == "sqs:SendMessage"
    assert "aws:SourceArn" in send["Condition"]["ArnEquals"]


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        ("TIMED_OUT", "the workflow timed out after its 1-hour limit"),
        ("ABORTED", "the workflow was stopped (aborted)"),
    ],
)
def test_the_transformer_turns_the_event_into_a_failure_mark_failed_records(
    template_json, status: str, reason: str
) -> None:
    [target] = _the_rule(template_json)["Targets"]
    payload = _transform(target["InputTransformer"], _sample(template_json, "wf-7", status))
    assert payload == failure_input("wf-7", status)

    repository, events = InMemoryAssessmentRepository(), InMemoryEventPublisher()
    inputs = AssessmentInputs(vin=VIN, color="white", mileage=30_000, estimate_usd=25_000)
    repository.create(open_assessment(inputs, 1, NOW, "wf-7"))
    repository.mark_status("wf-7", AssessmentStatus.PROCESSING, {AssessmentStatus.AWAITING_PHOTOS}, NOW)

    workflow_steps.mark_failed(workflow_steps.FailureInput.model_validate(payload), repository, events)

    failed = repository.get("wf-7")
    assert (failed.status, failed.failed_step, failed.failure_reason) == (
        AssessmentStatus.FAILED,
        "workflow",
        reason,
    )
    assert [e.event_id for e in events.events] == ["wf-7:FAILED"]


def test_timed_out_aborted_and_the_dead_letters_are_alarmed(template_json) -> None:
    alarms = {
        logical_id: resource["Properties"]
        for logical_id, resource in resources_of(template_json, "AWS::CloudWatch::Alarm").items()
    }
    by_metric = {a.get("MetricName"): a for a in alarms.values()}
    machine = {
        "Ref": next(
            k
            for k in resources_of(template_json, "AWS::StepFunctions::StateMachine")
            if k.startswith("WorkflowStateMachine")
        )
    }
    for metric in ("ExecutionsTimedOut", "ExecutionsAborted"):
        alarm = by_metric[metric]
        assert alarm["Namespace"] == "AWS/States" and alarm["Statistic"] == "Sum"
        assert alarm["Dimensions"] == [{"Name": "StateMachineArn", "Value": machine}]
        assert (alarm["Threshold"], alarm["ComparisonOperator"]) == (1, "GreaterThanOrEqualToThreshold")
        assert alarm["AlarmActions"]
    [queue] = [
        k
        for k in resources_of(template_json, "AWS::SQS::Queue")
        if k.startswith("WorkflowStoppedExecutionsDlq")
    ]
    [depth] = [
        a
        for a in alarms.values()
        if a.get("MetricName") == "ApproximateNumberOfMessagesVisible"
        and a["Dimensions"] == [{"Name": "QueueName", "Value": {"Fn::GetAtt": [queue, "QueueName"]}}]
    ]
    assert (depth["Threshold"], depth["ComparisonOperator"]) == (0, "GreaterThanThreshold")
    assert depth["AlarmActions"]


def test_the_dashboard_graphs_timed_out_and_aborted_executions(template_json) -> None:
    [dashboard] = resources_of(template_json, "AWS::CloudWatch::Dashboard").values()
    body = json.dumps(dashboard["Properties"]["DashboardBody"])
    assert "ExecutionsTimedOut" in body and "ExecutionsAborted" in body
