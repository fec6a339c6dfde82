"""Completion events: a custom EventBridge bus that the final steps publish "Assessment Finished" to.

Store and MarkFailed (Step Functions tasks) and the sweeper publish one event per final status
(domain/events.py; the README documents the schema and how to subscribe). Each publisher gets the
bus name (EVENT_BUS_NAME) and ``events:PutEvents`` on this bus only. An archive keeps the events,
so a consumer that was down (or a new one) can be replayed what it missed.
"""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_sns as sns
from constructs import Construct

from infra.constructs.lambdas import PipelineFunction
from vehicle_assessment.domain.events import EVENT_SOURCE

# How long the archive keeps events for a replay.
ARCHIVE_RETENTION = Duration.days(30)


class AssessmentEvents(Construct):
    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)
        # The name is generated (unique per stack); publishers read it from EVENT_BUS_NAME.
        self.bus = events.EventBus(
            self, "Bus", description="Assessment Finished events of the vehicle pipeline"
        )
        self.bus.archive(
            "Archive",
            description="Every event this application published, for replays",
            event_pattern=events.EventPattern(source=[EVENT_SOURCE]),
            retention=ARCHIVE_RETENTION,
        )

    def grant_publish(self, publisher: PipelineFunction) -> None:
        """The bus's name in the function's environment, and PutEvents on this bus only."""
        publisher.function.add_environment("EVENT_BUS_NAME", self.bus.event_bus_name)
        publisher.add_to_policy(
            iam.PolicyStatement(actions=["events:PutEvents"], resources=[self.bus.event_bus_arn])
        )

    def alarm_on_unpublished(self, sweeper: PipelineFunction, topic: sns.ITopic) -> cw.Alarm:
        """The sweeper fails its run when an INCOMPLETE event could not be published (its log names
        the ids to republish). The workflow's unpublished events end its execution FAILED instead,
        which the ExecutionsFailed alarm already covers."""
        alarm = cw.Alarm(
            self,
            "SweeperFailed",
            alarm_description="The sweeper failed: an INCOMPLETE event may be unpublished (see its log)",
            metric=sweeper.function.metric_errors(period=Duration.minutes(15), statistic="Sum"),
            threshold=1,
            evaluation_periods=1,
            comparison_operator=cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
        )
        alarm.add_alarm_action(cw_actions.SnsAction(topic))
        return alarm
