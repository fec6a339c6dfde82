"""Two Lambda assets, each built once per synth without Docker: ``light`` and ``photo``.

``photo`` (arm64: 104 MiB unzipped, 41 MiB zipped) serves the analyse-photo function and the
AOSS index custom resource, the only code that needs numpy, pillow and opensearch-py. ``light``
(37 MiB unzipped, 21 MiB zipped; 20 MiB of it botocore) serves the nine other functions:
Powertools, pydantic, requests, the X-Ray SDK and the pinned AWS SDK. Both carry the same
``functions`` and ``vehicle_assessment`` sources; only the photo package carries ``infra_lambda``
(the custom resource's handler).

The dependencies are lock files installed with ``pip install --no-deps``: ``functions/requirements.txt``
(light) and ``functions/requirements-photo.txt`` (``-r requirements.txt`` plus the photo extras).
Every distribution is pinned there, boto3/botocore/s3transfer included (the runtime's copy differs by
region); the build fails when a pinned distribution requires one that is not pinned. A dependency
that a light function needs goes into requirements.txt; one only analyse-photo needs, into
requirements-photo.txt. Print the sizes with ``pytest tests/infra/test_bundle.py`` or
``python scripts/benchmark.py`` (figure P4).

With ``bundling="pip"`` the local bundler installs the wheels for the Lambda's platform next to the
sources (infra/lambda_package.py, which needs no CDK); with ``"skip"`` the staged sources alone are
the assets (template unit tests: no network). Each asset's directory holds only its sources and its
requirement files, so its hash changes with those alone.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import jsii
from aws_cdk import BundlingOptions, DockerImage, ILocalBundling
from aws_cdk import aws_lambda as lambda_

from infra.lambda_package import (
    LIGHT,
    MAX_UNZIPPED_BYTES,
    PACKAGES,
    PHOTO,
    REPO_ROOT,
    build_package,
    forbidden_in,
    package_size,
    requirements_file,
    stage_sources,
    zipped_size,
)

__all__ = [
    "LIGHT",
    "MAX_UNZIPPED_BYTES",
    "PHOTO",
    "LambdaCode",
    "PipLocalBundling",
    "build_package",
    "forbidden_in",
    "lambda_code",
    "package_size",
    "requirements_file",
    "stage_sources",
    "zipped_size",
]


@jsii.implements(ILocalBundling)
class PipLocalBundling:
    """``pip install --no-deps --target`` for the Lambda's platform, then the sources; no Docker."""

    def __init__(self, package: str, architecture: str, repo_root: Path = REPO_ROOT) -> None:
        self.package = package
        self.architecture = architecture
        self.repo_root = repo_root

    def try_bundle(self, output_dir: str, *, image: DockerImage, **_: object) -> bool:
        out = build_package(self.package, Path(output_dir), self.architecture, self.repo_root)
        print(
            f"Lambda package {self.package}: {package_size(out) / 2**20:.1f} MiB unzipped ({out})",
            file=sys.stderr,
        )
        return True


@dataclass(frozen=True)
class LambdaCode:
    """The two code assets; pass the same object to every function so each is bundled once."""

    light: lambda_.Code
    photo: lambda_.Code


def _asset(package: str, mode: str, architecture: str, repo_root: Path) -> lambda_.Code:
    staging = stage_sources(package, repo_root)
    if mode == "skip":
        return lambda_.Code.from_asset(str(staging))
    requirements = f"functions/{PACKAGES[package].requirements}"
    return lambda_.Code.from_asset(
        str(staging),
        bundling=BundlingOptions(
            # Used only where local bundling is refused; it does the same with Docker (no pruning).
            image=lambda_.Runtime.PYTHON_3_12.bundling_image,
            command=[
                "bash",
                "-c",
                f"pip install --no-deps --no-compile -r {requirements} -t /asset-output "
                "&& cp -r . /asset-output",
            ],
            local=PipLocalBundling(package, architecture, repo_root),
        ),
    )


def lambda_code(mode: str, architecture: str, repo_root: Path = REPO_ROOT) -> LambdaCode:
    """Both code assets: ``light`` for most functions, ``photo`` for analyse-photo and the index."""
    return LambdaCode(
        light=_asset(LIGHT, mode, architecture, repo_root),
        photo=_asset(PHOTO, mode, architecture, repo_root),
    )
