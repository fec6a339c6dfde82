"""Learning from reviews: a photo a person reviewed "as reference" joins the reference index.

One implementation of the `ReferenceFeedback` port over other ports, so both runtimes share it: the
local wiring gives it the SQLite index, the filesystem store and the in-process OpenCLIP encoder; the
AWS factory gives it OpenSearch, S3 and the SageMaker encoder.

The vector is the photo's stored embedding (`PhotoRegistry.fingerprint`) when the encoder that made
it is comparable with the index's (same model and recorded weights); otherwise the stored original
(its pinned object version) is embedded again by the configured encoder, which must itself be
comparable with the index's. Vectors of two encoders never meet in one index (IndexMismatch).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from vehicle_assessment.domain.models import (
    Assessment,
    EncoderIdentity,
    PhotoFingerprint,
    PhotoRecord,
    PhotoReview,
    PhotoStatus,
    QualityLevel,
    ReferenceProvenance,
)
from vehicle_assessment.domain.rules import IntakeSettings
from vehicle_assessment.domain.upload_keys import reference_image_key
from vehicle_assessment.ports import (
    ImageEncoder,
    IndexMismatch,
    ObjectNotFound,
    ObjectStore,
    PhotoRegistry,
    PortError,
    ReferenceItem,
    ReferencePhotoUnusable,
    ReplaceableReferenceIndex,
)

if TYPE_CHECKING:  # numpy and PIL only for annotations: imported where pixels are handled
    import numpy as np
    from PIL import Image

logger = logging.getLogger(__name__)

# The origin recorded for every reference learnt from a review (see ReferenceItem.origin).
REVIEW_ORIGIN = "review"

# Told why a stored embedding could not be reused (the photo is embedded again): on AWS, a metric.
ReembedListener = Callable[[str], None]


def review_reference_source(assessment_id: str, photo_id: str) -> str:
    """The reference's source id: one per reviewed photo, so a second review replaces the first."""
    return f"review/{assessment_id}/{photo_id}"


class IndexReferenceFeedback:
    """`ReferenceFeedback` over a reference index, the photo registry, the object store and an encoder.

    `encoder` is called only when a photo must be embedded again (loading OpenCLIP costs seconds).
    `registry` None: no photo is remembered (the reused-photo check is off), so every photo is embedded
    again.
    """

    def __init__(
        self,
        index: ReplaceableReferenceIndex,
        registry: PhotoRegistry | None,
        objects: ObjectStore,
        encoder: Callable[[], ImageEncoder],
        intake: IntakeSettings,
        on_reembed: ReembedListener | None = None,
    ) -> None:
        self.index = index
        self.registry = registry
        self.objects = objects
        self._encoder_factory = encoder
        self._encoder: ImageEncoder | None = None
        self.intake = intake
        self.on_reembed = on_reembed

    def add_reviewed_photo(self, assessment: Assessment, photo: PhotoRecord, review: PhotoReview) -> str:
        """Add (or replace) the photo's reference with the review's label and provenance; its source id.

        Raises ValueError when the review does not ask for it, IndexMismatch when no vector of the
        index's encoder can be had, ReferencePhotoUnusable when the photo cannot be a reference.
        """
        if not review.as_reference:
            raise ValueError(f"the review of photo {photo.photo_id} does not ask to use it as a reference")
        identity = self.index.identity
        if identity is None:
            raise IndexMismatch("the reference index is not built yet: run `index build` first")
        if photo.status == PhotoStatus.REJECTED:
            raise ReferencePhotoUnusable(
                f"photo {photo.photo_id} was rejected at intake ({photo.reason}); "
                "a rejected photo does not become a reference"
            )
        image = self._intake(photo, self._original(assessment, photo))
        vector = self._stored_vector(assessment, photo, identity)
        if vector is None:
            vector = self._embed_again(photo, image, identity)
        source = review_reference_source(assessment.assessment_id, photo.photo_id)
        provenance = ReferenceProvenance(
            assessment_id=assessment.assessment_id,
            photo_id=photo.photo_id,
            reviewer=review.reviewer,
            reviewed_at=review.reviewed_at,
        )
        from vehicle_assessment.domain.photo import display_copy_jpeg

        # The display copy first: a neighbour found in the index always has a picture to show.
        self.objects.put(reference_image_key(photo.sha256), display_copy_jpeg(image), "image/jpeg")
        self.index.upsert(
            ReferenceItem(
                source=source,
                sha256=photo.sha256,
                label=review.label,
                vector=vector,
                provenance=provenance,
                origin=REVIEW_ORIGIN,
            )
        )
        logger.info(
            "reference %s added: %s by %s", source, review.label.model_dump(mode="json"), review.reviewer
        )
        return source

    def _original(self, assessment: Assessment, photo: PhotoRecord) -> bytes:
        """The evidence as counted: the pinned version, checked against the recorded sha256."""
        try:
            data = self.objects.get(photo.object_key, photo.object_version)
        except ObjectNotFound as exc:
            raise ReferencePhotoUnusable(
                f"photo {photo.photo_id} of assessment {assessment.assessment_id} is not in the object "
                f"store ({photo.object_key})"
            ) from exc
        if hashlib.sha256(data).hexdigest() != photo.sha256:
            raise ReferencePhotoUnusable(
                f"the stored bytes of photo {photo.photo_id} ({photo.object_key}) are not the ones "
                "assessed (sha256 differs)"
            )
        return data

    def _stored_vector(
        self, assessment: Assessment, photo: PhotoRecord, identity: EncoderIdentity
    ) -> np.ndarray | None:
        """The registry's embedding of this photo when the index's encoder made it; None (with the
        reason logged and reported) when the photo must be embedded again."""
        import numpy as np

        fingerprint, reason = self._fingerprint(assessment, photo)
        if fingerprint is not None:
            if fingerprint.sha256 != photo.sha256:
                reason = "the registry's fingerprint is of other bytes"
            elif fingerprint.vector is None or fingerprint.encoder is None:
                reason = "its fingerprint kept no embedding"
            elif not fingerprint.encoder.comparable_with(identity):
                reason = (
                    f"its embedding is from {fingerprint.encoder.describe()}, the index holds "
                    f"{identity.describe()}"
                )
            else:
                return np.asarray(fingerprint.vector, dtype=np.float32)
        logger.warning(
            "photo %s of assessment %s: embedding it again: %s",
            photo.photo_id,
            assessment.assessment_id,
            reason,
        )
        if self.on_reembed is not None:
            self.on_reembed(reason)
        return None

    def _fingerprint(self, assessment: Assessment, photo: PhotoRecord) -> tuple[PhotoFingerprint | None, str]:
        """The registry's fingerprint of the photo, or None and why there is none."""
        if self.registry is None:
            return None, "no photo registry is configured (the reused-photo check is off)"
        try:
            fingerprint = self.registry.fingerprint(assessment.assessment_id, photo.photo_id)
        except PortError as exc:  # the registry is down; the original photo is still there
            return None, f"the photo registry could not be read ({exc})"
        return fingerprint, "the photo registry holds no fingerprint of it"

    def _intake(self, photo: PhotoRecord, data: bytes) -> Image.Image:
        """The photo as the pipeline judged it (what is embedded and shown); a photo intake refuses
        cannot be a reference (the index build skips such photos too)."""
        from vehicle_assessment.domain.photo import PhotoRejected, intake_photo

        try:
            result = intake_photo(data, self.intake)
        except PhotoRejected as exc:
            raise ReferencePhotoUnusable(f"photo {photo.photo_id}: {exc}") from exc
        if result.quality.level == QualityLevel.REJECT:
            raise ReferencePhotoUnusable(f"photo {photo.photo_id}: {'; '.join(result.quality.reasons)}")
        return result.image

    def _embed_again(self, photo: PhotoRecord, image: Image.Image, identity: EncoderIdentity) -> np.ndarray:
        if self._encoder is None:
            self._encoder = self._encoder_factory()
        encoder = self._encoder
        if not encoder.identity.comparable_with(identity):
            raise IndexMismatch(
                f"cannot add photo {photo.photo_id}: the configured encoder is "
                f"{encoder.identity.describe()} but the index holds vectors of {identity.describe()}; "
                "vectors of two encoders are never mixed"
            )
        vectors = encoder.embed([image])
        vector: np.ndarray = vectors[0]
        return vector
