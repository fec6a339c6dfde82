"""Fixtures of the AWS adapter tests: fake credentials, real boto3 clients under botocore's Stubber."""

from __future__ import annotations

import boto3
import pytest
from botocore.config import Config
from botocore.stub import Stubber

from vehicle_assessment.domain.models import DescriptionRequest, EncoderIdentity, VehicleFacts

REGION = "us-east-1"


@pytest.fixture
def aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake credentials, so no test can sign a request for a real account."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SECURITY_TOKEN": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)


def stubbed_client(service: str) -> tuple[object, Stubber]:
    # One attempt in all: a stubbed error is what botocore raises once its retries are spent.
    client = boto3.client(service, region_name=REGION, config=Config(retries={"total_max_attempts": 1}))
    return client, Stubber(client)


@pytest.fixture
def stub(aws_credentials: None):
    """stub("polly") -> (client, stubber); every stubbed response must be consumed by the test."""
    stubbers: list[Stubber] = []

    def make(service: str) -> tuple[object, Stubber]:
        client, stubber = stubbed_client(service)
        stubber.activate()
        stubbers.append(stubber)
        return client, stubber

    yield make
    for stubber in stubbers:
        stubber.deactivate()


@pytest.fixture
def identity() -> EncoderIdentity:
    """An encoder as it reports itself: the weights fingerprint included."""
    return EncoderIdentity(
        model_name="ViT-B-32",
        pretrained="laion2b_s34b_b79k",
        untrained=False,
        dimension=4,
        weights_fingerprint="f1" * 32,
    )


@pytest.fixture
def description_request() -> DescriptionRequest:
    return DescriptionRequest(
        vehicle=VehicleFacts(
            vin="1FTFW1E50MFA00000",
            source="vpic",
            make="FORD",
            model="F-150",
            model_year=2021,
            body_class="Pickup",
            fuel_type_primary="Gasoline",
        ),
        color="Red",
        mileage=42_000,
        damage_summary={"scratch/minor": 1},
        photos_assessed=2,
        photos_need_review=0,
        undamaged_value_usd=30_000.0,
        adjusted_value_usd=27_000.0,
        combined_depreciation=0.1,
        untrained_encoder=False,
    )
