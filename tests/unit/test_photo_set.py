"""Rules over an assessment's photos together: exact copies (mark_duplicates), has_assessable_photo."""

from __future__ import annotations

import itertools

import pytest

from vehicle_assessment.domain.models import (
    DamageType,
    PhotoRecord,
    PhotoStatus,
    PhotoVerdict,
    Severity,
)
from vehicle_assessment.domain.photo_set import has_assessable_photo, mark_duplicates, photo_order_key

SHA_A, SHA_B = "a" * 64, "b" * 64


def _verdict() -> PhotoVerdict:
    return PhotoVerdict(
        damaged=True,
        damage_type=DamageType.DENT,
        severity=Severity.SEVERE,
        damaged_share=1.0,
        confidence=1.0,
        needs_review=False,
        neighbours=[],
    )


def photo(photo_id: str, sha256: str, status: PhotoStatus = PhotoStatus.ANALYSED) -> PhotoRecord:
    return PhotoRecord(
        photo_id=photo_id,
        filename=f"{photo_id}.jpg",
        object_key=f"photos/{photo_id}.jpg",
        size_bytes=1000,
        sha256=sha256,
        status=status,
        reason="too dark" if status == PhotoStatus.REJECTED else None,
        verdict=_verdict() if status == PhotoStatus.ANALYSED else None,
    )


def test_three_copies_of_one_photo_leave_one_original_and_two_duplicates() -> None:
    photos = [photo("01", SHA_A), photo("02", SHA_A), photo("03", SHA_A), photo("04", SHA_B)]
    marked = mark_duplicates(photos)
    assert [p.photo_id for p in marked] == ["01", "02", "03", "04"]  # every photo stays accounted for
    assert [p.status for p in marked] == [
        PhotoStatus.ANALYSED,
        PhotoStatus.DUPLICATE,
        PhotoStatus.DUPLICATE,
        PhotoStatus.ANALYSED,
    ]
    assert [p.duplicate_of for p in marked] == [None, "01", "01", None]
    assert marked[1].reason and marked[1].reason.startswith("duplicate of photo 01")
    assert marked[0] == photos[0] and marked[3] == photos[3]


@pytest.mark.parametrize("order", list(itertools.permutations(range(3))))
def test_the_first_photo_by_number_wins_whatever_the_list_order(order: tuple[int, ...]) -> None:
    # AWS photo ids come from file names: "2" is before "10" although "10" < "2" as text.
    photos = [photo("10", SHA_A), photo("2", SHA_A), photo("x", SHA_B)]
    marked = {p.photo_id: p for p in mark_duplicates([photos[i] for i in order])}
    assert marked["2"].status == PhotoStatus.ANALYSED
    assert marked["10"].status == PhotoStatus.DUPLICATE and marked["10"].duplicate_of == "2"
    assert marked["x"].status == PhotoStatus.ANALYSED


def test_marking_is_idempotent_and_ignores_unknown_digests() -> None:
    photos = [photo("1", ""), photo("2", ""), photo("3", SHA_A), photo("4", SHA_A)]
    once = mark_duplicates(photos)
    assert [p.status for p in once[:2]] == [PhotoStatus.ANALYSED] * 2  # digest not known yet
    assert mark_duplicates(once) == once


def test_a_copy_of_a_rejected_photo_is_a_duplicate_too() -> None:
    copies = [photo("1", SHA_A, PhotoStatus.REJECTED), photo("2", SHA_A, PhotoStatus.REJECTED)]
    marked = mark_duplicates(copies)
    assert marked[1].status == PhotoStatus.DUPLICATE and marked[1].duplicate_of == "1"
    assert not has_assessable_photo(marked)


def test_has_assessable_photo() -> None:
    assert has_assessable_photo([photo("1", SHA_A, PhotoStatus.REJECTED), photo("2", SHA_B)])
    assert not has_assessable_photo([photo("1", SHA_A, PhotoStatus.REJECTED)])
    assert not has_assessable_photo([photo("1", SHA_A, PhotoStatus.RECEIVED)])
    assert not has_assessable_photo([])


def test_photo_order_key_is_numeric_where_the_id_is() -> None:
    assert sorted(["10", "2", "01", "b", "a"], key=photo_order_key) == ["01", "2", "10", "a", "b"]
    assert sorted(["img10", "img9"], key=photo_order_key) == ["img9", "img10"]
