"""One Lambda function per handler, each with its own role, log group and settings."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from aws_cdk import Acknowledgment, Annotations, CfnElement, Duration, RemovalPolicy, Stack, Validations
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from constructs import Construct, IConstruct

from infra.bundling import RUNTIME, sdk_layer
from infra.config import LOG_RETENTION_NAMES, InfraConfig
from vehicle_assessment.adapters.aws.dynamodb import TABLE_ACCESS

METRICS_NAMESPACE = "VehicleAssessment"


@dataclass(frozen=True)
class FunctionSpec:
    handler: str  # "functions.decode_vin.handler"
    description: str
    timeout: Duration
    memory_mb: int = 512
    environment: Mapping[str, str] | None = None
    # Why this function runs without SnapStart (None: it runs with it, behind the ``live`` alias).
    snap_start_excluded: str | None = None


# Lambda SnapStart (https://docs.aws.amazon.com/lambda/latest/dg/snapstart.html): supported on the
# Python 3.12+ managed runtimes (ours: infra/bundling.py RUNTIME), for x86_64 and arm64 alike (the
# page's limitations name no architecture; SnapStart's early, Java-only release refused arm64). It
# refuses provisioned concurrency, EFS and ephemeral storage over 512 MB; this stack uses none
# (CDK's Function refuses the last two with SnapStart at synth). A snapshot exists only for a
# published version, never $LATEST: every caller invokes the ``live`` alias of the current version.
# The hooks that keep restored environments unique are in functions/snapstart.py.
LIVE_ALIAS = "live"
SNAP_START_PUBLISH_WARNING = "@aws-cdk/aws-lambda:snapStartRequirePublish"


def acknowledge(construct: IConstruct, rule: str, reason: str) -> None:
    """cdk-nag v3: one acknowledgment per finding id, each with its reason."""
    Validations.of(construct).acknowledge(Acknowledgment(id=rule, reason=reason))


class PipelineFunction(Construct):
    """A function with a role that starts empty: callers add exactly the grants it needs."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        spec: FunctionSpec,
        code: lambda_.Code,
        config: InfraConfig,
        common_environment: Mapping[str, str],
    ) -> None:
        super().__init__(scope, construct_id)
        # Explicit log group: retention and removal are ours, and no LogRetention helper Lambda.
        self.log_group = logs.LogGroup(
            self,
            "Logs",
            retention=retention(config),
            removal_policy=removal(config),
        )
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"{construct_id}: {spec.description}",
        )
        # What AWSLambdaBasicExecutionRole grants, but on this function's log group only.
        self.role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                resources=[self.log_group.log_group_arn],
            )
        )
        environment = {
            "POWERTOOLS_SERVICE_NAME": construct_id,
            "POWERTOOLS_METRICS_NAMESPACE": METRICS_NAMESPACE,
            **common_environment,
            **(spec.environment or {}),
        }
        self.function = lambda_.Function(
            self,
            "Function",
            runtime=RUNTIME,
            architecture=lambda_.Architecture.ARM_64
            if config.lambda_architecture == "arm64"
            else lambda_.Architecture.X86_64,
            code=code,
            # The pinned AWS SDK: one layer for every function (infra/bundling.py), never the runtime's.
            layers=[sdk_layer(self, config.bundling, config.lambda_architecture)],
            handler=spec.handler,
            description=spec.description,
            timeout=spec.timeout,
            memory_size=spec.memory_mb,
            role=self.role,
            log_group=self.log_group,
            logging_format=lambda_.LoggingFormat.JSON,
            tracing=lambda_.Tracing.ACTIVE,
            environment=environment,
            snap_start=None if spec.snap_start_excluded else lambda_.SnapStartConf.ON_PUBLISHED_VERSIONS,
            # Python SnapStart bills each published version's cached snapshot while the version
            # exists (https://aws.amazon.com/lambda/pricing/, "SnapStart"): a replaced version is
            # deleted, not kept. The alias moves to the new version in the same deployment.
            current_version_options=lambda_.VersionOptions(removal_policy=RemovalPolicy.DESTROY),
        )
        # What callers invoke: the alias of the published version (its snapshot), or for a function
        # excluded from SnapStart, the function itself.
        self.alias: lambda_.Alias | None = None
        self.invoke_target: lambda_.IFunction = self.function
        if not spec.snap_start_excluded:
            self.alias = lambda_.Alias(
                self, "Live", alias_name=LIVE_ALIAS, version=self.function.current_version
            )
            self.invoke_target = self.alias
            # CDK warns that SnapStart needs a published version: the alias above publishes it.
            Annotations.of(self.function).acknowledge_warning(
                SNAP_START_PUBLISH_WARNING, "The live alias publishes current_version; callers invoke it."
            )
        acknowledge(
            self,
            "AwsSolutions-L1",
            "Pinned to Python 3.12: the Lambda packages' wheels are installed with --python-version 3.12 "
            "(infra/lambda_package.py), and the runtime must match the ABI of those wheels.",
        )
        acknowledge(
            self.role,
            "AwsSolutions-IAM5[Resource::*]",
            "X-Ray PutTraceSegments/PutTelemetryRecords (active tracing) support no resource-level "
            "permissions; every other statement of this role names its resources.",
        )

    def add_to_policy(self, *statements: iam.PolicyStatement) -> None:
        for statement in statements:
            self.role.add_to_principal_policy(statement)


def retention(config: InfraConfig) -> logs.RetentionDays:
    return getattr(logs.RetentionDays, LOG_RETENTION_NAMES[config.log_retention_days])


def removal(config: InfraConfig) -> RemovalPolicy:
    return RemovalPolicy.DESTROY if config.removal_policy == "destroy" else RemovalPolicy.RETAIN


def logical_id(construct: IConstruct) -> str:
    """The logical id cdk-nag prints in finding ids, e.g. ``AwsSolutions-IAM5[Resource::<Id.Arn>/x/*]``."""
    child = construct.node.default_child
    if child is None:
        raise ValueError(f"{construct.node.path} has no CloudFormation resource")
    if not isinstance(child, CfnElement):
        raise ValueError(f"{construct.node.path}'s default child is not a CloudFormation element")
    return Stack.of(construct).get_logical_id(child)


def grant_table(table: dynamodb.ITable, role: iam.IRole, user: str) -> None:
    """Exactly the item actions ``TABLE_ACCESS[user]`` names (the list lives beside the repository,
    adapters/aws/dynamodb.py), on the table and the indexes it queries."""
    access = TABLE_ACCESS[user]
    resources = [table.table_arn, *(f"{table.table_arn}/index/{name}" for name in access.indexes)]
    role.add_to_principal_policy(iam.PolicyStatement(actions=list(access.actions), resources=resources))


# Reading a photo by the version its upload event named needs s3:GetObjectVersion; s3:GetObject
# alone reads only the current version
# (https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetObject.html, "versionId").
READ_PINNED_PHOTO = ("s3:GetObject", "s3:GetObjectVersion")


# polly:SynthesizeSpeech's only resource type is the lexicon (Service Authorization Reference,
# https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazonpolly.html). We name no
# lexicon, so no narrower ARN exists than this account's lexicons in this Region, the scoping the Polly
# guide documents (https://docs.aws.amazon.com/polly/latest/dg/api-permissions-reference.html).
SPEECH_NAG_RESOURCE = "arn:<AWS::Partition>:polly:<AWS::Region>:<AWS::AccountId>:lexicon/*"


def grant_speech(role: iam.IRole) -> None:
    """polly:SynthesizeSpeech, scoped to this account's lexicons in this Region (see above)."""
    stack = Stack.of(role)
    arn = stack.format_arn(service="polly", resource="lexicon", resource_name="*")
    role.add_to_principal_policy(iam.PolicyStatement(actions=["polly:SynthesizeSpeech"], resources=[arn]))
    acknowledge(
        role,
        f"AwsSolutions-IAM5[Resource::{SPEECH_NAG_RESOURCE}]",
        "polly:SynthesizeSpeech authorizes only against lexicon ARNs (Service Authorization Reference); "
        "no lexicon is used, so this account's lexicons in this Region is the narrowest scope there is.",
    )


def grant_objects(
    bucket: s3.IBucket, role: iam.IRole, action: str | tuple[str, ...], prefix: str, why: str
) -> None:
    """Exact S3 object actions under one prefix (CDK's grant_read/grant_put add wildcard actions)."""
    actions = [action] if isinstance(action, str) else list(action)
    role.add_to_principal_policy(
        iam.PolicyStatement(actions=actions, resources=[bucket.arn_for_objects(f"{prefix}*")])
    )
    acknowledge(role, f"AwsSolutions-IAM5[Resource::<{logical_id(bucket)}.Arn>/{prefix}*]", why)
