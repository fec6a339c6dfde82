"""WorkflowStarter on a Step Functions state machine: one execution per assessment, ever."""

from __future__ import annotations

import json
from typing import Any

from vehicle_assessment.adapters.aws.errors import error_code


class StepFunctionsStarter:
    def __init__(self, client: Any, state_machine_arn: str) -> None:
        self.client = client
        self.state_machine_arn = state_machine_arn

    def start(self, assessment_id: str) -> bool:
        try:
            self.client.start_execution(
                stateMachineArn=self.state_machine_arn,
                # The name makes the start idempotent: one execution per assessment, ever.
                name=assessment_id,
                input=json.dumps({"assessment_id": assessment_id}),
            )
        except Exception as exc:
            # A running execution of that name answers success; a finished one raises this.
            if error_code(exc) == "ExecutionAlreadyExists":
                return False
            raise
        return True
