"""The ports: every outside service the pipeline uses, as a Protocol.

Local adapters (``adapters/local``) and AWS adapters (``adapters/aws``) implement these; the
domain and the pipeline only ever see these interfaces.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from vehicle_assessment.domain.models import (
    Assessment,
    Description,
    DescriptionRequest,
    DescriptionStyle,
    EncoderIdentity,
    Neighbour,
    ReferenceLabel,
    VehicleFacts,
)

if TYPE_CHECKING:  # numpy and PIL only for annotations: Lambdas that never touch pixels skip them
    import numpy as np
    from PIL import Image


class PortError(Exception):
    """Base of the errors adapters raise; the message is meant for people."""


class ObjectNotFound(PortError):
    pass


class AssessmentNotFound(PortError):
    pass


class VinDecoderUnavailable(PortError):
    """The decoding service could not be reached or answered nonsense; fall back to the VIN."""


class EncoderUnavailable(PortError):
    """The encoder could not be loaded (e.g. pretrained weights missing)."""


class IndexMismatch(PortError):
    """The reference index was built by another encoder than the one querying it."""


class StateFileUnusable(PortError):
    """A local state file is damaged, truncated or not ours; the message names it and the remedy."""


class ObjectStore(Protocol):
    def put(self, key: str, data: bytes, content_type: str) -> None: ...

    def get(self, key: str) -> bytes: ...

    def exists(self, key: str) -> bool: ...


class AssessmentRepository(Protocol):
    def save(self, assessment: Assessment) -> None: ...

    def get(self, assessment_id: str) -> Assessment: ...

    def list_by_vin(self, vin: str, limit: int = 50) -> list[Assessment]: ...


class ImageEncoder(Protocol):
    @property
    def identity(self) -> EncoderIdentity: ...

    def embed(self, images: Sequence[Image.Image]) -> np.ndarray:
        """One batch in, an (n, d) float32 array of L2-normalised rows out."""
        ...


@dataclass(frozen=True)
class ReferenceItem:
    source: str
    sha256: str
    label: ReferenceLabel
    vector: np.ndarray


class ReferenceIndex(Protocol):
    @property
    def identity(self) -> EncoderIdentity | None: ...

    def search(self, vectors: np.ndarray, k: int) -> list[list[Neighbour]]: ...


class WritableReferenceIndex(ReferenceIndex, Protocol):
    def bind(self, identity: EncoderIdentity) -> None:
        """Record (or check) which encoder this index holds vectors of."""
        ...

    def known_sources(self) -> set[str]: ...

    def add(self, items: Sequence[ReferenceItem]) -> None: ...

    def count(self) -> int: ...

    def close(self) -> None: ...


class VinDecoder(Protocol):
    def decode(self, vin: str, model_year: int | None) -> VehicleFacts:
        """Raise VinDecoderUnavailable when the service cannot answer."""
        ...


class Describer(Protocol):
    def describe(
        self, request: DescriptionRequest, style: DescriptionStyle, language: str, creativity: float
    ) -> Description: ...


@dataclass(frozen=True)
class SpeechClip:
    audio: bytes
    content_type: str
    extension: str


class DescriptionUnavailable(PortError):
    """Neither the language model nor the template describer could write this description."""


class SpeechUnavailable(PortError):
    """No speech could be made (engine missing, language unsupported); record why and go on."""


class Speaker(Protocol):
    def synthesize(self, text: str, language: str) -> SpeechClip: ...
