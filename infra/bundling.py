"""One Lambda asset for every function, built without Docker.

All functions share one package (the ``functions`` handlers, the ``vehicle_assessment`` package and
the pip-installed dependencies); each function only names another handler. One asset means one
``pip install`` per synth and one upload per deployment.

``stage_sources`` copies the sources into a temporary directory; the asset is that directory, so
its hash follows the sources and ``requirements.txt`` only (never node_modules, .venv or photos).
With ``bundling="pip"`` the local bundler installs the wheels for the Lambda's platform next to
the sources; with ``"skip"`` the sources alone are the asset (template unit tests: no network).
"""

from __future__ import annotations

import atexit
import functools
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import jsii
from aws_cdk import BundlingOptions, DockerImage, ILocalBundling
from aws_cdk import aws_lambda as lambda_

REPO_ROOT = Path(__file__).resolve().parents[1]
LAMBDA_PYTHON = "3.12"
# Lambda's deployment package limit (unzipped, layers included).
MAX_UNZIPPED_BYTES = 250 * 1024 * 1024
# These must never reach a Lambda: only local mode and the endpoint container embed images.
FORBIDDEN_PACKAGES = ("torch", "torchvision", "open_clip", "open_clip_torch", "triton", "nvidia")
_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", ".DS_Store")
# Lambda's Python 3.12 runtime is Amazon Linux 2023 (glibc 2.34): manylinux_2_28 wheels run there,
# and recent numpy ships aarch64 wheels only with that tag (not manylinux2014 = 2_17).
_PLATFORMS = {"arm64": "aarch64", "x86_64": "x86_64"}


def requirements_file(repo_root: Path = REPO_ROOT) -> Path:
    return repo_root / "functions" / "requirements.txt"


@functools.lru_cache(maxsize=4)
def stage_sources(repo_root: Path = REPO_ROOT) -> Path:
    """The package's sources in a fresh directory, once per process (removed at exit)."""
    staging = Path(tempfile.mkdtemp(prefix="vda-lambda-src-"))
    atexit.register(shutil.rmtree, staging, True)
    shutil.copytree(repo_root / "functions", staging / "functions", ignore=_IGNORE)
    shutil.copytree(repo_root / "vehicle_assessment", staging / "vehicle_assessment", ignore=_IGNORE)
    # The index custom resource's handler travels in the same package (it needs opensearch-py too).
    shutil.copytree(REPO_ROOT / "infra" / "lambda_src", staging / "infra_lambda", ignore=_IGNORE)
    return staging


def package_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())


def forbidden_in(path: Path) -> list[str]:
    """Top-level packages (or their dist-info) in the bundle that must not be there."""
    found = []
    for entry in path.iterdir():
        name = entry.name.lower().split("-")[0]
        if name in FORBIDDEN_PACKAGES or name.startswith("nvidia_"):
            found.append(entry.name)
    return sorted(found)


@jsii.implements(ILocalBundling)
class PipLocalBundling:
    """``pip install --target`` for the Lambda's platform, then the sources; no Docker needed."""

    def __init__(self, staging: Path, architecture: str) -> None:
        self.staging = staging
        self.platform = _PLATFORMS[architecture]

    def try_bundle(self, output_dir: str, *, image: DockerImage, **_: object) -> bool:
        requirements = self.staging / "functions" / "requirements.txt"
        if not requirements.is_file():
            raise FileNotFoundError(f"{requirements} is missing: the Lambda dependencies are listed there")
        out = Path(output_dir)
        command = [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--target",
            str(out),
            # Wheels for Lambda's OS, CPU and Python, never this machine's: a source build
            # (or an x86_64 numpy on arm64) would import-fail only once deployed.
            "--platform",
            f"manylinux_2_28_{self.platform}",
            "--platform",
            f"manylinux2014_{self.platform}",
            "--only-binary=:all:",
            "--python-version",
            LAMBDA_PYTHON,
            "--implementation",
            "cp",
            "-r",
            str(requirements),
        ]
        subprocess.run(command, check=True)
        for item in self.staging.iterdir():
            shutil.copytree(item, out / item.name, dirs_exist_ok=True, ignore=_IGNORE)
        bad = forbidden_in(out)
        if bad:
            raise RuntimeError(f"the Lambda package must not contain {bad}: check functions/requirements.txt")
        size = package_size(out)
        print(f"Lambda package: {size / 1e6:.1f} MB unzipped ({out})", file=sys.stderr)
        if size > MAX_UNZIPPED_BYTES:
            raise RuntimeError(
                f"the Lambda package is {size / 1e6:.1f} MB, over Lambda's 250 MB unzipped limit"
            )
        return True


def lambda_code(mode: str, architecture: str, repo_root: Path = REPO_ROOT) -> lambda_.Code:
    """The shared code asset; reuse the returned object for every function (one asset, one bundle)."""
    staging = stage_sources(repo_root)
    if mode == "skip":
        return lambda_.Code.from_asset(str(staging))
    return lambda_.Code.from_asset(
        str(staging),
        bundling=BundlingOptions(
            # Used only where local bundling is refused; it does the same with Docker.
            image=lambda_.Runtime.PYTHON_3_12.bundling_image,
            command=[
                "bash",
                "-c",
                "pip install -r functions/requirements.txt -t /asset-output && cp -r . /asset-output",
            ],
            local=PipLocalBundling(staging, architecture),
        ),
    )
