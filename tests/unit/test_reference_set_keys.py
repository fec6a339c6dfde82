"""Where a manifest row's photo is read from: under the manifest's folder, never outside the set."""

from __future__ import annotations

import pytest

from vehicle_assessment.domain.upload_keys import REFERENCE_SET_PREFIX, reference_set_photo_key

MANIFEST = f"{REFERENCE_SET_PREFIX}2026-11/labels.csv"


@pytest.mark.parametrize(
    ("path", "key"),
    [
        ("dents/a.jpg", f"{REFERENCE_SET_PREFIX}2026-11/dents/a.jpg"),
        ("  b.jpg ", f"{REFERENCE_SET_PREFIX}2026-11/b.jpg"),  # as local read_labels strips it
    ],
)
def test_a_path_is_relative_to_the_manifest_folder(path: str, key: str) -> None:
    assert reference_set_photo_key(MANIFEST, path) == key


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("", "empty path"),
        ("../other/a.jpg", "without . or .."),
        ("dents/./a.jpg", "without . or .."),
        ("dents//a.jpg", "without . or .."),
        ("/etc/passwd", "without . or .."),
        ("dents\\a.jpg", "without . or .."),
    ],
)
def test_a_path_that_leaves_the_set_is_refused_with_its_reason(path: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        reference_set_photo_key(MANIFEST, path)


@pytest.mark.parametrize(
    "manifest", ["uploads/x/labels.csv", f"{REFERENCE_SET_PREFIX}2026-11/", "labels.csv"]
)
def test_a_manifest_outside_the_reference_sets_is_refused(manifest: str) -> None:
    with pytest.raises(ValueError, match=f"under {REFERENCE_SET_PREFIX}"):
        reference_set_photo_key(manifest, "a.jpg")
