"""Fast tests of the AWS application services on in-memory adapters (no moto, no boto3 calls).

The ``workflow_repository`` fixture runs a test against both WorkflowRepository implementations:
the in-memory one, the DynamoDB one on moto, and the SQLite one of `serve`, so none drifts from the
real semantics.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import urllib3  # noqa: F401  (see below)

from vehicle_assessment.adapters.memory import InMemoryAssessmentRepository
from vehicle_assessment.domain.models import Assessment, AssessmentInputs
from vehicle_assessment.ports import ObjectHead, ObjectNotFound, WorkflowRepository

# urllib3 (imported above) probes for IPv6 with a socket when first imported; boto3 imports it for
# the moto runs. Imported at collection, before pytest-socket guards each test, no test trips it.

VIN = "1FTMW1T88MFA00001"  # a valid 2021 Ford F-150 VIN (check digit ok)
NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
REGION = "us-east-1"


def awaiting(assessment_id: str, created: datetime = NOW, expected: int = 3, vin: str = VIN) -> Assessment:
    from vehicle_assessment.aws_runtime.uploads import open_assessment

    inputs = AssessmentInputs(vin=vin, color="red", mileage=12_345, estimate_usd=20_000.5)
    return open_assessment(inputs, expected, created, assessment_id)


@pytest.fixture
def memory_repository() -> InMemoryAssessmentRepository:
    return InMemoryAssessmentRepository()


@pytest.fixture
def dynamodb_table(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The assessment table's design (`table_definition`) on moto: the repository's and the photo
    registry's items live in it."""
    import boto3
    from moto import mock_aws

    from vehicle_assessment.adapters.aws.dynamodb import table_definition

    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    with mock_aws():
        dynamodb = boto3.resource("dynamodb", region_name=REGION)
        dynamodb.meta.client.create_table(**table_definition("contract"))
        yield dynamodb.Table("contract")


@pytest.fixture
def dynamodb_repository(dynamodb_table: Any) -> WorkflowRepository:
    from vehicle_assessment.adapters.aws.dynamodb import DynamoAssessmentRepository

    return DynamoAssessmentRepository(dynamodb_table)


@pytest.fixture
def sqlite_repository(tmp_path: Path) -> WorkflowRepository:
    from vehicle_assessment.adapters.local.workflow_repository import SqliteWorkflowRepository

    return SqliteWorkflowRepository(tmp_path / "assessments.sqlite3")


@pytest.fixture(params=["memory", "dynamodb", "sqlite"])
def workflow_repository(request: pytest.FixtureRequest) -> WorkflowRepository:
    """Each contract test runs once per implementation."""
    return request.getfixturevalue(f"{request.param}_repository")


class FakeProbe:
    """ObjectProbe over a dict: key -> (bytes, user metadata)."""

    def __init__(self) -> None:
        self.objects: dict[str, tuple[bytes, dict[str, str]]] = {}

    def put(self, key: str, data: bytes, **metadata: str) -> None:
        self.objects[key] = (data, metadata)

    def head(self, key: str, n_bytes: int, version_id: str | None = None) -> ObjectHead:
        if key not in self.objects:
            raise ObjectNotFound(f"no object at {key}")
        data, metadata = self.objects[key]
        return ObjectHead(data[:n_bytes], dict(metadata), len(data), version_id)


class FakeStarter:
    """WorkflowStarter that remembers starts; a second start of a finished one answers False."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self.finished: set[str] = set()

    def start(self, assessment_id: str) -> bool:
        self.started.append(assessment_id)
        return assessment_id not in self.finished


@pytest.fixture
def probe() -> FakeProbe:
    return FakeProbe()


@pytest.fixture
def starter() -> FakeStarter:
    return FakeStarter()


def record(
    repository: WorkflowRepository,
    assessment_id: str,
    n: int | str,
    now: datetime = NOW,
    version_id: str | None = None,
) -> Any:
    return repository.record_photo(
        assessment_id,
        f"uploads/{assessment_id}/{n}.jpg",
        1000,
        "image/jpeg",
        now,
        str(n),
        f"{n}.jpg",
        version_id=version_id,
    )
