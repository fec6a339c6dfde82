"""Alarms on what needs a person, and one dashboard for the pipeline."""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from infra.config import InfraConfig
from infra.constructs.embedding import VARIANT
from infra.constructs.lambdas import METRICS_NAMESPACE, PipelineFunction, removal
from vehicle_assessment.adapters.aws.bedrock_models import DESCRIPTION_FALLBACK_METRIC
from vehicle_assessment.aws_runtime.workflow_steps import REUSE_CHECK_UNAVAILABLE_METRIC


@dataclass(frozen=True)
class _PipelineMetrics:
    """The metrics both the alarms and the dashboard show."""

    failed: cw.Metric
    timed_out: cw.Metric
    aborted: cw.Metric
    dlq_depth: cw.Metric
    stopped_dlq_depth: cw.Metric
    encoder_invocations: cw.Metric
    encoder_5xx: cw.Metric
    encoder_latency_p90: cw.Metric  # ModelLatency is in microseconds.
    description_fallbacks: cw.MathExpression
    reuse_unchecked: cw.Metric


def _endpoint_metric(endpoint_name: str, name: str, statistic: str) -> cw.Metric:
    return cw.Metric(
        namespace="AWS/SageMaker",
        metric_name=name,
        dimensions_map={"EndpointName": endpoint_name, "VariantName": VARIANT},
        statistic=statistic,
        period=Duration.minutes(5),
    )


def _description_fallbacks(functions: dict[str, PipelineFunction]) -> cw.MathExpression:
    """Descriptions written by the template because Bedrock failed, summed over the functions that
    describe (the metric's ``service`` dimension is the function's construct id: lambdas.py)."""
    describers = {key: functions[key] for key in ("describe", "api") if key in functions}
    return cw.MathExpression(
        expression=" + ".join(f"FILL({key}, 0)" for key in describers),
        using_metrics={
            key: cw.Metric(
                namespace=METRICS_NAMESPACE,
                metric_name=DESCRIPTION_FALLBACK_METRIC,
                dimensions_map={"service": fn.node.id},
                statistic="Sum",
                period=Duration.minutes(5),
            )
            for key, fn in describers.items()
        },
        label="Description fallbacks",
        period=Duration.minutes(5),
    )


class Monitoring(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: InfraConfig,
        state_machine: sfn.StateMachine,
        dead_letters: sqs.IQueue,
        stopped_execution_dead_letters: sqs.IQueue,
        endpoint_name: str,
        functions: dict[str, PipelineFunction],
    ) -> None:
        super().__init__(scope, construct_id)
        self.topic = self._build_topic(config)
        metrics = _PipelineMetrics(
            failed=state_machine.metric_failed(period=Duration.minutes(5), statistic="Sum"),
            timed_out=state_machine.metric_timed_out(period=Duration.minutes(5), statistic="Sum"),
            aborted=state_machine.metric_aborted(period=Duration.minutes(5), statistic="Sum"),
            dlq_depth=dead_letters.metric_approximate_number_of_messages_visible(
                period=Duration.minutes(5), statistic="Maximum"
            ),
            stopped_dlq_depth=stopped_execution_dead_letters.metric_approximate_number_of_messages_visible(
                period=Duration.minutes(5), statistic="Maximum"
            ),
            encoder_invocations=_endpoint_metric(endpoint_name, "Invocations", "Sum"),
            encoder_5xx=_endpoint_metric(endpoint_name, "Invocation5XXErrors", "Sum"),
            encoder_latency_p90=_endpoint_metric(endpoint_name, "ModelLatency", "p90"),
            description_fallbacks=_description_fallbacks(functions),
            # Photos the analyse step could not check for reuse (the metric's ``service`` dimension is
            # the function's construct id: lambdas.py).
            reuse_unchecked=cw.Metric(
                namespace=METRICS_NAMESPACE,
                metric_name=REUSE_CHECK_UNAVAILABLE_METRIC,
                dimensions_map={"service": functions["analyse"].node.id},
                statistic="Sum",
                period=Duration.minutes(5),
            ),
        )
        self.alarms = self._build_alarms(metrics)
        self._build_dashboard(metrics, state_machine, functions)

    def _build_topic(self, config: InfraConfig) -> sns.Topic:
        # A customer managed key: CloudWatch must be allowed to use it, which an AWS-managed key forbids.
        key = kms.Key(
            self,
            "AlarmTopicKey",
            enable_key_rotation=True,
            removal_policy=removal(config),
            description="Encrypts the alarm topic",
        )
        key.grant_encrypt_decrypt(iam.ServicePrincipal("cloudwatch.amazonaws.com"))
        topic = sns.Topic(self, "Alarms", master_key=key, enforce_ssl=True)
        if config.alarm_email:
            topic.add_subscription(subscriptions.EmailSubscription(config.alarm_email))
        return topic

    def _alarm(
        self,
        construct_id: str,
        metric: cw.IMetric,
        description: str,
        *,
        threshold: float = 1,
        periods: int = 1,
        comparison: cw.ComparisonOperator = cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
    ) -> cw.Alarm:
        """By default: on the first occurrence of a count in one period. Missing data does not breach:
        most of these metrics are published only when something happens."""
        return cw.Alarm(
            self,
            construct_id,
            metric=metric,
            threshold=threshold,
            evaluation_periods=periods,
            comparison_operator=comparison,
            treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
            alarm_description=description,
        )

    def _build_alarms(self, metrics: _PipelineMetrics) -> list[cw.Alarm]:
        """What needs a person; each alarm notifies the topic."""
        alarms = [
            self._alarm(
                "ExecutionsFailed",
                metrics.failed,
                "An assessment workflow failed; the assessment records the reason.",
            ),
            self._alarm(
                "ExecutionsTimedOut",
                metrics.timed_out,
                (
                    "An assessment workflow ran past its time limit; MarkFailed records the assessment "
                    "FAILED (step 'workflow') from the execution's status change event."
                ),
            ),
            self._alarm(
                "ExecutionsAborted",
                metrics.aborted,
                (
                    "An assessment workflow was stopped (StopExecution); MarkFailed records the "
                    "assessment FAILED (step 'workflow') from the execution's status change event."
                ),
            ),
            self._alarm(
                "StoppedExecutionsDlqNotEmpty",
                metrics.stopped_dlq_depth,
                (
                    "A timed-out or stopped execution's assessment could not be marked FAILED (it stays "
                    "PROCESSING): each message names the execution; redrive once the cause is fixed."
                ),
                threshold=0,
                comparison=cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
            ),
            self._alarm(
                "UploadDlqNotEmpty",
                metrics.dlq_depth,
                "Upload events failed repeatedly; redrive the DLQ once the cause is fixed.",
                threshold=0,
                comparison=cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
            ),
            self._alarm(
                "EncoderErrors",
                metrics.encoder_5xx,
                "The encoder endpoint answers 5XX.",
                periods=2,
            ),
            self._alarm(
                "EncoderLatencyP90",
                metrics.encoder_latency_p90,
                "p90 model latency above 2 s: scale out or check the instance.",
                threshold=2_000_000,
                periods=3,
                comparison=cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
            ),
            self._alarm(
                "DescriptionFallbacks",
                metrics.description_fallbacks,
                (
                    "Descriptions fell back to the template because Bedrock failed. The reason dimension "
                    "of DescriptionFallback says why (throttled, model_not_found, access_denied, "
                    "validation, timeout, other); the functions' logs have each error."
                ),
            ),
            self._alarm(
                "ReuseChecksUnavailable",
                metrics.reuse_unchecked,
                (
                    "Photos were analysed without the reused-photo check: the photo registry (DynamoDB) "
                    "failed or missed its deadline. Each photo records why (reuse_unchecked) and its "
                    "assessment warns; a reused photo goes unflagged while this lasts."
                ),
            ),
        ]
        action = cw_actions.SnsAction(self.topic)
        for alarm in alarms:
            alarm.add_alarm_action(action)
        return alarms

    def _build_dashboard(
        self,
        metrics: _PipelineMetrics,
        state_machine: sfn.StateMachine,
        functions: dict[str, PipelineFunction],
    ) -> None:
        dashboard = cw.Dashboard(self, "Dashboard", default_interval=Duration.hours(24))
        dashboard.add_widgets(
            cw.GraphWidget(
                title="Workflow executions",
                left=[
                    state_machine.metric_started(period=Duration.minutes(5)),
                    state_machine.metric_succeeded(period=Duration.minutes(5)),
                    metrics.failed,
                    metrics.timed_out,
                    metrics.aborted,
                ],
            ),
            cw.GraphWidget(title="DLQ depth", left=[metrics.dlq_depth, metrics.stopped_dlq_depth]),
            cw.GraphWidget(
                title="Encoder endpoint",
                left=[metrics.encoder_invocations, metrics.encoder_5xx],
                right=[metrics.encoder_latency_p90],
            ),
        )
        dashboard.add_widgets(
            cw.GraphWidget(
                title="Lambda errors",
                left=[fn.function.metric_errors(period=Duration.minutes(5)) for fn in functions.values()],
            ),
            cw.GraphWidget(
                title="Lambda p90 duration",
                left=[
                    fn.function.metric_duration(period=Duration.minutes(5), statistic="p90")
                    for fn in functions.values()
                ],
            ),
            cw.AlarmStatusWidget(title="Alarms", alarms=self.alarms),
        )
