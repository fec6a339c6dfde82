"""moto-backed AWS (S3, SQS, DynamoDB, Step Functions), fake Lambda context, and in-memory fakes
for the encoder, reference index and speaker. No network: moto intercepts botocore in-process."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from vehicle_assessment.domain.models import (
    DamageType,
    EncoderIdentity,
    Neighbour,
    ReferenceLabel,
    Severity,
)
from vehicle_assessment.ports import SpeechClip

# Powertools reads these when the observability objects are built, once per process.
os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "vehicle-assessment")
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "VehicleAssessmentTest")
os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")

# Building the Tracer imports the X-Ray SDK, whose emitter creates a UDP socket (it sends nothing
# while tracing is disabled). Do it now, at collection, before pytest-socket guards each test.
from functions.observability import tracer

tracer.get()


REGION = "us-east-1"
ACCOUNT = "123456789012"
TABLE = "assessments-test"
BUCKET = "assessment-photos-test"
STATE_MACHINE = "assessment-workflow"
STATE_MACHINE_ARN = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{STATE_MACHINE}"
EVENT_BUS = "assessment-events-test"
VIN = "1FTMW1T88MFA00001"  # a valid 2021 Ford F-150 VIN (check digit ok)
PHOTOS = Path(__file__).resolve().parents[1] / "data" / "photos"
NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        "POWERTOOLS_SERVICE_NAME": "vehicle-assessment",
        "POWERTOOLS_METRICS_NAMESPACE": "VehicleAssessmentTest",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "TABLE_NAME": TABLE,
        "BUCKET_NAME": BUCKET,
        "STATE_MACHINE_ARN": STATE_MACHINE_ARN,
        "EVENT_BUS_NAME": EVENT_BUS,
        "VPIC__ENABLED": "false",  # no network: the VIN itself is decoded
        "EXPECTED_PHOTOS": "3",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)


def _clear_caches() -> None:
    # Handlers cache config and clients per container; each test is a fresh container.
    # factory.boto3_session stays: one session (credentials are the fake ones) keeps its parsed
    # service models, which saves ~0.1 s per client per test. A handler module not imported yet
    # has nothing cached, so the registry of imported getters is all there is to clear.
    from functions.container_cache import reset_all

    reset_all()


@dataclass
class Aws:
    s3: Any
    sqs: Any
    sfn: Any
    dynamodb: Any
    table: Any
    finished_queue_url: str = ""

    def executions(self) -> list[dict[str, Any]]:
        return self.sfn.list_executions(stateMachineArn=STATE_MACHINE_ARN)["executions"]

    def finished_events(self) -> list[dict[str, Any]]:
        """The events a rule on the bus (matching our source) delivered to an SQS queue, in order."""
        messages = self.sqs.receive_message(QueueUrl=self.finished_queue_url, MaxNumberOfMessages=10)
        return [json.loads(m["Body"]) for m in messages.get("Messages", [])]

    def put_photo(self, key: str, data: bytes, metadata: dict[str, str] | None = None) -> None:
        self.s3.put_object(Bucket=BUCKET, Key=key, Body=data, Metadata=metadata or {})


@pytest.fixture
def aws(aws_env: None) -> Iterator[Aws]:
    from moto import mock_aws

    from vehicle_assessment.adapters.aws.dynamodb import table_definition
    from vehicle_assessment.aws_runtime.factory import boto3_session

    _clear_caches()
    session = boto3_session()
    with mock_aws():
        s3 = session.client("s3", region_name=REGION)
        s3.create_bucket(Bucket=BUCKET)
        dynamodb = session.resource("dynamodb", region_name=REGION)
        dynamodb.meta.client.create_table(**table_definition(TABLE))
        sfn = session.client("stepfunctions", region_name=REGION)
        sfn.create_state_machine(
            name=STATE_MACHINE,
            definition=json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}}),
            roleArn=f"arn:aws:iam::{ACCOUNT}:role/workflow",
        )
        sqs = session.client("sqs", region_name=REGION)
        yield Aws(
            s3=s3,
            sqs=sqs,
            sfn=sfn,
            dynamodb=dynamodb,
            table=dynamodb.Table(TABLE),
            finished_queue_url=_subscribe_to_finished_events(
                session.client("events", region_name=REGION), sqs
            ),
        )
    _clear_caches()


def _subscribe_to_finished_events(events: Any, sqs: Any) -> str:
    """The custom bus, and what a consumer would add: a rule on our source with an SQS target."""
    from vehicle_assessment.domain.events import EVENT_SOURCE

    events.create_event_bus(Name=EVENT_BUS)
    queue_url = sqs.create_queue(QueueName="finished-events")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    events.put_rule(
        Name="finished", EventBusName=EVENT_BUS, EventPattern=json.dumps({"source": [EVENT_SOURCE]})
    )
    events.put_targets(Rule="finished", EventBusName=EVENT_BUS, Targets=[{"Id": "queue", "Arn": queue_arn}])
    return queue_url


# boto3 Table method -> the IAM action it needs.
_TABLE_ACTIONS = {
    "get_item": "dynamodb:GetItem",
    "put_item": "dynamodb:PutItem",
    "update_item": "dynamodb:UpdateItem",
    "query": "dynamodb:Query",
    "scan": "dynamodb:Scan",
    "delete_item": "dynamodb:DeleteItem",
    "batch_writer": "dynamodb:BatchWriteItem",
}


class GrantedTable:
    """A boto3 Table that allows only what the function's role is granted (``TABLE_ACCESS``), as IAM
    would: the handlers' tests then fail on a call the deployed role could not make."""

    def __init__(self, table: Any, user: str) -> None:
        from vehicle_assessment.adapters.aws.dynamodb import TABLE_ACCESS

        self._table, self._user, self._access = table, user, TABLE_ACCESS[user]

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._table, name)
        action = _TABLE_ACTIONS.get(name)
        if action is None:
            return attribute

        def call(*args: Any, **kwargs: Any) -> Any:
            index = kwargs.get("IndexName")
            if action not in self._access.actions or (
                index is not None and index not in self._access.indexes
            ):
                from botocore.exceptions import ClientError

                what = f"{action} on index {index}" if index else action
                raise ClientError(
                    {"Error": {"Code": "AccessDeniedException", "Message": f"{self._user} may not {what}"}},
                    action.split(":")[1],
                )
            return attribute(*args, **kwargs)

        return call


@pytest.fixture(autouse=True)
def least_privilege_tables(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every repository a handler builds holds only its role's DynamoDB grants (by its config type)."""
    from vehicle_assessment.aws_runtime import config, factory

    build = factory.build_repository
    users = (
        (config.UploadConfig, "upload_trigger"),
        (config.SweeperConfig, "sweeper"),
        (config.ApiConfig, "api"),
        (config.WorkflowConfig, "workflow_step"),
        (config.ReferenceFeedbackConfig, "reference_feedback"),
    )

    def granted(function_config: Any) -> Any:
        repository = build(function_config)
        user = next(name for kind, name in users if isinstance(function_config, kind))
        repository.table = GrantedTable(repository.table, user)
        return repository

    monkeypatch.setattr(factory, "build_repository", granted)
    build_registry = factory.build_photo_registry

    def granted_registry(function_config: Any) -> Any:
        registry: Any = build_registry(function_config)
        if registry is not None:
            # The analyse step keeps the registry; the reference feedback function only reads it.
            user = (
                "reference_feedback"
                if isinstance(function_config, config.ReferenceFeedbackConfig)
                else "photo_registry"
            )
            registry.table = GrantedTable(registry.table, user)
        return registry

    monkeypatch.setattr(factory, "build_photo_registry", granted_registry)


@pytest.fixture
def observed(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """What the handler logged (records) and which metrics it added (name -> count)."""
    from tests.aws_runtime.observed import observe

    yield from observe(monkeypatch)


@pytest.fixture
def repository(aws: Aws):
    from vehicle_assessment.adapters.aws.dynamodb import DynamoAssessmentRepository

    return DynamoAssessmentRepository(aws.table)


@pytest.fixture(scope="session")
def jpeg_bytes() -> bytes:
    return (PHOTOS / "damaged_0003_JPEG.jpg").read_bytes()


@pytest.fixture(scope="session")
def other_jpeg_bytes() -> bytes:
    return (PHOTOS / "undamaged_white_6150526860_fd9cd2c04c_b.jpg").read_bytes()


# --- Lambda context and events -----------------------------------------------------------------


@dataclass
class FakeLambdaContext:
    function_name: str = "test-function"
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:test-function"
    aws_request_id: str = "0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b"
    log_group_name: str = "/aws/lambda/test-function"
    log_stream_name: str = "2025/06/01/[$LATEST]abcdef"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


@pytest.fixture
def lambda_context() -> FakeLambdaContext:
    return FakeLambdaContext()


def s3_notification(
    key_encoded: str, size: int, event_name: str = "ObjectCreated:Post", version_id: str | None = None
) -> dict[str, Any]:
    """An S3 event notification as S3 sends it (keys URL-encoded; versionId on a versioned bucket)."""
    return {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "awsRegion": REGION,
                "eventTime": "2025-06-01T12:00:00.000Z",
                "eventName": event_name,
                "s3": {
                    "s3SchemaVersion": "1.0",
                    "configurationId": "photo-uploads",
                    "bucket": {"name": BUCKET, "arn": f"arn:aws:s3:::{BUCKET}"},
                    "object": {
                        "key": key_encoded,
                        "size": size,
                        "eTag": "0123456789abcdef",
                        "sequencer": "0A1B",
                        **({"versionId": version_id} if version_id is not None else {}),
                    },
                },
            }
        ]
    }


def sqs_event(bodies: Sequence[dict[str, Any] | str]) -> dict[str, Any]:
    return {
        "Records": [
            {
                "messageId": f"msg-{i}",
                "receiptHandle": f"handle-{i}",
                "body": body if isinstance(body, str) else json.dumps(body),
                "attributes": {
                    "ApproximateReceiveCount": "1",
                    "SentTimestamp": "1748779200000",
                    "SenderId": "AIDAEXAMPLE",
                    "ApproximateFirstReceiveTimestamp": "1748779200001",
                },
                "messageAttributes": {},
                "md5OfBody": "d41d8cd98f00b204e9800998ecf8427e",
                "eventSource": "aws:sqs",
                "eventSourceARN": f"arn:aws:sqs:{REGION}:{ACCOUNT}:photo-uploads",
                "awsRegion": REGION,
            }
            for i, body in enumerate(bodies)
        ]
    }


# What API Gateway's Cognito authorizer hands the Lambda for a signed-in person's access token
# (REST API: every claim a string, arrays flattened with commas). Admins may call every route.
ADMIN_CLAIMS: dict[str, str] = {
    "sub": "0f6e8a52-1111-4c2b-9d0e-5a7f00000001",
    "username": "admin-user",
    "cognito:groups": "admin",
    "token_use": "access",
    "scope": "aws.cognito.signin.user.admin",
    "client_id": "publicclient",
}


def rest_event(
    method: str,
    path: str,
    body: Any = None,
    path_parameters: dict[str, str] | None = None,
    query: dict[str, str] | None = None,
    resource: str | None = None,
    claims: Mapping[str, Any] | None = ADMIN_CLAIMS,
    headers: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """An API Gateway REST (v1) proxy integration event, signed in as ``claims`` (None: no authorizer)."""
    request_headers = {
        "Content-Type": "application/json",
        "Host": "abc123.execute-api.us-east-1.amazonaws.com",
        **(headers or {}),
    }
    return {
        "resource": resource or path,
        "path": path,
        "httpMethod": method,
        "headers": request_headers,
        "multiValueHeaders": {k: [v] for k, v in request_headers.items()},
        "queryStringParameters": query,
        "multiValueQueryStringParameters": {k: [v] for k, v in query.items()} if query else None,
        "pathParameters": path_parameters,
        "stageVariables": None,
        "requestContext": {
            "resourcePath": resource or path,
            "httpMethod": method,
            "path": f"/prod{path}",
            "stage": "prod",
            "requestId": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef",
            "accountId": ACCOUNT,
            "apiId": "abc123",
            "protocol": "HTTP/1.1",
            "identity": {"sourceIp": "203.0.113.10", "userAgent": "pytest"},
            "requestTimeEpoch": 1748779200000,
            **({"authorizer": {"claims": dict(claims)}} if claims is not None else {}),
        },
        "body": body if body is None or isinstance(body, str) else json.dumps(body),
        "isBase64Encoded": False,
    }


# --- fakes ------------------------------------------------------------------------------------

IDENTITY = EncoderIdentity(model_name="fake-clip", pretrained=None, untrained=True, dimension=4)


class FakeEncoder:
    identity = IDENTITY

    def __init__(self) -> None:
        self.batches: list[int] = []

    def embed(self, images: Sequence[Image.Image]) -> np.ndarray:
        self.batches.append(len(images))
        rows = np.array([[1.0, 0.0, 0.0, 0.0]] * len(images), dtype=np.float32)
        return rows


class FakeIndex:
    identity = IDENTITY

    def search(self, vectors: np.ndarray, k: int) -> list[list[Neighbour]]:
        dent = ReferenceLabel(damaged=True, damage_type=DamageType.DENT, severity=Severity.MODERATE)
        return [
            [
                Neighbour(
                    reference_id=f"ref-{i}", source=f"ref/{i}.jpg", similarity=0.9 - 0.01 * i, label=dent
                )
                for i in range(min(k, 5))
            ]
            for _ in range(len(vectors))
        ]


class FakeSpeaker:
    def synthesize(self, text: str, language: str) -> SpeechClip:
        return SpeechClip(audio=b"ID3fake-mp3", content_type="audio/mpeg", extension="mp3")
