"""`index build --target aws`: the same build code, writing through the AWS adapters."""

from __future__ import annotations

import json

import pytest

from vehicle_assessment.adapters.aws.opensearch_index import OpenSearchReferenceIndex
from vehicle_assessment.adapters.aws.sagemaker_encoder import SageMakerEncoder
from vehicle_assessment.adapters.local.vector_index import LocalVectorIndex
from vehicle_assessment.aws_runtime import index_loader
from vehicle_assessment.cli import EXIT_NOT_READY, EXIT_OK
from vehicle_assessment.domain.models import EncoderIdentity

from ..conftest import SAMPLE_DATA, run_cli

IDENTITY = EncoderIdentity(
    model_name="ViT-L-14", pretrained="laion2b_s32b_b82k", untrained=False, dimension=768
)


def _configure(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    monkeypatch.setenv(
        "SAGEMAKER", json.dumps({"endpoint_name": "encoder", "identity": IDENTITY.model_dump(mode="json")})
    )
    monkeypatch.setenv(
        "OPENSEARCH", json.dumps({"collection_endpoint": "abc123.eu-west-1.aoss.amazonaws.com"})
    )


def _aws_build_args(data_dir) -> list[str]:
    labels = SAMPLE_DATA / "reference" / "labels.csv"
    return [
        "--data-dir",
        str(data_dir),
        "index",
        "build",
        str(labels.parent),
        "--labels",
        str(labels),
        "--target",
        "aws",
    ]


def test_target_is_built_from_the_lambda_style_environment(monkeypatch) -> None:
    _configure(monkeypatch)
    config = index_loader.IndexLoaderConfig()
    encoder, index = index_loader.build_aws_index_target(config)  # builds clients; sends nothing
    assert isinstance(encoder, SageMakerEncoder) and encoder.configured_identity == IDENTITY
    assert isinstance(index, OpenSearchReferenceIndex) and index.index_name == "reference-photos"
    index.close()


def test_unconfigured_target_exits_3_naming_what_is_missing(monkeypatch, capsys, tmp_path) -> None:
    for name in ("AWS_REGION", "SAGEMAKER", "OPENSEARCH"):
        monkeypatch.delenv(name, raising=False)
    code, _, err = run_cli(capsys, *_aws_build_args(tmp_path))
    assert code == EXIT_NOT_READY
    assert "AWS_REGION" in err and "SAGEMAKER" in err and "OPENSEARCH" in err


@pytest.mark.slow  # builds a tiny open_clip model (torch)
def test_cli_builds_through_whatever_the_aws_target_provides(
    monkeypatch, capsys, tmp_path, tiny_encoder
) -> None:
    # The adapters have their own tests (Stubber, a fake AOSS server); this checks the CLI wiring.
    _configure(monkeypatch)
    built = LocalVectorIndex(tmp_path / "stand-in.sqlite3")
    monkeypatch.setattr(index_loader, "build_aws_index_target", lambda config: (tiny_encoder, built))
    code, out, _ = run_cli(capsys, *_aws_build_args(tmp_path), "--json")
    summary = json.loads(out)
    assert code == EXIT_OK
    assert summary["index"] == "OpenSearch abc123.eu-west-1.aoss.amazonaws.com/reference-photos"
    assert summary["added"] == summary["total"] == 89


def test_the_reference_feedback_factory_builds_clients_and_loads_no_encoder_until_needed(monkeypatch) -> None:
    from vehicle_assessment.adapters.memory import InMemoryObjectStore, InMemoryPhotoRegistry
    from vehicle_assessment.aws_runtime import factory
    from vehicle_assessment.domain.rules import IntakeSettings
    from vehicle_assessment.learning import IndexReferenceFeedback

    _configure(monkeypatch)
    config = index_loader.IndexLoaderConfig()
    assert config.opensearch is not None and config.sagemaker is not None
    built: list[str] = []
    monkeypatch.setattr(factory, "sagemaker_encoder", lambda settings, region: built.append(region))

    feedback = factory.build_reference_feedback(
        config.opensearch,
        config.sagemaker,
        "eu-west-1",
        InMemoryObjectStore(),
        registry=InMemoryPhotoRegistry(),
        intake=IntakeSettings(),
    )

    assert isinstance(feedback, IndexReferenceFeedback) and built == []  # sends nothing, loads nothing
    assert isinstance(feedback.index, OpenSearchReferenceIndex)
    assert feedback.index.expected_identity == IDENTITY
    feedback._encoder_factory()
    assert built == ["eu-west-1"]
    feedback.index.close()
