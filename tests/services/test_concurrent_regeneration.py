"""Two description regenerations racing on one assessment: neither is lost (both repositories).

The describer fake holds each request until both have read the assessment, so both save from the
same revision: without optimistic locking the second save overwrote the first's description and
left its audio object referenced by nothing.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from tests.services.conftest import NOW, VIN, awaiting
from vehicle_assessment import pipeline
from vehicle_assessment.adapters.aws.dynamodb import DynamoAssessmentRepository
from vehicle_assessment.adapters.memory import InMemoryObjectStore
from vehicle_assessment.aws_runtime import api
from vehicle_assessment.domain import limits
from vehicle_assessment.domain.description import TemplateDescriber
from vehicle_assessment.domain.models import (
    Assessment,
    AssessmentStatus,
    AudioStatus,
    Description,
    DescriptionRequest,
    DescriptionStyle,
    VehicleFacts,
)
from vehicle_assessment.ports import ConcurrentUpdate, SpeechClip, WorkflowRepository

# Long enough for any thread to reach the barrier; a broken interleaving fails, never hangs.
BARRIER_TIMEOUT_S = 30


class RendezvousDescriber:
    """The template describer, but each call first waits until `parties` calls have begun, i.e. until
    every racing request has read the assessment (the service describes right after its read)."""

    def __init__(self, parties: int) -> None:
        self.barrier = threading.Barrier(parties, timeout=BARRIER_TIMEOUT_S)
        self.template = TemplateDescriber()

    def describe(
        self, request: DescriptionRequest, style: DescriptionStyle, language: str, creativity: float
    ) -> Description:
        self.barrier.wait()
        return self.template.describe(request, style, language, creativity)


class TextSpeaker:
    def synthesize(self, text: str, language: str) -> SpeechClip:
        return SpeechClip(audio=f"{language}:{text}".encode(), content_type="audio/mpeg", extension="mp3")


class SerialTable:
    """A boto3 Table whose requests run one at a time. DynamoDB applies writes to an item one after
    another, each checking its condition against the previous one's result; moto checks and writes
    without a lock, so two threads can both pass one condition. The interleaving under test (both
    requests read before either saves) is still the barrier's doing."""

    def __init__(self, table: Any) -> None:
        self._table = table
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._table, name)
        if not callable(attribute):
            return attribute

        def serialised(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                return attribute(*args, **kwargs)

        return serialised


@pytest.fixture
def racing_repository(workflow_repository: WorkflowRepository) -> WorkflowRepository:
    if isinstance(workflow_repository, DynamoAssessmentRepository):
        workflow_repository.table = SerialTable(workflow_repository.table)
    return workflow_repository


def finished(repo: WorkflowRepository, assessment_id: str) -> None:
    repo.create(awaiting(assessment_id))
    facts = VehicleFacts(vin=VIN, source="vin", model_year=2021)
    repo.save(
        repo.get(assessment_id).model_copy(update={"status": AssessmentStatus.COMPLETED, "vehicle": facts})
    )


def run_concurrently(*calls: Callable[[], object]) -> list[object]:
    """Each call on its own thread; their results (or the exception each raised), in order."""
    results: list[object] = [None] * len(calls)

    def run(i: int) -> None:
        try:
            results[i] = calls[i]()
        except Exception as exc:  # handed back to the test, which asserts on it
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def test_two_concurrent_regenerations_keep_both_descriptions_and_audio(
    racing_repository: WorkflowRepository,
) -> None:
    repo = racing_repository
    finished(repo, "g-1")
    objects = InMemoryObjectStore()
    services = api.ApiServices(repo, None, objects, RendezvousDescriber(2), TextSpeaker())

    def regenerate(style: DescriptionStyle, language: str) -> Callable[[], object]:
        request = api.RegenerateDescriptionRequest(style=style, language=language)
        return lambda: api.regenerate_description("g-1", request, services, NOW + timedelta(hours=1))

    results = run_concurrently(
        regenerate(DescriptionStyle.STANDARD, "en"), regenerate(DescriptionStyle.AUCTIONEER, "es")
    )

    assert all(isinstance(r, api.RegenerateDescriptionResponse) for r in results), results
    stored = repo.get("g-1")
    pairs = {("standard", "en"), ("auctioneer", "es")}
    assert {(d.style.value, d.language) for d in stored.descriptions} == pairs
    assert {(a.style.value, a.language) for a in stored.audio} == pairs
    assert all(a.status == AudioStatus.GENERATED for a in stored.audio)
    # Every stored audio record names an object that speaks its own description.
    texts = {(d.style, d.language): d.text for d in stored.descriptions}
    for audio in stored.audio:
        assert audio.object_key is not None
        assert (
            objects.get(audio.object_key)
            == f"{audio.language}:{texts[(audio.style, audio.language)]}".encode()
        )
    assert stored.revision == 4  # created, finished, then one save per regeneration


def test_a_concurrent_regeneration_of_the_same_pair_is_a_conflict(
    racing_repository: WorkflowRepository,
) -> None:
    """Both replace the standard/en description: the later save would drop one its client was
    told was stored, unseen. It is refused (409) instead, and the audio kept is the saved one's."""
    repo = racing_repository
    finished(repo, "g-2")
    objects = InMemoryObjectStore()
    services = api.ApiServices(repo, None, objects, RendezvousDescriber(2), TextSpeaker())

    def regenerate(creativity: float) -> Callable[[], object]:
        request = api.RegenerateDescriptionRequest(creativity=creativity)
        return lambda: api.regenerate_description("g-2", request, services, NOW + timedelta(hours=1))

    results = run_concurrently(regenerate(0.0), regenerate(0.9))

    [saved] = [r for r in results if isinstance(r, api.RegenerateDescriptionResponse)]
    [refused] = [r for r in results if isinstance(r, api.Conflict)]
    assert "replaced the standard/en description" in str(refused)
    stored = repo.get("g-2")
    assert stored.descriptions == [saved.description] and stored.audio == [saved.audio]
    assert saved.audio.object_key is not None
    assert objects.get(saved.audio.object_key) == f"en:{saved.description.text}".encode()


def test_a_regeneration_that_keeps_losing_gives_up_after_the_named_attempts(
    memory_repository: WorkflowRepository, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another writer saves before every one of its saves: it stops at the limit with a 409."""
    repo = memory_repository
    finished(repo, "g-3")
    saves = []
    real_save = repo.save

    def always_beaten(assessment: Assessment) -> Assessment:
        saves.append(assessment.revision)
        real_save(repo.get("g-3").model_copy(update={"warnings": [f"other writer {len(saves)}"]}))
        return real_save(assessment)

    monkeypatch.setattr(repo, "save", always_beaten)
    services = api.ApiServices(repo, None, InMemoryObjectStore(), TemplateDescriber(), TextSpeaker())
    with pytest.raises(api.Conflict, match="kept changing"):
        api.regenerate_description("g-3", api.RegenerateDescriptionRequest(), services, NOW)
    assert len(saves) == limits.MAX_DOCUMENT_SAVE_ATTEMPTS
    assert repo.get("g-3").descriptions == []


def test_save_with_retries_re_applies_the_change_to_what_the_other_writer_saved(
    memory_repository: WorkflowRepository,
) -> None:
    repo = memory_repository
    repo.create(awaiting("g-4"))
    read = repo.get("g-4")
    repo.save(repo.get("g-4").model_copy(update={"warnings": ["theirs"]}))
    saved = pipeline.save_with_retries(
        repo, read, lambda current: current.model_copy(update={"warnings": [*current.warnings, "ours"]})
    )
    assert repo.get("g-4") == saved and saved.warnings == ["theirs", "ours"]
    with pytest.raises(ConcurrentUpdate):
        repo.save(read)


def test_a_regeneration_whose_facts_changed_before_its_save_is_a_conflict(
    memory_repository: WorkflowRepository, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The description was written from facts that another writer changed meanwhile: it does not
    commute with that change (it would describe a vehicle the assessment no longer states)."""
    repo = memory_repository
    finished(repo, "g-5")
    real_save = repo.save

    def after_a_correction(assessment: Assessment) -> Assessment:
        stored = repo.get("g-5")
        assert stored.vehicle is not None
        real_save(stored.model_copy(update={"vehicle": stored.vehicle.model_copy(update={"make": "FORD"})}))
        monkeypatch.setattr(repo, "save", real_save)
        return real_save(assessment)

    monkeypatch.setattr(repo, "save", after_a_correction)
    services = api.ApiServices(repo, None, InMemoryObjectStore(), TemplateDescriber(), TextSpeaker())
    with pytest.raises(api.Conflict, match="changed while its description was being written"):
        api.regenerate_description("g-5", api.RegenerateDescriptionRequest(), services, NOW)
    stored = repo.get("g-5")
    assert stored.descriptions == [] and stored.vehicle is not None and stored.vehicle.make == "FORD"
