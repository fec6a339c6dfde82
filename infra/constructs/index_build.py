"""The reference index built inside AWS: a Distributed Map over a labels manifest in S3.

    StartExecution {"manifest_key": "reference-sets/<set>/labels.csv"}
      → IndexPhotos (DISTRIBUTED Map: ItemReader CSV, ItemBatcher, ResultWriter → index-builds/)
          └ IndexBatch (Lambda, the ``live`` alias): intake, sha256 dedupe, display copy, embed, bulk write
      → Built

An operator copies a reference set (labels.csv with the local build's columns, and the photos its
``path`` column names relative to it) under ``reference-sets/`` of the photos bucket, then runs
``vehicle-assessment index build --target aws --manifest s3://<bucket>/reference-sets/<set>/labels.csv``.
Service contract, from the Step Functions developer guide:
  * "ItemReader (Map)": ``ReaderConfig {InputType: CSV, CSVHeaderLocation: FIRST_ROW}`` turns each
    later row into an object keyed by the header's names, every value a string.
  * "ItemBatcher (Map)": each child execution receives ``{"Items": [...]}``; ItemSelector shapes each
    item before batching (here: the row, its index and the manifest key).
  * "ResultWriter (Map)": the Map Run writes ``manifest.json`` and ``SUCCEEDED_n.json`` /
    ``FAILED_n.json`` under ``<prefix>/<map run id>/``; each entry holds a child's Output (the batch's
    added / already indexed / skipped rows).
  * "IAM policies for using Distributed Map states": the state machine's role needs
    ``states:StartExecution`` on the state machine itself (child workflows), ``states:DescribeExecution``
    and ``states:StopExecution`` on its executions, ``s3:GetObject`` on the manifest and
    ``s3:PutObject`` (with ``s3:ListMultipartUploadParts`` / ``s3:AbortMultipartUpload``) where the
    results go. CDK's DistributedMap adds these; the S3 ones are replaced here by prefix-scoped ones.
"""

from __future__ import annotations

from aws_cdk import ArnFormat, Duration, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from infra.bundling import LambdaCode
from infra.config import InfraConfig
from infra.constructs.embedding import Embedding
from infra.constructs.lambdas import (
    FunctionSpec,
    PipelineFunction,
    acknowledge,
    grant_objects,
    logical_id,
    removal,
    retention,
)
from infra.constructs.vector_search import LOAD_INDEX, VectorSearch
from infra.constructs.workflow import add_lambda_retries, encoder_and_index_environment
from vehicle_assessment.aws_runtime.index_build import IndexBuildConfig, batch_timeout_s
from vehicle_assessment.domain import upload_keys

# ResultWriterV2 renders only with this feature flag (CDK's DistributedMap docs); the flag is read from
# the construct's context, so it is set on this construct alone.
RESULT_WRITER_V2_FLAG = "@aws-cdk/aws-stepfunctions:useDistributedMapResultWriterV2"
# What Step Functions needs for vended logs and X-Ray (CDK's StateMachine adds the same lists); none of
# these actions supports resource-level permissions.
LOG_DELIVERY_ACTIONS = [
    "logs:CreateLogDelivery",
    "logs:GetLogDelivery",
    "logs:UpdateLogDelivery",
    "logs:DeleteLogDelivery",
    "logs:ListLogDeliveries",
    "logs:PutResourcePolicy",
    "logs:DescribeResourcePolicies",
    "logs:DescribeLogGroups",
]
XRAY_ACTIONS = [
    "xray:PutTraceSegments",
    "xray:PutTelemetryRecords",
    "xray:GetSamplingRules",
    "xray:GetSamplingTargets",
]

# How cdk-nag prints this account's execution ARNs in its finding ids.
EXECUTION_ARN_NAG_PREFIX = "arn:<AWS::Partition>:states:<AWS::Region>:<AWS::AccountId>:execution:"

# One vCPU at 1,769 MB ("Configuring Lambda function memory"): intake is CPU-bound, and the batch
# budget counts its photos' CPU one after another on one core.
BATCH_MEMORY_MB = 1769
MAP_STATE = "IndexPhotos"
BATCH_STATE = "IndexBatch"


def batch_function_timeout_s(config: InfraConfig, identity: dict[str, object]) -> int:
    """The batch function's timeout, from the runtime's own client settings and the batch size."""
    runtime = IndexBuildConfig.model_validate(
        {
            "bucket_name": "placeholder",
            "sagemaker": {"endpoint_name": "placeholder", "identity": identity},
            "opensearch": {"collection_endpoint": "placeholder"},
        }
    )
    return batch_timeout_s(config.index_build_batch_size, runtime)


class IndexBuild(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: InfraConfig,
        code: LambdaCode,
        bucket: s3.IBucket,
        embedding: Embedding,
        search: VectorSearch,
        encoder_identity: dict[str, object],
        rules_json: str,
    ) -> None:
        super().__init__(scope, construct_id)
        self.node.set_context(RESULT_WRITER_V2_FLAG, True)
        self.timeout_s = batch_function_timeout_s(config, encoder_identity)
        self.batch = PipelineFunction(
            self,
            "IndexBatchFn",
            spec=FunctionSpec(
                handler="functions.index_build_batch.handler",
                description="Index build: one batch of manifest rows into the reference index",
                timeout=Duration.seconds(self.timeout_s),
                memory_mb=BATCH_MEMORY_MB,
                environment={
                    "BUCKET_NAME": bucket.bucket_name,
                    "RULES": rules_json,
                    **encoder_and_index_environment(config, embedding, search, encoder_identity),
                },
            ),
            code=code.photo,
            config=config,
            common_environment={},
        )
        grant_objects(
            bucket,
            self.batch.role,
            "s3:GetObject",
            upload_keys.REFERENCE_SET_PREFIX,
            "Reads the reference photos of the set a manifest names; sets live under this prefix only.",
        )
        grant_objects(
            bucket,
            self.batch.role,
            "s3:PutObject",
            upload_keys.REFERENCE_IMAGE_PREFIX,
            "Writes each reference's display copy, named by its sha256, under this prefix only.",
        )
        embedding.grant_invoke(self.batch.role)
        search.grant(self.batch.role, LOAD_INDEX)
        self.state_machine = self._state_machine(config, bucket)

    def _batch_task(self) -> tasks.LambdaInvoke:
        task = tasks.LambdaInvoke(
            self,
            BATCH_STATE,
            lambda_function=self.batch.invoke_target,
            payload_response_only=True,
            retry_on_service_exceptions=False,
            task_timeout=sfn.Timeout.duration(Duration.seconds(self.timeout_s + 30)),
        )
        # Every batch is idempotent (photos already indexed are skipped by sha256), so a retry is safe.
        add_lambda_retries(
            task, transient_interval=Duration.seconds(5), transient_max_delay=Duration.seconds(60)
        )
        return task

    def _state_machine(self, config: InfraConfig, bucket: s3.IBucket) -> sfn.StateMachine:
        photos = sfn.DistributedMap(
            self,
            MAP_STATE,
            item_reader=sfn.S3CsvItemReader(
                bucket=bucket,
                key=sfn.JsonPath.string_at("$.manifest_key"),
                csv_headers=sfn.CsvHeaders.use_first_row(),
            ),
            item_selector={
                "row": sfn.JsonPath.object_at("$$.Map.Item.Value"),
                "index": sfn.JsonPath.number_at("$$.Map.Item.Index"),
                "manifest_key": sfn.JsonPath.string_at("$.manifest_key"),
            },
            item_batcher=sfn.ItemBatcher(max_items_per_batch=config.index_build_batch_size),
            # Sized to the endpoint: each batch sends one request at a time (infra/config.py).
            max_concurrency=config.index_build_concurrency,
            tolerated_failure_percentage=config.index_build_tolerated_failure_percentage,
            result_writer_v2=sfn.ResultWriterV2(bucket=bucket, prefix=upload_keys.INDEX_BUILD_RESULTS_PREFIX),
            # Standard children: a batch may run longer than an Express child's 5 minutes.
            map_execution_type=sfn.StateMachineType.STANDARD,
        )
        photos.item_processor(self._batch_task())
        log_group = logs.LogGroup(
            self, "ExecutionLogs", retention=retention(config), removal_policy=removal(config)
        )
        # The role is ours, and CDK may not add to it: its DistributedMap would grant the reader
        # s3:GetObject on every object of the bucket (the manifest key is known only at run time).
        role = iam.Role(
            self,
            "MachineRole",
            assumed_by=iam.ServicePrincipal("states.amazonaws.com"),
            description="Index build state machine: reads manifests, runs batches, writes results",
        )
        machine = sfn.StateMachine(
            self,
            "StateMachine",
            role=role.without_policy_updates(),
            state_machine_type=sfn.StateMachineType.STANDARD,
            definition_body=sfn.DefinitionBody.from_chainable(photos.next(sfn.Succeed(self, "Built"))),
            timeout=Duration.hours(24),
            tracing_enabled=True,
            logs=sfn.LogOptions(destination=log_group, level=sfn.LogLevel.ALL, include_execution_data=False),
        )
        self._grant_machine(role, machine, bucket)
        acknowledge(
            role,
            "AwsSolutions-IAM5[Resource::*]",
            "Step Functions' CloudWatch Logs delivery (logs:*LogDelivery*) and X-Ray actions support no "
            "resource-level permissions.",
        )
        return machine

    def _grant_machine(self, role: iam.Role, machine: sfn.StateMachine, bucket: s3.IBucket) -> None:
        """Exactly what the definition uses ("IAM policies for using Distributed Map states")."""
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["lambda:InvokeFunction"], resources=[self.batch.invoke_target.function_arn]
            )
        )
        role.add_to_principal_policy(iam.PolicyStatement(actions=LOG_DELIVERY_ACTIONS, resources=["*"]))
        role.add_to_principal_policy(iam.PolicyStatement(actions=XRAY_ACTIONS, resources=["*"]))
        grant_objects(
            bucket,
            role,
            "s3:GetObject",
            upload_keys.REFERENCE_SET_PREFIX,
            "The Distributed Map reads the manifest the execution names; manifests live under this prefix.",
        )
        grant_objects(
            bucket,
            role,
            ("s3:PutObject", "s3:ListMultipartUploadParts", "s3:AbortMultipartUpload"),
            upload_keys.INDEX_BUILD_RESULTS_PREFIX,
            "The Map Run's ResultWriter writes each run's results under this prefix (one folder per run).",
        )
        # The child workflows: the machine starts itself, and describes, stops and redrives the
        # executions it started (named <machine>/<map run>:<id>). A Policy of its own, not the role's
        # default one: the machine depends on its role, and this names the machine.
        stack = Stack.of(self)
        executions = stack.format_arn(
            service="states",
            resource="execution",
            resource_name=machine.state_machine_name,
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        )
        children = iam.Policy(
            self,
            "ChildExecutions",
            roles=[role],
            statements=[
                iam.PolicyStatement(actions=["states:StartExecution"], resources=[machine.state_machine_arn]),
                iam.PolicyStatement(
                    actions=["states:DescribeExecution", "states:StopExecution"],
                    resources=[f"{executions}:*"],
                ),
                iam.PolicyStatement(actions=["states:RedriveExecution"], resources=[f"{executions}/*:*"]),
            ],
        )
        prefix = "AwsSolutions-IAM5[Resource::" + EXECUTION_ARN_NAG_PREFIX
        for suffix in (":*", "/*:*"):
            acknowledge(
                children,
                f"{prefix}<{logical_id(machine)}.Name>{suffix}]",
                "The executions of this state machine alone (and their Map Run children): their names are "
                "made at run time.",
            )
        # CDK's DistributedMap also builds a policy with these grants for the machine's role; the role
        # takes no policy updates, so it is attached to nothing and never synthesized. cdk-nag still
        # visits it.
        unused = machine.node.try_find_child("DistributedMapPolicy")
        if unused is not None:
            split_name = f'{{"Fn::Select":[6,{{"Fn::Split":[":",{{"Ref":"{logical_id(machine)}"}}]}}]}}'
            for suffix in (":*", "/*:*"):
                acknowledge(
                    unused,
                    f"{prefix}{split_name}{suffix}]",
                    "Not deployed: attached to no role (the machine's role is immutable; ChildExecutions "
                    "holds these grants).",
                )
