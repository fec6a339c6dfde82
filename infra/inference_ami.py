"""Which NVIDIA driver, hence which newest CUDA, the encoder endpoint's GPU host runs.

SageMaker picks the host's driver from the production variant's ``InferenceAmiVersion``; without one,
ml.g4dn / ml.g5 / ml.p4d real-time hosts run driver 470 (CUDA 11.4). A CUDA 12 image on such a host
finds no GPU: ``torch.cuda.is_available()`` is False (the container refuses to start then rather than
serve ViT-L-14 in fp32 on the CPU; containers/openclip/inference.py). This table is the one home of
those facts; the CDK sets the AMI (infra/constructs/embedding.py) and refuses, at synth, an image
whose CUDA the chosen AMI's driver cannot run; tests/container/test_gpu_contract.py holds the
Dockerfile's base image against it.

Sources:
- ProductionVariant ``InferenceAmiVersion`` (SageMaker API reference; botocore 1.44's service model
  says the same): https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_ProductionVariant.html
- Drivers without an AMI override, per instance family ("Best practices to minimize interruptions
  during GPU driver upgrades"): https://docs.aws.amazon.com/sagemaker/latest/dg/inference-gpu-drivers.html
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

REPO_ROOT = Path(__file__).resolve().parents[1]
ENDPOINT_DOCKERFILE = REPO_ROOT / "containers" / "openclip" / "Dockerfile"


@dataclass(frozen=True)
class NvidiaHost:
    driver: int
    max_cuda: tuple[int, int]  # the newest CUDA (major, minor) the driver runs

    def describe(self) -> str:
        return f"NVIDIA driver {self.driver} (CUDA <= {self.max_cuda[0]}.{self.max_cuda[1]})"


INFERENCE_AMIS: Mapping[str, NvidiaHost] = MappingProxyType(
    {
        "al2-ami-sagemaker-inference-gpu-2": NvidiaHost(driver=535, max_cuda=(12, 2)),
        "al2-ami-sagemaker-inference-gpu-2-1": NvidiaHost(driver=535, max_cuda=(12, 2)),
        "al2-ami-sagemaker-inference-gpu-3-1": NvidiaHost(driver=550, max_cuda=(12, 4)),
        "al2023-ami-sagemaker-inference-gpu-4-1": NvidiaHost(driver=580, max_cuda=(13, 0)),
    }
)
# Driver 550 / CUDA 12.4: the base image's CUDA (pytorch/pytorch ...-cuda12.4-...) fits it.
DEFAULT_INFERENCE_AMI = "al2-ami-sagemaker-inference-gpu-3-1"
# No InferenceAmiVersion: the ml.g4dn / ml.g5 / ml.p4d families' default (the oldest a GPU host gets).
WITHOUT_AMI_OVERRIDE = NvidiaHost(driver=470, max_cuda=(11, 4))

# NVIDIA GPU instance families: ml.g4dn, ml.g5, ml.g6, ml.g6e, ml.p3, ml.p4d, ml.p5... (not ml.inf/ml.trn).
_NVIDIA_INSTANCE = re.compile(r"^ml\.[gp]\d")
# The Dockerfile's `ARG BASE_IMAGE=...cudaX.Y...`: the image's CUDA, named once there.
_BASE_IMAGE_CUDA = re.compile(r"^ARG BASE_IMAGE=\S*?cuda(\d+)\.(\d+)", re.MULTILINE)


def is_nvidia_instance(instance_type: str) -> bool:
    return bool(_NVIDIA_INSTANCE.match(instance_type))


def host_for(inference_ami_version: str | None) -> NvidiaHost:
    if inference_ami_version is None:
        return WITHOUT_AMI_OVERRIDE
    try:
        return INFERENCE_AMIS[inference_ami_version]
    except KeyError:
        raise ValueError(
            f"unknown InferenceAmiVersion {inference_ami_version!r}; known: {', '.join(INFERENCE_AMIS)}"
        ) from None


def image_cuda_version(dockerfile: Path = ENDPOINT_DOCKERFILE) -> tuple[int, int]:
    """The CUDA (major, minor) of the Dockerfile's default base image tag."""
    match = _BASE_IMAGE_CUDA.search(dockerfile.read_text())
    if match is None:
        raise ValueError(f"{dockerfile}: no `ARG BASE_IMAGE=...cudaX.Y...` line names the image's CUDA")
    return int(match.group(1)), int(match.group(2))


def check_image_fits_host(image_cuda: tuple[int, int], inference_ami_version: str | None) -> None:
    """Raise ValueError when the image's CUDA is newer than the chosen AMI's driver supports."""
    host = host_for(inference_ami_version)
    if image_cuda > host.max_cuda:
        raise ValueError(
            f"the encoder image is built for CUDA {image_cuda[0]}.{image_cuda[1]}, but "
            f"InferenceAmiVersion {inference_ami_version or '(none)'} gives {host.describe()}: torch "
            "would find no GPU. Choose a newer inference_ami_version (infra/inference_ami.py) or an "
            "older CUDA base image (containers/openclip/Dockerfile)."
        )
