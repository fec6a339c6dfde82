"""The review service (vehicle_assessment/reviewing.py) on both WorkflowRepositories: a review revalues,
rewrites the descriptions as new versions and records history; concurrent reviews are both kept; the
reference feedback port is called and its failure recorded; a person's edit is a new version; the
review queue is oldest first on memory, DynamoDB (sparse GSI3) and SQLite (partial index)."""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from tests.services.conftest import NOW, VIN, awaiting
from vehicle_assessment import pipeline, reviewing
from vehicle_assessment.adapters.aws.dynamodb import DynamoAssessmentRepository
from vehicle_assessment.adapters.local.repository import REVIEW_QUEUE_QUERY, SqliteAssessmentRepository
from vehicle_assessment.adapters.memory import InMemoryObjectStore
from vehicle_assessment.domain import limits
from vehicle_assessment.domain.description import TemplateDescriber
from vehicle_assessment.domain.models import (
    Assessment,
    AssessmentStatus,
    DamageType,
    Description,
    DescriptionRequest,
    DescriptionStyle,
    EncoderIdentity,
    HistoryAction,
    PhotoRecord,
    PhotoReview,
    PhotoStatus,
    PhotoVerdict,
    ReviewReason,
    Severity,
    UndamagedValue,
    ValueMethod,
    VehicleFacts,
)
from vehicle_assessment.domain.review import ReviewRefused
from vehicle_assessment.domain.rules import AssessmentRules
from vehicle_assessment.domain.valuation import value_vehicle
from vehicle_assessment.ports import (
    AssessmentRepository,
    DescriptionUnavailable,
    SpeechClip,
    WorkflowRepository,
)

RULES = AssessmentRules()
ENCODER = EncoderIdentity(
    model_name="m", pretrained="p", untrained=False, dimension=4, weights_fingerprint="f"
)


class TextSpeaker:
    def synthesize(self, text: str, language: str) -> SpeechClip:
        return SpeechClip(audio=f"{language}:{text}".encode(), content_type="audio/mpeg", extension="mp3")


def verdict(severity: Severity, needs_review: bool) -> PhotoVerdict:
    damaged = severity != Severity.NONE
    return PhotoVerdict(
        damaged=damaged,
        damage_type=DamageType.SCRATCH if damaged else DamageType.NONE,
        severity=severity,
        damaged_share=0.55 if needs_review else 1.0,
        confidence=0.55 if needs_review else 1.0,
        needs_review=needs_review,
        review_reason="confidence 0.55 is below the 0.70 threshold" if needs_review else None,
        neighbours=[],
    )


def analysed(photo_id: str, severity: Severity, needs_review: bool) -> PhotoRecord:
    return PhotoRecord(
        photo_id=photo_id,
        filename=f"{photo_id}.jpg",
        object_key=f"uploads/{photo_id}.jpg",
        size_bytes=100,
        sha256=photo_id * 32,
        status=PhotoStatus.ANALYSED,
        verdict=verdict(severity, needs_review),
    )


def store_finished(
    repo: AssessmentRepository,
    assessment_id: str,
    finished_at: datetime = NOW,
    unsure: tuple[str, ...] = ("1", "2"),
) -> Assessment:
    """A COMPLETED assessment whose photos `unsure` await review, as the workflow leaves it (with
    descriptions and audio); on a WorkflowRepository the photos also come back from the Map's results."""
    photos = [analysed(pid, Severity.MINOR, pid in unsure) for pid in ("1", "2", "3")]
    base = awaiting(assessment_id, created=finished_at - timedelta(minutes=5))
    undamaged = UndamagedValue(amount_usd=20_000.0, method=ValueMethod.USER_ESTIMATE, reason="given")
    assessment = base.model_copy(
        update={
            "vehicle": VehicleFacts(vin=VIN, source="vin", model_year=2021),
            "encoder": ENCODER,
            "photos": photos,
            "valuation": value_vehicle(photos, undamaged, RULES.valuation),
        }
    )
    assessment = pipeline.describe_assessment(assessment, TemplateDescriber(), ("en", "es"), ("standard",))
    assessment = pipeline.speak_descriptions(assessment, TextSpeaker(), InMemoryObjectStore())
    done = pipeline.complete(assessment, finished_at)
    if hasattr(repo, "save_photo_result") and hasattr(repo, "create"):
        repo.create(base)
        for photo in photos:  # the Map iterations' records, merged over the document on every read
            repo.save_photo_result(assessment_id, photo, ENCODER)
        return repo.save(done.model_copy(update={"revision": repo.get(assessment_id).revision}))
    return repo.save(done)


def services(repo: AssessmentRepository, **kw: object) -> reviewing.ReviewServices:
    args: dict[str, object] = {
        "repository": repo,
        "objects": InMemoryObjectStore(),
        "describer": TemplateDescriber(),
        "speaker": TextSpeaker(),
        "valuation": RULES.valuation,
    }
    return reviewing.ReviewServices(**(args | kw))  # type: ignore[arg-type]


def review(severity: Severity = Severity.SEVERE, who: str = "ana", **kw: object) -> PhotoReview:
    damaged = severity != Severity.NONE
    return PhotoReview.model_validate(
        {
            "reviewer": who,
            "reviewed_at": NOW + timedelta(hours=1),
            "damaged": damaged,
            "damage_type": "broken" if damaged else "none",
            "severity": severity.value,
            **kw,
        }
    )


# --- one review ------------------------------------------------------------------------------


def test_a_review_revalues_rewrites_and_records(workflow_repository: WorkflowRepository) -> None:
    repo = workflow_repository
    before = store_finished(repo, "r-1")
    assert before.valuation is not None and before.valuation.provisional
    saved = reviewing.review_photo(services(repo), "r-1", "1", review(note="bumper torn off"))

    stored = repo.get("r-1")
    assert stored == saved
    photo = stored.photos[0]
    assert photo.verdict is not None and photo.verdict.severity == Severity.MINOR  # the model's call stays
    assert photo.review is not None and photo.review.severity == Severity.SEVERE
    assert stored.valuation is not None
    assert stored.valuation.adjusted_value_usd != before.valuation.adjusted_value_usd
    assert stored.valuation.photos[0].counted and "reviewed by ana" in (
        stored.valuation.photos[0].reason or ""
    )
    # Photo 2 still waits: the queue keeps the assessment, with its first waiting time.
    assert stored.review_waiting_since == NOW and list(repo.review_queue(10)[0].photos) == ["2"]  # type: ignore[attr-defined]
    # Both descriptions rewritten as version 2; version 1 kept with its audio.
    assert {(d.language, d.version) for d in stored.descriptions} == {("en", 2), ("es", 2)}
    assert {(d.language, d.version) for d in stored.superseded_descriptions} == {("en", 1), ("es", 1)}
    assert len(stored.superseded_audio) == 2 and len(stored.audio) == 2
    assert "severe breakage (1)" in next(d.text for d in stored.descriptions if d.language == "en")
    actions = [e.action for e in stored.history]
    assert actions == [
        HistoryAction.ASSESSED,
        HistoryAction.REVIEWED,
        HistoryAction.REVALUED,
        HistoryAction.DESCRIPTION_WRITTEN,
        HistoryAction.DESCRIPTION_WRITTEN,
    ]
    revalued = stored.history[2]
    assert revalued.before == f"{before.valuation.adjusted_value_usd:.2f}"
    assert revalued.after == f"{stored.valuation.adjusted_value_usd:.2f}"
    assert {(e.before, e.after) for e in stored.history[3:]} == {("v1", "v2")}

    # The last waiting photo reviewed: final value, out of the queue.
    reviewing.review_photo(services(repo), "r-1", "2", review(Severity.NONE, who="bo"))
    final = repo.get("r-1")
    assert final.valuation is not None and not final.valuation.provisional
    assert final.review_reasons == [] and final.review_waiting_since is None
    assert repo.review_queue(10) == []  # type: ignore[attr-defined]


def test_refused_reviews_change_nothing(workflow_repository: WorkflowRepository) -> None:
    repo = workflow_repository
    stored = store_finished(repo, "r-2")
    with pytest.raises(ReviewRefused, match="has no photo '9'"):
        reviewing.review_photo(services(repo), "r-2", "9", review())
    assert repo.get("r-2") == stored


def test_a_describer_outage_keeps_the_review_and_says_so(workflow_repository: WorkflowRepository) -> None:
    class Down:
        def describe(
            self, request: DescriptionRequest, style: DescriptionStyle, language: str, c: float
        ) -> Description:
            raise DescriptionUnavailable("bedrock is down")

    repo = workflow_repository
    store_finished(repo, "r-3")
    saved = reviewing.review_photo(services(repo, describer=Down()), "r-3", "1", review())
    assert saved.photos[0].review is not None
    assert all(d.version == 1 for d in saved.descriptions)
    assert [e.summary for e in saved.history if e.action == HistoryAction.DESCRIPTION_WRITTEN] == [
        "standard/en description NOT rewritten (the current one is out of date): bedrock is down",
        "standard/es description NOT rewritten (the current one is out of date): bedrock is down",
    ]


# --- concurrency -----------------------------------------------------------------------------


class InterleavingRepository:
    """Delegates to a repository; before the first save it lets `second_writer` run to the end, so that
    writer saves after our read and before our save (the race optimistic locking exists for)."""

    def __init__(self, inner: WorkflowRepository, second_writer: Callable[[], object]) -> None:
        self.inner = inner
        self.second_writer: Callable[[], object] | None = second_writer
        self.saves = 0

    def get(self, assessment_id: str) -> Assessment:
        return self.inner.get(assessment_id)

    def list_by_vin(self, vin: str, limit: int = 50) -> list[Assessment]:
        return self.inner.list_by_vin(vin, limit)

    def save(self, assessment: Assessment) -> Assessment:
        self.saves += 1
        if self.second_writer is not None:
            writer, self.second_writer = self.second_writer, None
            writer()
        return self.inner.save(assessment)


def test_two_concurrent_reviews_of_other_photos_are_both_kept(
    workflow_repository: WorkflowRepository,
) -> None:
    repo = workflow_repository
    store_finished(repo, "r-4")
    other = lambda: reviewing.review_photo(services(repo), "r-4", "2", review(Severity.NONE, who="bo"))  # noqa: E731
    racing = InterleavingRepository(repo, other)
    reviewing.review_photo(services(racing), "r-4", "1", review(who="ana"))

    assert racing.saves == 2  # refused once (ConcurrentUpdate), applied again to what bo saved
    stored = repo.get("r-4")
    assert [r.reviewer for r in stored.photos[0].reviews] == ["ana"]
    assert [r.reviewer for r in stored.photos[1].reviews] == ["bo"]
    assert stored.valuation is not None and not stored.valuation.provisional
    # The descriptions say what both decided: one severe photo, one undamaged, one confident minor.
    request_text = next(d.text for d in stored.descriptions if d.language == "en")
    assert "severe breakage (1)" in request_text and "awaiting manual review" not in request_text
    reviews = [e.actor for e in stored.history if e.action == HistoryAction.REVIEWED]
    assert sorted(reviews) == ["ana", "bo"]


def test_two_threads_reviewing_at_once_keep_both(memory_repository: WorkflowRepository) -> None:
    repo = memory_repository
    store_finished(repo, "r-5")
    barrier = threading.Barrier(2, timeout=30)

    class Rendezvous(TemplateDescriber):
        def describe(
            self, request: DescriptionRequest, style: DescriptionStyle, language: str, c: float
        ) -> Description:
            if language == "en":
                # The retry after the race finds the barrier broken: the other thread has finished.
                with contextlib.suppress(threading.BrokenBarrierError):
                    barrier.wait()
            return super().describe(request, style, language, c)

    errors: list[BaseException] = []

    def run(photo_id: str, who: str) -> None:
        try:
            reviewing.review_photo(services(repo, describer=Rendezvous()), "r-5", photo_id, review(who=who))
        except BaseException as exc:  # handed to the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=a) for a in (("1", "ana"), ("2", "bo"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    barrier.abort()
    stored = repo.get("r-5")
    assert [p.review.reviewer if p.review else None for p in stored.photos] == ["ana", "bo", None]


# --- reference feedback ----------------------------------------------------------------------


class Feedback:
    def __init__(self, fail: bool = False) -> None:
        self.calls: list[tuple[str, str, str]] = []
        self.fail = fail

    def add_reviewed_photo(self, assessment: Assessment, photo: PhotoRecord, review: PhotoReview) -> str:
        self.calls.append((assessment.assessment_id, photo.photo_id, review.reviewer))
        if self.fail:
            raise ConnectionError("index unreachable")
        return "review:r-6/1"


def test_as_reference_calls_the_port_and_records_it(workflow_repository: WorkflowRepository) -> None:
    repo = workflow_repository
    store_finished(repo, "r-6")
    feedback = Feedback()
    saved = reviewing.review_photo(services(repo, references=feedback), "r-6", "1", review(as_reference=True))
    assert feedback.calls == [("r-6", "1", "ana")]
    entry = saved.history[-1]
    assert entry.action == HistoryAction.REFERENCE_ADDED and entry.after == "review:r-6/1"
    assert repo.get("r-6").history[-1] == entry


def test_a_failing_reference_index_is_recorded_and_the_review_stands(
    workflow_repository: WorkflowRepository,
) -> None:
    repo = workflow_repository
    store_finished(repo, "r-7")
    reasons: list[str] = []
    saved = reviewing.review_photo(
        services(repo, references=Feedback(fail=True), on_reference_failure=reasons.append),
        "r-7",
        "1",
        review(as_reference=True),
    )
    assert reasons == ["ConnectionError: index unreachable"]
    assert saved.photos[0].review is not None
    assert saved.history[-1].action == HistoryAction.REFERENCE_FAILED
    assert "index unreachable" in saved.history[-1].summary
    # Without a wired index the review is recorded as not added, with why.
    unwired = reviewing.review_photo(services(repo), "r-7", "2", review(as_reference=True))
    assert unwired.history[-1].action == HistoryAction.REFERENCE_FAILED
    assert "no reference index is wired" in unwired.history[-1].summary


# --- edits -----------------------------------------------------------------------------------


def test_an_edit_is_a_new_version_with_its_author_and_audio(workflow_repository: WorkflowRepository) -> None:
    repo = workflow_repository
    store_finished(repo, "r-8")
    objects = InMemoryObjectStore()
    later = NOW + timedelta(hours=3)
    saved = reviewing.edit_description(
        services(repo, objects=objects),
        "r-8",
        DescriptionStyle.STANDARD,
        "EN",
        "  Clean truck, one scratch.  ",
        "cy",
        later,
    )
    current = next(d for d in saved.descriptions if d.language == "en")
    assert (current.text, current.version, current.generator) == ("Clean truck, one scratch.", 2, "edited")
    assert (current.written_by, current.written_at) == ("cy", later)
    audio = next(a for a in saved.audio if a.language == "en")
    assert audio.object_key is not None and objects.get(audio.object_key) == b"en:Clean truck, one scratch."
    assert [d.version for d in saved.superseded_descriptions] == [1]
    entry = saved.history[-1]
    assert (entry.action, entry.actor, entry.before, entry.after) == (
        HistoryAction.DESCRIPTION_EDITED,
        "cy",
        "v1",
        "v2",
    )
    assert repo.get("r-8") == saved


@pytest.mark.parametrize(
    ("language", "text", "message"),
    [
        ("fr", "Bonjour", "no standard/fr description to edit"),
        ("en", "x" * 4001, "at most 4000"),
        ("en", "", "empty"),
    ],
)
def test_bad_edits_are_refused(
    memory_repository: WorkflowRepository, language: str, text: str, message: str
) -> None:
    store_finished(memory_repository, "r-9")
    with pytest.raises(ReviewRefused, match=message):
        reviewing.edit_description(
            services(memory_repository), "r-9", DescriptionStyle.STANDARD, language, text, "cy", NOW
        )


# --- regeneration fits the API's budget ------------------------------------------------------


def test_descriptions_are_rewritten_in_parallel_when_asked(memory_repository: WorkflowRepository) -> None:
    """The API rewrites every pair at once: the route waits for one describer call, not one per pair."""
    delay_s = 0.3

    class Slow(TemplateDescriber):
        def describe(
            self, request: DescriptionRequest, style: DescriptionStyle, language: str, c: float
        ) -> Description:
            time.sleep(delay_s)
            return super().describe(request, style, language, c)

    store_finished(memory_repository, "r-10")
    started = time.perf_counter()
    reviewing.review_photo(
        services(memory_repository, describer=Slow(), parallel_descriptions=8), "r-10", "1", review()
    )
    elapsed = time.perf_counter() - started
    assert elapsed < 2 * delay_s  # two pairs, one after another, would take 2 × delay


# --- the queue on every store ----------------------------------------------------------------


def _fill_queue(repo: AssessmentRepository) -> None:
    store_finished(repo, "q-late", finished_at=NOW + timedelta(hours=2))
    store_finished(repo, "q-none", finished_at=NOW - timedelta(hours=5), unsure=())
    store_finished(repo, "q-early", finished_at=NOW - timedelta(hours=1), unsure=("3",))
    store_finished(repo, "q-mid", finished_at=NOW)


def _check_queue(repo: AssessmentRepository) -> None:
    queue = repo.review_queue(10)  # type: ignore[attr-defined]
    assert [e.assessment_id for e in queue] == ["q-early", "q-mid", "q-late"]
    assert queue[0].photos == {"3": [ReviewReason.LOW_CONFIDENCE]}
    assert queue[0].waiting_since == NOW - timedelta(hours=1) and queue[0].vin == VIN
    assert queue[0].status == AssessmentStatus.COMPLETED
    assert [e.assessment_id for e in repo.review_queue(2)] == ["q-early", "q-mid"]  # type: ignore[attr-defined]
    reviewing.review_photo(services(repo), "q-early", "3", review(Severity.NONE))
    assert [e.assessment_id for e in repo.review_queue(10)] == ["q-mid", "q-late"]  # type: ignore[attr-defined]


def test_the_queue_is_oldest_first_on_both_workflow_stores(workflow_repository: WorkflowRepository) -> None:
    _fill_queue(workflow_repository)
    _check_queue(workflow_repository)


def test_the_queue_on_dynamodb_reads_only_the_sparse_index(dynamodb_repository: WorkflowRepository) -> None:
    repo = dynamodb_repository
    assert isinstance(repo, DynamoAssessmentRepository)
    _fill_queue(repo)
    calls: list[dict[str, object]] = []
    real_query = repo.table.query

    def query(**kwargs: object) -> object:
        calls.append(kwargs)
        return real_query(**kwargs)

    repo.table.query = query
    repo.review_queue(10)
    assert [c["IndexName"] for c in calls] == ["GSI3"]
    item = repo.table.get_item(Key={"PK": "ASSESSMENT#q-none", "SK": "META"})["Item"]
    assert "GSI3PK" not in item and "review_entry" not in item  # sparse: nothing waits, not indexed


def test_the_queue_on_sqlite_is_an_index_range(tmp_path: Path) -> None:
    repo = SqliteAssessmentRepository(tmp_path / "a.sqlite3")
    _fill_queue(repo)
    _check_queue(repo)
    with sqlite3.connect(repo.path) as conn:
        plan = " ".join(
            str(row[-1]) for row in conn.execute("EXPLAIN QUERY PLAN " + REVIEW_QUEUE_QUERY, (10,))
        )
    # Read through the partial index, in its order: no scan of the table, no sort step.
    assert "USING INDEX assessments_awaiting_review" in plan and "TEMP B-TREE" not in plan, plan


def test_a_database_from_before_the_queue_gets_its_columns_filled(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    repo = SqliteAssessmentRepository(path)
    store_finished(repo, "old-1")
    with sqlite3.connect(path) as conn:  # as an earlier release left it
        conn.execute("DROP INDEX assessments_awaiting_review")
        conn.execute("ALTER TABLE assessments DROP COLUMN review_key")
        conn.execute("ALTER TABLE assessments DROP COLUMN review_entry")
    reopened = SqliteAssessmentRepository(path)
    assert [e.assessment_id for e in reopened.review_queue(10)] == ["old-1"]


def test_a_review_fits_api_gateways_timeout_only_because_pairs_are_rewritten_at_once() -> None:
    """The review route's describer + speech worst case, from the API's own client settings: one pair's
    (every pair at once, up to REVIEW_PARALLEL_DESCRIPTIONS) fits the 29 s; the pairs one after another
    would not, which is why the API rewrites them in parallel rather than in a state machine."""
    import math

    from vehicle_assessment.aws_runtime.api import REVIEW_PARALLEL_DESCRIPTIONS
    from vehicle_assessment.aws_runtime.config import ApiConfig

    config = ApiConfig(table_name="table", bucket_name="bucket")
    chunks = math.ceil(config.bedrock.max_chars / config.polly.max_chunk_chars)
    one_pair_s = config.bedrock.client.worst_case_s() + chunks * config.polly.client.worst_case_s()
    pairs = len(config.rules.languages) * len(config.rules.styles)
    assert pairs <= REVIEW_PARALLEL_DESCRIPTIONS
    assert one_pair_s < limits.API_GATEWAY_TIMEOUT_S
    assert pairs * one_pair_s > limits.API_GATEWAY_TIMEOUT_S
