"""Time budgets and Bedrock access, read from the synthesized template.

Each function's AWS clients are built from the configuration the function itself would read: its
typed settings defaults plus the environment the stack sets on it (taken from the template). Their
worst case, every attempt timing out after the longest backoffs, must fit the function's Timeout with
room left for the work.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from typing import Any

import pytest

from tests.infra.cfn import REGION, placeholder, resolve_value, resources_of, state_machine_definition
from vehicle_assessment.adapters.aws import bedrock_models
from vehicle_assessment.adapters.aws.settings import OpenSearchSettings
from vehicle_assessment.aws_runtime.api import REVIEW_PARALLEL_DESCRIPTIONS
from vehicle_assessment.aws_runtime.config import (
    ApiConfig,
    FunctionConfig,
    ReferenceFeedbackConfig,
    SweeperConfig,
    UploadConfig,
    WorkflowConfig,
)
from vehicle_assessment.aws_runtime.reference_requests import reference_feedback_worst_case_s
from vehicle_assessment.aws_runtime.workflow_steps import analyse_photo_worst_case_s
from vehicle_assessment.domain import limits

pytestmark = pytest.mark.slow  # synthesizes the CDK app

# A function's clients may take at most this share of its timeout: the rest is the work itself
# (and the other calls it makes around the slow one).
CLIENT_SHARE_OF_TIMEOUT = limits.CLIENT_SHARE_OF_TIMEOUT

Clients = Callable[[Any], dict[str, float]]


def _generic(config: FunctionConfig) -> dict[str, float]:
    # DynamoDB, S3 and Step Functions share the function's `client` settings (factory.py).
    return {"dynamodb/s3/sfn": config.client.worst_case_s()}


def _analyse(config: WorkflowConfig) -> dict[str, float]:
    assert config.sagemaker is not None and config.opensearch is not None
    return {
        **_generic(config),
        "sagemaker-runtime": config.sagemaker.client.worst_case_s(),
        "opensearch": config.opensearch.worst_case_s(),
        "photo registry (its DynamoDB client)": config.photo_registry_client.worst_case_s(),
    }


def _analyse_one_after_another(config: WorkflowConfig) -> dict[str, float]:
    """Every AWS call of one AnalysePhoto invocation (aws_runtime/workflow_steps.py analyse_photo, in
    a fresh container), one after another, each at its worst case."""
    assert config.sagemaker is not None and config.opensearch is not None and config.rules.reuse.enabled
    dynamodb_s3, encoder, search = (
        config.client.worst_case_s(),
        config.sagemaker.client.worst_case_s(),
        config.opensearch.worst_case_s(),
    )
    return {
        "repository.get (GetItem)": dynamodb_s3,
        "objects.get (S3 GetObject)": dynamodb_s3,
        "index.identity (OpenSearch mapping read)": search,
        "encoder.identity (SageMaker probe, once per container)": encoder,
        "encoder.embed (SageMaker)": encoder,
        "index.search (OpenSearch _msearch)": search,
        # pipeline.check_reuse: remember, then find_reuse, each bounded by the registry's deadline.
        "registry.remember": limits.PHOTO_REGISTRY_DEADLINE_S,
        "registry.find_reuse": limits.PHOTO_REGISTRY_DEADLINE_S,
        "repository.save_photo_result (UpdateItem)": dynamodb_s3,
    }


def _descriptions(config: ApiConfig | WorkflowConfig) -> int:
    """Descriptions one invocation writes or speaks, one after another: the API regenerates one."""
    if isinstance(config, WorkflowConfig):
        return len(config.rules.languages) * len(config.rules.styles)
    return 1


def _describe(config: ApiConfig | WorkflowConfig) -> dict[str, float]:
    calls = _descriptions(config)
    return {**_generic(config), f"bedrock-runtime × {calls}": calls * config.bedrock.client.worst_case_s()}


def _speak(config: ApiConfig | WorkflowConfig) -> dict[str, float]:
    calls = _descriptions(config) * math.ceil(config.bedrock.max_chars / config.polly.max_chunk_chars)
    return {**_generic(config), f"polly × {calls}": calls * config.polly.client.worst_case_s()}


def _reference_feedback(config: ReferenceFeedbackConfig) -> dict[str, float]:
    # Every call adding one reviewed photo makes, one after another: the function's whole worst case.
    return {**_generic(config), "add one reference": reference_feedback_worst_case_s(config)}


def _api(config: ApiConfig) -> dict[str, float]:
    return {
        **_describe(config),
        **_speak(config),
        "lambda (async invoke)": config.lambda_client.worst_case_s(),
    }


def _aoss_index(_: None) -> dict[str, float]:
    # infra/lambda_src/aoss_index.py builds the index with OpenSearchSettings' defaults.
    return {"opensearch": OpenSearchSettings(collection_endpoint="collection.example").worst_case_s()}


# Handler → (the configuration class it reads, the clients it builds from it).
FUNCTIONS: dict[str, tuple[type[FunctionConfig] | None, Clients]] = {
    "functions.decode_vin.handler": (WorkflowConfig, _generic),
    "functions.analyse_photo.handler": (WorkflowConfig, _analyse),
    "functions.value.handler": (WorkflowConfig, _generic),
    "functions.describe.handler": (WorkflowConfig, _describe),
    "functions.speak.handler": (WorkflowConfig, _speak),
    "functions.store.handler": (WorkflowConfig, _generic),
    "functions.mark_failed.handler": (WorkflowConfig, _generic),
    "functions.upload_trigger.handler": (UploadConfig, _generic),
    "functions.sweeper.handler": (SweeperConfig, _generic),
    "functions.api.handler": (ApiConfig, _api),
    "functions.reference_feedback.handler": (ReferenceFeedbackConfig, _reference_feedback),
    "infra_lambda.aoss_index.handler": (None, _aoss_index),
}


def _our_functions(template_json: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        fn["Properties"]["Handler"]: fn
        for fn in resources_of(template_json, "AWS::Lambda::Function").values()
        if fn["Properties"].get("Handler") in FUNCTIONS
    }


def _function_config(
    monkeypatch: pytest.MonkeyPatch, template_json: dict[str, Any], fn: dict[str, Any], kind: type[Any]
) -> Any:
    """The configuration the function reads at run time: its environment in the template, resolved."""
    variables = resolve_value(
        fn["Properties"].get("Environment", {}).get("Variables", {}),
        placeholder(template_json),
        template_json.get("Mappings"),
    )
    with monkeypatch.context() as env:
        for name in [n for n in os.environ if n.isupper()]:
            env.delenv(name)
        env.setenv("AWS_REGION", REGION)  # Lambda sets it
        for name, value in variables.items():
            env.setenv(name, str(value))
        return kind()


def test_every_function_is_budgeted(template_json: dict[str, Any]) -> None:
    assert set(_our_functions(template_json)) == set(FUNCTIONS)


@pytest.mark.parametrize("handler", sorted(FUNCTIONS))
def test_each_clients_worst_case_fits_its_functions_timeout(
    monkeypatch: pytest.MonkeyPatch, template_json: dict[str, Any], handler: str
) -> None:
    fn = _our_functions(template_json)[handler]
    timeout_s = fn["Properties"]["Timeout"]
    kind, clients = FUNCTIONS[handler]
    config = _function_config(monkeypatch, template_json, fn, kind) if kind is not None else None
    budget = CLIENT_SHARE_OF_TIMEOUT * timeout_s
    too_slow = {name: worst for name, worst in clients(config).items() if worst > budget}
    assert not too_slow, f"{handler} (timeout {timeout_s} s, {budget:.0f} s for clients): {too_slow}"


def test_the_analyse_steps_calls_one_after_another_fit_its_timeout(
    monkeypatch: pytest.MonkeyPatch, template_json: dict[str, Any]
) -> None:
    """Each client fitting the timeout is not enough: one photo's calls run one after another, and
    a slow DynamoDB must leave the photo unchecked for reuse, not time the step out (and fail it)."""
    fn = _our_functions(template_json)["functions.analyse_photo.handler"]
    timeout_s = fn["Properties"]["Timeout"]
    config = _function_config(monkeypatch, template_json, fn, WorkflowConfig)
    calls = _analyse_one_after_another(config)
    budget = CLIENT_SHARE_OF_TIMEOUT * timeout_s
    assert sum(calls.values()) <= budget, f"timeout {timeout_s} s, {budget:.0f} s for clients: {calls}"
    # The stack sizes the timeout from the runtime's own list of the calls: the same calls.
    assert sum(analyse_photo_worst_case_s(config).values()) == sum(calls.values())
    # A left-over registry Query ends within its client's worst case: a deadline away, not a timeout.
    assert config.photo_registry_client.worst_case_s() < 3 * limits.PHOTO_REGISTRY_DEADLINE_S


def test_the_api_answers_within_api_gateways_limit(
    monkeypatch: pytest.MonkeyPatch, template_json: dict[str, Any]
) -> None:
    fn = _our_functions(template_json)["functions.api.handler"]
    assert fn["Properties"]["Timeout"] == limits.API_GATEWAY_TIMEOUT_S
    config = _function_config(monkeypatch, template_json, fn, ApiConfig)
    assert config.bedrock.client.max_attempts == 1
    assert config.bedrock.client.worst_case_s() <= limits.API_DESCRIBER_DEADLINE_S
    # A review rewrites every (style, language) description: one pair's describer + speech worst case
    # fits the function's timeout, the pairs one after another would not, so they run at once
    # (aws_runtime/api.py REVIEW_PARALLEL_DESCRIPTIONS) instead of in a state machine.
    one_pair_s = (
        _describe(config)["bedrock-runtime × 1"]
        + _speak(config)[f"polly × {math.ceil(config.bedrock.max_chars / config.polly.max_chunk_chars)}"]
    )
    pairs = len(config.rules.languages) * len(config.rules.styles)
    assert pairs <= REVIEW_PARALLEL_DESCRIPTIONS
    assert one_pair_s < fn["Properties"]["Timeout"] < pairs * one_pair_s
    # A review "as reference" also adds the photo to the index. Done in the route, that addition's
    # worst case (the feedback function's clients, as deployed) would not fit beside the pair's: the
    # API only queues it (an asynchronous Invoke, one short attempt), which does fit.
    feedback = _our_functions(template_json)["functions.reference_feedback.handler"]
    feedback_config = _function_config(monkeypatch, template_json, feedback, ReferenceFeedbackConfig)
    assert config.reference_feedback_function is not None  # learning is on in the deployed API
    assert one_pair_s + reference_feedback_worst_case_s(feedback_config) > limits.API_GATEWAY_TIMEOUT_S
    assert one_pair_s + config.lambda_client.worst_case_s() <= limits.API_GATEWAY_TIMEOUT_S


LAMBDA_SERVICE_ERRORS = {
    "Lambda.ClientExecutionTimeoutException",
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
    "Lambda.Unknown",
}


def test_every_task_retries_lambdas_service_exceptions(template_json: dict[str, Any]) -> None:
    states = json.loads(state_machine_definition(template_json))["States"]
    tasks = {n: s for n, s in states.items() if s["Type"] == "Task"}
    tasks["AnalysePhoto"] = states["AnalysePhotos"]["ItemProcessor"]["States"]["AnalysePhoto"]
    assert len(tasks) == 7
    for name, task in tasks.items():
        retried = {error for retry in task["Retry"] for error in retry["ErrorEquals"]}
        assert retried >= LAMBDA_SERVICE_ERRORS, (name, LAMBDA_SERVICE_ERRORS - retried)
        assert "States.ALL" not in retried and "States.TaskFailed" not in retried


def _bedrock_statements(template_json: dict[str, Any], role_prefix: str) -> list[dict[str, Any]]:
    resolver, mappings = placeholder(template_json), template_json.get("Mappings")
    return [
        statement
        for policy in resources_of(template_json, "AWS::IAM::Policy").values()
        if any(role["Ref"].startswith(role_prefix) for role in policy["Properties"]["Roles"])
        for statement in resolve_value(policy["Properties"]["PolicyDocument"], resolver, mappings)[
            "Statement"
        ]
        if "bedrock:InvokeModel" in statement["Action"]
    ]


@pytest.mark.parametrize("role_prefix", ["WorkflowDescribeFnRole", "ApiApiFnRole"])
def test_bedrock_grants_the_profile_and_its_models_in_every_region_it_routes_to(
    template_json: dict[str, Any], role_prefix: str
) -> None:
    statements = _bedrock_statements(template_json, role_prefix)
    profile_id = bedrock_models.invocation_model_id(bedrock_models.DEFAULT_BEDROCK_MODEL_ID, REGION)
    assert profile_id == "us.amazon.nova-lite-v1:0"
    profile_arn = f"arn:aws:bedrock:{REGION}:123456789012:inference-profile/{profile_id}"
    profile = [s for s in statements if s["Resource"] == profile_arn]
    models = [s for s in statements if s is not profile[0]] if profile else []
    assert len(profile) == 1 and len(models) == 1, statements
    resources = models[0]["Resource"]
    for region in bedrock_models.NOVA_PROFILE_REGIONS["us"]:
        assert f"arn:aws:bedrock:{region}::foundation-model/amazon.nova-lite-v1:0" in resources
    assert all(arn.endswith("::foundation-model/amazon.nova-lite-v1:0") for arn in resources)
    # The foundation models only through this profile, never directly.
    assert models[0]["Condition"] == {"StringEquals": {"bedrock:InferenceProfileArn": profile_arn}}


def test_description_fallbacks_are_alarmed(template_json: dict[str, Any]) -> None:
    alarms = resources_of(template_json, "AWS::CloudWatch::Alarm")
    [alarm] = [a for lid, a in alarms.items() if "DescriptionFallbacks" in lid]
    queries = alarm["Properties"]["Metrics"]
    watched = {
        d["Value"]["Ref"] if isinstance(d["Value"], dict) else d["Value"]
        for q in queries
        if "MetricStat" in q
        for d in q["MetricStat"]["Metric"]["Dimensions"]
    }
    assert {q["MetricStat"]["Metric"]["MetricName"] for q in queries if "MetricStat" in q} == {
        bedrock_models.DESCRIPTION_FALLBACK_METRIC
    }
    assert watched == {"DescribeFn", "ApiFn"}
    assert alarm["Properties"]["Threshold"] == 1 and alarm["Properties"]["AlarmActions"]


def test_reuse_check_outages_are_alarmed(template_json: dict[str, Any]) -> None:
    from vehicle_assessment.aws_runtime.workflow_steps import REUSE_CHECK_UNAVAILABLE_METRIC

    alarms = resources_of(template_json, "AWS::CloudWatch::Alarm")
    [alarm] = [
        a for a in alarms.values() if a["Properties"].get("MetricName") == REUSE_CHECK_UNAVAILABLE_METRIC
    ]
    assert alarm["Properties"]["Dimensions"] == [{"Name": "service", "Value": "AnalysePhotoFn"}]
    assert alarm["Properties"]["Namespace"] == "VehicleAssessment"
    assert alarm["Properties"]["Threshold"] == 1 and alarm["Properties"]["AlarmActions"]


@pytest.mark.parametrize(
    ("model_id", "region", "profile", "model_regions"),
    [
        (
            "amazon.nova-lite-v1:0",
            "eu-west-1",
            "eu.amazon.nova-lite-v1:0",
            bedrock_models.NOVA_PROFILE_REGIONS["eu"],
        ),
        (
            "apac.amazon.nova-pro-v1:0",
            "ap-south-1",
            "apac.amazon.nova-pro-v1:0",
            bedrock_models.NOVA_PROFILE_REGIONS["apac"],
        ),
        # A profile the table does not know: its model in any region, only through the profile.
        (
            "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
            "us-east-2",
            "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
            None,
        ),
        ("anthropic.claude-3-5-haiku-20241022-v1:0", "us-west-2", None, ("us-west-2",)),
    ],
)
def test_bedrock_statements_in_a_stack_with_a_known_region(
    model_id: str, region: str, profile: str | None, model_regions: tuple[str, ...] | None
) -> None:
    from aws_cdk import App, Environment, Stack

    from infra.constructs.workflow import bedrock_invoke_statements

    stack = Stack(App(), "Probe", env=Environment(account="123456789012", region=region))
    statements = [
        resolve_value(stack.resolve(s.to_statement_json()), lambda *_: "unused")
        for s in bedrock_invoke_statements(stack, model_id)
    ]
    base = bedrock_models.split_profile_id(model_id)[1]
    if profile is None:  # a model offered in-region: that region's foundation model only
        assert [s["Resource"] for s in statements] == [f"arn:aws:bedrock:{region}::foundation-model/{base}"]
        return
    profile_grant, model_grant = statements
    profile_arn = f"arn:aws:bedrock:{region}:123456789012:inference-profile/{profile}"
    assert profile_grant["Resource"] == profile_arn
    resources = (
        model_grant["Resource"] if isinstance(model_grant["Resource"], list) else [model_grant["Resource"]]
    )
    assert resources == [f"arn:aws:bedrock:{r}::foundation-model/{base}" for r in model_regions or ["*"]]
    assert model_grant["Condition"] == {"StringEquals": {"bedrock:InferenceProfileArn": profile_arn}}


def test_describe_and_speak_timeouts_grow_with_the_languages() -> None:
    from infra.config import InfraConfig
    from infra.constructs.workflow import step_timeout_s

    two, six = (
        InfraConfig(languages=["en", "es"]),
        InfraConfig(languages=["en", "es", "fr", "de", "it", "pt"]),
    )
    for key in ("describe", "speak"):
        assert step_timeout_s(key, six) > step_timeout_s(key, two)
        assert step_timeout_s(key, six) <= limits.LAMBDA_MAX_TIMEOUT_S
    assert step_timeout_s("value", six) == step_timeout_s("value", two)
    with pytest.raises(ValueError, match="configure fewer languages"):
        step_timeout_s("describe", InfraConfig(languages=[f"l{i}" for i in range(12)]))
