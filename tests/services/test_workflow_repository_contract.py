"""The WorkflowRepository contract, run against the in-memory and the DynamoDB (moto) implementations."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from tests.services.conftest import NOW, VIN, awaiting, record
from vehicle_assessment.adapters.memory import InMemoryAssessmentRepository
from vehicle_assessment.domain.models import (
    AssessmentStatus,
    EncoderIdentity,
    PhotoStatus,
    UndamagedValue,
    Valuation,
    ValueMethod,
)
from vehicle_assessment.ports import (
    AssessmentFilter,
    AssessmentNotFound,
    ConcurrentUpdate,
    UploadOutcome,
    WorkflowRepository,
)

IDENTITY = EncoderIdentity(model_name="fake-clip", pretrained=None, untrained=True, dimension=4)


def test_create_once_then_save_and_read_back(workflow_repository: WorkflowRepository) -> None:
    repo = workflow_repository
    assessment = awaiting("a-1")
    assert repo.create(assessment)
    assert not repo.create(assessment.model_copy(update={"expected_photos": 9}))
    stored = repo.get("a-1")
    assert stored == assessment.model_copy(update={"revision": 1})  # created at revision 1
    assert repo.exists("a-1") and not repo.exists("nope")
    valued = stored.model_copy(
        update={
            "status": AssessmentStatus.COMPLETED,
            "valuation": Valuation(
                undamaged=UndamagedValue(
                    amount_usd=20_000.5, method=ValueMethod.USER_ESTIMATE, reason="given"
                ),
                photos=[],
                combined_depreciation=0.1,
                adjusted_value_usd=18_000.45,
                rule="r",
                provisional=False,
            ),
        }
    )
    saved = repo.save(valued)
    assert saved == valued.model_copy(update={"revision": 2})
    assert repo.get("a-1") == saved
    with pytest.raises(AssessmentNotFound):
        repo.get("nope")


def test_a_save_from_a_stale_read_is_refused_and_writes_nothing(
    workflow_repository: WorkflowRepository,
) -> None:
    repo = workflow_repository
    repo.create(awaiting("v-1"))
    first, second = repo.get("v-1"), repo.get("v-1")
    saved = repo.save(first.model_copy(update={"warnings": ["first"]}))
    with pytest.raises(ConcurrentUpdate, match="v-1"):
        repo.save(second.model_copy(update={"warnings": ["second"]}))
    assert repo.get("v-1") == saved and saved.warnings == ["first"]
    # What a save returns carries the new revision: saving it again is the next write.
    again = repo.save(saved.model_copy(update={"warnings": ["first", "again"]}))
    assert (again.revision, repo.get("v-1").warnings) == (3, ["first", "again"])
    with pytest.raises(ConcurrentUpdate):  # and the copy that was saved is stale now
        repo.save(saved)


def test_saving_a_new_assessment_creates_it_once(workflow_repository: WorkflowRepository) -> None:
    """Revision 0 is "never stored": such a save creates, and only where nothing holds the id."""
    repo = workflow_repository
    fresh = awaiting("n-1")
    assert fresh.revision == 0
    created = repo.save(fresh)
    assert created.revision == 1 and repo.get("n-1") == created
    with pytest.raises(ConcurrentUpdate):
        repo.save(awaiting("n-1").model_copy(update={"warnings": ["a second creator"]}))
    repo.create(awaiting("n-2"))
    with pytest.raises(ConcurrentUpdate):
        repo.save(awaiting("n-2"))
    with pytest.raises(ConcurrentUpdate):  # a revision the store never held creates nothing
        repo.save(awaiting("n-3").model_copy(update={"revision": 4}))
    assert not repo.exists("n-3") and repo.get("n-1") == created


def test_status_moves_take_the_revision_on_but_upload_tracking_does_not(
    workflow_repository: WorkflowRepository,
) -> None:
    """A save may follow photo counting, rejections and photo results it did not read (it never
    writes them, and reads merge them), but not a status move (it writes the status)."""
    repo = workflow_repository
    repo.create(awaiting("m-1", expected=2))
    read = repo.get("m-1")
    record(repo, "m-1", 1)
    repo.reject_upload("m-1", "uploads/m-1/x.jpg", "not an image", NOW, 5, None)
    [photo] = repo.get("m-1").photos
    repo.save_photo_result("m-1", photo.model_copy(update={"status": PhotoStatus.ANALYSED}), IDENTITY)
    saved = repo.save(read.model_copy(update={"warnings": ["kept"]}))
    stored = repo.get("m-1")
    assert stored.revision == saved.revision == 2 and stored.warnings == ["kept"]
    assert [(p.photo_id, p.status) for p in stored.photos] == [("1", PhotoStatus.ANALYSED)]
    assert repo.mark_status("m-1", AssessmentStatus.INCOMPLETE, {AssessmentStatus.AWAITING_PHOTOS}, NOW)
    with pytest.raises(ConcurrentUpdate):  # it would put AWAITING_PHOTOS back
        repo.save(stored.model_copy(update={"warnings": ["stale"]}))
    moved = repo.get("m-1")
    assert (moved.status, moved.revision, moved.warnings) == (AssessmentStatus.INCOMPLETE, 3, ["kept"])


def test_save_keeps_the_upload_tracking(workflow_repository: WorkflowRepository) -> None:
    repo = workflow_repository
    repo.create(awaiting("k-1"))
    record(repo, "k-1", 1)
    repo.reject_upload("k-1", "uploads/k-1/x.jpg", "not an image", NOW, 5, None)
    repo.save(repo.get("k-1").model_copy(update={"warnings": ["checked"]}))
    assert repo.upload_progress("k-1").received == 1
    assert [r.reason for r in repo.rejected_uploads("k-1")] == ["not an image"]
    assert record(repo, "k-1", 1).outcome == UploadOutcome.DUPLICATE


def test_history_per_vin_is_newest_first_and_limited(workflow_repository: WorkflowRepository) -> None:
    for i in range(4):
        workflow_repository.create(awaiting(f"h-{i}", NOW + timedelta(minutes=i)))
    found = workflow_repository.list_by_vin(VIN, limit=3)
    assert [a.assessment_id for a in found] == ["h-3", "h-2", "h-1"]
    assert workflow_repository.list_by_vin("OTHERVIN000000000") == []


def test_duplicates_and_reordering_count_each_key_once(workflow_repository: WorkflowRepository) -> None:
    repo = workflow_repository
    repo.create(awaiting("d-1"))
    outcomes = [record(repo, "d-1", n) for n in (2, 2, 3, 2, 1, 3)]
    accepted, duplicate = UploadOutcome.ACCEPTED, UploadOutcome.DUPLICATE
    assert [o.outcome for o in outcomes] == [accepted, duplicate, accepted, duplicate, accepted, duplicate]
    assert [o.completes for o in outcomes] == [False, False, False, False, True, False]
    assert outcomes[-1].ready  # all in, still AWAITING_PHOTOS: a redelivery may retry the start
    photos = repo.get("d-1").photos
    assert [p.photo_id for p in photos] == ["1", "2", "3"]
    assert all(p.status == PhotoStatus.RECEIVED and p.sha256 == "" for p in photos)
    assert photos[0].object_key == "uploads/d-1/1.jpg" and photos[0].size_bytes == 1000


def test_extra_photo_is_rejected_with_the_count(workflow_repository: WorkflowRepository) -> None:
    workflow_repository.create(awaiting("x-1"))
    for n in (1, 2, 3):
        record(workflow_repository, "x-1", n)
    extra = record(workflow_repository, "x-1", 4)
    assert (extra.outcome, extra.reason) == (UploadOutcome.REJECTED, "already has 3 of 3 photos")
    assert (extra.received, extra.expected) == (3, 3)


def test_last_slot_race_has_exactly_one_winner(workflow_repository: WorkflowRepository) -> None:
    workflow_repository.create(awaiting("r-1"))
    record(workflow_repository, "r-1", 1)
    record(workflow_repository, "r-1", 2)
    first, second = record(workflow_repository, "r-1", "3a"), record(workflow_repository, "r-1", "3b")
    assert (first.completes, second.completes) == (True, False)
    assert second.outcome == UploadOutcome.REJECTED


def test_unknown_and_finished_assessments_do_not_count(workflow_repository: WorkflowRepository) -> None:
    repo = workflow_repository
    unknown = record(repo, "ghost", 1)
    assert (unknown.outcome, unknown.reason) == (
        UploadOutcome.UNKNOWN_ASSESSMENT,
        "no assessment with id 'ghost'",
    )
    repo.create(awaiting("f-1"))
    assert repo.mark_status("f-1", AssessmentStatus.INCOMPLETE, {AssessmentStatus.AWAITING_PHOTOS}, NOW)
    late = record(repo, "f-1", 1)
    assert late.outcome == UploadOutcome.REJECTED
    assert late.reason == "assessment is INCOMPLETE, no longer accepting photos"


def test_status_moves_only_from_the_allowed_states(workflow_repository: WorkflowRepository) -> None:
    repo = workflow_repository
    repo.create(awaiting("s-1"))
    later = NOW + timedelta(minutes=1)
    assert repo.mark_status("s-1", AssessmentStatus.PROCESSING, {AssessmentStatus.AWAITING_PHOTOS}, later)
    assert not repo.mark_status("s-1", AssessmentStatus.INCOMPLETE, {AssessmentStatus.AWAITING_PHOTOS}, NOW)
    stored = repo.get("s-1")
    assert (stored.status, stored.updated_at) == (AssessmentStatus.PROCESSING, later)
    assert not repo.mark_status("ghost", AssessmentStatus.PROCESSING, {AssessmentStatus.AWAITING_PHOTOS}, NOW)


def test_only_if_photos_missing_spares_a_full_assessment(workflow_repository: WorkflowRepository) -> None:
    repo = workflow_repository
    repo.create(awaiting("p-1", expected=1))
    record(repo, "p-1", 1)
    awaiting_only = {AssessmentStatus.AWAITING_PHOTOS}
    assert not repo.mark_status(
        "p-1", AssessmentStatus.INCOMPLETE, awaiting_only, NOW, only_if_photos_missing=True
    )
    repo.create(awaiting("p-2", expected=2))
    record(repo, "p-2", 1)
    assert repo.mark_status(
        "p-2", AssessmentStatus.INCOMPLETE, awaiting_only, NOW, only_if_photos_missing=True
    )


def test_awaiting_before_lists_only_old_awaiting_ones_oldest_first(
    workflow_repository: WorkflowRepository,
) -> None:
    repo = workflow_repository
    for name, age_h in (("w-old", 5), ("w-older", 9), ("w-new", 0), ("w-done", 7), ("w-mid", 3)):
        repo.create(awaiting(name, NOW - timedelta(hours=age_h), expected=2))
    record(repo, "w-mid", 1)
    repo.mark_status("w-done", AssessmentStatus.COMPLETED, {AssessmentStatus.AWAITING_PHOTOS}, NOW)
    found = repo.awaiting_before(NOW - timedelta(hours=1))
    assert [a.assessment_id for a in found] == ["w-older", "w-old", "w-mid"]
    assert (found[2].received, found[2].expected) == (1, 2)
    assert [a.assessment_id for a in repo.awaiting_before(NOW, limit=2)] == ["w-older", "w-old"]
    # Saving the document as PROCESSING takes it out as well.
    repo.save(repo.get("w-older").model_copy(update={"status": AssessmentStatus.PROCESSING}))
    assert [a.assessment_id for a in repo.awaiting_before(NOW, limit=1)] == ["w-old"]


def test_rejections_are_kept_on_the_assessment_or_as_orphans(workflow_repository: WorkflowRepository) -> None:
    repo = workflow_repository
    repo.create(awaiting("j-1"))
    assert repo.reject_upload(
        "j-1", "uploads/j-1/2.jpg", "too large", NOW + timedelta(seconds=1), 99, "image/png"
    )
    assert repo.reject_upload("j-1", "uploads/j-1/1.jpg", "not an image", NOW, 10, None)
    assert not repo.reject_upload("ghost", "uploads/ghost/1.jpg", "no assessment", NOW, 10, "image/jpeg")
    assert not repo.reject_upload(None, "elsewhere/1.jpg", "bad layout", NOW)
    rejected = repo.rejected_uploads("j-1")
    assert [(r.object_key, r.reason, r.size_bytes, r.content_type) for r in rejected] == [
        ("uploads/j-1/1.jpg", "not an image", 10, None),
        ("uploads/j-1/2.jpg", "too large", 99, "image/png"),
    ]
    orphan = repo.orphan_upload("uploads/ghost/1.jpg")
    assert orphan is not None and (orphan.reason, orphan.size_bytes) == ("no assessment", 10)
    assert repo.orphan_upload("uploads/j-1/1.jpg") is None
    with pytest.raises(AssessmentNotFound):
        repo.rejected_uploads("ghost")
    with pytest.raises(AssessmentNotFound):
        repo.upload_progress("ghost")


def test_photo_results_land_on_their_photo_and_set_the_encoder(
    workflow_repository: WorkflowRepository,
) -> None:
    repo = workflow_repository
    repo.create(awaiting("e-1", expected=2))
    record(repo, "e-1", 1)
    record(repo, "e-1", 2)
    [first, second] = repo.get("e-1").photos
    analysed = first.model_copy(update={"status": PhotoStatus.ANALYSED, "sha256": "ab" * 32})
    repo.save_photo_result("e-1", analysed, IDENTITY)
    stored = repo.get("e-1")
    assert stored.photos == [analysed, second] and stored.encoder == IDENTITY
    with pytest.raises(AssessmentNotFound):
        repo.save_photo_result("ghost", analysed, IDENTITY)


def test_what_is_read_is_a_copy(workflow_repository: WorkflowRepository) -> None:
    workflow_repository.create(awaiting("c-1"))
    first = workflow_repository.get("c-1")
    first.warnings.append("changed after reading")
    assert workflow_repository.get("c-1").warnings == []


def test_in_memory_counting_is_atomic_under_threads() -> None:
    """Many deliveries at once: each key counts once and exactly one delivery completes."""
    repo = InMemoryAssessmentRepository()
    repo.create(awaiting("t-1", expected=5))
    receipts = []
    barrier = threading.Barrier(20)

    def deliver(n: int) -> None:
        barrier.wait()
        receipts.append(record(repo, "t-1", n % 8))

    threads = [threading.Thread(target=deliver, args=(n,)) for n in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(r.completes for r in receipts) == 1
    assert sum(r.outcome == UploadOutcome.ACCEPTED for r in receipts) == 5
    assert repo.upload_progress("t-1").received == 5


def test_an_item_stored_before_revisions_reads_as_revision_0_and_saves_once(
    dynamodb_repository: WorkflowRepository,
) -> None:
    """DynamoDB only: items written before the revision attribute existed stay writable."""
    from vehicle_assessment.adapters.aws.dynamodb import DynamoAssessmentRepository

    assert isinstance(dynamodb_repository, DynamoAssessmentRepository)
    repo = dynamodb_repository
    repo.create(awaiting("o-1"))
    repo.table.update_item(Key={"PK": "ASSESSMENT#o-1", "SK": "META"}, UpdateExpression="REMOVE revision")
    legacy = repo.get("o-1")
    assert legacy.revision == 0
    saved = repo.save(legacy.model_copy(update={"warnings": ["migrated"]}))
    assert saved.revision == 1 and repo.get("o-1") == saved
    with pytest.raises(ConcurrentUpdate):
        repo.save(legacy)


def test_the_counted_version_is_pinned_and_a_reupload_is_refused(
    workflow_repository: WorkflowRepository,
) -> None:
    repo = workflow_repository
    repo.create(awaiting("v-1"))
    assert record(repo, "v-1", 1, version_id="ver-a").outcome == UploadOutcome.ACCEPTED
    # The same event again (at-least-once delivery) is a redelivery of the counted version.
    assert record(repo, "v-1", 1, version_id="ver-a").outcome == UploadOutcome.DUPLICATE
    # Another version under the same key is a re-upload: not counted, and said why.
    reupload = record(repo, "v-1", 1, version_id="ver-b")
    assert reupload.outcome == UploadOutcome.REJECTED and reupload.received == 1
    assert reupload.reason is not None and "'ver-a'" in reupload.reason and "'ver-b'" in reupload.reason
    [photo] = repo.get("v-1").photos
    assert photo.object_version == "ver-a"
    # An analysed record keeps the pinned version; a store without versions records None.
    repo.save_photo_result("v-1", photo.model_copy(update={"sha256": "ab" * 32}), IDENTITY)
    assert repo.get("v-1").photos[0].object_version == "ver-a"
    assert record(repo, "v-1", 2).outcome == UploadOutcome.ACCEPTED
    assert repo.get("v-1").photos[1].object_version is None


def test_the_list_is_newest_first_filtered_and_paged_without_repeats(
    workflow_repository: WorkflowRepository,
) -> None:
    """GET /assessments: any status or one, a VIN, needs review; keyset pages that never repeat or skip."""
    repo = workflow_repository
    other_vin = "5YJSA1E29GF000001"
    for n in range(7):
        vin = other_vin if n % 3 == 0 else VIN
        repo.create(awaiting(f"l-{n}", created=NOW + timedelta(minutes=n), vin=vin))
    # l-1 and l-4 finish, l-4 with photos for a person; l-2 is moved on by a status move only.
    for assessment_id, reasons in (("l-1", []), ("l-4", ["photo 1: low confidence"])):
        current = repo.get(assessment_id)
        repo.save(
            current.model_copy(update={"status": AssessmentStatus.COMPLETED, "review_reasons": reasons})
        )
    assert repo.mark_status("l-2", AssessmentStatus.PROCESSING, {AssessmentStatus.AWAITING_PHOTOS}, NOW)

    def ids(which: AssessmentFilter, limit: int = 50) -> list[str]:
        listed, token = [], None
        while True:
            page = repo.list_assessments(which, limit, token)
            assert len(page.assessments) <= limit
            listed += [a.assessment_id for a in page.assessments]
            if page.next_token is None:
                return listed
            token = page.next_token

    newest_first = [f"l-{n}" for n in reversed(range(7))]
    assert ids(AssessmentFilter()) == newest_first
    assert ids(AssessmentFilter(), limit=2) == newest_first  # pages of 2, 2, 2, 1: no repeats, none lost
    assert ids(AssessmentFilter(status=AssessmentStatus.COMPLETED)) == ["l-4", "l-1"]
    assert ids(AssessmentFilter(status=AssessmentStatus.PROCESSING)) == ["l-2"]
    assert ids(AssessmentFilter(status=AssessmentStatus.AWAITING_PHOTOS), limit=1) == [
        "l-6",
        "l-5",
        "l-3",
        "l-0",
    ]
    assert ids(AssessmentFilter(vin=other_vin)) == ["l-6", "l-3", "l-0"]
    assert ids(AssessmentFilter(vin=VIN, status=AssessmentStatus.COMPLETED), limit=1) == ["l-4", "l-1"]
    assert ids(AssessmentFilter(needs_review=True)) == ["l-4"]
    assert ids(AssessmentFilter(needs_review=False), limit=3) == [i for i in newest_first if i != "l-4"]
    [first] = repo.list_assessments(AssessmentFilter(status=AssessmentStatus.PROCESSING), 5).assessments
    assert first == repo.get("l-2")  # the whole assessment, as `get` reads it
    with pytest.raises(ValueError):
        repo.list_assessments(AssessmentFilter(), 5, "not-a-token")
