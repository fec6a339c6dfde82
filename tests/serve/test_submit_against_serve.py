"""`vehicle-assessment submit --local` against a local `serve` completes an assessment, unchanged: the
API's upload forms post to the server, the last photo starts the background worker, the statuses move as
on AWS, and the finished assessment's photos and audio come back through signed media links."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import requests

from tests.conftest import SAMPLE_DATA, run_cli
from tests.serve.conftest import VIN, StartServer, local_settings
from vehicle_assessment.adapters.local.repository import SqliteAssessmentRepository
from vehicle_assessment.adapters.local.vector_index import LocalVectorIndex
from vehicle_assessment.domain import upload_keys

pytestmark = [pytest.mark.slow, pytest.mark.allow_hosts(["127.0.0.1"])]

QUERIES = [
    SAMPLE_DATA / "queries" / "undamaged" / "red_44070187_5e5a50b675_b.jpg",
    *sorted((SAMPLE_DATA / "queries" / "damaged").glob("*.jpg")),
]


def test_submit_against_serve_completes_an_assessment(
    start_server: StartServer,
    tmp_path: Path,
    tiny_encoder,
    sample_index_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings = local_settings(tmp_path / "data")
    settings.data_dir.mkdir(parents=True)
    shutil.copy(sample_index_path, settings.index_path)
    server = start_server(encoder=lambda: tiny_encoder, settings=settings)

    code, out, err = run_cli(
        capsys,
        "submit",
        "--api-url",
        server.base_url,
        "--local",
        "--vin",
        VIN,
        "--color",
        "red",
        "--mileage",
        "48200",
        "--estimate",
        "20000",
        "--timeout",
        "300",
        "--json",
        *map(str, QUERIES),
    )

    assert code == 0, err
    record = json.loads(out)
    assert record["status"] == "COMPLETED"
    assessment_id = record["assessment_id"]
    assert [p["object_key"] for p in record["photos"]] == [
        upload_keys.api_upload_key(assessment_id, n) for n in range(1, len(QUERIES) + 1)
    ]
    assert all(p["status"] == "analysed" and p["verdict"]["neighbours"] for p in record["photos"])
    assert record["valuation"]["adjusted_value_usd"] is not None
    # The same database file as the CLI's: `show` reads it.
    assert SqliteAssessmentRepository(settings.database_path).get(assessment_id).status.value == "COMPLETED"

    media = requests.get(f"{server.base_url}/assessments/{assessment_id}/media", timeout=10).json()
    for link, path in zip(media["photos"], QUERIES, strict=True):
        assert requests.get(link["url"], timeout=10).content == path.read_bytes()
    assert media["audio"], "espeak-ng is installed: each description has its audio"
    for link in media["audio"]:
        audio = requests.get(link["url"], timeout=10)
        assert audio.status_code == 200 and audio.headers["Content-Type"] == "audio/wav"

    # The reused-photo check ran in the worker, as in the CLI runner and the AWS analyse step.
    assert all(p["perceptual_hash"] for p in record["photos"])
    # A review "as reference" through the server joins the local index with its provenance, from the
    # embedding the worker remembered (the encoder is the index's).
    reviewed = requests.put(
        f"{server.base_url}/assessments/{assessment_id}/photos/01/review",
        json={"damaged": True, "damage_type": "dent", "severity": "minor", "as_reference": True},
        timeout=60,
    )
    assert reviewed.status_code == 200, reviewed.text
    actions = [entry["action"] for entry in reviewed.json()["history"]]
    assert "reference_added" in actions, actions
    index = LocalVectorIndex(settings.index_path)
    try:
        assert f"review/{assessment_id}/01" in index.known_sources()
    finally:
        index.close()


def test_the_worker_moves_the_status_as_the_workflow_does(
    start_server: StartServer, tmp_path: Path, tiny_encoder, sample_index_path: Path
) -> None:
    """An empty index fails the assessment in AnalysePhotos, recorded with the step and the reason."""
    settings = local_settings(tmp_path / "data")
    server = start_server(encoder=lambda: tiny_encoder, settings=settings)  # no index built
    created = requests.post(
        f"{server.base_url}/assessments", json={"vin": VIN, "expected_photos": 1}, timeout=10
    ).json()
    [upload] = created["uploads"]
    photo = QUERIES[0].read_bytes()
    posted = requests.post(
        upload["url"],
        data=[*upload["fields"].items(), ("Content-Type", "image/jpeg")],
        files={"file": ("front.jpg", photo, "image/jpeg")},
        timeout=10,
    )
    assert posted.status_code == 204
    assert server.workflow.join(120)
    view = requests.get(f"{server.base_url}/assessments/{created['assessment_id']}", timeout=10).json()
    assert view["status"] == "FAILED" and view["failed_step"] == "AnalysePhotos"
    assert "empty" in view["failure_reason"]
