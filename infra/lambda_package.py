"""The two Lambda packages and the SDK layer, built with pip alone (no CDK, no Docker):
infra/bundling.py, the bundle test and scripts/benchmark.py all build them through ``build_package``
and ``build_layer``.

``light``  every function but analyse-photo: the ``functions`` handlers, the ``vehicle_assessment``
           package and ``functions/requirements.txt`` (Powertools, pydantic, requests, X-Ray SDK).
``photo``  analyse-photo and the AOSS index custom resource: the same sources plus ``infra_lambda``
           and ``functions/requirements-photo.txt`` (the light set + numpy, pillow, opensearch-py).
``sdk``    the layer every function carries: ``functions/requirements-sdk.txt`` (boto3, botocore,
           s3transfer and their dependencies) under ``python/``, the directory Lambda puts on the
           Python path (https://docs.aws.amazon.com/lambda/latest/dg/packaging-layers.html, "Layer
           paths for each Lambda runtime").

Every requirement file is a lock file installed with ``pip install --no-deps``: what is listed is
exactly what is bundled. The Lambda Python runtime ships its own boto3, but its version differs by
region and changes under a deployed function; the layer's copy wins, since the search path is
/var/task (the function package), then the layer's /opt/python, then the runtime's libraries
(/var/runtime, /var/lang/lib/python3.x/site-packages): "Libraries in function layers therefore have
precedence over versions included in the runtime", and "dependencies in your deployment package
also have precedence over dependencies in layers"
(https://docs.aws.amazon.com/lambda/latest/dg/python-package.html, "Dependency search path and
runtime-included libraries"). So a function package must carry NO distribution of the layer (it
would shadow the pinned one): ``build_package`` fails when one gets in. ``unmet_requirements`` fails
the build when a distribution needs anything that is neither pinned in the package nor in the layer.
"""

from __future__ import annotations

import atexit
import functools
import importlib.metadata
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO_ROOT = Path(__file__).resolve().parents[1]
LAMBDA_PYTHON = "3.12"
# Lambda's deployment package limit (unzipped, layers included).
MAX_UNZIPPED_BYTES = 250 * 1024 * 1024
# These must never reach a Lambda: only local mode and the endpoint container embed images.
FORBIDDEN_PACKAGES = ("torch", "torchvision", "open_clip", "open_clip_torch", "triton", "nvidia")
# The AWS SDK, pinned in functions/requirements-sdk.txt and shipped in the layer (not the runtime's copy).
PINNED_SDK = ("boto3", "botocore", "s3transfer")
SDK_LAYER = "sdk"
SDK_REQUIREMENTS = "requirements-sdk.txt"  # under functions/
# Lambda extracts a layer to /opt; /opt/python is on a Python function's path (packaging-layers.html).
LAYER_PYTHON_DIR = "python"
_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", ".DS_Store")
# Requirements a pinned distribution declares but that no code of ours can reach, left out of the
# packages on purpose: {distribution: requirements it declares that are not bundled}. imagehash imports
# scipy only inside phash/phash_simple and pywt only inside whash (imagehash/__init__.py, 4.3.2); the
# reused-photo check calls dhash alone (domain/reuse.py, chosen by measurement, README "Reused
# photos"), and scipy alone would take the photo package past its zipped target. tests/unit/test_reuse.py
# hashes with both modules made unimportable, and the bundle test hashes inside the built package.
UNBUNDLED_REQUIREMENTS: dict[str, frozenset[str]] = {"imagehash": frozenset({"scipy", "pywavelets"})}
# Never imported at run time: test suites (numpy's alone: 8 MB unzipped) and type stubs, removed
# from the installed wheels (never from our sources), and pip's console scripts (bin/, whose shebang
# names this machine's Python).
_PRUNED_DIRS = ("tests",)
_PRUNED_SUFFIXES = (".pyi",)
# The review web app's static files: deployed to the site bucket, never imported by a function (a CSS
# edit must not change the functions' asset hash and redeploy them).
_SITE_ONLY_SOURCES = ("webapp",)
# Lambda's Python 3.12 runtime is Amazon Linux 2023 (glibc 2.34): manylinux_2_28 wheels run there,
# and recent numpy ships aarch64 wheels only with that tag (not manylinux2014 = 2_17).
_PLATFORMS = {"arm64": "aarch64", "x86_64": "x86_64"}


@dataclass(frozen=True)
class PackageSpec:
    name: str
    requirements: str  # file name under functions/
    # (source directory relative to the repository, directory name inside the package)
    sources: tuple[tuple[str, str], ...]
    serves: str  # which functions deploy it (infra/stack.py, infra/constructs/workflow.py)


_COMMON_SOURCES = (("functions", "functions"), ("vehicle_assessment", "vehicle_assessment"))
LIGHT = "light"
PHOTO = "photo"
PACKAGES = {
    LIGHT: PackageSpec(
        LIGHT, "requirements.txt", _COMMON_SOURCES, "every function but analyse-photo (9 handlers)"
    ),
    # The index custom resource builds the mapping with OpenSearchReferenceIndex (numpy, opensearch-py).
    PHOTO: PackageSpec(
        PHOTO,
        "requirements-photo.txt",
        (*_COMMON_SOURCES, ("infra/lambda_src", "infra_lambda")),
        "analyse-photo and the AOSS index custom resource",
    ),
}


def requirements_file(package: str = LIGHT, repo_root: Path = REPO_ROOT) -> Path:
    name = SDK_REQUIREMENTS if package == SDK_LAYER else PACKAGES[package].requirements
    return repo_root / "functions" / name


def lock_file_pins(path: Path) -> dict[str, str]:
    """``{canonical name: version}`` of a lock file's ``name==version`` lines (``-r`` lines skipped)."""
    pins: dict[str, str] = {}
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        requirement = Requirement(line)
        versions = [spec.version for spec in requirement.specifier if spec.operator == "=="]
        if len(versions) != 1:
            raise ValueError(f"{path.name}: {line!r} is not an exact pin (name==version)")
        pins[canonicalize_name(requirement.name)] = versions[0]
    return pins


def sdk_pins(repo_root: Path = REPO_ROOT) -> dict[str, str]:
    """What the SDK layer provides to every function: the pins of functions/requirements-sdk.txt."""
    return lock_file_pins(requirements_file(SDK_LAYER, repo_root))


@functools.lru_cache(maxsize=8)
def stage_sources(package: str = LIGHT, repo_root: Path = REPO_ROOT) -> Path:
    """The package's sources in a fresh directory, once per process (removed at exit).

    The directory is the CDK asset, so its hash follows these sources and the package's own
    requirement files only (never node_modules, .venv or photos).
    """
    spec = PACKAGES[package]
    staging = Path(tempfile.mkdtemp(prefix=f"vda-lambda-{package}-"))
    atexit.register(shutil.rmtree, staging, True)
    # The light package leaves the photo pins out: changing them must not redeploy nine functions;
    # neither package carries the SDK pins (the layer's asset does).
    photo_only = () if package == PHOTO else (PACKAGES[PHOTO].requirements,)
    ignore = shutil.ignore_patterns(
        "__pycache__", "*.pyc", ".DS_Store", SDK_REQUIREMENTS, *photo_only, *_SITE_ONLY_SOURCES
    )
    for source, target in spec.sources:
        shutil.copytree(repo_root / source, staging / target, ignore=ignore)
    return staging


@functools.lru_cache(maxsize=2)
def stage_layer_sources(repo_root: Path = REPO_ROOT) -> Path:
    """The SDK layer's asset directory: its lock file alone, so the layer's hash follows the pins only."""
    staging = Path(tempfile.mkdtemp(prefix="vda-lambda-sdk-"))
    atexit.register(shutil.rmtree, staging, True)
    shutil.copy2(requirements_file(SDK_LAYER, repo_root), staging / SDK_REQUIREMENTS)
    return staging


def pip_command(requirements: Path, out: Path, architecture: str | None) -> list[str]:
    """``pip install --no-deps --target``; for Lambda's platform, or this machine's with ``None``."""
    command = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        # The requirement files are lock files: nothing unlisted (botocore above all) gets in.
        "--no-deps",
        # pip would compile .pyc files for THIS interpreter (cpython-311), dead weight on 3.12.
        "--no-compile",
        "--target",
        str(out),
    ]
    if architecture is not None:
        command += [
            # Wheels for Lambda's OS, CPU and Python, never this machine's: a source build
            # (or an x86_64 numpy on arm64) would import-fail only once deployed.
            "--platform",
            f"manylinux_2_28_{_PLATFORMS[architecture]}",
            "--platform",
            f"manylinux2014_{_PLATFORMS[architecture]}",
            "--only-binary=:all:",
            "--python-version",
            LAMBDA_PYTHON,
            "--implementation",
            "cp",
        ]
    return [*command, "-r", str(requirements)]


def prune(path: Path) -> int:
    """Remove what Lambda never imports from a ``pip --target`` directory; returns the bytes freed."""
    before = package_size(path)
    doomed = [d for d in path.rglob("*") if d.is_dir() and d.name in _PRUNED_DIRS]
    if (path / "bin").is_dir():
        doomed.append(path / "bin")
    for directory in sorted(doomed, key=lambda d: len(d.parts)):
        if directory.exists():  # not inside a directory removed before it
            shutil.rmtree(directory)
    for file in path.rglob("*"):
        if file.suffix in _PRUNED_SUFFIXES and file.is_file():
            file.unlink()
    return before - package_size(path)


def package_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())


def zipped_size(path: Path) -> int:
    """Size of the directory as a deflated zip, i.e. the deployment package CDK uploads."""
    handle, name = tempfile.mkstemp(suffix=".zip")
    os.close(handle)
    archive = Path(name)
    try:
        with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for file in sorted(path.rglob("*")):
                if file.is_file() and not file.is_symlink():
                    zf.write(file, file.relative_to(path))
        return archive.stat().st_size
    finally:
        archive.unlink()


def forbidden_in(path: Path) -> list[str]:
    """Top-level packages (or their dist-info) in the bundle that must not be there."""
    found = []
    for entry in path.iterdir():
        name = entry.name.lower().split("-")[0]
        if name in FORBIDDEN_PACKAGES or name.startswith("nvidia_"):
            found.append(entry.name)
    return sorted(found)


def _marker_environment(architecture: str | None) -> dict[str, str]:
    """Lambda's Python runtime for ``Requires-Dist`` markers; this interpreter's with ``None``."""
    if architecture is None:
        return {}
    return {
        "python_version": LAMBDA_PYTHON,
        "python_full_version": f"{LAMBDA_PYTHON}.0",
        "implementation_name": "cpython",
        "platform_python_implementation": "CPython",
        "platform_machine": _PLATFORMS[architecture],
        "platform_system": "Linux",
        "sys_platform": "linux",
        "os_name": "posix",
    }


def installed_distributions(path: Path) -> dict[str, str]:
    """``{canonical name: version}`` of the distributions installed in a ``pip --target`` directory."""
    return {
        canonicalize_name(dist.metadata["Name"]): dist.version
        for dist in importlib.metadata.distributions(path=[str(path)])
    }


def unmet_requirements(
    path: Path, architecture: str | None = "arm64", provided: dict[str, str] | None = None
) -> list[str]:
    """What the distributions in ``path`` require but neither ``path`` nor ``provided`` (the layer's
    pins, for a function package) has.

    ``pip install --no-deps`` installs a lock file as it is, so a missing pin would only show as an
    ImportError once deployed; this is ``pip check`` for a ``--target`` directory.
    """
    installed = {**(provided or {}), **installed_distributions(path)}
    environment = _marker_environment(architecture)
    problems = []
    for dist in importlib.metadata.distributions(path=[str(path)]):
        unbundled = UNBUNDLED_REQUIREMENTS.get(canonicalize_name(dist.metadata["Name"]), frozenset())
        for line in dist.requires or []:
            requirement = Requirement(line)
            if requirement.marker is not None and not requirement.marker.evaluate(environment):
                continue
            name = canonicalize_name(requirement.name)
            if name in unbundled:
                continue
            version = installed.get(name)
            if version is None:
                problems.append(f"{dist.metadata['Name']} requires {requirement}: not pinned")
            elif not requirement.specifier.contains(version, prereleases=True):
                problems.append(f"{dist.metadata['Name']} requires {requirement}: {version} is pinned")
    return sorted(set(problems))


def build_package(
    package: str, out: Path, architecture: str | None = "arm64", repo_root: Path = REPO_ROOT
) -> Path:
    """Install the package's pinned wheels into ``out`` and copy its sources next to them.

    ``architecture=None`` installs this machine's wheels instead (an import check on the host).
    Raises when the package would be broken or too big for Lambda.
    """
    staging = stage_sources(package, repo_root)
    requirements = staging / "functions" / PACKAGES[package].requirements
    if not requirements.is_file():
        raise FileNotFoundError(f"{requirements} is missing: the {package} package's pins are listed there")
    subprocess.run(pip_command(requirements, out, architecture), check=True)
    prune(out)  # before the sources are copied: our own files are never pruned
    for item in staging.iterdir():
        shutil.copytree(item, out / item.name, dirs_exist_ok=True, ignore=_IGNORE)
    bad = forbidden_in(out)
    if bad:
        raise RuntimeError(f"the {package} Lambda package must not contain {bad}: check {requirements.name}")
    layer = sdk_pins(repo_root)
    shadowing = shadowing_the_layer(out, layer)
    if shadowing:
        raise RuntimeError(
            f"the {package} Lambda package must not contain {shadowing}: the SDK layer provides them "
            f"(functions/{SDK_REQUIREMENTS}); remove them from {requirements.name}"
        )
    unmet = unmet_requirements(out, architecture, provided=layer)
    if unmet:
        raise RuntimeError(f"functions/{requirements.name} is incomplete: " + "; ".join(unmet))
    _check_size(f"the {package} Lambda package", package_size(out))
    return out


def shadowing_the_layer(path: Path, layer: dict[str, str]) -> list[str]:
    """The layer's distributions that a function package also carries: /var/task comes before
    /opt/python, so each would replace the layer's pinned copy (and could break the SDK's)."""
    return sorted(set(installed_distributions(path)) & set(layer))


def build_layer(out: Path, architecture: str | None = "arm64", repo_root: Path = REPO_ROOT) -> Path:
    """The SDK layer's content in ``out``: the pinned wheels under ``out/python``, nothing else.

    Raises when the layer would be broken (a pin missing, the SDK absent) or too big for Lambda.
    """
    requirements = stage_layer_sources(repo_root) / SDK_REQUIREMENTS
    site = out / LAYER_PYTHON_DIR
    subprocess.run(pip_command(requirements, site, architecture), check=True)
    prune(site)
    bad = forbidden_in(site)
    if bad:
        raise RuntimeError(f"the SDK layer must not contain {bad}: check {SDK_REQUIREMENTS}")
    missing = [name for name in PINNED_SDK if name not in installed_distributions(site)]
    if missing:
        raise RuntimeError(f"functions/{SDK_REQUIREMENTS} must pin {missing}: the layer is the SDK")
    unmet = unmet_requirements(site, architecture)
    if unmet:
        raise RuntimeError(f"functions/{SDK_REQUIREMENTS} is incomplete: " + "; ".join(unmet))
    _check_size("the SDK layer", package_size(out))
    return out


def _check_size(what: str, size: int) -> None:
    if size > MAX_UNZIPPED_BYTES:
        raise RuntimeError(f"{what} is {size / 1e6:.1f} MB, over Lambda's 250 MB unzipped limit")
