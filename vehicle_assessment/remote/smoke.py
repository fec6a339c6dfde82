"""`smoke`: after a deploy, each service the stack uses checked once, then one assessment end to end.

What is checked comes from the deployed stack itself, so the smoke test checks what the functions run
with rather than a second copy of the configuration:
  * CloudFormation outputs (DescribeStacks): the API, the Cognito clients and domain, for the end-to-end
    submit;
  * the stack's Lambda functions (ListStackResources, then Lambda GetFunctionConfiguration): their
    environment variables TABLE_NAME, BUCKET_NAME, SAGEMAKER, OPENSEARCH, BEDROCK and POLLY, parsed with
    the same settings models the functions parse them with.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

import numpy as np
from botocore.exceptions import BotoCoreError, ClientError
from PIL import Image
from pydantic import BaseModel, ConfigDict, ValidationError

from vehicle_assessment.adapters.aws.bedrock_describer import BedrockDescriber
from vehicle_assessment.adapters.aws.clients import one_line_reason
from vehicle_assessment.adapters.aws.polly_speaker import PollySpeaker
from vehicle_assessment.adapters.aws.sagemaker_encoder import PROBE_IMAGE_SIZE, SageMakerEncoder
from vehicle_assessment.adapters.aws.settings import (
    BedrockSettings,
    OpenSearchSettings,
    PollySettings,
    SageMakerEncoderSettings,
)
from vehicle_assessment.aws_runtime.api import AssessmentView
from vehicle_assessment.domain.description import TemplateDescriber
from vehicle_assessment.domain.models import (
    AssessmentStatus,
    AudioStatus,
    DescriptionRequest,
    DescriptionStyle,
    EncoderIdentity,
    VehicleFacts,
)
from vehicle_assessment.domain.text import one_line
from vehicle_assessment.ports import PortError
from vehicle_assessment.remote.stack import RemoteError, StackOutputs, describe_stack

logger = logging.getLogger(__name__)

# The words Polly is asked to speak in each configured voice: short, so the check costs almost nothing.
POLLY_PROBE_TEXT = "Smoke test."
# A vehicle for the describer probe: facts only, nothing from a user.
PROBE_VIN = "1HGCM82633A004352"
LAMBDA_RESOURCE_TYPE = "AWS::Lambda::Function"
# Inference-profile prefixes (cross-region inference): GetFoundationModel wants the bare model id.
INFERENCE_PROFILE_PREFIXES = ("us.", "eu.", "apac.", "us-gov.", "global.")


class Outcome(StrEnum):
    PASS = "PASS"
    WARN = "WARN"
    FAIL = "FAIL"


@dataclass(frozen=True)
class CheckResult:
    name: str
    outcome: Outcome
    detail: str
    hint: str = ""


class SmokeTargets(BaseModel):
    """The deployed resources and the settings the functions run with."""

    model_config = ConfigDict(frozen=True)

    stack_name: str
    region: str
    outputs: StackOutputs
    table_name: str | None = None
    bucket_name: str | None = None
    sagemaker: SageMakerEncoderSettings | None = None
    opensearch: OpenSearchSettings | None = None
    bedrock: BedrockSettings | None = None
    polly: PollySettings = PollySettings()


def _stack_function_names(cloudformation: Any, stack_name: str) -> list[str]:
    names: list[str] = []
    try:
        for page in cloudformation.get_paginator("list_stack_resources").paginate(StackName=stack_name):
            names += [
                r["PhysicalResourceId"]
                for r in page["StackResourceSummaries"]
                if r["ResourceType"] == LAMBDA_RESOURCE_TYPE and r.get("PhysicalResourceId")
            ]
    except (ClientError, BotoCoreError) as exc:
        raise RemoteError(f"cannot list the resources of stack {stack_name}: {one_line_reason(exc)}") from exc
    return names


def function_environments(cloudformation: Any, lambda_client: Any, stack_name: str) -> list[dict[str, str]]:
    environments = []
    for name in _stack_function_names(cloudformation, stack_name):
        try:
            configuration = lambda_client.get_function_configuration(FunctionName=name)
        except (ClientError, BotoCoreError) as exc:
            raise RemoteError(f"cannot read function {name}: {one_line_reason(exc)}") from exc
        environments.append(dict(configuration.get("Environment", {}).get("Variables", {})))
    return environments


def _first(environments: Iterable[Mapping[str, str]], key: str) -> str | None:
    return next((env[key] for env in environments if env.get(key)), None)


def targets_from_stack(cloudformation: Any, lambda_client: Any, stack_name: str, region: str) -> SmokeTargets:
    """Raises RemoteError when the stack or a function's settings cannot be read."""
    stack = describe_stack(cloudformation, stack_name)
    outputs = StackOutputs.model_validate(
        {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
    )
    environments = function_environments(cloudformation, lambda_client, stack_name)
    parsed: dict[str, Any] = {}
    models: dict[str, type[BaseModel]] = {
        "sagemaker": SageMakerEncoderSettings,
        "opensearch": OpenSearchSettings,
        "bedrock": BedrockSettings,
        "polly": PollySettings,
    }
    for key, model in models.items():
        raw = _first(environments, key.upper())
        if raw is None:
            continue
        try:
            parsed[key] = model.model_validate_json(raw)
        except ValidationError as exc:
            raise RemoteError(
                f"the functions' {key.upper()} setting is not valid: {exc.errors()[0]['msg']}"
            ) from exc
    return SmokeTargets(
        stack_name=stack_name,
        region=region,
        outputs=outputs,
        table_name=_first(environments, "TABLE_NAME"),
        bucket_name=_first(environments, "BUCKET_NAME") or outputs.upload_bucket_name,
        **parsed,
    )


# --- the checks ---------------------------------------------------------------------------------


# A boto3 client per service name ("sagemaker", "bedrock-runtime", ...).
ClientFactory = Callable[[str], Any]


class ReferenceIndexProbe(Protocol):
    @property
    def identity(self) -> EncoderIdentity | None: ...

    def count(self) -> int: ...

    def close(self) -> None: ...


@dataclass
class SmokeServices:
    """How the checks reach AWS; tests pass fakes, the CLI real clients."""

    client: ClientFactory
    open_index: Callable[[OpenSearchSettings, EncoderIdentity | None], ReferenceIndexProbe]
    submit: Callable[[], AssessmentView]


def _missing(name: str, setting: str) -> CheckResult:
    return CheckResult(
        name,
        Outcome.FAIL,
        f"no function of the stack has {setting} in its environment",
        "is this the vehicle assessment stack? redeploy it with `cdk deploy`",
    )


def _service_failure(name: str, exc: Exception, hint: str) -> CheckResult:
    reason = one_line_reason(exc) if isinstance(exc, ClientError | BotoCoreError) else one_line(exc, 300)
    return CheckResult(name, Outcome.FAIL, reason, hint)


def probe_image() -> Image.Image:
    """A small image with some structure (a blank one can embed to a degenerate vector on some models)."""
    gradient = np.linspace(0, 255, PROBE_IMAGE_SIZE[0] * PROBE_IMAGE_SIZE[1] * 3, dtype=np.float32)
    return Image.fromarray(gradient.reshape(*PROBE_IMAGE_SIZE, 3).astype(np.uint8))


def check_encoder(
    targets: SmokeTargets, services: SmokeServices
) -> tuple[CheckResult, EncoderIdentity | None]:
    name = "SageMaker endpoint"
    if targets.sagemaker is None:
        return _missing(name, "SAGEMAKER"), None
    endpoint = targets.sagemaker.endpoint_name
    try:
        status = services.client("sagemaker").describe_endpoint(EndpointName=endpoint)["EndpointStatus"]
    except (ClientError, BotoCoreError) as exc:
        return _service_failure(name, exc, f"does endpoint {endpoint} exist in {targets.region}?"), None
    if status != "InService":
        return (
            CheckResult(
                name,
                Outcome.FAIL,
                f"{endpoint} is {status}, not InService",
                "wait for Creating/Updating to finish; for Failed see its FailureReason and CloudWatch logs",
            ),
            None,
        )
    encoder = SageMakerEncoder(services.client("sagemaker-runtime"), endpoint, targets.sagemaker.identity)
    try:
        vectors = encoder.embed([probe_image()])
        served = encoder.identity
    except PortError as exc:  # EncoderUnavailable, or the identity mismatch (an IndexMismatch)
        return _service_failure(name, exc, "redeploy the endpoint with the configured model"), None
    expected = (1, targets.sagemaker.identity.dimension)
    if vectors.shape != expected:
        return (
            CheckResult(name, Outcome.FAIL, f"one image gave shape {vectors.shape}, not {expected}", ""),
            served,
        )
    return CheckResult(name, Outcome.PASS, f"{endpoint} InService, serves {served.describe()}"), served


def check_index(
    targets: SmokeTargets, services: SmokeServices, served: EncoderIdentity | None
) -> CheckResult:
    name = "OpenSearch index"
    if targets.opensearch is None:
        return _missing(name, "OPENSEARCH")
    where = f"{targets.opensearch.collection_endpoint}/{targets.opensearch.index_name}"
    hint_build = "run `vehicle-assessment index build sample_data/reference --labels ... --target aws`"
    try:
        index = services.open_index(
            targets.opensearch, targets.sagemaker.identity if targets.sagemaker else None
        )
        try:
            identity, count = index.identity, index.count()
        finally:
            index.close()
    except PortError as exc:
        return _service_failure(name, exc, "is this machine's role in the collection's data access policy?")
    if identity is None:
        return CheckResult(name, Outcome.FAIL, f"{where} does not exist or records no encoder", hint_build)
    if count == 0:
        return CheckResult(name, Outcome.FAIL, f"{where} holds no reference photos", hint_build)
    if served is not None and not identity.comparable_with(served):
        return CheckResult(
            name,
            Outcome.FAIL,
            f"{where} holds vectors of {identity.describe()}, the endpoint serves {served.describe()}",
            "rebuild the reference index with the deployed encoder",
        )
    return CheckResult(name, Outcome.PASS, f"{where}: {count} reference photos of {identity.describe()}")


def foundation_model_id(model_id: str) -> str:
    for prefix in INFERENCE_PROFILE_PREFIXES:
        if model_id.startswith(prefix):
            return model_id.removeprefix(prefix)
    return model_id


def _date(value: object) -> str:
    return f"{value:%Y-%m-%d}" if isinstance(value, datetime) else str(value or "not announced")


def check_bedrock_model(targets: SmokeTargets, services: SmokeServices) -> CheckResult:
    name = "Bedrock model"
    if targets.bedrock is None:
        return _missing(name, "BEDROCK")
    model_id = foundation_model_id(targets.bedrock.model_id)
    try:
        details = services.client("bedrock").get_foundation_model(modelIdentifier=model_id)["modelDetails"]
    except (ClientError, BotoCoreError) as exc:
        return _service_failure(name, exc, f"is {model_id} offered in {targets.region}?")
    lifecycle = details.get("modelLifecycle", {})
    status = lifecycle.get("status", "unknown")
    if status == "ACTIVE":
        return CheckResult(name, Outcome.PASS, f"{model_id} ACTIVE")
    if status == "LEGACY":
        # Bedrock docs, "Model lifecycle": a LEGACY model still answers until its end-of-life date.
        return CheckResult(
            name,
            Outcome.WARN,
            f"{model_id} LEGACY, end of life {_date(lifecycle.get('endOfLifeTime'))}",
            "choose an ACTIVE model (bedrock_model_id in the CDK config) before that date",
        )
    return CheckResult(name, Outcome.FAIL, f"{model_id} is {status}", "choose an ACTIVE model")


def _probe_request() -> DescriptionRequest:
    return DescriptionRequest(
        vehicle=VehicleFacts(vin=PROBE_VIN, source="vin", make="HONDA", model="Accord", model_year=2003),
        color="silver",
        mileage=120_000,
        damage_summary={},
        photos_assessed=1,
        photos_need_review=0,
        undamaged_value_usd=4000.0,
        adjusted_value_usd=4000.0,
        combined_depreciation=0.0,
        untrained_encoder=False,
    )


def check_bedrock_answers(targets: SmokeTargets, services: SmokeServices) -> CheckResult:
    name = "Bedrock describes"
    if targets.bedrock is None:
        return _missing(name, "BEDROCK")
    settings = targets.bedrock
    describer = BedrockDescriber(
        services.client("bedrock-runtime"),
        settings.model_id,
        settings.max_tokens,
        TemplateDescriber(),
        max_words=settings.max_words,
        max_chars=settings.max_chars,
        top_p=settings.top_p,
    )
    description = describer.describe(_probe_request(), DescriptionStyle.STANDARD, "en", 0.0)
    if description.generator != describer.generator:
        # The pipeline would go on with the template text; a deployment that always does is broken.
        return CheckResult(
            name,
            Outcome.FAIL,
            f"fell back to {description.generator}: {description.note}",
            "enable model access for this model in the Bedrock console; check the describe function's "
            "role allows bedrock:InvokeModel on it",
        )
    return CheckResult(name, Outcome.PASS, f"{settings.model_id} wrote {len(description.text.split())} words")


def check_polly(targets: SmokeTargets, services: SmokeServices) -> list[CheckResult]:
    settings = targets.polly
    speaker = PollySpeaker(
        services.client("polly"),
        settings.voices,
        engine=settings.engine,
        max_chunk_chars=settings.max_chunk_chars,
    )
    results = []
    for language, voice in sorted(settings.voices.items()):
        name = f"Polly {voice.voice_id} ({language})"
        try:
            clip = speaker.synthesize(POLLY_PROBE_TEXT, language)
        except PortError as exc:
            results.append(
                _service_failure(name, exc, f"does {voice.voice_id} offer the {settings.engine} engine here?")
            )
            continue
        if not clip.audio:
            results.append(CheckResult(name, Outcome.FAIL, "Polly returned no audio", ""))
        else:
            results.append(
                CheckResult(name, Outcome.PASS, f"{len(clip.audio):,} bytes of {clip.content_type}")
            )
    return results


def check_table(targets: SmokeTargets, services: SmokeServices) -> CheckResult:
    name = "DynamoDB table"
    if not targets.table_name:
        return _missing(name, "TABLE_NAME")
    try:
        status = services.client("dynamodb").describe_table(TableName=targets.table_name)["Table"][
            "TableStatus"
        ]
    except (ClientError, BotoCoreError) as exc:
        return _service_failure(name, exc, "check the stack deployed and your credentials' account")
    if status != "ACTIVE":
        return CheckResult(name, Outcome.FAIL, f"{targets.table_name} is {status}", "wait until it is ACTIVE")
    return CheckResult(name, Outcome.PASS, f"{targets.table_name} ACTIVE")


def check_bucket(targets: SmokeTargets, services: SmokeServices) -> CheckResult:
    name = "S3 bucket"
    if not targets.bucket_name:
        return _missing(name, "BUCKET_NAME")
    try:
        services.client("s3").head_bucket(Bucket=targets.bucket_name)
    except (ClientError, BotoCoreError) as exc:
        return _service_failure(name, exc, "check the stack deployed and your credentials' account")
    return CheckResult(name, Outcome.PASS, f"{targets.bucket_name} reachable")


def check_end_to_end(targets: SmokeTargets, services: SmokeServices) -> CheckResult:
    name = "submit end to end"
    try:
        view = services.submit()
    except RemoteError as exc:
        return CheckResult(
            name, Outcome.FAIL, one_line(exc, 300), "run `vehicle-assessment submit -v` to see more"
        )
    label = f"assessment {view.assessment_id}"
    if view.status != AssessmentStatus.COMPLETED:
        reason = view.failure_reason or ", ".join(r.reason for r in view.rejected_uploads) or "see the record"
        return CheckResult(
            name,
            Outcome.FAIL,
            f"{label} ended {view.status.value}: {one_line(reason, 200)}",
            "see the state machine's execution for this assessment in the Step Functions console",
        )
    fallbacks = [d for d in view.descriptions if not d.generator.startswith("bedrock:") or d.note]
    if not view.descriptions or fallbacks:
        detail = "; ".join(f"{d.style.value}/{d.language} by {d.generator}: {d.note}" for d in fallbacks)
        return CheckResult(
            name,
            Outcome.FAIL,
            f"{label}: descriptions did not come from Bedrock ({detail or 'none written'})",
            "see the describe function's logs (the reason is logged with each fallback)",
        )
    spoken = [a for a in view.audio if a.status == AudioStatus.GENERATED and a.object_key]
    if not spoken or len(spoken) != len(view.audio):
        skipped = "; ".join(
            f"{a.language}: {a.reason}" for a in view.audio if a.status != AudioStatus.GENERATED
        )
        return CheckResult(
            name,
            Outcome.FAIL,
            f"{label}: audio missing ({skipped or 'none'})",
            "see the speak function's logs",
        )
    s3 = services.client("s3")
    for clip in spoken:
        try:
            s3.head_object(Bucket=targets.bucket_name, Key=clip.object_key)
        except (ClientError, BotoCoreError) as exc:
            return _service_failure(name, exc, f"{label} names audio {clip.object_key} that is not in S3")
    return CheckResult(
        name,
        Outcome.PASS,
        f"{label} COMPLETED, {len(view.descriptions)} descriptions by Bedrock, "
        f"{len(spoken)} audio files in S3",
    )


def run_smoke(targets: SmokeTargets, services: SmokeServices) -> list[CheckResult]:
    encoder_result, served = check_encoder(targets, services)
    results = [
        encoder_result,
        check_index(targets, services, served),
        check_bedrock_model(targets, services),
        check_bedrock_answers(targets, services),
        *check_polly(targets, services),
        check_table(targets, services),
        check_bucket(targets, services),
    ]
    results.append(check_end_to_end(targets, services))
    for result in results:
        log = logger.warning if result.outcome != Outcome.PASS else logger.info
        log("smoke %s %s: %s", result.outcome.value, result.name, result.detail)
    return results


def render_table(results: Sequence[CheckResult]) -> str:
    name_width = max(len("CHECK"), *(len(r.name) for r in results))
    lines = [f"{'RESULT':<6}  {'CHECK':<{name_width}}  DETAIL"]
    for r in results:
        lines.append(f"{r.outcome.value:<6}  {r.name:<{name_width}}  {r.detail}")
        if r.hint and r.outcome != Outcome.PASS:
            lines.append(f"{'':<6}  {'':<{name_width}}  hint: {r.hint}")
    failed = sum(r.outcome == Outcome.FAIL for r in results)
    warned = sum(r.outcome == Outcome.WARN for r in results)
    lines.append(f"{len(results) - failed - warned} passed, {warned} warnings, {failed} failed")
    return "\n".join(lines)


def passed(results: Sequence[CheckResult]) -> bool:
    return not any(r.outcome == Outcome.FAIL for r in results)
