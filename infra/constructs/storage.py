"""The assessment table: the single-table design of ``adapters/aws/dynamodb.py`` (``table_definition``)."""

from __future__ import annotations

from aws_cdk import aws_dynamodb as dynamodb
from constructs import Construct

from infra.config import InfraConfig
from infra.constructs.lambdas import removal
from vehicle_assessment.adapters.aws.dynamodb import GSI1, GSI2, GSI3, GSI4, REVIEW_ENTRY

TTL_ATTRIBUTE = "expires_at"


class Storage(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, config: InfraConfig) -> None:
        super().__init__(scope, construct_id)
        self.table = dynamodb.Table(
            self,
            "Assessments",
            partition_key=dynamodb.Attribute(name="PK", type=dynamodb.AttributeType.STRING),
            sort_key=dynamodb.Attribute(name="SK", type=dynamodb.AttributeType.STRING),
            # Traffic follows uploads (bursty, often idle): on-demand costs nothing while idle.
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            encryption=dynamodb.TableEncryption.AWS_MANAGED,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            # Only written when assessment_ttl_days is set; harmless otherwise.
            time_to_live_attribute=TTL_ATTRIBUTE,
            deletion_protection=config.removal_policy == "retain",
            removal_policy=removal(config),
        )
        # GSI1: a VIN's history, newest first. GSI2: sparse, only assessments awaiting photos,
        # so the sweeper queries the stale ones instead of scanning the table. GSI4: by status, newest
        # first, for the list route (GET /assessments).
        for name in (GSI1, GSI2, GSI4):
            self.table.add_global_secondary_index(
                index_name=name,
                partition_key=dynamodb.Attribute(name=f"{name}PK", type=dynamodb.AttributeType.STRING),
                sort_key=dynamodb.Attribute(name=f"{name}SK", type=dynamodb.AttributeType.STRING),
                projection_type=dynamodb.ProjectionType.ALL,
            )
        # GSI3: sparse, only finished assessments with photos awaiting a person (the review queue),
        # oldest first; it carries only the queue entry. (One GSI per stack update: CloudFormation
        # creates at most one new GSI per table update.)
        self.table.add_global_secondary_index(
            index_name=GSI3,
            partition_key=dynamodb.Attribute(name=f"{GSI3}PK", type=dynamodb.AttributeType.STRING),
            sort_key=dynamodb.Attribute(name=f"{GSI3}SK", type=dynamodb.AttributeType.STRING),
            projection_type=dynamodb.ProjectionType.INCLUDE,
            non_key_attributes=[REVIEW_ENTRY],
        )
