"""What a client needs to know about a deployed stack: its CloudFormation outputs, by stack name or flags."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel, ConfigDict, Field

from vehicle_assessment.adapters.aws.clients import one_line_reason
from vehicle_assessment.remote.errors import RemoteError

__all__ = ["RemoteError", "StackOutputs", "describe_stack", "read_stack_outputs"]


class StackOutputs(BaseModel):
    """The stack outputs a client uses, under the output keys the CDK app declares."""

    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="ignore")

    api_url: str | None = Field(default=None, alias="ApiUrl")
    user_pool_id: str | None = Field(default=None, alias="UserPoolId")
    user_pool_client_id: str | None = Field(default=None, alias="UserPoolClientId")
    integration_client_id: str | None = Field(default=None, alias="IntegrationClientId")
    cognito_domain: str | None = Field(default=None, alias="CognitoDomain")
    upload_bucket_name: str | None = Field(default=None, alias="UploadBucketName")

    def overridden(self, **flags: str | None) -> StackOutputs:
        """These outputs with every flag that was given (not None) in place of the stack's value."""
        return self.model_copy(update={k: v for k, v in flags.items() if v is not None})

    def require(self, field: str, flag: str) -> str:
        value = getattr(self, field)
        if not value:
            key = type(self).model_fields[field].alias
            raise RemoteError(f"no {key}: give --stack with a stack that has the {key} output, or {flag}")
        return str(value)


def describe_stack(cloudformation: Any, stack_name: str) -> dict[str, Any]:
    try:
        stacks = cloudformation.describe_stacks(StackName=stack_name)["Stacks"]
    except (ClientError, BotoCoreError) as exc:
        raise RemoteError(f"cannot read stack {stack_name}: {one_line_reason(exc)}") from exc
    if not stacks:
        raise RemoteError(f"stack {stack_name} not found")
    stack: dict[str, Any] = stacks[0]
    return stack


def stack_output_values(cloudformation: Any, stack_name: str) -> dict[str, str]:
    """OutputKey → OutputValue of one stack (DescribeStacks)."""
    stack = describe_stack(cloudformation, stack_name)
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}


def read_stack_outputs(cloudformation: Any, stack_name: str) -> StackOutputs:
    return StackOutputs.model_validate(stack_output_values(cloudformation, stack_name))
