"""Key resources and properties of the synthesized stack (assertions, not snapshots)."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from aws_cdk.assertions import Match, Template

from tests.infra.cfn import placeholder, resolve_value, resources_of, state_machine_definition
from vehicle_assessment.aws_runtime import authz
from vehicle_assessment.domain import limits

pytestmark = pytest.mark.slow  # synthesizes the CDK app

HANDLERS = {
    "functions.decode_vin.handler",
    "functions.analyse_photo.handler",
    "functions.value.handler",
    "functions.describe.handler",
    "functions.speak.handler",
    "functions.store.handler",
    "functions.mark_failed.handler",
    "functions.upload_trigger.handler",
    "functions.api.handler",
    "functions.sweeper.handler",
    "infra_lambda.aoss_index.handler",
    "functions.index_build_batch.handler",
    "functions.reference_feedback.handler",
}


def our_functions(template_json: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Our functions (CDK's own BucketNotificationsHandler excluded)."""
    return {
        k: v
        for k, v in resources_of(template_json, "AWS::Lambda::Function").items()
        if v["Properties"].get("Handler") in HANDLERS
    }


def test_synth_passes_cdk_nag(cloud_assembly) -> None:
    # The session fixture's synth() raises on any unacknowledged AwsSolutions finding.
    assert (cloud_assembly / "VehicleAssessmentStack.template.json").is_file()


def test_table_keys_indexes_pitr_encryption(template: Template) -> None:
    template.resource_count_is("AWS::DynamoDB::Table", 1)
    template.has_resource_properties(
        "AWS::DynamoDB::Table",
        {
            "KeySchema": [
                {"AttributeName": "PK", "KeyType": "HASH"},
                {"AttributeName": "SK", "KeyType": "RANGE"},
            ],
            "BillingMode": "PAY_PER_REQUEST",
            "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
            "SSESpecification": {"SSEEnabled": True},
            "TimeToLiveSpecification": {"AttributeName": "expires_at", "Enabled": True},
            "GlobalSecondaryIndexes": [
                Match.object_like(
                    {
                        "IndexName": "GSI1",
                        "KeySchema": [
                            {"AttributeName": "GSI1PK", "KeyType": "HASH"},
                            {"AttributeName": "GSI1SK", "KeyType": "RANGE"},
                        ],
                    }
                ),
                Match.object_like(
                    {
                        "IndexName": "GSI2",
                        "KeySchema": [
                            {"AttributeName": "GSI2PK", "KeyType": "HASH"},
                            {"AttributeName": "GSI2SK", "KeyType": "RANGE"},
                        ],
                    }
                ),
                Match.object_like(
                    {
                        "IndexName": "GSI4",
                        "KeySchema": [
                            {"AttributeName": "GSI4PK", "KeyType": "HASH"},
                            {"AttributeName": "GSI4SK", "KeyType": "RANGE"},
                        ],
                    }
                ),
                Match.object_like(
                    {
                        "IndexName": "GSI3",
                        "KeySchema": [
                            {"AttributeName": "GSI3PK", "KeyType": "HASH"},
                            {"AttributeName": "GSI3SK", "KeyType": "RANGE"},
                        ],
                        "Projection": {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["review_entry"]},
                    }
                ),
            ],
        },
    )


def test_table_matches_the_repository_design(template_json: dict[str, Any]) -> None:
    from vehicle_assessment.adapters.aws.dynamodb import table_definition

    [table] = resources_of(template_json, "AWS::DynamoDB::Table").values()
    expected = table_definition("t")
    props = table["Properties"]
    assert sorted(props["AttributeDefinitions"], key=str) == sorted(expected["AttributeDefinitions"], key=str)
    assert props["KeySchema"] == expected["KeySchema"]
    for ours, theirs in zip(props["GlobalSecondaryIndexes"], expected["GlobalSecondaryIndexes"], strict=True):
        assert ours["IndexName"] == theirs["IndexName"] and ours["KeySchema"] == theirs["KeySchema"]
        assert ours["Projection"] == theirs["Projection"]


def test_upload_bucket_is_private_encrypted_versioned_logged(template: Template) -> None:
    template.has_resource_properties(
        "AWS::S3::Bucket",
        {
            "BucketEncryption": {
                "ServerSideEncryptionConfiguration": [
                    {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}
                ]
            },
            "VersioningConfiguration": {"Status": "Enabled"},
            "PublicAccessBlockConfiguration": {
                "BlockPublicAcls": True,
                "BlockPublicPolicy": True,
                "IgnorePublicAcls": True,
                "RestrictPublicBuckets": True,
            },
            "LoggingConfiguration": Match.object_like({"LogFilePrefix": "uploads-bucket/"}),
            "CorsConfiguration": {"CorsRules": [Match.object_like({"AllowedMethods": ["POST", "GET"]})]},
            "LifecycleConfiguration": {
                "Rules": Match.array_with(
                    [
                        Match.object_like({"AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1}}),
                        # Replaced photos (evidence) kept as long as photo_retention_days by default.
                        Match.object_like({"NoncurrentVersionExpiration": {"NoncurrentDays": 365}}),
                    ]
                )
            },
        },
    )


def test_every_bucket_denies_insecure_transport(template_json: dict[str, Any]) -> None:
    policies = resources_of(template_json, "AWS::S3::BucketPolicy").values()
    buckets = resources_of(template_json, "AWS::S3::Bucket")
    assert sorted(p["Properties"]["Bucket"]["Ref"] for p in policies) == sorted(buckets)
    for policy in policies:
        statements = policy["Properties"]["PolicyDocument"]["Statement"]
        assert any(
            s["Effect"] == "Deny" and s.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}}
            for s in statements
        )


def test_upload_events_queue_has_dlq_and_notifications(template: Template, template_json) -> None:
    template.has_resource_properties(
        "AWS::SQS::Queue",
        {
            "RedrivePolicy": {"deadLetterTargetArn": Match.any_value(), "maxReceiveCount": 5},
            "SqsManagedSseEnabled": True,
            "VisibilityTimeout": 360,
        },
    )
    [notifications] = resources_of(template_json, "Custom::S3BucketNotifications").values()
    configs = notifications["Properties"]["NotificationConfiguration"]["QueueConfigurations"]
    prefixes = sorted(c["Filter"]["Key"]["FilterRules"][0]["Value"] for c in configs)
    assert prefixes == ["incoming/", "uploads/"]
    template.has_resource_properties(
        "AWS::Lambda::EventSourceMapping",
        {"FunctionResponseTypes": ["ReportBatchItemFailures"], "ScalingConfig": {"MaximumConcurrency": 10}},
    )
    template.has_resource_properties("AWS::Events::Rule", {"ScheduleExpression": "rate(15 minutes)"})


def test_functions_runtime_arch_tracing_logs(template_json: dict[str, Any]) -> None:
    functions = our_functions(template_json)
    assert {f["Properties"]["Handler"] for f in functions.values()} == HANDLERS
    roles = set()
    for fn in functions.values():
        props = fn["Properties"]
        assert props["Runtime"] == "python3.12"
        assert props["Architectures"] == ["arm64"]
        assert props["TracingConfig"] == {"Mode": "Active"}
        assert "LogGroup" in props["LoggingConfig"]
        roles.add(props["Role"]["Fn::GetAtt"][0])
    # One role per function: nothing shares permissions it does not need.
    assert len(roles) == len(functions)
    for group in resources_of(template_json, "AWS::Logs::LogGroup").values():
        assert group["Properties"]["RetentionInDays"] == 30


PHOTO_HANDLERS = {
    "functions.analyse_photo.handler",
    "infra_lambda.aoss_index.handler",
    "functions.index_build_batch.handler",
    "functions.reference_feedback.handler",
}


def test_two_code_assets_photo_one_for_analyse_index_and_feedback_only(
    cloud_assembly, template_json: dict[str, Any]
) -> None:
    """numpy, pillow and opensearch-py (infra/bundling.py "photo") ship with four functions only:
    the analyse step, the index custom resource, the index build's batches and the reference feedback
    function (it decodes the reviewed photo and writes the index)."""
    asset_of = {
        f["Properties"]["Handler"]: f["Properties"]["Code"]["S3Key"]
        for f in our_functions(template_json).values()
    }
    photo = {asset_of[h] for h in PHOTO_HANDLERS}
    light = {k for h, k in asset_of.items() if h not in PHOTO_HANDLERS}
    assert len(photo) == 1 and len(light) == 1 and photo != light
    # The light asset leaves out the custom resource's handler and the photo pins.
    (light_dir,) = (cloud_assembly / f"asset.{key.removesuffix('.zip')}" for key in light)
    (photo_dir,) = (cloud_assembly / f"asset.{key.removesuffix('.zip')}" for key in photo)
    assert (photo_dir / "infra_lambda" / "aoss_index.py").is_file()
    assert (photo_dir / "functions" / "requirements-photo.txt").is_file()
    assert not (light_dir / "infra_lambda").exists()
    assert not (light_dir / "functions" / "requirements-photo.txt").exists()
    assert (light_dir / "functions" / "requirements.txt").is_file()


def test_one_sdk_layer_for_every_function_and_no_sdk_in_their_packages(
    cloud_assembly, template_json: dict[str, Any]
) -> None:
    """The pinned AWS SDK ships once, as a layer every function (the index custom resource included)
    attaches; the function assets carry no SDK pins (infra/bundling.py "sdk")."""
    # CDK's BucketDeployment (the web app's files, infra/constructs/site.py) brings an AWS CLI layer
    # for its own handler; ours is the SDK layer.
    layers = {
        k: v
        for k, v in resources_of(template_json, "AWS::Lambda::LayerVersion").items()
        if v["Properties"].get("Description") != "/opt/awscli/aws"
    }
    assert len(layers) == 1
    ((layer_id, layer),) = layers.items()
    assert layer["Properties"]["CompatibleRuntimes"] == ["python3.12"]
    assert layer["Properties"]["CompatibleArchitectures"] == ["arm64"]
    functions = our_functions(template_json)
    assert {f["Properties"]["Handler"] for f in functions.values()} == set(HANDLERS)
    for fn in functions.values():
        assert fn["Properties"].get("Layers") == [{"Ref": layer_id}], fn["Properties"]["Handler"]
    # With bundling "skip" the layer's asset is its lock file, which pins the SDK.
    layer_dir = cloud_assembly / f"asset.{layer['Properties']['Content']['S3Key'].removesuffix('.zip')}"
    assert sorted(p.name for p in layer_dir.iterdir()) == ["requirements-sdk.txt"]
    pins = (layer_dir / "requirements-sdk.txt").read_text()
    assert all(f"\n{name}==" in pins for name in ("boto3", "botocore", "s3transfer"))
    for key in {f["Properties"]["Code"]["S3Key"] for f in functions.values()}:
        asset = cloud_assembly / f"asset.{key.removesuffix('.zip')}"
        assert not (asset / "functions" / "requirements-sdk.txt").exists()
        light_pins = (asset / "functions" / "requirements.txt").read_text()
        assert not any(f"\n{name}==" in light_pins for name in ("boto3", "botocore", "s3transfer"))


def test_no_aws_managed_policies_on_our_roles(template_json: dict[str, Any]) -> None:
    for fn in our_functions(template_json).values():
        role = template_json["Resources"][fn["Properties"]["Role"]["Fn::GetAtt"][0]]
        assert "ManagedPolicyArns" not in role["Properties"]


def test_state_machine_standard_traced_logged(template: Template) -> None:
    template.has_resource_properties(
        "AWS::StepFunctions::StateMachine",
        {
            "StateMachineType": "STANDARD",
            "TracingConfiguration": {"Enabled": True},
            "LoggingConfiguration": Match.object_like({"Level": "ALL", "IncludeExecutionData": False}),
        },
    )


def test_workflow_retries_transient_errors_only_and_catches_all(template_json: dict[str, Any]) -> None:
    definition = json.loads(state_machine_definition(template_json))
    states = definition["States"]
    assert definition["StartAt"] == "DecodeVin"
    chain, name = [], "DecodeVin"
    while "Next" in states[name]:
        chain.append(name)
        name = states[name]["Next"]
    assert chain == ["DecodeVin", "AnalysePhotos", "Value", "Describe", "Speak", "Store"]
    photos = states["AnalysePhotos"]
    assert photos["MaxConcurrency"] == 3 and photos["ItemsPath"] == "$.photos"
    tasks = {n: s for n, s in states.items() if s["Type"] == "Task"}
    tasks["AnalysePhoto"] = photos["ItemProcessor"]["States"]["AnalysePhoto"]
    for name, task in tasks.items():
        retry, snapstart, *publishing = task["Retry"]
        assert all(e.startswith("Lambda.SnapStart") for e in snapstart["ErrorEquals"]), name
        # Store and MarkFailed publish the final event: a refused publication retries the step.
        assert [r["ErrorEquals"] for r in publishing] == (
            [["EventPublishFailed"]] if name in {"Store", "MarkFailed"} else []
        ), name
        assert "States.ALL" not in retry["ErrorEquals"], name
        assert {"Lambda.ServiceException", "Lambda.TooManyRequestsException", "States.Timeout"} <= set(
            retry["ErrorEquals"]
        )
        assert retry["JitterStrategy"] == "FULL"
    for name in chain:
        [catch] = states[name]["Catch"]
        assert catch["ErrorEquals"] == ["States.ALL"] and catch["ResultPath"] == "$.error"
        assert states[states[catch["Next"]]["Next"]] is states["MarkFailed"]
    assert states[states["MarkFailed"]["Next"]]["Type"] == "Fail"


def test_api_methods_all_cognito_with_validation(template: Template, template_json) -> None:
    methods = {
        k: m
        for k, m in resources_of(template_json, "AWS::ApiGateway::Method").items()
        if m["Properties"]["HttpMethod"] != "OPTIONS"  # CORS preflights: tests/infra/test_auth.py
    }
    # create, list, get, media, regenerate, a VIN's history, the queue, review, edit
    assert len(methods) == len(authz.ROUTES) == 9
    for method in methods.values():
        assert method["Properties"]["AuthorizationType"] == "COGNITO_USER_POOLS"
        assert method["Properties"]["Integration"]["Type"] == "AWS_PROXY"
        assert "RequestValidatorId" in method["Properties"]
    with_bodies = [m for m in methods.values() if m["Properties"]["HttpMethod"] in ("POST", "PUT")]
    assert len(with_bodies) == 4
    assert all("application/json" in m["Properties"]["RequestModels"] for m in with_bodies)
    template.has_resource_properties(
        "AWS::ApiGateway::Stage",
        {
            "AccessLogSetting": Match.object_like({"DestinationArn": Match.any_value()}),
            "MethodSettings": [Match.object_like({"ThrottlingRateLimit": 50, "ThrottlingBurstLimit": 100})],
            "TracingEnabled": True,
        },
    )


def test_api_models_are_draft4_from_the_lambda_models(template_json: dict[str, Any]) -> None:
    models = {
        m["Properties"]["Name"]: m["Properties"]["Schema"]
        for m in resources_of(template_json, "AWS::ApiGateway::Model").values()
    }
    create = models["CreateAssessment"]
    assert create["$schema"] == "http://json-schema.org/draft-04/schema#"
    assert create["required"] == ["vin"]
    # The API's bounds are the domain's, not copies.
    estimate = json.dumps(create["properties"]["estimate_usd"])
    assert f'"minimum": {limits.MIN_ESTIMATE_USD:.0f}' in estimate
    assert f'"maximum": {limits.MAX_ESTIMATE_USD:.0f}' in estimate
    # draft 4: exclusiveMinimum/exclusiveMaximum are flags beside minimum/maximum, never numbers.
    for schema in models.values():
        text = json.dumps(schema)
        assert not re.search(r'"exclusive(Minimum|Maximum)": -?[0-9]', text), text


def test_endpoint_instance_type_from_context_and_autoscaling(template: Template) -> None:
    template.has_resource_properties(
        "AWS::SageMaker::EndpointConfig",
        {
            "ProductionVariants": [
                Match.object_like({"InstanceType": "ml.g5.2xlarge", "VariantName": "AllTraffic"})
            ]
        },
    )
    template.has_resource_properties("AWS::SageMaker::Model", {"EnableNetworkIsolation": True})
    template.has_resource_properties(
        "AWS::ApplicationAutoScaling::ScalableTarget",
        {
            "ServiceNamespace": "sagemaker",
            "ScalableDimension": "sagemaker:variant:DesiredInstanceCount",
            "ResourceId": "endpoint/vehicleassessmentstack-encoder/variant/AllTraffic",
            "MinCapacity": 1,
            "MaxCapacity": 2,
        },
    )
    template.has_resource_properties(
        "AWS::ApplicationAutoScaling::ScalingPolicy",
        {
            "PolicyType": "TargetTrackingScaling",
            "TargetTrackingScalingPolicyConfiguration": Match.object_like(
                {
                    "PredefinedMetricSpecification": {
                        "PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"
                    }
                }
            ),
        },
    )


def test_vector_collection_and_access_policy(template: Template, template_json) -> None:
    template.has_resource_properties("AWS::OpenSearchServerless::Collection", {"Type": "VECTORSEARCH"})
    types = sorted(
        p["Properties"]["Type"]
        for p in resources_of(template_json, "AWS::OpenSearchServerless::SecurityPolicy").values()
    )
    assert types == ["encryption", "network"]
    [policy] = resources_of(template_json, "AWS::OpenSearchServerless::AccessPolicy").values()
    rules = json.loads(resolve_value(policy["Properties"]["Policy"], placeholder(template_json)))
    principals = {p for rule in rules for p in rule["Principal"]}
    functions = our_functions(template_json)
    role_of = {
        v["Properties"]["Handler"]: v["Properties"]["Role"]["Fn::GetAtt"][0] for v in functions.values()
    }
    expected = {
        f"arn:aws:service:us-east-1:123456789012:{role_of[h].lower()}"
        for h in (
            "functions.analyse_photo.handler",
            "infra_lambda.aoss_index.handler",
            "functions.index_build_batch.handler",
            "functions.reference_feedback.handler",
        )
    }
    assert principals == expected | {"arn:aws:iam::123456789012:role/reference-loader"}
    analyse_arn = (
        f"arn:aws:service:us-east-1:123456789012:{role_of['functions.analyse_photo.handler'].lower()}"
    )
    reader = next(r for r in rules if r["Principal"] == [analyse_arn])
    assert reader["Rules"][0]["Permission"] == ["aoss:DescribeIndex", "aoss:ReadDocument"]
    # The index build's batches create or bind the index, look photos up and write them.
    batch_arn = (
        f"arn:aws:service:us-east-1:123456789012:{role_of['functions.index_build_batch.handler'].lower()}"
    )
    loader = next(r for r in rules if r["Principal"] == [batch_arn])
    assert set(loader["Rules"][0]["Permission"]) == {
        "aoss:CreateIndex",
        "aoss:DescribeIndex",
        "aoss:UpdateIndex",
        "aoss:ReadDocument",
        "aoss:WriteDocument",
    }
    template.has_resource_properties("Custom::AossKnnIndex", {"IndexName": "reference-photos"})


def test_alarms(template: Template, template_json) -> None:
    template.resource_count_is("AWS::CloudWatch::Alarm", 11)
    metrics = {
        a["Properties"].get("MetricName", "(metric math)")
        for a in resources_of(template_json, "AWS::CloudWatch::Alarm").values()
    }
    assert metrics == {
        "ExecutionsFailed",
        "ExecutionsTimedOut",  # no Catch runs: MarkFailed from the rule (test_stopped_executions.py)
        "ExecutionsAborted",
        "ApproximateNumberOfMessagesVisible",  # the upload DLQ's and the stopped executions' DLQ
        "Invocation5XXErrors",
        "ModelLatency",
        "Errors",  # the sweeper's: an INCOMPLETE event may be unpublished
        "(metric math)",  # DescriptionFallbacks (test_client_budgets.py), ReferenceFeedbackFailures
        "ReuseCheckUnavailable",  # photos analysed without the reused-photo check (test_client_budgets.py)
    }
    template.resource_count_is("AWS::CloudWatch::Dashboard", 1)
