"""Two Lambda code assets and one layer, each built once per synth without Docker.

``photo`` serves the analyse-photo function and the AOSS index custom resource, the only code that
needs numpy, pillow and opensearch-py. ``light`` serves the nine other functions: Powertools,
pydantic, requests and the X-Ray SDK. Both carry the same ``functions`` and ``vehicle_assessment``
sources; only the photo package carries ``infra_lambda`` (the custom resource's handler). The
``sdk`` layer (``sdk_layer``) carries the pinned AWS SDK (boto3, botocore, s3transfer and their
dependencies) for all eleven functions: one copy of botocore's ~20 MiB instead of one per function.
Sizes (arm64, measured): see README "Speed" (P4), or print them with
``pytest tests/infra/test_bundle.py`` or ``python scripts/benchmark.py``.

The dependencies are lock files installed with ``pip install --no-deps``: ``functions/requirements.txt``
(light), ``functions/requirements-photo.txt`` (``-r requirements.txt`` plus the photo extras) and
``functions/requirements-sdk.txt`` (the layer). Every distribution is pinned there; the build fails
when a pinned distribution requires one that is not pinned (in its own file or in the layer's), or
when a function package carries a distribution of the layer. A dependency that a light function
needs goes into requirements.txt; one only analyse-photo needs, into requirements-photo.txt; the SDK
and what it requires, into requirements-sdk.txt.

With ``bundling="pip"`` the local bundler installs the wheels for the Lambda's platform next to the
sources (infra/lambda_package.py, which needs no CDK); with ``"skip"`` the staged sources alone are
the assets (template unit tests: no network), the layer's being its lock file. Each asset's directory
holds only its sources and its requirement files, so its hash changes with those alone.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import jsii
from aws_cdk import BundlingOptions, DockerImage, ILocalBundling, Stack
from aws_cdk import aws_lambda as lambda_
from constructs import IConstruct

from infra.lambda_package import (
    LAMBDA_PYTHON,
    LAYER_PYTHON_DIR,
    LIGHT,
    MAX_UNZIPPED_BYTES,
    PACKAGES,
    PHOTO,
    REPO_ROOT,
    SDK_LAYER,
    SDK_REQUIREMENTS,
    build_layer,
    build_package,
    forbidden_in,
    package_size,
    requirements_file,
    stage_layer_sources,
    stage_sources,
    zipped_size,
)

__all__ = [
    "LIGHT",
    "MAX_UNZIPPED_BYTES",
    "PHOTO",
    "RUNTIME",
    "SDK_LAYER",
    "SDK_LAYER_ID",
    "LambdaCode",
    "PipLocalBundling",
    "build_layer",
    "build_package",
    "forbidden_in",
    "lambda_code",
    "package_size",
    "requirements_file",
    "sdk_layer",
    "stage_sources",
    "zipped_size",
]

# The runtime every function and the layer are built for (the wheels' --python-version).
RUNTIME = lambda_.Runtime.PYTHON_3_12
if RUNTIME.name != f"python{LAMBDA_PYTHON}":
    raise RuntimeError(f"{RUNTIME.name}: infra/lambda_package.py builds wheels for Python {LAMBDA_PYTHON}")
# The layer's construct id, directly under the stack: one layer per stack, whoever asks first.
SDK_LAYER_ID = "AwsSdkLayer"


@jsii.implements(ILocalBundling)
class PipLocalBundling:
    """``pip install --no-deps --target`` for the Lambda's platform, then the sources; no Docker."""

    def __init__(self, package: str, architecture: str, repo_root: Path = REPO_ROOT) -> None:
        self.package = package
        self.architecture = architecture
        self.repo_root = repo_root

    def try_bundle(self, output_dir: str, *, image: DockerImage, **_: object) -> bool:
        if self.package == SDK_LAYER:
            out = build_layer(Path(output_dir), self.architecture, self.repo_root)
        else:
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


def _layer_asset(mode: str, architecture: str, repo_root: Path) -> lambda_.Code:
    staging = stage_layer_sources(repo_root)
    if mode == "skip":
        return lambda_.Code.from_asset(str(staging))
    return lambda_.Code.from_asset(
        str(staging),
        bundling=BundlingOptions(
            # Used only where local bundling is refused; it does the same with Docker (no pruning).
            image=RUNTIME.bundling_image,
            command=[
                "bash",
                "-c",
                f"pip install --no-deps --no-compile -r {SDK_REQUIREMENTS} "
                f"-t /asset-output/{LAYER_PYTHON_DIR}",
            ],
            local=PipLocalBundling(SDK_LAYER, architecture, repo_root),
        ),
    )


def sdk_layer(
    scope: IConstruct, mode: str, architecture: str, repo_root: Path = REPO_ROOT
) -> lambda_.ILayerVersion:
    """The stack's one AWS SDK layer (created on the first call, the same object after).

    Every function attaches it (infra/constructs/lambdas.py): Lambda's Python path is the function
    package (/var/task), then the layers' /opt/python, then the runtime's own boto3, so the pinned SDK
    here is what runs (https://docs.aws.amazon.com/lambda/latest/dg/python-package.html, "Dependency
    search path and runtime-included libraries"). Its zip holds ``python/`` at the root, as a Python
    layer must (https://docs.aws.amazon.com/lambda/latest/dg/packaging-layers.html).
    """
    stack = Stack.of(scope)
    existing = stack.node.try_find_child(SDK_LAYER_ID)
    if existing is not None:
        if not isinstance(existing, lambda_.LayerVersion):
            raise TypeError(
                f"{SDK_LAYER_ID} in {stack.stack_name} is a {type(existing).__name__}, not a layer"
            )
        return existing
    return lambda_.LayerVersion(
        stack,
        SDK_LAYER_ID,
        code=_layer_asset(mode, architecture, repo_root),
        compatible_runtimes=[RUNTIME],
        compatible_architectures=[
            lambda_.Architecture.ARM_64 if architecture == "arm64" else lambda_.Architecture.X86_64
        ],
        description=f"AWS SDK for Python pinned in functions/{SDK_REQUIREMENTS}, shared by every function",
    )
