"""End to end: the SYNTHESIZED state machine, executed by moto, calling the REAL Lambda handlers.

    photos → S3 (moto) → notification → SQS (moto) → upload handler → StartExecution
           → moto runs the template's definition → each Task "invokes" a moto Lambda
           → the invocation is routed to the handler the template names → DynamoDB (moto)

moto's Lambda without Docker only echoes its input, so ``LambdaSimpleBackend.invoke`` is patched
to import and call the function's own ``Handler`` (an exception becomes an Unhandled function
error with ``errorType``, as Lambda reports it). The encoder, reference index, describer and
speaker are the in-memory fakes of the runtime tests, injected through the factory, and so is the
event publisher: one in-memory bus shared by every function, on which the test sees the events.
"""

from __future__ import annotations

import importlib
import io
import json
import threading
import time
import traceback
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.aws_runtime.conftest import (
    FakeEncoder,
    FakeIndex,
    FakeLambdaContext,
    FakeSpeaker,
    rest_event,
)
from tests.infra.cfn import (
    ACCOUNT,
    REGION,
    placeholder,
    resolve_value,
    resources_of,
    state_machine_definition,
)

pytestmark = pytest.mark.slow  # synthesizes the CDK app and runs it end to end on moto

REPO_ROOT = Path(__file__).resolve().parents[2]
PHOTOS = [
    REPO_ROOT / "tests/data/photos/damaged_0003_JPEG.jpg",
    REPO_ROOT / "tests/data/photos/undamaged_white_6150526860_fd9cd2c04c_b.jpg",
    REPO_ROOT / "sample_data/queries/undamaged/red_44070187_5e5a50b675_b.jpg",
]
VIN = "1FTMW1T88MFA00001"
TABLE, BUCKET, QUEUE = "e2e-assessments", "e2e-uploads", "e2e-upload-events"
TERMINAL = {"SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"}


class FailingDescriber:
    def describe(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("Bedrock is unavailable in this test")


# moto runs Map iterations on threads, but its in-memory backends are not thread-safe ("dictionary
# changed size during iteration" inside DynamoDB update_item was seen here); real AWS services are.
# Handlers therefore run one at a time: the workflow's logic is under test, not moto's locking.
_HANDLER_LOCK = threading.Lock()


def _invoke_real_handler(
    self: Any, function_name: str, qualifier: str | None, body: Any, headers: Any, response_headers: Any
) -> bytes:
    """Replaces moto's echo: run the handler the function is configured with, in-process."""
    fn = self.get_function(function_name, qualifier)
    module_name, _, attribute = fn.handler.rpartition(".")
    handler = getattr(importlib.import_module(module_name), attribute)
    event = json.loads(body) if body else {}
    context = FakeLambdaContext(function_name=fn.function_name, invoked_function_arn=fn.function_arn)
    try:
        with _HANDLER_LOCK:
            result = handler(event, context)
    except Exception as exc:
        # What Lambda returns for an uncaught exception; Step Functions names the error errorType.
        response_headers["x-amz-function-error"] = "Unhandled"
        return json.dumps(
            {
                "errorType": type(exc).__name__,
                "errorMessage": str(exc),
                "stackTrace": traceback.format_tb(exc.__traceback__),
            }
        ).encode()
    return json.dumps(result).encode()


class Harness:
    def __init__(self, session: Any, template: dict[str, Any]) -> None:
        self.s3 = session.client("s3", region_name=REGION)
        self.sqs = session.client("sqs", region_name=REGION)
        self.sfn = session.client("stepfunctions", region_name=REGION)
        self.lambda_ = session.client("lambda", region_name=REGION)
        self.iam = session.client("iam", region_name=REGION)
        self.template = template
        self.function_arns: dict[str, str] = {}
        self.bus: Any = None  # the in-memory event publisher every function is given

    def deploy(self) -> None:
        from vehicle_assessment.adapters.aws.dynamodb import table_definition

        self.s3.create_bucket(Bucket=BUCKET)
        self.queue_url = self.sqs.create_queue(QueueName=QUEUE)["QueueUrl"]
        queue_arn = self.sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        # The same prefixes the template's Custom::S3BucketNotifications configures.
        [notifications] = resources_of(self.template, "Custom::S3BucketNotifications").values()
        queue_configs = notifications["Properties"]["NotificationConfiguration"]["QueueConfigurations"]
        self.s3.put_bucket_notification_configuration(
            Bucket=BUCKET,
            NotificationConfiguration={
                "QueueConfigurations": [
                    {"QueueArn": queue_arn, "Events": c["Events"], "Filter": c["Filter"]}
                    for c in queue_configs
                ]
            },
        )
        import boto3

        boto3.resource("dynamodb", region_name=REGION).meta.client.create_table(**table_definition(TABLE))
        role = self.iam.create_role(RoleName="e2e-lambda", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
        archive = io.BytesIO()
        with zipfile.ZipFile(archive, "w") as zf:
            zf.writestr("placeholder.py", "")  # never run: invocations go to the real handler
        for logical_id, fn in resources_of(self.template, "AWS::Lambda::Function").items():
            handler = fn["Properties"].get("Handler", "")
            if not handler.startswith("functions."):
                continue
            created = self.lambda_.create_function(
                FunctionName=logical_id,
                Runtime="python3.12",
                Role=role,
                Handler=handler,
                Code={"ZipFile": archive.getvalue()},
            )
            self.function_arns[logical_id] = created["FunctionArn"]
        # The workflow invokes each function's SnapStart alias: publish a version and point it there.
        for logical_id, alias in resources_of(self.template, "AWS::Lambda::Alias").items():
            function = alias["Properties"]["FunctionName"]["Ref"]
            version = self.lambda_.publish_version(FunctionName=function)["Version"]
            self.function_arns[logical_id] = self.lambda_.create_alias(
                FunctionName=function, Name=alias["Properties"]["Name"], FunctionVersion=version
            )["AliasArn"]

        fallback = placeholder(self.template)

        def resolver(logical_id: str, attribute: str) -> str:
            return self.function_arns.get(logical_id) or fallback(logical_id, attribute)

        definition = state_machine_definition(self.template, resolver)
        self.state_machine_arn = self.sfn.create_state_machine(
            name="e2e-workflow", definition=definition, roleArn=f"arn:aws:iam::{ACCOUNT}:role/e2e-sfn"
        )["stateMachineArn"]

    def environment(self) -> dict[str, str]:
        """The union of the template's function variables, with this harness's resource names."""
        env: dict[str, str] = {}
        for fn in resources_of(self.template, "AWS::Lambda::Function").values():
            if fn["Properties"].get("Handler", "").startswith("functions."):
                variables = fn["Properties"].get("Environment", {}).get("Variables", {})
                env.update(
                    {k: str(v) for k, v in resolve_value(variables, placeholder(self.template)).items()}
                )
        env.update(
            TABLE_NAME=TABLE,
            BUCKET_NAME=BUCKET,
            STATE_MACHINE_ARN=self.state_machine_arn,
            VPIC__ENABLED="false",  # no network: the VIN alone is decoded
            AWS_REGION=REGION,
        )
        return env

    def upload(self, batch: str) -> str:
        from vehicle_assessment.aws_runtime.uploads import incoming_assessment_id

        metadata = {
            "expected-photos": str(len(PHOTOS)),
            "color": "Oxford White",
            "mileage": "48200",
            "estimate-usd": "38500",
        }
        for n, path in enumerate(PHOTOS, start=1):
            self.s3.put_object(
                Bucket=BUCKET,
                Key=f"incoming/{VIN}/{batch}/{n}.jpg",
                Body=path.read_bytes(),
                Metadata=metadata,
            )
        return incoming_assessment_id(VIN, batch)

    def deliver_notifications(self) -> dict[str, Any]:
        """Build the Lambda SQS event from what S3 put in the queue, and run the upload handler."""
        from functions import upload_trigger

        messages = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10).get(
            "Messages", []
        )
        records = [
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": {
                    "ApproximateReceiveCount": "1",
                    "SentTimestamp": "1748779200000",
                    "SenderId": "s3",
                    "ApproximateFirstReceiveTimestamp": "1748779200001",
                },
                "messageAttributes": {},
                "md5OfBody": m["MD5OfBody"],
                "eventSource": "aws:sqs",
                "eventSourceARN": f"arn:aws:sqs:{REGION}:{ACCOUNT}:{QUEUE}",
                "awsRegion": REGION,
            }
            for m in messages
            if "Records" in json.loads(m["Body"])  # skip S3's s3:TestEvent
        ]
        assert len(records) == len(PHOTOS)
        return upload_trigger.handler({"Records": records}, FakeLambdaContext())

    def wait(self, assessment_id: str, timeout_s: float = 30.0) -> dict[str, Any]:
        arn = self.state_machine_arn.replace(":stateMachine:", ":execution:") + f":{assessment_id}"
        deadline = time.monotonic() + timeout_s
        while True:
            execution = self.sfn.describe_execution(executionArn=arn)
            if execution["status"] in TERMINAL or time.monotonic() > deadline:
                return execution
            time.sleep(0.1)


@pytest.fixture
def harness(template_json: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> Iterator[Harness]:
    import boto3
    from moto import mock_aws
    from moto.awslambda_simple.models import LambdaSimpleBackend

    from functions import container_cache
    from vehicle_assessment.adapters.memory import InMemoryEventPublisher
    from vehicle_assessment.aws_runtime import factory
    from vehicle_assessment.domain.description import TemplateDescriber

    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setattr(LambdaSimpleBackend, "invoke", _invoke_real_handler)
    monkeypatch.setattr(factory, "build_encoder", lambda config: FakeEncoder())
    monkeypatch.setattr(factory, "build_reference_index", lambda config: FakeIndex())
    monkeypatch.setattr(factory, "build_describer", lambda config, **_: TemplateDescriber())
    monkeypatch.setattr(factory, "build_speaker", lambda config: FakeSpeaker())
    bus = InMemoryEventPublisher()
    monkeypatch.setattr(factory, "build_event_publisher", lambda config: bus)

    def clear_caches() -> None:
        container_cache.reset_all()

    clear_caches()
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": False}}):
        harness = Harness(boto3.Session(), template_json)
        harness.deploy()
        for name, value in harness.environment().items():
            monkeypatch.setenv(name, value)
        harness.clear_caches = clear_caches  # type: ignore[attr-defined]
        harness.bus = bus
        yield harness
    clear_caches()


def _repository():
    from functions import workflow_deps

    return workflow_deps.get_repository()


def test_three_photos_run_the_synthesized_workflow_to_a_stored_assessment(harness: Harness) -> None:
    from functions import api

    assessment_id = harness.upload("batch-ok")
    result = harness.deliver_notifications()
    assert result == {"batchItemFailures": []}

    execution = harness.wait(assessment_id)
    assert execution["status"] == "SUCCEEDED", execution
    assert json.loads(execution["output"])["status"] == "COMPLETED"

    stored = _repository().get(assessment_id)
    assert stored.status.value == "COMPLETED"
    assert len(stored.photos) == 3 and all(p.verdict is not None for p in stored.photos)
    # Store published exactly one event, the stored assessment's summary.
    [event] = harness.bus.events
    assert (event.event_id, event.status.value, event.vin) == (f"{assessment_id}:COMPLETED", "COMPLETED", VIN)
    assert stored.valuation is not None and event.adjusted_value_usd == stored.valuation.adjusted_value_usd
    assert event.photos.assessed == 3
    # Readable through the API handler, as a caller would read it.
    response = api.handler(
        rest_event(
            "GET",
            f"/assessments/{assessment_id}",
            path_parameters={"assessment_id": assessment_id},
            resource="/assessments/{assessment_id}",
        ),
        FakeLambdaContext(),
    )
    assert response["statusCode"] == 200, response
    assert json.loads(response["body"])["status"] == "COMPLETED"


def test_a_failing_step_marks_the_assessment_failed_with_the_reason(harness: Harness, monkeypatch) -> None:
    from vehicle_assessment.aws_runtime import factory

    monkeypatch.setattr(factory, "build_describer", lambda config, **_: FailingDescriber())
    harness.clear_caches()  # type: ignore[attr-defined]

    assessment_id = harness.upload("batch-fails")
    harness.deliver_notifications()
    execution = harness.wait(assessment_id)
    # Handled: MarkFailed recorded it, then the Fail state ends the execution (and alarms).
    assert execution["status"] == "FAILED", execution
    assert execution.get("error") == "AssessmentFailed"

    stored = _repository().get(assessment_id)
    assert stored.status.value == "FAILED"
    assert stored.failed_step == "Describe"
    assert "Bedrock is unavailable in this test" in (stored.failure_reason or "")
    [event] = harness.bus.events
    assert (event.event_id, event.failed_step) == (f"{assessment_id}:FAILED", "Describe")
    assert "Bedrock is unavailable in this test" in (event.failure_reason or "")


def test_a_refused_event_retries_the_store_step_and_the_execution_succeeds(harness: Harness) -> None:
    harness.bus.failures = 1  # EventBridge refuses Store's first publication

    assessment_id = harness.upload("batch-retry")
    harness.deliver_notifications()
    execution = harness.wait(assessment_id, timeout_s=60)

    # The template's Retry on EventPublishFailed ran Store again; the Catch never saw the error.
    assert execution["status"] == "SUCCEEDED", execution
    assert _repository().get(assessment_id).status.value == "COMPLETED"
    assert [e.event_id for e in harness.bus.events] == [f"{assessment_id}:COMPLETED"]
