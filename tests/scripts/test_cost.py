"""scripts/cost.py: the counts come from the code, per-request lines scale with volume, fixed ones do not."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import urllib3  # noqa: F401  (probes IPv6 with a socket on first import: import it before the guard)

from infra.config import InfraConfig

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "cost.py"
SERVICES = {
    "SageMaker endpoint",
    "OpenSearch Serverless",
    "Lambda",
    "Step Functions",
    "S3",
    "DynamoDB",
    "Bedrock",
    "Polly",
    "API Gateway",
    "SQS",
    "CloudWatch",
    "X-Ray",
    "EventBridge",
    "KMS",
    "CloudFront",
}


@pytest.fixture(scope="module")
def cost() -> ModuleType:
    spec = importlib.util.spec_from_file_location("cost_script", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["cost_script"] = module  # dataclasses resolve their module by name
    spec.loader.exec_module(module)
    return module


def workflow_definition(photo_states: int = 1) -> dict[str, Any]:
    """The workflow's shape: DecodeVin → Map(AnalysePhoto) → Value → Describe → Speak → Store → Assessed."""
    chain = ["DecodeVin", "AnalysePhotos", "Value", "Describe", "Speak", "Store", "Assessed"]
    states: dict[str, Any] = {}
    for name, following in zip(chain, [*chain[1:], None], strict=True):
        states[name] = {"Type": "Task", "Next": following}
    states["Assessed"] = {"Type": "Succeed"}
    processor_states = {f"P{i}": {"Type": "Task", "Next": f"P{i + 1}"} for i in range(photo_states)}
    processor_states[f"P{photo_states - 1}"] = {"Type": "Task", "End": True}
    states["AnalysePhotos"] = {
        "Type": "Map",
        "Next": "Value",
        "ItemProcessor": {"StartAt": "P0", "States": processor_states},
    }
    states["MarkFailed"] = {"Type": "Task", "Next": "Failed"}  # off the happy path: never counted
    return {"StartAt": "DecodeVin", "States": states}


@pytest.fixture(scope="module")
def stack(cost: ModuleType) -> Any:
    """Stack facts with every Lambda's memory from the workflow's own STEPS table."""
    from infra.constructs.workflow import STEPS

    memory = {step.module: step.memory_mb for step in STEPS.values()}
    memory |= {"api": 512, "upload_trigger": 256, "sweeper": 256, "reference_feedback": 1024}
    config = InfraConfig()
    return cost.StackFacts(
        functions={m: cost.LambdaFacts(m, mb, 60, config.lambda_architecture) for m, mb in memory.items()},
        definition=workflow_definition(),
        endpoint_instance_type=config.encoder_instance_type,
        endpoint_min_instances=config.encoder_min_instances,
        endpoint_max_instances=config.encoder_max_instances,
        standby_replicas=config.collection_standby_replicas,
        sqs_batching_window_s=1.0,
        alarms=6,
        dashboards=1,
        kms_keys=1,
        sweep_rate_minutes=config.sweep_rate_minutes,
        site_price_class="PriceClass_100",
        site_requests_per_load=12,
        site_bytes_per_load=80_000,
    )


@pytest.fixture(scope="module")
def prices(cost: ModuleType) -> Any:
    return cost.load_prices()


def by_item(lines: list[Any]) -> dict[tuple[str, str], Any]:
    return {(line.service, line.item.split(" (")[0]): line for line in lines}


def test_transitions_follow_the_definition(cost: ModuleType) -> None:
    # 7 states on the happy path + one per photo; a two-state item processor counts twice per photo.
    assert cost.count_transitions(workflow_definition(), 3) == 10
    assert cost.count_transitions(workflow_definition(), 5) == 12
    assert cost.count_transitions(workflow_definition(photo_states=2), 3) == 13
    # Lambda invocations: the Task states (DecodeVin, an AnalysePhoto per photo, 4 steps), not Map or Succeed.
    assert cost.count_transitions(workflow_definition(), 3, only="Task") == 8


def test_the_measured_assessment_counts_come_from_the_steps(cost: ModuleType) -> None:
    one = cost.measure_workload(InfraConfig(languages=["en"]))
    three = cost.measure_workload(InfraConfig(languages=["en", "es", "fr"], expected_photos=5))
    # One description per language and style (AssessmentRules.styles), each with its prompt and text.
    assert (one.descriptions, three.descriptions) == (1, 3)
    assert len(three.prompt_chars) == len(three.description_chars) == 3
    assert all(chars > 500 for chars in one.prompt_chars)  # the system prompt alone is longer
    assert three.repository_calls["save_photo_result"] == 5 and three.repository_calls["record_photo"] == 5
    assert one.repository_calls["save_photo_result"] == 3  # InfraConfig.expected_photos' default
    assert (three.object_gets, three.object_puts) == (5, 3)  # a photo read each, an audio file each
    assert one.events == 1 and one.item_bytes > 1000


def test_languages_change_the_bedrock_and_polly_lines(cost: ModuleType, stack: Any, prices: Any) -> None:
    quantity: dict[int, dict[str, float]] = {}
    for languages in (["en"], ["en", "es"]):
        config = InfraConfig(languages=languages)
        lines = cost.cost_lines(1000, config, stack, cost.measure_workload(config), prices)
        quantity[len(languages)] = {
            name: sum(line.quantity for line in lines if f"{line.service} {line.item}".startswith(name))
            for name in (
                "Polly",
                "Bedrock amazon.nova-lite-v1:0 input",
                "Bedrock amazon.nova-lite-v1:0 output",
            )
        }
    for name, one in quantity[1].items():
        assert quantity[2][name] > 1.5 * one > 0, name


def test_per_request_lines_scale_linearly_and_fixed_lines_do_not(
    cost: ModuleType, stack: Any, prices: Any
) -> None:
    config = InfraConfig()
    work = cost.measure_workload(config)
    small = cost.cost_lines(1000, config, stack, work, prices)
    large = cost.cost_lines(20000, config, stack, work, prices)
    assert [line.item for line in small] == [line.item for line in large]  # no scale-out at 20,000
    for a, b in zip(small, large, strict=True):
        if a.kind == "fixed":
            assert b.usd == pytest.approx(a.usd), a.item
        else:
            assert b.usd == pytest.approx(20 * a.usd), a.item
    assert {line.service for line in small} == SERVICES


def test_the_endpoint_scales_out_when_photos_outrun_the_target(
    cost: ModuleType, stack: Any, prices: Any
) -> None:
    config = InfraConfig()
    work = cost.measure_workload(config)
    lines = cost.cost_lines(100_000, config, stack, work, prices)
    scale_out = [line for line in lines if line.kind == "scale-out"]
    assert scale_out and scale_out[0].service == "SageMaker endpoint"


def test_standby_replicas_double_the_minimum_ocus(cost: ModuleType, stack: Any, prices: Any) -> None:
    from dataclasses import replace

    config = InfraConfig()
    work = cost.measure_workload(config)
    with_standby = by_item(cost.cost_lines(1000, config, stack, work, prices))
    without = by_item(cost.cost_lines(1000, config, replace(stack, standby_replicas=False), work, prices))
    assert with_standby[("OpenSearch Serverless", "2 OCU minimum")].quantity == 2 * 730
    assert without[("OpenSearch Serverless", "1 OCU minimum")].quantity == 730


def test_every_price_names_its_source_and_unverified_ones_are_flagged(
    cost: ModuleType, stack: Any, prices: Any
) -> None:
    assert prices.region == "us-east-1" and prices.as_of.startswith("20")
    assert all(
        p.source and p.verified in ("aws-doc", "third-party", "unverified") for p in prices.prices.values()
    )
    config = InfraConfig()
    table = cost.cost_table(1000, cost.cost_lines(1000, config, stack, cost.measure_workload(config), prices))
    assert "⚠ unverified" in table  # the endpoint's hourly price is not confirmed from a stored page


def test_the_latency_model_names_a_source_for_every_stage(cost: ModuleType, stack: Any) -> None:
    config = InfraConfig()
    report = cost.latency_report(config, stack, cost.measure_workload(config))
    assert "measured: README 'The serving path on a GPU'" in report and "total, warm" in report
    # Descriptions written and spoken concurrently: one Bedrock and one Polly call on the critical path.
    one_call = cost.latency_stages(config, stack, cost.measure_workload(config), parallel_descriptions=True)
    assert "Describe: 1 Bedrock call(s)" in {s.name.split(" in ")[0] for s in one_call}
    stages = cost.latency_stages(config, stack, cost.measure_workload(config))
    assert all(stage.source for stage in stages)


@pytest.mark.slow  # synthesizes the CDK app once (~15 s)
def test_the_script_reads_the_synthesized_stack_and_prints_both_tables(
    cost: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from infra.constructs.workflow import STEPS

    template = cost.synthesize_template({"bundling": "skip", "acknowledge_no_index_loader": True})
    facts = cost.stack_facts(template)
    config = InfraConfig()
    assert {s.module: facts.function(s.module).memory_mb for s in STEPS.values()} == {
        s.module: s.memory_mb for s in STEPS.values()
    }
    assert (facts.endpoint_instance_type, facts.endpoint_min_instances, facts.endpoint_max_instances) == (
        config.encoder_instance_type,
        config.encoder_min_instances,
        config.encoder_max_instances,
    )
    assert facts.standby_replicas is config.collection_standby_replicas
    assert facts.transitions_per_assessment(3) == 10  # DecodeVin, Map, 3 × AnalysePhoto, 4 steps, Succeed
    assert facts.site_price_class == "PriceClass_100"
    assert facts.site_requests_per_load == len(cost.site_files()) + 1  # + config.json
    assert facts.function("reference_feedback").memory_mb == 1024
    path = tmp_path / "template.json"
    path.write_text(json.dumps(template))
    assert cost.main(["--template", str(path), "--per-day", "1000", "20000", "--latency"]) == 0
    assert cost.main(["--template", str(path), "--reference-reviews", "-1"]) == 2
    out = capsys.readouterr().out
    assert "**1,000 assessments/day**" in out and "**20,000 assessments/day**" in out
    assert out.count("Levers:") == 2 and "total, warm" in out


def test_an_assessment_ttl_bounds_the_table_storage(cost: ModuleType, stack: Any, prices: Any) -> None:
    def storage(config: InfraConfig) -> float:
        lines = cost.cost_lines(1000, config, stack, cost.measure_workload(config), prices)
        return sum(line.quantity for line in lines if line.service == "DynamoDB" and "storage" in line.item)

    assert storage(InfraConfig(assessment_ttl_days=30)) < storage(InfraConfig()) / 10


def test_a_language_without_a_polly_voice_is_written_but_not_spoken(cost: ModuleType) -> None:
    from vehicle_assessment.adapters.aws.settings import PollySettings

    assert "nl" not in PollySettings().voices
    work = cost.measure_workload(InfraConfig(languages=["en", "nl"]))
    assert work.descriptions == 2 and len(work.polly_requests) == 1
    assert sum(work.polly_requests) == work.description_chars[0]


def test_the_reference_feedback_function_is_priced_per_review_as_reference(
    cost: ModuleType, stack: Any, prices: Any
) -> None:
    from vehicle_assessment.aws_runtime import reference_requests

    config = InfraConfig()
    work = cost.measure_workload(config)
    assert 5_000 < work.reference_copy_bytes < 200_000  # a 512-px JPEG made from a sample photo

    def feedback_lines(share: float) -> dict[tuple[str, str], Any]:
        a = cost.Assumptions(reference_reviews_per_assessment=share)
        lines = cost.cost_lines(1000, config, stack, work, prices, a)
        return {
            k: line
            for k, line in by_item(lines).items()
            if k[1].startswith(("reference feedback", "reference display"))
        }

    none, some, more = feedback_lines(0.0), feedback_lines(0.02), feedback_lines(0.04)
    assert {line.service for line in some.values()} == {"Lambda", "S3", "DynamoDB"}
    assert all(line.quantity == 0 for line in none.values())
    for key, line in some.items():
        assert line.quantity > 0 and more[key].quantity == pytest.approx(2 * line.quantity), key
    references = 1000 * cost.DAYS_PER_MONTH * 0.02
    assert some[("Lambda", "reference feedback requests")].quantity == pytest.approx(references)
    # The function's memory from the stack, its billed time assumed.
    assert some[("Lambda", "reference feedback compute")].quantity == pytest.approx(
        references * cost.Assumptions().step_ms["reference_feedback"] / 1000 * 1024 / 1024
    )
    # One GET of the original and one PUT of the display copy each: the calls the time budget counts.
    gets = some[("S3", "reference feedback: the original's GET")].quantity
    puts = some[("S3", "reference feedback: the display copy's PUT")].quantity
    assert (gets, puts) == (pytest.approx(references), pytest.approx(references))
    assert reference_requests.GENERIC_CALLS_PER_REFERENCE == 5


def test_the_review_site_is_priced_per_page_load_from_the_deployed_files(
    cost: ModuleType, stack: Any, prices: Any
) -> None:
    from dataclasses import replace

    from infra.constructs.site import WEBAPP_DIR

    files = cost.site_files()
    assert WEBAPP_DIR / "index.html" in files and WEBAPP_DIR / "pages" / "review.js" in files
    assert not [f for f in files if "__pycache__" in f.parts or f.suffix == ".pyc"]

    config = InfraConfig()
    work = cost.measure_workload(config)
    lines = by_item(cost.cost_lines(1000, config, stack, work, prices))
    loads = 1000 * cost.DAYS_PER_MONTH * cost.Assumptions().site_page_loads_per_assessment
    requests = lines[("CloudFront", "review site HTTPS requests")]
    assert requests.quantity == pytest.approx(loads * stack.site_requests_per_load)
    assert requests.price.key == "cloudfront_PriceClass_100_https_request"
    transfer = lines[("CloudFront", "review site data transfer out")]
    assert transfer.quantity == pytest.approx(loads * stack.site_bytes_per_load / 1e9)
    assert transfer.price.verified == "aws-doc" and transfer.price.usd == 0.085
    origin = lines[("S3", "review site origin GETs")]
    assert origin.quantity == pytest.approx(requests.quantity * cost.Assumptions().site_cache_miss_ratio)
    # A price class without a price in the table is refused, not priced as another.
    with pytest.raises(KeyError, match="cloudfront_PriceClass_All_https_request"):
        cost.cost_lines(1000, config, replace(stack, site_price_class="PriceClass_All"), work, prices)


def test_the_latency_model_has_the_reused_photo_check_round_trip_by_round_trip(
    cost: ModuleType, stack: Any
) -> None:
    import math

    from vehicle_assessment.domain import limits
    from vehicle_assessment.domain.reuse import band_layout
    from vehicle_assessment.domain.rules import ReuseSettings

    config = InfraConfig()
    stages = cost.latency_stages(config, stack, cost.measure_workload(config))
    [check] = [s for s in stages if "reused-photo check" in s.name]
    reuse = ReuseSettings()
    queries = band_layout(reuse.perceptual_max_distance, reuse.hash_bands).lookups + 1
    waves = math.ceil(queries / limits.PHOTO_REGISTRY_QUERY_WORKERS)
    assert f"1 GetItem + 1 BatchWriteItem, then {queries} Queries in {waves} waves" in check.name
    assert check.p50_ms == (1 + 1 + waves) * cost.DYNAMODB_ROUND_TRIP_MS
    assert "aws.amazon.com/dynamodb" in check.source
    # Part of the photo step: the photos after the Map's first wave pay for it too.
    names = [s.name for s in stages]
    assert names.index("AnalysePhoto: OpenSearch k-NN query") < names.index(check.name)
