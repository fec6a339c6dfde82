"""`vehicle-assessment smoke`: each check against fakes, Stubber and moto; a table, non-zero on a failure."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from botocore.response import StreamingBody
from botocore.stub import Stubber

from tests.conftest import run_cli
from tests.remote.fake_stack import BEDROCK_GENERATOR, REGION, completed
from vehicle_assessment.adapters.aws.settings import OpenSearchSettings
from vehicle_assessment.aws_runtime.api import AssessmentView
from vehicle_assessment.aws_runtime.uploads import open_assessment
from vehicle_assessment.domain.models import AssessmentInputs, AssessmentStatus, EncoderIdentity
from vehicle_assessment.remote import commands
from vehicle_assessment.remote.errors import RemoteError
from vehicle_assessment.remote.smoke import (
    CheckResult,
    Outcome,
    SmokeServices,
    SmokeTargets,
    passed,
    render_table,
    run_smoke,
    targets_from_stack,
)

STACK = "VehicleAssessment"
ENDPOINT = "vda-encoder"
TABLE = "vda-assessments"
BUCKET = "vda-uploads"
MODEL_ID = "anthropic.claude-3-haiku-20240307-v1:0"
CONFIGURED = EncoderIdentity(
    model_name="ViT-L-14", pretrained="laion2b_s32b_b82k", untrained=False, dimension=4
)
SERVED = CONFIGURED.model_copy(update={"weights_fingerprint": "ab" * 32})
FUNCTION_ENVIRONMENTS = {
    "vda-analyse": {
        "TABLE_NAME": TABLE,
        "BUCKET_NAME": BUCKET,
        "SAGEMAKER": json.dumps({"endpoint_name": ENDPOINT, "identity": CONFIGURED.model_dump()}),
        "OPENSEARCH": json.dumps({"collection_endpoint": "https://abc.us-east-1.aoss.amazonaws.com"}),
    },
    "vda-describe": {
        "TABLE_NAME": TABLE,
        "BUCKET_NAME": BUCKET,
        "BEDROCK": json.dumps({"model_id": MODEL_ID}),
    },
    "vda-speak": {
        "TABLE_NAME": TABLE,
        "BUCKET_NAME": BUCKET,
        "POLLY": json.dumps({"voices": {"en": ["Joanna", "en-US"]}}),
    },
}


# --- the stack as CloudFormation and Lambda describe it --------------------------------------


class FakeCloudFormation:
    def describe_stacks(self, StackName: str) -> dict[str, Any]:
        if StackName != STACK:
            raise ClientError(
                {"Error": {"Code": "ValidationError", "Message": "does not exist"}}, "DescribeStacks"
            )
        return {
            "Stacks": [{"Outputs": [{"OutputKey": "ApiUrl", "OutputValue": "https://api.example/prod/"}]}]
        }

    def get_paginator(self, operation: str) -> Any:
        assert operation == "list_stack_resources"

        class Pages:
            def paginate(self, StackName: str) -> Iterator[dict[str, Any]]:
                yield {
                    "StackResourceSummaries": [
                        {"ResourceType": "AWS::Lambda::Function", "PhysicalResourceId": name}
                        for name in FUNCTION_ENVIRONMENTS
                    ]
                    + [{"ResourceType": "AWS::S3::Bucket", "PhysicalResourceId": BUCKET}]
                }

        return Pages()


class FakeLambda:
    def get_function_configuration(self, FunctionName: str) -> dict[str, Any]:
        return {"Environment": {"Variables": FUNCTION_ENVIRONMENTS[FunctionName]}}


def test_the_targets_are_what_the_deployed_functions_run_with() -> None:
    targets = targets_from_stack(FakeCloudFormation(), FakeLambda(), STACK, REGION)

    assert targets.outputs.api_url == "https://api.example/prod/"
    assert (targets.table_name, targets.bucket_name) == (TABLE, BUCKET)
    assert targets.sagemaker is not None and targets.sagemaker.endpoint_name == ENDPOINT
    assert (
        targets.opensearch is not None
        and targets.opensearch.collection_endpoint == "abc.us-east-1.aoss.amazonaws.com"
    )
    assert targets.bedrock is not None and targets.bedrock.model_id == MODEL_ID
    assert list(targets.polly.voices) == ["en"]


def test_an_unknown_stack_is_a_clear_error() -> None:
    with pytest.raises(RemoteError, match="cannot read stack Other: ValidationError: does not exist"):
        targets_from_stack(FakeCloudFormation(), FakeLambda(), "Other", REGION)


# --- the services --------------------------------------------------------------------------------


def _stream(raw: bytes) -> StreamingBody:
    return StreamingBody(io.BytesIO(raw), len(raw))


class FakeSageMakerRuntime:
    def __init__(self, identity: EncoderIdentity = SERVED) -> None:
        self.identity = identity

    def invoke_endpoint(self, **params: Any) -> dict[str, Any]:
        count = len(json.loads(params["Body"])["images"])
        body = {"model": self.identity.model_dump(), "embeddings": [[1.0, 0.0, 0.0, 0.0]] * count}
        return {"Body": _stream(json.dumps(body).encode())}


class FakeBedrockRuntime:
    def __init__(self, error: str | None = None) -> None:
        self.error = error

    def converse(self, **params: Any) -> dict[str, Any]:
        if self.error:
            raise ClientError({"Error": {"Code": self.error, "Message": "no"}}, "Converse")
        return {
            "stopReason": "end_turn",
            "output": {"message": {"content": [{"text": "A silver 2003 Honda Accord."}]}},
        }


class FakePolly:
    def synthesize_speech(self, **params: Any) -> dict[str, Any]:
        return {"AudioStream": _stream(b"ID3fake-mp3")}


class FakeIndex:
    def __init__(self, identity: EncoderIdentity | None = SERVED, documents: int = 40) -> None:
        self.identity = identity
        self.documents = documents

    def count(self) -> int:
        return self.documents

    def close(self) -> None:
        return None


def _one_attempt(service: str) -> Any:
    new_client: Any = boto3.client  # typed per literal service name; this helper serves several
    return new_client(service, region_name=REGION, config=Config(retries={"total_max_attempts": 1}))


@dataclass
class World:
    """Every service answering as a healthy deployment does; a test breaks one."""

    endpoint_status: str = "InService"
    lifecycle: dict[str, Any] = field(default_factory=lambda: {"status": "ACTIVE"})
    runtime: FakeSageMakerRuntime = field(default_factory=FakeSageMakerRuntime)
    bedrock_runtime: FakeBedrockRuntime = field(default_factory=FakeBedrockRuntime)
    index: FakeIndex = field(default_factory=FakeIndex)
    finish: Any = completed

    def services(self, s3: Any, dynamodb: Any) -> SmokeServices:
        sagemaker = _one_attempt("sagemaker")
        sagemaker_stub = Stubber(sagemaker)
        sagemaker_stub.add_response(
            "describe_endpoint",
            {
                "EndpointName": ENDPOINT,
                "EndpointArn": f"arn:aws:sagemaker:{REGION}:123456789012:endpoint/{ENDPOINT}",
                "EndpointConfigName": "cfg",
                "EndpointStatus": self.endpoint_status,
                "CreationTime": datetime(2026, 1, 1, tzinfo=UTC),
                "LastModifiedTime": datetime(2026, 1, 1, tzinfo=UTC),
            },
            {"EndpointName": ENDPOINT},
        )
        sagemaker_stub.activate()
        bedrock = _one_attempt("bedrock")
        bedrock_stub = Stubber(bedrock)
        bedrock_stub.add_response(
            "get_foundation_model",
            {
                "modelDetails": {
                    "modelArn": f"arn:aws:bedrock:{REGION}::foundation-model/{MODEL_ID}",
                    "modelId": MODEL_ID,
                    "modelLifecycle": self.lifecycle,
                }
            },
            {"modelIdentifier": MODEL_ID},
        )
        bedrock_stub.activate()
        clients = {
            "sagemaker": sagemaker,
            "sagemaker-runtime": self.runtime,
            "bedrock": bedrock,
            "bedrock-runtime": self.bedrock_runtime,
            "polly": FakePolly(),
            "s3": s3,
            "dynamodb": dynamodb,
        }
        finish = self.finish

        def submit() -> AssessmentView:
            opened = open_assessment(AssessmentInputs(vin="1HGCM82633A004352"), 3, datetime.now(UTC))
            view = finish(AssessmentView(**opened.model_dump(), received_photos=3))
            for clip in view.audio:
                if clip.object_key:
                    s3.put_object(Bucket=BUCKET, Key=clip.object_key, Body=b"ID3")
            return view

        def open_index(settings: OpenSearchSettings, identity: EncoderIdentity | None) -> FakeIndex:
            assert identity == CONFIGURED
            return self.index

        return SmokeServices(client=clients.__getitem__, open_index=open_index, submit=submit)


@pytest.fixture
def aws() -> Iterator[tuple[Any, Any]]:
    from moto import mock_aws

    from vehicle_assessment.adapters.aws.dynamodb import table_definition

    with mock_aws():
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket=BUCKET)
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        dynamodb.create_table(**table_definition(TABLE))
        yield s3, dynamodb


def smoke(world: World, aws: tuple[Any, Any]) -> list[CheckResult]:
    targets: SmokeTargets = targets_from_stack(FakeCloudFormation(), FakeLambda(), STACK, REGION)
    return run_smoke(targets, world.services(*aws))


def outcome(results: list[CheckResult], name: str) -> CheckResult:
    return next(r for r in results if r.name == name)


def test_a_healthy_deployment_passes_every_check(aws: tuple[Any, Any]) -> None:
    results = smoke(World(), aws)

    print("\n" + render_table(results))  # the table shown in the issue note
    assert [r.outcome for r in results] == [Outcome.PASS] * len(results), render_table(results)
    assert [r.name for r in results] == [
        "SageMaker endpoint",
        "OpenSearch index",
        "Bedrock model",
        "Bedrock describes",
        "Polly Joanna (en)",
        "DynamoDB table",
        "S3 bucket",
        "submit end to end",
    ]
    assert SERVED.describe() in outcome(results, "SageMaker endpoint").detail
    assert passed(results)


def test_the_bedrock_fallback_is_a_failure(aws: tuple[Any, Any]) -> None:
    # The describer keeps the pipeline going with the template text; after a deploy that is a failure.
    results = smoke(World(bedrock_runtime=FakeBedrockRuntime(error="AccessDeniedException")), aws)

    print("\n" + render_table(results))
    result = outcome(results, "Bedrock describes")
    assert result.outcome == Outcome.FAIL
    assert "fell back to template" in result.detail and "AccessDeniedException" in result.detail
    assert "model access" in result.hint
    assert not passed(results)
    assert "hint: enable model access" in render_table(results)


def test_an_assessment_described_by_the_template_fails_the_end_to_end_check(aws: tuple[Any, Any]) -> None:
    def template_described(view: AssessmentView) -> AssessmentView:
        done = completed(view)
        [text] = done.descriptions
        fallback = text.model_copy(
            update={"generator": "template", "note": "Bedrock failed (ThrottlingException)"}
        )
        return done.model_copy(update={"descriptions": [fallback]})

    results = smoke(World(finish=template_described), aws)

    result = outcome(results, "submit end to end")
    assert result.outcome == Outcome.FAIL
    assert "did not come from Bedrock" in result.detail and "ThrottlingException" in result.detail


def test_an_assessment_that_does_not_complete_fails_the_end_to_end_check(aws: tuple[Any, Any]) -> None:
    failed = World(
        finish=lambda view: view.model_copy(
            update={"status": AssessmentStatus.FAILED, "failure_reason": "encoder unavailable"}
        )
    )
    result = outcome(smoke(failed, aws), "submit end to end")

    assert result.outcome == Outcome.FAIL
    assert "ended FAILED: encoder unavailable" in result.detail


def test_a_legacy_model_is_a_warning_with_its_end_of_life_date(aws: tuple[Any, Any]) -> None:
    legacy = {"status": "LEGACY", "endOfLifeTime": datetime(2026, 12, 31, tzinfo=UTC)}

    results = smoke(World(lifecycle=legacy), aws)

    result = outcome(results, "Bedrock model")
    assert (result.outcome, result.detail) == (Outcome.WARN, f"{MODEL_ID} LEGACY, end of life 2026-12-31")
    assert passed(results)  # a warning alone does not fail the deploy


def test_an_endpoint_not_in_service_fails(aws: tuple[Any, Any]) -> None:
    result = outcome(smoke(World(endpoint_status="Creating"), aws), "SageMaker endpoint")

    assert (result.outcome, result.detail) == (Outcome.FAIL, f"{ENDPOINT} is Creating, not InService")


def test_an_endpoint_serving_another_model_fails(aws: tuple[Any, Any]) -> None:
    other = FakeSageMakerRuntime(SERVED.model_copy(update={"model_name": "ViT-B-32"}))

    result = outcome(smoke(World(runtime=other), aws), "SageMaker endpoint")

    assert result.outcome == Outcome.FAIL and "configured for" in result.detail


@pytest.mark.parametrize(
    ("index", "reason"),
    [
        (FakeIndex(identity=None), "does not exist or records no encoder"),
        (FakeIndex(documents=0), "holds no reference photos"),
        (
            FakeIndex(identity=SERVED.model_copy(update={"weights_fingerprint": "cd" * 32})),
            "the endpoint serves",
        ),
    ],
)
def test_an_index_missing_empty_or_of_other_weights_fails(
    aws: tuple[Any, Any], index: FakeIndex, reason: str
) -> None:
    result = outcome(smoke(World(index=index), aws), "OpenSearch index")

    assert result.outcome == Outcome.FAIL and reason in result.detail


def test_a_missing_table_fails(aws: tuple[Any, Any]) -> None:
    aws[1].delete_table(TableName=TABLE)

    result = outcome(smoke(World(), aws), "DynamoDB table")

    assert result.outcome == Outcome.FAIL and "ResourceNotFoundException" in result.detail


def test_the_command_prints_the_table_and_exits_non_zero_on_a_failure(
    aws: tuple[Any, Any], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    world = World(bedrock_runtime=FakeBedrockRuntime(error="ThrottlingException"))
    targets = targets_from_stack(FakeCloudFormation(), FakeLambda(), STACK, REGION)
    monkeypatch.setattr(commands, "smoke_from_args", lambda args: (targets, world.services(*aws)))

    code, out, _ = run_cli(capsys, "smoke", "--stack", STACK)

    assert code == 6
    assert out.splitlines()[0].split() == ["RESULT", "CHECK", "DETAIL"]
    assert "FAIL    Bedrock describes" in out
    assert out.splitlines()[-1] == "7 passed, 0 warnings, 1 failed"


def test_smoke_needs_the_stack_name(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, "smoke")

    assert code == 3 and "give --stack" in err


def test_the_description_generator_marks_bedrock() -> None:
    # The end-to-end check relies on this prefix: the describer's own generator name.
    assert BEDROCK_GENERATOR.startswith("bedrock:")


def test_the_command_wiring_reads_the_stack_and_submits_the_three_sample_photos(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fakes = {"cloudformation": FakeCloudFormation(), "lambda": FakeLambda()}
    monkeypatch.setattr(commands, "_aws_client", lambda service, region: fakes[service])
    submitted: dict[str, Any] = {}

    def fake_submit(args: Any, request: Any, photos: Any, environ: Any, outputs: Any) -> AssessmentView:
        submitted.update(request=request, photos=photos, outputs=outputs)
        raise RemoteError("stopped here")

    monkeypatch.setattr(commands, "submit_from_args", fake_submit)
    args = commands_parser_args(
        "smoke", "--stack", STACK, "--region", REGION, "--api-url", "http://127.0.0.1:1/x/"
    )

    targets, services = commands.smoke_from_args(args, environ={})
    with pytest.raises(RemoteError):
        services.submit()

    assert targets.table_name == TABLE and targets.region == REGION
    assert submitted["outputs"].api_url == "http://127.0.0.1:1/x/"  # the flag over the ApiUrl output
    assert [p.name for p in submitted["photos"]] == [
        "0003_JPEG.jpg",
        "0303_JPEG.jpg",
        "red_44070187_5e5a50b675_b.jpg",
    ]
    assert all(p.is_file() for p in submitted["photos"])
    assert submitted["request"].vin == "1HGCM82633A004352"


def commands_parser_args(*argv: str) -> Any:
    from vehicle_assessment.cli import build_parser

    return build_parser().parse_args(list(argv))
