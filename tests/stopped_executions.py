"""Step Functions "Execution Status Change" events for an execution that timed out or was stopped.

Shaped as the example event of the AWS docs ("Automating Step Functions event delivery with
EventBridge", step-functions/latest/dg/eventbridge-integration.html), with this stack's names: the
execution is named after its assessment (aws_runtime/uploads.py). The infra test runs the rule's
input transformer on them; the handler tests take what it must produce.
"""

from __future__ import annotations

import json
from typing import Any

STATE_MACHINE_ARN = "arn:aws:states:us-east-1:123456789012:stateMachine:WorkflowStateMachine"


def execution_status_change(execution_name: str, status: str) -> dict[str, Any]:
    execution_arn = f"arn:aws:states:us-east-1:123456789012:execution:WorkflowStateMachine:{execution_name}"
    return {
        "version": "0",
        "id": "315c1398-40ff-a850-213b-158f73e60175",
        "detail-type": "Step Functions Execution Status Change",
        "source": "aws.states",
        "account": "123456789012",
        "time": "2026-11-27T14:00:00Z",
        "region": "us-east-1",
        "resources": [execution_arn],
        "detail": {
            "executionArn": execution_arn,
            "stateMachineArn": STATE_MACHINE_ARN,
            "name": execution_name,
            "status": status,
            "startDate": 1795788000000,
            "stopDate": 1795791600000,
            "input": json.dumps({"assessment_id": execution_name}),
            "inputDetails": {"included": True},
            "output": None,
            "outputDetails": None,
        },
    }


def failure_input(assessment_id: str, status: str) -> dict[str, Any]:
    """What the rule's input transformer hands MarkFailed for that event."""
    return {"assessment_id": assessment_id, "failed_step": "workflow", "execution_status": status}
