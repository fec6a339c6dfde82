"""The page `serve` prints (and `--open` opens): the newest assessment's, else the web app's first page."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.serve.conftest import VIN, local_settings
from vehicle_assessment.adapters.local.object_store import FilesystemObjectStore
from vehicle_assessment.adapters.local.workflow_repository import SqliteWorkflowRepository
from vehicle_assessment.cli import web_app_page
from vehicle_assessment.domain.models import AssessmentInputs
from vehicle_assessment.pipeline import new_assessment

BASE = "http://127.0.0.1:8000"


def test_without_assessments_the_first_page(tmp_path: Path) -> None:
    settings = local_settings(tmp_path / "data")
    settings.data_dir.mkdir(parents=True)
    assert web_app_page(BASE, settings) == f"{BASE}/#/"


def test_with_assessments_the_newest_ones_page(tmp_path: Path) -> None:
    settings = local_settings(tmp_path / "data")
    settings.data_dir.mkdir(parents=True)
    repository = SqliteWorkflowRepository(settings.database_path)
    objects = FilesystemObjectStore(settings.objects_dir)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    made = [
        new_assessment(AssessmentInputs(vin=VIN), [], objects, start + timedelta(hours=hours))
        for hours in (2, 5, 1)  # saved out of order: the page follows creation time, not insertion
    ]
    for assessment in made:
        repository.save(assessment)
    assert web_app_page(BASE, settings) == f"{BASE}/#/assessments/{made[1].assessment_id}"
