"""The assessment workflow: one Lambda per step, orchestrated by a Standard state machine.

    DecodeVin → Map(photos, AnalysePhoto) → Value → Describe → Speak → Store
         └───────────── any error (Catch) ─────────────→ MarkFailed → Fail

An execution that times out or is stopped runs no Catch: an EventBridge rule on its status change
invokes MarkFailed for it (Workflow._record_stopped_executions).

State shapes are the pydantic models of ``vehicle_assessment/aws_runtime/workflow_steps.py``: the
state carries ids only; each step reads and writes the assessment in DynamoDB.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from aws_cdk import CfnMapping, Duration, Stack, Token
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda_destinations as destinations
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from infra.bundling import LIGHT, PHOTO, LambdaCode
from infra.config import InfraConfig, rules_json, synth_runtime_config
from infra.constructs.embedding import Embedding
from infra.constructs.lambdas import (
    READ_PINNED_PHOTO,
    FunctionSpec,
    PipelineFunction,
    acknowledge,
    grant_objects,
    grant_speech,
    grant_table,
    removal,
    retention,
)
from infra.constructs.vector_search import READ_INDEX, VectorSearch
from vehicle_assessment.adapters.aws import bedrock_models
from vehicle_assessment.adapters.aws.settings import BedrockSettings, PollySettings
from vehicle_assessment.aws_runtime.config import WorkflowConfig
from vehicle_assessment.aws_runtime.workflow_steps import analyse_photo_timeout_s
from vehicle_assessment.domain import limits
from vehicle_assessment.domain.rules import AssessmentRules
from vehicle_assessment.ports import EventPublishFailed

# Worth retrying: Lambda's own transient failures and a step that timed out. A step's own
# exceptions (a bad VIN, a conflict, an encoder mismatch) would fail the same way again; the
# clients inside the steps already retry throttling with botocore's jittered backoff.
# AWS docs, Step Functions "Handle Lambda service exceptions" (step-functions/latest/dg/
# bp-lambda-serviceexception.html): invoking Lambda may fail with ClientExecutionTimeoutException,
# ServiceException, AWSLambdaException or SdkClientException (transient 500s), TooManyRequestsException
# at the concurrency limit; and Lambda.Unknown is an unhandled failure: out of memory, a function
# timeout, a crashed sandbox. Every step is idempotent (it reads and writes the assessment by id).
TRANSIENT_ERRORS = [
    "Lambda.ClientExecutionTimeoutException",
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
    "Lambda.Unknown",
    sfn.Errors.TIMEOUT,
]


# SnapStart's own invoke errors ("Troubleshooting SnapStart errors", lambda/latest/dg/
# snapstart-troubleshooting.html): SnapStartNotReadyException while a version is Inactive (not
# invoked for 14 days, or recycled by Lambda) until it is Active again, SnapStartTimeoutException when
# a restore (with its after-restore hooks) overran 10 s. Both pass: retried longer than the others,
# as re-activating a version takes a while.
SNAPSTART_ERRORS = ["Lambda.SnapStartNotReadyException", "Lambda.SnapStartTimeoutException"]


def add_lambda_retries(
    task: tasks.LambdaInvoke, transient_interval: Duration, transient_max_delay: Duration
) -> None:
    """The retries every Lambda task of this stack's state machines has: Lambda's transient errors
    (with full jitter, so parallel Map iterations that failed together do not retry together), and a
    SnapStart version still restoring its snapshot."""
    task.add_retry(
        errors=TRANSIENT_ERRORS,
        interval=transient_interval,
        max_attempts=3,
        backoff_rate=2.0,
        max_delay=transient_max_delay,
        jitter_strategy=sfn.JitterType.FULL,
    )
    task.add_retry(
        errors=SNAPSTART_ERRORS,
        interval=Duration.seconds(10),
        max_attempts=6,
        backoff_rate=2.0,
        max_delay=Duration.seconds(60),
        jitter_strategy=sfn.JitterType.FULL,
    )


def encoder_and_index_environment(
    config: InfraConfig, embedding: Embedding, search: VectorSearch, encoder_identity: dict[str, object]
) -> dict[str, str]:
    """SAGEMAKER and OPENSEARCH, as every function that embeds photos or writes the index reads them."""
    stack = Stack.of(embedding)
    return {
        "SAGEMAKER": stack.to_json_string(
            {"endpoint_name": embedding.endpoint_name, "identity": encoder_identity}
        ),
        "OPENSEARCH": stack.to_json_string(
            {"collection_endpoint": search.collection_endpoint, "index_name": config.index_name}
        ),
    }


# The steps that publish the assessment's final event; a refused publication raises
# EventPublishFailed after the step's (idempotent) save, so the whole step is retried. Consumers
# dedupe the re-publications on the event's event_id.
PUBLISHING_STEPS = frozenset({"store", "mark_failed"})
EVENT_PUBLISH_FAILED = EventPublishFailed.__name__  # Lambda's errorType is the exception's class name

# The execution endings no Catch sees. AWS docs: "Automating Step Functions event delivery with
# EventBridge" (step-functions/latest/dg/eventbridge-integration.html) and "AWS Step Functions events"
# (eventbridge/latest/ref/events-ref-states.html): Standard workflows send "Step Functions Execution
# Status Change" events (source aws.states) to the default bus, best effort, whose detail carries
# executionArn, stateMachineArn, name (the execution's: the assessment id, aws_runtime/uploads.py),
# status (RUNNING, SUCCEEDED, FAILED, TIMED_OUT, ABORTED), startDate and stopDate.
STEP_FUNCTIONS_SOURCE = "aws.states"
EXECUTION_STATUS_CHANGE = "Step Functions Execution Status Change"
STOPPED_EXECUTION_STATUSES = ["TIMED_OUT", "ABORTED"]


@dataclass(frozen=True)
class Step:
    state_name: str
    construct_id: str
    module: str
    description: str
    timeout_s: int
    memory_mb: int = 512
    package: str = LIGHT  # which code asset (infra/bundling.py): PHOTO carries numpy, pillow, opensearch-py


STEPS = {
    "decode": Step(
        "DecodeVin", "DecodeVinFn", "decode_vin", "Decodes the VIN (vPIC) and lists the photos", 60
    ),
    "analyse": Step(
        "AnalysePhoto",
        "AnalysePhotoFn",
        "analyse_photo",
        "Embeds one photo and judges damage",
        120,
        1024,
        package=PHOTO,
    ),
    # Timeouts hold each function's AWS clients' worst case (every attempt timing out, after the
    # longest backoffs) with room for the work: tests/infra/test_client_budgets.py computes them. The
    # describe and speak steps' grow with the descriptions they write (step_timeout_s).
    "value": Step("Value", "ValueFn", "value", "Values the vehicle from its verdicts", 60, 256),
    "describe": Step("Describe", "DescribeFn", "describe", "Writes the descriptions with Bedrock", 120),
    "speak": Step("Speak", "SpeakFn", "speak", "Reads the descriptions aloud with Polly", 120),
    "store": Step("Store", "StoreFn", "store", "Completes the assessment", 60, 256),
    "mark_failed": Step(
        "MarkFailed", "MarkFailedFn", "mark_failed", "Records why the workflow failed", 60, 256
    ),
}


def descriptions_per_assessment(config: InfraConfig) -> int:
    return len(config.languages) * len(AssessmentRules().styles)


def analyse_function_timeout_s(config: InfraConfig) -> int:
    """The analyse step's timeout, from the runtime's own client settings (as the function reads them)
    and its calls one after another (S3, SageMaker, OpenSearch, the reused-photo registry, DynamoDB)."""
    rules = json.loads(rules_json(config))
    return analyse_photo_timeout_s(synth_runtime_config(WorkflowConfig, config, rules=rules))


def step_timeout_s(key: str, config: InfraConfig) -> int:
    """A step's Lambda timeout. Describe and speak call Bedrock / Polly once per description (and
    Polly once per chunk), one call after another: their timeout covers each call's worst case. The
    analyse step's covers its calls' (analyse_function_timeout_s)."""
    step = STEPS[key]
    if key == "analyse":
        return max(step.timeout_s, analyse_function_timeout_s(config))
    bedrock, polly = BedrockSettings(), PollySettings()
    per_description = {
        "describe": bedrock.client.worst_case_s(),
        "speak": math.ceil(bedrock.max_chars / polly.max_chunk_chars) * polly.client.worst_case_s(),
    }.get(key)
    if per_description is None:
        return step.timeout_s
    needed = math.ceil(descriptions_per_assessment(config) * per_description / limits.CLIENT_SHARE_OF_TIMEOUT)
    if needed > limits.LAMBDA_MAX_TIMEOUT_S:
        raise ValueError(
            f"{step.state_name} would need a {needed} s timeout for {descriptions_per_assessment(config)} "
            f"descriptions, more than Lambda's {limits.LAMBDA_MAX_TIMEOUT_S} s: configure fewer languages"
        )
    return max(step.timeout_s, needed)


def bedrock_invoke_statements(stack: Stack, model_id: str) -> list[iam.PolicyStatement]:
    """bedrock:InvokeModel (which Converse needs) on the model the functions call from this region.

    A Nova model is called through the region's cross-region inference profile (the same table as the
    runtime: vehicle_assessment/adapters/aws/bedrock_models.py). A profile needs two grants: the profile
    in this region, and its foundation model in every region the profile may route to, the latter only
    through that profile (condition bedrock:InferenceProfileArn). AWS docs: "Prerequisites for inference
    profiles" (bedrock/latest/userguide/inference-profiles-prereq.html).
    """
    geo, base = bedrock_models.split_profile_id(model_id)
    if geo is None and not base.startswith(bedrock_models.PROFILE_MODEL_PREFIXES):
        return [
            iam.PolicyStatement(
                actions=["bedrock:InvokeModel"],
                resources=[f"arn:{stack.partition}:bedrock:{stack.region}::foundation-model/{model_id}"],
            )
        ]
    destinations: Sequence[str] | None
    if geo is not None:  # an explicit profile id
        profile_id, destinations = model_id, bedrock_models.profile_destination_regions(model_id)
    elif not Token.is_unresolved(stack.region):
        profile_id = bedrock_models.invocation_model_id(model_id, stack.region)
        destinations = bedrock_models.profile_destination_regions(profile_id)
    else:
        # An environment-agnostic stack learns its region at deployment: the geography comes from a
        # mapping of the same table, and the foundation model is allowed wherever any of its profiles
        # may route, yet only through the one profile this region uses.
        geography = _profile_geography_mapping(stack)
        profile_id = f"{geography.find_in_map(stack.region, 'prefix')}.{base}"
        destinations = sorted({r for rs in bedrock_models.NOVA_PROFILE_REGIONS.values() for r in rs})
    arn_prefix = f"arn:{stack.partition}:bedrock"
    profile_arn = f"{arn_prefix}:{stack.region}:{stack.account}:inference-profile/{profile_id}"
    model_arns = [f"{arn_prefix}:{region}::foundation-model/{base}" for region in destinations or ["*"]]
    return [
        iam.PolicyStatement(actions=["bedrock:InvokeModel"], resources=[profile_arn]),
        iam.PolicyStatement(
            actions=["bedrock:InvokeModel"],
            resources=model_arns,
            conditions={"StringEquals": {"bedrock:InferenceProfileArn": profile_arn}},
        ),
    ]


def _profile_geography_mapping(stack: Stack) -> CfnMapping:
    """One mapping per stack (the workflow and the API both ask): region → profile prefix."""
    existing = stack.node.try_find_child("BedrockProfileGeography")
    if isinstance(existing, CfnMapping):
        return existing
    return CfnMapping(
        stack,
        "BedrockProfileGeography",
        mapping={
            region: {"prefix": prefix}
            for prefix, regions in bedrock_models.NOVA_PROFILE_REGIONS.items()
            for region in regions
        },
    )


class Workflow(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: InfraConfig,
        code: LambdaCode,
        common_environment: Mapping[str, str],
        table: dynamodb.ITable,
        bucket: s3.IBucket,
        embedding: Embedding,
        search: VectorSearch,
        encoder_identity: dict[str, object],
        rules_json: str,
    ) -> None:
        super().__init__(scope, construct_id)
        self.functions = self._build_functions(
            config, code, common_environment, table, bucket, embedding, search, encoder_identity, rules_json
        )
        self._grant_analyse(bucket, embedding, search, table)
        self._grant_describe(config)
        self._grant_speak(bucket)
        self.state_machine = self._state_machine(config)
        self.stopped_execution_dead_letters = self._record_stopped_executions()

    def _build_functions(
        self,
        config: InfraConfig,
        code: LambdaCode,
        common_environment: Mapping[str, str],
        table: dynamodb.ITable,
        bucket: s3.IBucket,
        embedding: Embedding,
        search: VectorSearch,
        encoder_identity: dict[str, object],
        rules_json: str,
    ) -> dict[str, PipelineFunction]:
        """One function per step, each with the table; the analyse and describe steps get their endpoints."""
        stack = Stack.of(self)
        environment = {"BUCKET_NAME": bucket.bucket_name, "RULES": rules_json}
        step_environment = {
            "analyse": encoder_and_index_environment(config, embedding, search, encoder_identity),
            "describe": {"BEDROCK": stack.to_json_string({"model_id": config.bedrock_model_id})},
        }
        functions: dict[str, PipelineFunction] = {}
        for key, step in STEPS.items():
            fn = PipelineFunction(
                self,
                step.construct_id,
                spec=FunctionSpec(
                    handler=f"functions.{step.module}.handler",
                    description=step.description,
                    timeout=Duration.seconds(step_timeout_s(key, config)),
                    memory_mb=step.memory_mb,
                    environment={**environment, **step_environment.get(key, {})},
                ),
                code=code.photo if step.package == PHOTO else code.light,
                config=config,
                common_environment=common_environment,
            )
            grant_table(table, fn.role, "workflow_step")
            functions[key] = fn
        return functions

    def _grant_analyse(
        self, bucket: s3.IBucket, embedding: Embedding, search: VectorSearch, table: dynamodb.ITable
    ) -> None:
        analyse = self.functions["analyse"]
        # The reused-photo check's items live in the assessment table (adapters/aws/photo_registry.py).
        grant_table(table, analyse.role, "photo_registry")
        for prefix in ("uploads/", "incoming/"):
            grant_objects(
                bucket,
                analyse.role,
                READ_PINNED_PHOTO,
                prefix,
                f"Reads the photo it analyses; photo keys are per upload under {prefix}.",
            )
        embedding.grant_invoke(analyse.role)
        search.grant(analyse.role, READ_INDEX)

    def _grant_describe(self, config: InfraConfig) -> None:
        stack = Stack.of(self)
        describe = self.functions["describe"]
        describe.add_to_policy(*bedrock_invoke_statements(stack, config.bedrock_model_id))

    def _grant_speak(self, bucket: s3.IBucket) -> None:
        speak = self.functions["speak"]
        grant_speech(speak.role)
        grant_objects(
            bucket,
            speak.role,
            "s3:PutObject",
            "audio/",
            "Writes one audio file per description under audio/{assessment_id}/.",
        )

    def _task(self, key: str, config: InfraConfig) -> tasks.LambdaInvoke:
        step = STEPS[key]
        task = tasks.LambdaInvoke(
            self,
            step.state_name,
            # The ``live`` alias: its published version has the SnapStart snapshot ($LATEST has none).
            lambda_function=self.functions[key].invoke_target,
            # The function's result IS the next state (no {"Payload": ...} wrapper), and the
            # state's Resource is the alias ARN, so errors keep the handler's errorType.
            payload_response_only=True,
            retry_on_service_exceptions=False,
            task_timeout=sfn.Timeout.duration(Duration.seconds(step_timeout_s(key, config) + 30)),
        )
        add_lambda_retries(
            task, transient_interval=Duration.seconds(2), transient_max_delay=Duration.seconds(30)
        )
        if key in PUBLISHING_STEPS:
            task.add_retry(
                errors=[EVENT_PUBLISH_FAILED],
                interval=Duration.seconds(5),
                max_attempts=4,
                backoff_rate=2.0,
                max_delay=Duration.seconds(60),
                jitter_strategy=sfn.JitterType.FULL,
            )
        return task

    def _state_machine(self, config: InfraConfig) -> sfn.StateMachine:
        return self._build_machine(config, self._build_chain(config))

    def _build_chain(self, config: InfraConfig) -> sfn.Chain:
        """Decode → Map(analyse) → value → describe → speak → store; any failure → MarkFailed."""
        failed = sfn.Fail(
            self,
            "AssessmentFailed",
            error="AssessmentFailed",
            cause="A step failed; the assessment records why",
        )
        mark_failed = self._task("mark_failed", config)
        # If even recording the failure fails, the execution still ends FAILED (and alarms).
        mark_failed.add_catch(
            sfn.Fail(
                self, "MarkFailedFailed", error="MarkFailedFailed", cause="Could not record the failure"
            ),
            errors=[sfn.Errors.ALL],
        )
        mark_failed.next(failed)

        def on_error(state: sfn.TaskStateBase | sfn.Map, key: str) -> None:
            # Remember which step failed, then record it; the Catch keeps the input and adds $.error.
            note = sfn.Pass(
                self,
                f"{STEPS[key].state_name}Failed",
                result=sfn.Result.from_string(STEPS[key].state_name if key != "analyse" else "AnalysePhotos"),
                result_path="$.failed_step",
            ).next(mark_failed)
            state.add_catch(note, errors=[sfn.Errors.ALL], result_path="$.error")

        decode = self._task("decode", config)
        on_error(decode, "decode")
        analyse = self._task("analyse", config)
        photos = sfn.Map(
            self,
            "AnalysePhotos",
            items_path="$.photos",
            item_selector={
                "assessment_id": sfn.JsonPath.string_at("$.assessment_id"),
                "photo": sfn.JsonPath.string_at("$$.Map.Item.Value"),
            },
            max_concurrency=config.map_max_concurrency,
            # Results live in DynamoDB; keep the batch as the state.
            result_path=sfn.JsonPath.DISCARD,
        )
        photos.item_processor(analyse)
        on_error(photos, "analyse")
        chain = decode.next(photos)
        for key in ("value", "describe", "speak", "store"):
            task = self._task(key, config)
            on_error(task, key)
            chain = chain.next(task)
        return chain.next(sfn.Succeed(self, "Assessed"))

    def _build_machine(self, config: InfraConfig, chain: sfn.Chain) -> sfn.StateMachine:
        log_group = logs.LogGroup(
            self, "ExecutionLogs", retention=retention(config), removal_policy=removal(config)
        )
        machine = sfn.StateMachine(
            self,
            "StateMachine",
            state_machine_type=sfn.StateMachineType.STANDARD,
            definition_body=sfn.DefinitionBody.from_chainable(chain),
            # Standard: exactly-once steps, a year of history, and redrive after a fix.
            timeout=Duration.hours(limits.WORKFLOW_TIMEOUT_HOURS),
            tracing_enabled=True,
            # Every event, but no execution data: states hold ids only, yet inputs and errors
            # could still carry a VIN or a model's text; those belong in DynamoDB, not in logs.
            logs=sfn.LogOptions(destination=log_group, level=sfn.LogLevel.ALL, include_execution_data=False),
        )
        acknowledge(
            machine.role,
            "AwsSolutions-IAM5[Resource::*]",
            "Step Functions' CloudWatch Logs delivery (logs:*LogDelivery*) and X-Ray actions support no "
            "resource-level permissions.",
        )
        # No IAM5 wildcard to acknowledge: each task invokes its ``live`` alias, and CDK's LambdaInvoke
        # grant is lambda:InvokeFunction on that alias ARN alone (no ``<function>:*`` for every version).
        return machine

    def _record_stopped_executions(self) -> sqs.Queue:
        """MarkFailed for each execution that timed out or was stopped, which would otherwise leave its
        assessment PROCESSING with no reason and no final event. MarkFailed leaves an assessment that
        is already final as it is, and ignores an execution that names no assessment.

        Both ways an event can be lost end in one queue (alarmed in monitoring.py): EventBridge's
        delivery to Lambda (the target's dead-letter queue, after its retries) and the function's own
        errors (Lambda retries an asynchronous invocation twice, then its on-failure destination).
        """
        mark_failed = self.functions["mark_failed"].invoke_target
        dead_letters = sqs.Queue(
            self,
            "StoppedExecutionsDlq",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=Duration.days(14),
        )
        acknowledge(
            dead_letters,
            "AwsSolutions-SQS3",
            "It is a dead-letter queue: of an EventBridge target and a Lambda on-failure destination, "
            "which cdk-nag does not recognise (it knows only SQS redrive policies).",
        )
        mark_failed.configure_async_invoke(
            retry_attempts=2, on_failure=destinations.SqsDestination(dead_letters)
        )
        events.Rule(
            self,
            "StoppedExecutions",
            description="Records FAILED for an assessment whose workflow execution timed out or was stopped",
            event_pattern=events.EventPattern(
                source=[STEP_FUNCTIONS_SOURCE],
                detail_type=[EXECUTION_STATUS_CHANGE],
                detail={
                    "stateMachineArn": [self.state_machine.state_machine_arn],
                    "status": STOPPED_EXECUTION_STATUSES,
                },
            ),
            targets=[
                targets.LambdaFunction(
                    mark_failed,
                    # A FailureInput (aws_runtime/workflow_steps.py); execution_status gives the reason.
                    event=events.RuleTargetInput.from_object(
                        {
                            "assessment_id": events.EventField.from_path("$.detail.name"),
                            "failed_step": "workflow",
                            "execution_status": events.EventField.from_path("$.detail.status"),
                        }
                    ),
                    dead_letter_queue=dead_letters,
                )
            ],
        )
        return dead_letters
