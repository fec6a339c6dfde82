"""Typed configuration, in one place.

Edge configuration only: the rule models live in ``domain/rules.py``. `LocalSettings` composes
them with the local adapters' settings and reads the environment (prefix ``VDA_``, nested with ``__``, e.g.
``VDA_VERDICT__K=7``). It is only ever built at an edge (the CLI), never at import time.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from vehicle_assessment.domain import limits
from vehicle_assessment.domain.rules import AssessmentRules

# --- adapters --------------------------------------------------------------------------------


class EncoderSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    model_name: str = limits.DEFAULT_ENCODER_MODEL
    pretrained: str | None = Field(
        default=limits.DEFAULT_ENCODER_PRETRAINED,
        description="an open_clip pretrained tag or a local checkpoint path; ignored for hf-hub: names",
    )
    cache_dir: Path | None = None
    checkpoint_tag: str | None = Field(
        default=None,
        description="with a checkpoint path: the open_clip tag it was published under, so the tag's "
        "preprocessing (mean/std) is used and the index identity matches a load by tag",
    )
    untrained: bool = Field(default=False, description="explicitly use random weights")
    fallback_untrained_model: str | None = Field(
        default=None,
        description="if the weights cannot be had, use this architecture with random weights (loudly)",
    )
    batch_size: int = Field(default=16, ge=1)
    device: str = "cpu"
    threads: int | None = Field(default=None, ge=1)


class IndexSettings(BaseModel):
    """The local reference index: exact cosine top-k, or an approximate faiss index once it is large."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ann_min_vectors: int = Field(
        default=limits.DEFAULT_ANN_MIN_VECTORS,
        ge=1,
        description="at or above this many references, search a faiss IVF-Flat index (built and "
        "persisted next to the SQLite file); below it, exact numpy search",
    )
    ann_enabled: bool = Field(default=True, description="false: always exact, whatever the size")
    ann_nlist: int | None = Field(
        default=None, ge=1, description="IVF cells; default ~4·sqrt(n), between 16 and 4096"
    )
    ann_nprobe: int = Field(
        default=limits.DEFAULT_ANN_NPROBE, ge=1, description="cells scored per query (recall vs time)"
    )


class VpicSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    base_url: str = "https://vpic.nhtsa.dot.gov/api/vehicles"
    enabled: bool = True
    connect_timeout_s: float = Field(default=3.0, gt=0)
    read_timeout_s: float = Field(default=10.0, gt=0)
    retries: int = Field(default=2, ge=0, le=10)
    backoff_factor: float = Field(default=0.5, ge=0)


class SpeechSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    executable: str = "espeak-ng"
    timeout_s: float = Field(default=60.0, gt=0)


class LocalSettings(BaseSettings):
    """Local mode: the whole pipeline on one machine, state under ``data_dir``."""

    model_config = SettingsConfigDict(env_prefix="VDA_", env_nested_delimiter="__", extra="forbid")

    data_dir: Path = Path(".local-data")
    rules: AssessmentRules = Field(default_factory=AssessmentRules)
    encoder: EncoderSettings = Field(default_factory=EncoderSettings)
    index: IndexSettings = Field(default_factory=IndexSettings)
    vpic: VpicSettings = Field(default_factory=VpicSettings)
    speech: SpeechSettings = Field(default_factory=SpeechSettings)

    @property
    def objects_dir(self) -> Path:
        return self.data_dir / "objects"

    @property
    def database_path(self) -> Path:
        return self.data_dir / "assessments.sqlite3"

    @property
    def index_path(self) -> Path:
        return self.data_dir / "reference-index.sqlite3"

    @property
    def photo_registry_path(self) -> Path:
        """Every analysed photo's fingerprint, for the reused-photo check (beside the assessments)."""
        return self.data_dir / "photo-registry.sqlite3"

    @property
    def vpic_cache_path(self) -> Path:
        return self.data_dir / "vpic-cache.sqlite3"
