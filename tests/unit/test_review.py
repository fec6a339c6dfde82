"""The review loop's domain rules (domain/review.py) and what a review changes in the valuation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from vehicle_assessment import pipeline
from vehicle_assessment.domain import limits
from vehicle_assessment.domain.description import build_description_request
from vehicle_assessment.domain.models import (
    UNTRAINED_ENCODER_WARNING,
    Assessment,
    AssessmentInputs,
    AssessmentStatus,
    AudioRecord,
    AudioStatus,
    DamageType,
    Description,
    DescriptionStyle,
    EncoderIdentity,
    HistoryAction,
    HistoryEntry,
    PhotoRecord,
    PhotoReview,
    PhotoStatus,
    PhotoVerdict,
    ReuseMatch,
    ReuseMatchKind,
    ReviewReason,
    Severity,
    UndamagedValue,
    ValueMethod,
    VehicleFacts,
)
from vehicle_assessment.domain.review import (
    ReviewRefused,
    add_history,
    apply_review,
    effective_label,
    photo_review_reasons,
    photos_awaiting_review,
    queue_entry,
    replace_description,
    settle_review_state,
    speakable_text,
)
from vehicle_assessment.domain.rules import ValuationSettings
from vehicle_assessment.domain.valuation import value_vehicle

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
VIN = "1FTMW1T88MFA00001"
UNDAMAGED = UndamagedValue(amount_usd=20_000.0, method=ValueMethod.USER_ESTIMATE, reason="given")
UNTRAINED = EncoderIdentity(model_name="tiny", pretrained=None, untrained=True, dimension=64)


def verdict(severity: Severity, *, needs_review: bool = False) -> PhotoVerdict:
    damaged = severity != Severity.NONE
    return PhotoVerdict(
        damaged=damaged,
        damage_type=DamageType.DENT if damaged else DamageType.NONE,
        severity=severity,
        damaged_share=1.0 if damaged else 0.0,
        confidence=0.6 if needs_review else 1.0,
        needs_review=needs_review,
        review_reason="confidence 0.60 is below the 0.70 threshold" if needs_review else None,
        neighbours=[],
    )


def photo(photo_id: str, status: PhotoStatus = PhotoStatus.ANALYSED, **update: object) -> PhotoRecord:
    record = PhotoRecord(
        photo_id=photo_id,
        filename=f"{photo_id}.jpg",
        object_key=f"photos/{photo_id}.jpg",
        size_bytes=10,
        sha256=photo_id * 8,
        status=status,
        reason="too dark" if status == PhotoStatus.REJECTED else None,
    )
    return record.model_copy(update=update)


def review(
    severity: Severity = Severity.SEVERE, *, who: str = "ana", at: datetime = NOW, **kw: object
) -> PhotoReview:
    damaged = severity != Severity.NONE
    return PhotoReview(
        reviewer=who,
        reviewed_at=at,
        damaged=damaged,
        damage_type=DamageType.BROKEN if damaged else DamageType.NONE,
        severity=severity,
        **kw,  # type: ignore[arg-type]
    )


def reuse() -> ReuseMatch:
    return ReuseMatch(
        assessment_id="other", photo_id="07", vin="2FTMW1T88MFA00002", kind=ReuseMatchKind.EXACT, score=0
    )


def assessment(*photos: PhotoRecord, status: AssessmentStatus = AssessmentStatus.COMPLETED) -> Assessment:
    a = Assessment(
        assessment_id="a1",
        vin=VIN,
        status=status,
        created_at=NOW - timedelta(hours=1),
        updated_at=NOW - timedelta(hours=1),
        inputs=AssessmentInputs(vin=VIN),
        vehicle=VehicleFacts(vin=VIN, source="vin"),
        photos=list(photos),
    )
    return a.model_copy(update={"valuation": value_vehicle(a.photos, UNDAMAGED, ValuationSettings())})


# --- reasons ---------------------------------------------------------------------------------


def test_each_reason_and_a_review_clears_them() -> None:
    unsure = photo("01", verdict=verdict(Severity.MINOR, needs_review=True))
    reused = photo("02", verdict=verdict(Severity.NONE), reuse_matches=[reuse()])
    rejected = photo("03", PhotoStatus.REJECTED)
    sure = photo("04", verdict=verdict(Severity.MINOR))
    copy = photo("05", PhotoStatus.DUPLICATE, duplicate_of="04", reuse_matches=[reuse()])
    a = assessment(unsure, reused, rejected, sure, copy)
    assert photos_awaiting_review(a) == {
        "01": [ReviewReason.LOW_CONFIDENCE],
        "02": [ReviewReason.POSSIBLE_REUSE],
        "03": [ReviewReason.REJECTED_PHOTO],
    }
    for photo_id in ("01", "02", "03"):
        a = apply_review(a, photo_id, review())
    assert photos_awaiting_review(a) == {}
    assert all(photo_review_reasons(p) == [] for p in a.photos)


def test_pipeline_review_reasons_come_from_the_domain_rule() -> None:
    a = assessment(
        photo("01", verdict=verdict(Severity.MINOR, needs_review=True)), photo("02", PhotoStatus.REJECTED)
    )
    a = a.model_copy(update={"encoder": UNTRAINED})
    lines = pipeline.review_reasons(a)
    assert lines[0].startswith("photo 01 (01.jpg) needs review: confidence 0.60")
    assert lines[1] == "photo 02 (02.jpg) rejected: too dark"
    assert UNTRAINED_ENCODER_WARNING in lines
    reviewed = apply_review(apply_review(a, "01", review()), "02", review())
    # Every photo judged by a person: the untrained encoder's verdicts no longer count.
    assert pipeline.review_reasons(reviewed) == []


# --- applying a review -----------------------------------------------------------------------


def test_a_review_is_kept_beside_the_verdict_and_recorded() -> None:
    model = verdict(Severity.MINOR, needs_review=True)
    a = apply_review(assessment(photo("01", verdict=model)), "01", review(note="rear door caved in"))
    [reviewed] = a.photos
    assert reviewed.verdict == model  # never overwritten
    assert reviewed.review is not None and reviewed.review.severity == Severity.SEVERE
    assert effective_label(reviewed) == reviewed.review.label
    [entry] = a.history
    assert entry.action == HistoryAction.REVIEWED and entry.actor == "ana" and entry.photo_id == "01"
    assert (entry.before, entry.after) == ("minor dent", "severe broken")
    assert "rear door caved in" in entry.summary
    # A second review is appended; the last one counts.
    again = apply_review(a, "01", review(Severity.NONE, who="bo"))
    assert [r.reviewer for r in again.photos[0].reviews] == ["ana", "bo"]
    label = effective_label(again.photos[0])
    assert label is not None and not label.damaged


@pytest.mark.parametrize(
    ("photos", "photo_id", "status", "message"),
    [
        (
            [photo("01", verdict=verdict(Severity.NONE))],
            "09",
            AssessmentStatus.COMPLETED,
            "has no photo '09'",
        ),
        (
            [photo("02", PhotoStatus.DUPLICATE, duplicate_of="01")],
            "02",
            AssessmentStatus.COMPLETED,
            "review that one",
        ),
        ([photo("01", PhotoStatus.RECEIVED)], "01", AssessmentStatus.COMPLETED, "not analysed yet"),
        ([photo("01", verdict=verdict(Severity.NONE))], "01", AssessmentStatus.PROCESSING, "is PROCESSING"),
    ],
)
def test_refused_reviews_say_why(
    photos: list[PhotoRecord], photo_id: str, status: AssessmentStatus, message: str
) -> None:
    with pytest.raises(ReviewRefused, match=message):
        apply_review(assessment(*photos, status=status), photo_id, review())


def test_an_inconsistent_label_or_a_long_note_is_refused_by_the_model() -> None:
    with pytest.raises(ValidationError, match="damage type and a severity other than none"):
        PhotoReview(
            reviewer="a", reviewed_at=NOW, damaged=True, damage_type=DamageType.NONE, severity=Severity.MINOR
        )
    with pytest.raises(ValidationError, match="at most"):
        review(note="x" * (limits.MAX_REVIEW_NOTE_CHARS + 1))


# --- valuation -------------------------------------------------------------------------------


def test_a_reviewed_photo_counts_with_the_reviewers_severity() -> None:
    a = apply_review(
        assessment(photo("01", verdict=verdict(Severity.MINOR, needs_review=True))), "01", review()
    )
    valuation = value_vehicle(a.photos, UNDAMAGED, ValuationSettings())
    [row] = valuation.photos
    assert row.counted and row.severity == Severity.SEVERE and row.rate == 0.40
    assert (
        row.reason is not None
        and "reviewed by ana at 2026-11-27 12:00 UTC" in row.reason
        and "the model said minor dent" in row.reason
    )
    assert valuation.adjusted_value_usd == 12_000.0 and not valuation.provisional


def test_a_reviewed_rejected_photo_counts_and_ends_needs_photos() -> None:
    a = assessment(photo("01", PhotoStatus.REJECTED), status=AssessmentStatus.NEEDS_PHOTOS)
    assert a.valuation is not None and a.valuation.adjusted_value_usd is None
    reviewed = apply_review(a, "01", review(Severity.MODERATE))
    valuation = value_vehicle(reviewed.photos, UNDAMAGED, ValuationSettings())
    assert valuation.adjusted_value_usd == 15_000.0 and not valuation.provisional
    assert settle_review_state(reviewed, NOW).status == AssessmentStatus.COMPLETED


def test_unreviewed_possible_reuse_is_not_counted_and_keeps_the_value_provisional() -> None:
    a = assessment(
        photo("01", verdict=verdict(Severity.SEVERE), reuse_matches=[reuse()]),
        photo("02", verdict=verdict(Severity.NONE)),
    )
    valuation = value_vehicle(a.photos, UNDAMAGED, ValuationSettings())
    flagged = valuation.photos[0]
    assert (
        not flagged.counted
        and flagged.reason is not None
        and "possible reuse of photo 07 of assessment other" in flagged.reason
    )
    assert valuation.provisional and valuation.adjusted_value_usd == 20_000.0
    # The description says nothing about the flagged photo's damage until a person has looked.
    assert build_description_request(a).damage_summary == {}
    reviewed = apply_review(a, "01", review(Severity.SEVERE))
    after = value_vehicle(reviewed.photos, UNDAMAGED, ValuationSettings())
    assert after.photos[0].counted and not after.provisional and after.adjusted_value_usd == 12_000.0
    assert build_description_request(reviewed).damage_summary == {"broken/severe": 1}


def test_provisional_ends_when_every_photo_is_sure_or_reviewed_even_with_an_untrained_encoder() -> None:
    a = assessment(
        photo("01", verdict=verdict(Severity.MINOR)),
        photo("02", verdict=verdict(Severity.NONE, needs_review=True)),
    )
    assert value_vehicle(a.photos, UNDAMAGED, ValuationSettings()).provisional
    one = apply_review(a, "02", review(Severity.NONE))
    assert not value_vehicle(one.photos, UNDAMAGED, ValuationSettings()).provisional
    # An untrained encoder's verdict still counts for photo 01: provisional until a person judges it too.
    assert value_vehicle(one.photos, UNDAMAGED, ValuationSettings(), untrained_encoder=True).provisional
    both = apply_review(one, "01", review(Severity.MINOR))
    assert not value_vehicle(both.photos, UNDAMAGED, ValuationSettings(), untrained_encoder=True).provisional


# --- history, queue, completion --------------------------------------------------------------


def test_history_is_capped_and_counts_what_it_dropped() -> None:
    entries = [
        HistoryEntry(at=NOW, actor="x", action=HistoryAction.REVIEWED, summary=str(i))
        for i in range(limits.MAX_HISTORY_ENTRIES + 5)
    ]
    a = add_history(assessment(), *entries[:10])
    a = add_history(a, *entries[10:])
    assert len(a.history) == limits.MAX_HISTORY_ENTRIES and a.history_dropped == 5
    assert a.history[0].summary == "5" and a.history[-1].summary == str(limits.MAX_HISTORY_ENTRIES + 4)


def test_completion_stamps_the_queue_and_records_assessed() -> None:
    a = assessment(
        photo("01", verdict=verdict(Severity.MINOR, needs_review=True)), status=AssessmentStatus.PROCESSING
    )
    done = pipeline.complete(a, NOW)
    assert done.review_waiting_since == NOW and done.history[-1].action == HistoryAction.ASSESSED
    assert "1 awaiting review" in done.history[-1].summary
    entry = queue_entry(done)
    assert (
        entry is not None
        and entry.waiting_since == NOW
        and entry.photos == {"01": [ReviewReason.LOW_CONFIDENCE]}
    )
    # A later settle keeps the first waiting time; the last review takes it out of the queue.
    later = NOW + timedelta(hours=2)
    assert settle_review_state(done, later).review_waiting_since == NOW
    reviewed = settle_review_state(apply_review(done, "01", review(at=later)), later)
    assert reviewed.review_waiting_since is None and queue_entry(reviewed) is None
    # Nothing waits: no stamp, not queued.
    sure = pipeline.complete(
        assessment(photo("01", verdict=verdict(Severity.NONE)), status=AssessmentStatus.PROCESSING), NOW
    )
    assert sure.review_waiting_since is None and queue_entry(sure) is None


# --- description versions --------------------------------------------------------------------


def _description(text: str, language: str = "en") -> Description:
    return Description(style=DescriptionStyle.STANDARD, language=language, text=text, generator="template")


def _audio(language: str = "en", key: str = "k") -> AudioRecord:
    return AudioRecord(
        language=language, style=DescriptionStyle.STANDARD, status=AudioStatus.GENERATED, object_key=key
    )


def test_a_new_description_supersedes_the_current_one_with_its_audio() -> None:
    a = assessment().model_copy(
        update={"descriptions": [_description("v1"), _description("uno", "es")], "audio": [_audio(key="a1")]}
    )
    a = replace_description(a, _description("v2"), _audio(key="a2"))
    current = {d.language: d for d in a.descriptions}
    assert current["en"].text == "v2" and current["en"].version == 2 and current["es"].version == 1
    assert [d.text for d in a.superseded_descriptions] == ["v1"]
    assert [x.object_key for x in a.superseded_audio] == ["a1"] and [x.object_key for x in a.audio] == ["a2"]
    for n in range(3, limits.MAX_SUPERSEDED_DESCRIPTIONS + 5):
        a = replace_description(a, _description(f"v{n}"), _audio(key=f"a{n}"))
    assert len(a.superseded_descriptions) == limits.MAX_SUPERSEDED_DESCRIPTIONS
    assert len(a.superseded_audio) == limits.MAX_SUPERSEDED_DESCRIPTIONS
    # Versions keep counting past the dropped ones.
    assert a.descriptions[-1].version == limits.MAX_SUPERSEDED_DESCRIPTIONS + 4


@pytest.mark.parametrize(
    ("text", "message"),
    [("   ", "empty"), ("x" * (limits.MAX_DESCRIPTION_CHARS + 1), "at most"), ("bell\x07", "U\\+0007")],
)
def test_a_persons_text_must_be_speakable(text: str, message: str) -> None:
    with pytest.raises(ReviewRefused, match=message):
        speakable_text(text)


def test_speakable_text_keeps_line_breaks() -> None:
    assert speakable_text("  Line one.\nLine two.  ") == "Line one.\nLine two."


def test_a_retried_completion_records_assessed_once() -> None:
    """Step Functions retries the Store step; the second run finds the entry and adds none."""
    a = assessment(photo("01", verdict=verdict(Severity.MINOR)), status=AssessmentStatus.PROCESSING)
    once = pipeline.complete(a, NOW)
    again = pipeline.complete(once, NOW + timedelta(seconds=5))
    assert [e.action for e in again.history] == [HistoryAction.ASSESSED]
