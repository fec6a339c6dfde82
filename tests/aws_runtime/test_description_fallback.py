"""A description that falls back to the template is counted (the alarm's metric), with its reason.

The handlers' own wiring is under test: the real factory builds the real Bedrock client from the
function's configuration; only the network is replaced, by a send hook that times out.
"""

from __future__ import annotations

import io
import json
from contextlib import redirect_stdout
from typing import Any

import pytest
from botocore.exceptions import ReadTimeoutError

from functions import api as api_handler
from functions import observability
from tests.aws_runtime.conftest import NOW, VIN, Aws, FakeSpeaker, rest_event
from tests.aws_runtime.observed import Observed
from vehicle_assessment.adapters.aws.bedrock_models import DESCRIPTION_FALLBACK_METRIC
from vehicle_assessment.adapters.aws.settings import api_bedrock_client
from vehicle_assessment.aws_runtime import factory
from vehicle_assessment.aws_runtime.config import ApiConfig
from vehicle_assessment.aws_runtime.uploads import open_assessment
from vehicle_assessment.domain import limits
from vehicle_assessment.domain.models import AssessmentInputs, AssessmentStatus, VehicleFacts


@pytest.fixture(autouse=True)
def no_polly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(factory, "build_speaker", lambda config: FakeSpeaker())


def _completed(repository: Any, assessment_id: str) -> None:
    assessment = open_assessment(AssessmentInputs(vin=VIN), 1, NOW, assessment_id)
    assert repository.create(assessment)
    repository.save(
        repository.get(assessment_id).model_copy(
            update={"status": AssessmentStatus.COMPLETED, "vehicle": VehicleFacts(vin=VIN, source="vin")}
        )
    )


def _regenerate(assessment_id: str) -> dict[str, Any]:
    return rest_event(
        "POST",
        f"/assessments/{assessment_id}/descriptions",
        {"language": "en", "creativity": 0.2},
        path_parameters={"assessment_id": assessment_id},
        resource="/assessments/{assessment_id}/descriptions",
    )


def _time_out_every_converse(client: Any) -> list[str]:
    """Every Converse attempt ends in a read timeout; returns the list of attempts made."""
    attempts: list[str] = []

    def time_out(request: Any, **_: Any) -> None:
        attempts.append(request.url)
        raise ReadTimeoutError(endpoint_url=request.url)

    client.meta.events.register("before-send.bedrock-runtime.Converse", time_out)
    return attempts


def test_a_bedrock_timeout_on_the_api_falls_back_once_counted_with_its_reason(
    aws: Aws, repository: Any, lambda_context: Any, observed: Observed, caplog: pytest.LogCaptureFixture
) -> None:
    _completed(repository, "f1")
    describer: Any = api_handler.get_services().describer
    attempts = _time_out_every_converse(describer.client)

    stdout = io.StringIO()
    with redirect_stdout(stdout):
        response = api_handler.handler(_regenerate("f1"), lambda_context)

    assert response["statusCode"] == 200
    assert "fell back to the template" in json.loads(response["body"])["description"]["note"]
    # One bounded attempt: the route does not wait through retries behind API Gateway's 29 s.
    assert len(attempts) == 1
    assert observed.metrics[DESCRIPTION_FALLBACK_METRIC] == 1
    assert "(timeout), falling back to the template: ReadTimeoutError" in caplog.text
    blobs = [json.loads(line) for line in stdout.getvalue().splitlines() if '"_aws"' in line]
    by_reason = [b for b in blobs if b.get("reason") == "timeout" and DESCRIPTION_FALLBACK_METRIC in b]
    assert len(by_reason) == 1 and by_reason[0]["error_code"] == "ReadTimeoutError"
    dimensions = by_reason[0]["_aws"]["CloudWatchMetrics"][0]["Dimensions"]
    assert sorted(dimensions[0]) == ["reason", "service"]


def test_the_fallback_metric_is_counted_per_function_for_the_alarm(
    capsys: pytest.CaptureFixture[str],
) -> None:
    observability.metrics.clear_metrics()
    observability.record_description_fallback("throttled", "ThrottlingException")
    observability.metrics.flush_metrics()
    blobs = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    per_function = [b for b in blobs if "reason" not in b]
    assert [b[DESCRIPTION_FALLBACK_METRIC] for b in per_function] == [[1.0]]
    assert per_function[0]["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["service"]]


def test_the_api_keeps_its_bounded_bedrock_client_when_the_stack_names_the_model(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # What infra/constructs/api.py sets: the model id only.
    monkeypatch.setenv("BEDROCK", json.dumps({"model_id": "amazon.nova-micro-v1:0"}))
    config = ApiConfig()
    assert config.bedrock.model_id == "amazon.nova-micro-v1:0"
    assert config.bedrock.client == api_bedrock_client()
    assert config.bedrock.client.max_attempts == 1
    assert config.bedrock.client.worst_case_s() == limits.API_DESCRIBER_DEADLINE_S
    assert limits.API_DESCRIBER_DEADLINE_S <= 0.75 * limits.API_GATEWAY_TIMEOUT_S
    assert config.polly.client.max_attempts == 1


def test_an_api_bedrock_client_that_outwaits_the_gateway_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BEDROCK", json.dumps({"client": {"max_attempts": 3, "read_timeout_s": 30}}))
    with pytest.raises(ValueError, match="regenerate route allows"):
        ApiConfig()
