"""The encoder endpoint gets a GPU it can use: an InferenceAmiVersion whose driver runs the image's
CUDA, and EXPECT_GPU so the container refuses to start on a host where torch finds no GPU."""

from __future__ import annotations

import pytest
from aws_cdk import App, Stack
from aws_cdk.assertions import Match, Template

from infra import inference_ami
from infra.config import InfraConfig
from infra.constructs.embedding import Embedding

# Synthesizes the stack (the shared template fixture) and single constructs.
pytestmark = pytest.mark.slow


def test_variant_sets_the_default_inference_ami_and_the_model_expects_a_gpu(template: Template) -> None:
    template.has_resource_properties(
        "AWS::SageMaker::EndpointConfig",
        {
            "ProductionVariants": [
                Match.object_like({"InferenceAmiVersion": inference_ami.DEFAULT_INFERENCE_AMI})
            ]
        },
    )
    template.has_resource_properties(
        "AWS::SageMaker::Model",
        {"PrimaryContainer": Match.object_like({"Environment": Match.object_like({"EXPECT_GPU": "true"})})},
    )


def _embedding_template(**context: object) -> Template:
    stack = Stack(App(), "EncoderOnly")
    Embedding(stack, "Encoder", config=InfraConfig.model_validate(context))
    return Template.from_stack(stack)


def test_synth_refuses_an_image_whose_cuda_the_hosts_driver_cannot_run() -> None:
    # No override on ml.g5: driver 470 / CUDA 11.4, older than the Dockerfile's CUDA 12.
    with pytest.raises(ValueError, match="torch would find no GPU"):
        _embedding_template(inference_ami_version="none")


def test_a_cpu_instance_gets_no_ami_and_expects_no_gpu() -> None:
    template = _embedding_template(
        encoder_instance_type="ml.c5.xlarge",
        inference_ami_version="none",
        encoder_image_uri="123456789012.dkr.ecr.us-east-1.amazonaws.com/openclip:cpu",
    )
    variants = next(iter(template.find_resources("AWS::SageMaker::EndpointConfig").values()))["Properties"][
        "ProductionVariants"
    ]
    assert "InferenceAmiVersion" not in variants[0]
    template.has_resource_properties(
        "AWS::SageMaker::Model",
        {"PrimaryContainer": Match.object_like({"Environment": Match.object_like({"EXPECT_GPU": "false"})})},
    )
