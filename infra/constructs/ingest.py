"""Photo uploads: the bucket, S3 → SQS notifications (with a DLQ), the upload trigger and the sweeper."""

from __future__ import annotations

from aws_cdk import Duration, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_notifications as s3n
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from infra.config import InfraConfig
from infra.constructs.lambdas import (
    READ_PINNED_PHOTO,
    FunctionSpec,
    PipelineFunction,
    acknowledge,
    grant_objects,
    grant_table,
    removal,
)
from vehicle_assessment.domain import upload_keys

# The two key layouts the upload trigger understands (vehicle_assessment/aws_runtime/uploads.py).
UPLOAD_PREFIXES = ("uploads/", "incoming/")
AUDIO_PREFIX = "audio/"
UPLOAD_TIMEOUT = Duration.seconds(60)
# A message is retried this many times before it is parked in the dead-letter queue.
MAX_RECEIVE_COUNT = 5


class Ingest(Construct):
    def __init__(
        self, scope: Construct, construct_id: str, *, config: InfraConfig, site_origin: str | None = None
    ) -> None:
        """``site_origin``: the stack's own web app (infra/constructs/site.py), whose pages post upload
        forms from the browser, allowed beside the configured ``cors_allowed_origins``."""
        super().__init__(scope, construct_id)
        self.config = config
        self.browser_origins = [*config.cors_allowed_origins, *([site_origin] if site_origin else [])]
        self.access_logs = self._build_access_logs()
        self.bucket = self._build_bucket()
        self.dead_letters, self.queue = self._build_queues()
        self._notify_queue_of_uploads()

    def _build_access_logs(self) -> s3.Bucket:
        config = self.config
        access_logs = s3.Bucket(
            self,
            "AccessLogs",
            encryption=s3.BucketEncryption.S3_MANAGED,  # S3 server access logging cannot write to SSE-KMS
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_PREFERRED,
            lifecycle_rules=[s3.LifecycleRule(id="expire-access-logs", expiration=Duration.days(365))],
            removal_policy=removal(config),
            auto_delete_objects=False,
        )
        acknowledge(
            access_logs,
            "AwsSolutions-S1",
            "This is the server access log bucket of the upload bucket; logging it to itself would loop.",
        )
        return access_logs

    def _build_bucket(self) -> s3.Bucket:
        config = self.config
        return s3.Bucket(
            self,
            "Uploads",
            # SSE-S3: presigned POSTs from browsers need no KMS permission, and S3 → SQS works with
            # an SSE-SQS queue (an AWS-managed KMS key would refuse S3 as a sender).
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            versioned=True,
            server_access_logs_bucket=self.access_logs,
            server_access_logs_prefix="uploads-bucket/",
            removal_policy=removal(config),
            # Browser uploads (presigned POST) from the same origins the API allows; none: no CORS rule.
            cors=[
                s3.CorsRule(
                    allowed_methods=[s3.HttpMethods.POST, s3.HttpMethods.GET],
                    allowed_origins=self.browser_origins,
                    allowed_headers=["*"],
                    max_age=3000,
                )
            ]
            if self.browser_origins
            else None,
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="abort-incomplete-multipart", abort_incomplete_multipart_upload_after=Duration.days(1)
                ),
                # Evidence retention. The workflow reads the version the upload event named
                # (PhotoRecord.object_version), so a photo overwritten after it was counted is a
                # noncurrent version that must stay readable as long as its assessment: S3 deletes a
                # noncurrent version only NoncurrentDays after it became noncurrent
                # (https://docs.aws.amazon.com/AmazonS3/latest/userguide/intro-lifecycle-rules.html).
                # Chosen over Object Lock governance mode: Object Lock
                # needs a retention on every version, cannot be turned off again, and still yields to
                # s3:BypassGovernanceRetention; no role of this stack may delete object versions.
                s3.LifecycleRule(
                    id="expire-noncurrent",
                    noncurrent_version_expiration=Duration.days(config.noncurrent_version_days),
                ),
                *(
                    s3.LifecycleRule(
                        id=f"expire-{prefix.rstrip('/')}",
                        prefix=prefix,
                        expiration=Duration.days(config.photo_retention_days),
                    )
                    for prefix in (*UPLOAD_PREFIXES, AUDIO_PREFIX)
                ),
                # The index builds' results (one folder per Map Run, never overwritten). In this
                # versioned bucket expiring them only adds a delete marker; their noncurrent versions
                # go a day later rather than after the photos' noncurrent_version_days (of overlapping
                # expirations S3 honours the shorter:
                # https://docs.aws.amazon.com/AmazonS3/latest/userguide/lifecycle-conflicts.html), and a
                # rule that expires current versions also removes the delete marker left alone
                # (https://docs.aws.amazon.com/AmazonS3/latest/userguide/ManagingDelMarkers.html).
                s3.LifecycleRule(
                    id="expire-index-builds",
                    prefix=upload_keys.INDEX_BUILD_RESULTS_PREFIX,
                    expiration=Duration.days(config.index_build_results_retention_days),
                    noncurrent_version_expiration=Duration.days(1),
                ),
            ],
        )

    def _build_queues(self) -> tuple[sqs.Queue, sqs.Queue]:
        """The upload events queue and its dead-letter queue."""
        dead_letters = sqs.Queue(
            self,
            "UploadEventsDlq",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=Duration.days(14),
        )
        queue = sqs.Queue(
            self,
            "UploadEvents",
            # SSE-SQS: S3 may send to it (a queue under the AWS-managed KMS key refuses S3).
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            # AWS's guidance for Lambda event sources: at least six times the function timeout.
            visibility_timeout=Duration.seconds(UPLOAD_TIMEOUT.to_seconds() * 6),
            retention_period=Duration.days(4),
            dead_letter_queue=sqs.DeadLetterQueue(queue=dead_letters, max_receive_count=MAX_RECEIVE_COUNT),
        )
        return dead_letters, queue

    def _notify_queue_of_uploads(self) -> None:
        for prefix in UPLOAD_PREFIXES:
            self.bucket.add_event_notification(
                s3.EventType.OBJECT_CREATED,
                s3n.SqsDestination(self.queue),
                s3.NotificationKeyFilter(prefix=prefix),
            )
        # CDK's singleton that writes the bucket's notification configuration (a custom resource).
        handler = Stack.of(self).node.try_find_child(
            "BucketNotificationsHandler050a0587b7544547bf325f094a3db834"
        )
        if handler is not None:
            acknowledge(
                handler,
                "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
                "AWSLambdaBasicExecutionRole]",
                "CDK's BucketNotificationsHandler (deploy-time only) logs with the AWS basic execution "
                "policy; CDK creates its role and does not expose it.",
            )

    def add_consumers(
        self,
        *,
        code: lambda_.Code,
        common_environment: dict[str, str],
        state_machine: sfn.IStateMachine,
        table: dynamodb.ITable,
    ) -> None:
        """The upload trigger (SQS) and the scheduled sweeper; they need the state machine."""
        self.upload_trigger = self._build_upload_trigger(code, common_environment, state_machine, table)
        self.sweeper = self._build_sweeper(code, common_environment, state_machine, table)

    def _build_upload_trigger(
        self,
        code: lambda_.Code,
        common_environment: dict[str, str],
        state_machine: sfn.IStateMachine,
        table: dynamodb.ITable,
    ) -> PipelineFunction:
        config = self.config
        upload_trigger = PipelineFunction(
            self,
            "UploadTrigger",
            spec=FunctionSpec(
                handler="functions.upload_trigger.handler",
                description="Counts uploaded photos and starts the workflow on the last one",
                timeout=UPLOAD_TIMEOUT,
                memory_mb=256,
                environment={
                    "BUCKET_NAME": self.bucket.bucket_name,
                    "STATE_MACHINE_ARN": state_machine.state_machine_arn,
                    "EXPECTED_PHOTOS": str(config.expected_photos),
                },
            ),
            code=code,
            config=config,
            common_environment=common_environment,
        )
        grant_table(table, upload_trigger.role, "upload_trigger")
        # A ranged GetObject (magic bytes and metadata) under the two upload prefixes only.
        for prefix in UPLOAD_PREFIXES:
            grant_objects(
                self.bucket,
                upload_trigger.role,
                READ_PINNED_PHOTO,
                prefix,
                f"Reads the first bytes of any photo under {prefix}: keys are per upload, "
                "the prefix is the boundary.",
            )
        state_machine.grant_start_execution(upload_trigger.role)
        upload_trigger.invoke_target.add_event_source(
            sources.SqsEventSource(
                self.queue,
                batch_size=10,
                max_batching_window=Duration.seconds(1),
                report_batch_item_failures=True,
                # Caps this function's concurrency without reserving account concurrency.
                max_concurrency=config.upload_max_concurrency,
            )
        )
        return upload_trigger

    def _build_sweeper(
        self,
        code: lambda_.Code,
        common_environment: dict[str, str],
        state_machine: sfn.IStateMachine,
        table: dynamodb.ITable,
    ) -> PipelineFunction:
        config = self.config
        sweeper = PipelineFunction(
            self,
            "Sweeper",
            spec=FunctionSpec(
                handler="functions.sweeper.handler",
                description="Marks assessments whose photos never all arrived as INCOMPLETE",
                timeout=Duration.minutes(2),
                memory_mb=256,
                environment={
                    "SWEEP_TIMEOUT_MINUTES": str(config.sweep_timeout_minutes),
                    "STATE_MACHINE_ARN": state_machine.state_machine_arn,
                },
            ),
            code=code,
            config=config,
            common_environment=common_environment,
        )
        grant_table(table, sweeper.role, "sweeper")
        state_machine.grant_start_execution(sweeper.role)
        events.Rule(
            self,
            "SweepSchedule",
            schedule=events.Schedule.rate(Duration.minutes(config.sweep_rate_minutes)),
            targets=[targets.LambdaFunction(sweeper.invoke_target, retry_attempts=2)],
        )
        return sweeper
