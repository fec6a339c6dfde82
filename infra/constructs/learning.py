"""Learning from reviews: the reference feedback function and the API's right to hand it a review.

The API invokes the function asynchronously for each review "as reference"
(vehicle_assessment/aws_runtime/reference_requests.py says why not inside the API's 29 s). The
function's role holds exactly what adding one photo calls: the assessment (GetItem, UpdateItem) and the
photo's stored embedding (GetItem), the pinned original (GetObject/GetObjectVersion under uploads/ and
incoming/), the display copy (PutObject under references/), the encoder endpoint (InvokeEndpoint, for
a photo whose embedding is another encoder's), and the index: IAM ``aoss:APIAccessAll`` plus a data
access rule for reading, writing and updating the mapping of an index from before the provenance
fields (PUT _mapping needs aoss:UpdateIndex).
"""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from constructs import Construct

from infra.bundling import LambdaCode
from infra.config import InfraConfig, synth_runtime_config
from infra.constructs.embedding import Embedding
from infra.constructs.lambdas import (
    METRICS_NAMESPACE,
    READ_PINNED_PHOTO,
    FunctionSpec,
    PipelineFunction,
    grant_objects,
    grant_table,
)
from infra.constructs.vector_search import VectorSearch
from infra.constructs.workflow import encoder_and_index_environment
from vehicle_assessment.aws_runtime.config import ReferenceFeedbackConfig
from vehicle_assessment.aws_runtime.reference_requests import (
    REFERENCE_FEEDBACK_FAILED_METRIC,
    reference_feedback_timeout_s,
)
from vehicle_assessment.domain import upload_keys

# Upsert of a reviewed photo (adapters/aws/opensearch_index.py): the mapping read (DescribeIndex), its
# provenance fields added to an older index (UpdateIndex), the source's older documents (ReadDocument),
# the new document and the older ones' deletion (WriteDocument).
LEARN_INDEX = ["aoss:DescribeIndex", "aoss:UpdateIndex", "aoss:ReadDocument", "aoss:WriteDocument"]
# How long a queued request may wait for the function (throttling) before Lambda drops it; the API's
# review already says REFERENCE_PENDING, and a dropped event shows as the function's
# AsyncEventsDropped metric.
MAX_EVENT_AGE = Duration.hours(6)


def feedback_function_timeout_s(config: InfraConfig) -> int:
    """The function's timeout, from the runtime's own client settings (as the function reads them)."""
    return reference_feedback_timeout_s(synth_runtime_config(ReferenceFeedbackConfig, config))


class ReferenceLearning(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: InfraConfig,
        code: LambdaCode,
        common_environment: dict[str, str],
        table: dynamodb.ITable,
        bucket: s3.IBucket,
        embedding: Embedding,
        search: VectorSearch,
        encoder_identity: dict[str, object],
        rules_json: str,
    ) -> None:
        super().__init__(scope, construct_id)
        self.function = PipelineFunction(
            self,
            "ReferenceFeedbackFn",
            spec=FunctionSpec(
                handler="functions.reference_feedback.handler",
                description="Adds a reviewed photo to the reference index (invoked by the API)",
                timeout=Duration.seconds(feedback_function_timeout_s(config)),
                memory_mb=1024,  # decodes and re-encodes the photo (intake, display copy)
                environment={
                    "BUCKET_NAME": bucket.bucket_name,
                    "RULES": rules_json,
                    **encoder_and_index_environment(config, embedding, search, encoder_identity),
                },
            ),
            code=code.photo,
            config=config,
            common_environment=common_environment,
        )
        role = self.function.role
        grant_table(table, role, "reference_feedback")
        for prefix in ("uploads/", "incoming/"):
            grant_objects(
                bucket,
                role,
                READ_PINNED_PHOTO,
                prefix,
                f"Reads the reviewed photo by its pinned version; photo keys are per upload under {prefix}.",
            )
        grant_objects(
            bucket,
            role,
            "s3:PutObject",
            upload_keys.REFERENCE_IMAGE_PREFIX,
            "Writes the reference's display copy, named by its sha256, under this prefix only.",
        )
        embedding.grant_invoke(role)
        search.grant(role, LEARN_INDEX)
        # Lambda's defaults made explicit: two retries of a failed invocation (the function fails only
        # when it could not record the outcome), events kept while the function is throttled.
        self.function.invoke_target.configure_async_invoke(retry_attempts=2, max_event_age=MAX_EVENT_AGE)

    def grant_request(self, api: PipelineFunction) -> None:
        """The API's side: where to send a review "as reference", and the right to (this alias only)."""
        target = self.function.invoke_target
        api.function.add_environment("REFERENCE_FEEDBACK_FUNCTION", target.function_arn)
        api.add_to_policy(
            iam.PolicyStatement(actions=["lambda:InvokeFunction"], resources=[target.function_arn])
        )

    def alarm_on_failures(self, api: PipelineFunction, topic: sns.ITopic) -> cw.Alarm:
        """A reviewed photo that did not join the index (either function's metric, by its ``service``
        dimension: the function's construct id), a request the function failed to record (its
        Errors: Lambda retries those), or one Lambda dropped (AsyncEventsDropped)."""
        period = Duration.minutes(5)
        failed = {
            key: cw.Metric(
                namespace=METRICS_NAMESPACE,
                metric_name=REFERENCE_FEEDBACK_FAILED_METRIC,
                dimensions_map={"service": fn.node.id},
                statistic="Sum",
                period=period,
            )
            for key, fn in (("api", api), ("feedback", self.function))
        }
        errors = self.function.function.metric_errors(period=period, statistic="Sum")
        # A request Lambda gave up on (retries spent or older than MAX_EVENT_AGE) leaves its review
        # saying reference_pending forever: alarmed here, not only counted
        # (https://docs.aws.amazon.com/lambda/latest/dg/monitoring-metrics-types.html: AsyncEventsDropped).
        dropped = self.function.function.metric("AsyncEventsDropped", period=period, statistic="Sum")
        alarm = cw.Alarm(
            self,
            "ReferenceFeedbackFailures",
            alarm_description=(
                "Reviewed photos did not join the reference index; each assessment's history says why "
                "(reference_failed), the functions' logs have the errors."
            ),
            metric=cw.MathExpression(
                expression="FILL(api, 0) + FILL(feedback, 0) + FILL(errors, 0) + FILL(dropped, 0)",
                using_metrics={**failed, "errors": errors, "dropped": dropped},
                label="Reference feedback failures",
                period=period,
            ),
            threshold=1,
            evaluation_periods=1,
            comparison_operator=cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
        )
        alarm.add_alarm_action(cw_actions.SnsAction(topic))
        return alarm
