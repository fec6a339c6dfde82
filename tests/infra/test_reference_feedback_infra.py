"""Learning from reviews in the template: the feedback function's grants are exactly what adding one
reviewed photo calls, and the API may only queue requests for it."""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

import pytest

from infra.constructs.learning import LEARN_INDEX
from tests.infra.cfn import ACCOUNT, REGION, placeholder, resolve_value, resources_of
from vehicle_assessment.adapters.aws.dynamodb import TABLE_ACCESS

pytestmark = pytest.mark.slow  # synthesizes the CDK app

FEEDBACK = "functions.reference_feedback.handler"
API = "functions.api.handler"


def _functions(template: dict[str, Any]) -> dict[str, tuple[str, dict[str, Any]]]:
    """Handler -> (logical id, properties)."""
    return {
        fn["Properties"]["Handler"]: (logical_id, fn["Properties"])
        for logical_id, fn in resources_of(template, "AWS::Lambda::Function").items()
        if str(fn["Properties"].get("Handler", "")).startswith("functions.")
    }


def _grants(template: dict[str, Any], role: str) -> dict[str, set[str]]:
    """Action -> the resources the role's identity policies allow it on (resolved)."""
    resolver, mappings = placeholder(template), template.get("Mappings")
    found: dict[str, set[str]] = defaultdict(set)
    for policy in resources_of(template, "AWS::IAM::Policy").values():
        if {"Ref": role} not in policy["Properties"]["Roles"]:
            continue
        document = resolve_value(policy["Properties"]["PolicyDocument"], resolver, mappings)
        for statement in document["Statement"]:
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            resources = (
                statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
            )
            for action in actions:
                found[action] |= set(resources)
    return found


def _alias_arn(template: dict[str, Any], function_id: str) -> str:
    [(alias_id, _)] = [
        (lid, a)
        for lid, a in resources_of(template, "AWS::Lambda::Alias").items()
        if a["Properties"]["FunctionName"] == {"Ref": function_id}
    ]
    return str(placeholder(template)(alias_id, "Ref"))


def test_the_feedback_function_holds_exactly_what_adding_a_reference_calls(
    template_json: dict[str, Any],
) -> None:
    functions = _functions(template_json)
    feedback_id, feedback = functions[FEEDBACK]
    role = feedback["Role"]["Fn::GetAtt"][0]
    grants = _grants(template_json, role)
    [bucket] = [b for b in resources_of(template_json, "AWS::S3::Bucket") if b.startswith("IngestUploads")]
    own = {a for a in grants if not a.startswith(("logs:", "xray:"))}
    assert own == {
        *TABLE_ACCESS["reference_feedback"].actions,
        "s3:GetObject",
        "s3:GetObjectVersion",
        "s3:PutObject",
        "sagemaker:InvokeEndpoint",
        "aoss:APIAccessAll",
    }
    assert TABLE_ACCESS["reference_feedback"].actions == ("dynamodb:GetItem", "dynamodb:UpdateItem")
    bucket_arn = f"arn:aws:service:{REGION}:{ACCOUNT}:{bucket.lower()}"
    assert grants["s3:PutObject"] == {f"{bucket_arn}/references/*"}  # display copies only
    for read in ("s3:GetObject", "s3:GetObjectVersion"):  # the pinned original of a photo
        assert grants[read] == {f"{bucket_arn}/uploads/*", f"{bucket_arn}/incoming/*"}
    [endpoint_arn] = grants["sagemaker:InvokeEndpoint"]
    assert ":endpoint/" in endpoint_arn
    [collection] = resources_of(template_json, "AWS::OpenSearchServerless::Collection")
    assert grants["aoss:APIAccessAll"] == {f"arn:aws:service:{REGION}:{ACCOUNT}:{collection.lower()}"}
    # The data access policy: read, write, and UpdateIndex for an index from before provenance.
    [policy] = resources_of(template_json, "AWS::OpenSearchServerless::AccessPolicy").values()
    rules = json.loads(resolve_value(policy["Properties"]["Policy"], placeholder(template_json)))
    principal = f"arn:aws:service:{REGION}:{ACCOUNT}:{role.lower()}"
    [rule] = [r for r in rules if r["Principal"] == [principal]]
    assert (
        set(rule["Rules"][0]["Permission"])
        == set(LEARN_INDEX)
        == {
            "aoss:DescribeIndex",
            "aoss:UpdateIndex",
            "aoss:ReadDocument",
            "aoss:WriteDocument",
        }
    )
    # Its configuration is the index's and the endpoint's, as the analyse step reads them.
    variables = feedback["Environment"]["Variables"]
    assert {"SAGEMAKER", "OPENSEARCH", "BUCKET_NAME", "RULES", "TABLE_NAME"} <= set(variables)
    assert feedback_id


def test_the_api_may_only_queue_requests_for_the_feedback_functions_alias(
    template_json: dict[str, Any],
) -> None:
    functions = _functions(template_json)
    feedback_id, _ = functions[FEEDBACK]
    _, api = functions[API]
    alias_arn = _alias_arn(template_json, feedback_id)
    grants = _grants(template_json, api["Role"]["Fn::GetAtt"][0])
    assert grants["lambda:InvokeFunction"] == {alias_arn}
    # Nothing of the index or the endpoint: the API never touches them.
    assert not {a for a in grants if a.startswith(("aoss:", "sagemaker:"))}
    variables = resolve_value(api["Environment"]["Variables"], placeholder(template_json))
    assert variables["REFERENCE_FEEDBACK_FUNCTION"] == alias_arn
    # Lambda's asynchronous retries and event age, explicit on the alias the API invokes.
    [invoke_config] = [
        config
        for config in resources_of(template_json, "AWS::Lambda::EventInvokeConfig").values()
        if config["Properties"]["FunctionName"] == {"Ref": feedback_id}
    ]
    assert invoke_config["Properties"]["MaximumRetryAttempts"] == 2
    assert resolve_value(invoke_config["Properties"]["Qualifier"], placeholder(template_json)) == "live"


def test_failures_of_either_function_are_alarmed(template_json: dict[str, Any]) -> None:
    from vehicle_assessment.aws_runtime.reference_requests import REFERENCE_FEEDBACK_FAILED_METRIC

    alarms = resources_of(template_json, "AWS::CloudWatch::Alarm")
    [alarm] = [a for lid, a in alarms.items() if "ReferenceFeedbackFailures" in lid]
    stats = [q["MetricStat"]["Metric"] for q in alarm["Properties"]["Metrics"] if "MetricStat" in q]
    counted = {
        d["Value"]
        for m in stats
        if m["MetricName"] == REFERENCE_FEEDBACK_FAILED_METRIC
        for d in m["Dimensions"]
    }
    assert counted == {"ApiFn", "ReferenceFeedbackFn"}  # POWERTOOLS_SERVICE_NAME: the construct ids
    assert {m["MetricName"] for m in stats} == {
        REFERENCE_FEEDBACK_FAILED_METRIC,
        "Errors",
        "AsyncEventsDropped",
    }
    assert alarm["Properties"]["Threshold"] == 1 and alarm["Properties"]["AlarmActions"]
