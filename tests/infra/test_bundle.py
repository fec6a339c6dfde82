"""The REAL Lambda packages, built with pip as a synth builds them.

For Lambda's platform (arm64, Python 3.12): each within Lambda's limit, no torch, the pinned AWS SDK
bundled, numpy/PIL in the photo package only; sizes printed unzipped and zipped. For this machine's
platform: every handler imports from its package alone, with what the Lambda runtime ships (boto3,
botocore and their dependencies) behind it, and the SDK comes from the package, never the runtime,
so a missing pin fails here and not once deployed.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from infra.bundling import (
    LIGHT,
    MAX_UNZIPPED_BYTES,
    PHOTO,
    build_package,
    forbidden_in,
    package_size,
    requirements_file,
    zipped_size,
)

REPO = Path(__file__).resolve().parents[2]
# What Lambda's Python runtime has on its path (boto3 and its dependencies), next to /var/task.
RUNTIME_MODULES = ("boto3", "botocore", "s3transfer", "dateutil", "jmespath", "six", "urllib3")
SDK = ("boto3", "botocore", "s3transfer")
PHOTO_ONLY = ("numpy", "PIL", "opensearchpy")

# Run with `python -I -S`: no site-packages, only the package and the runtime's modules.
_IMPORT_PROBE = """
import importlib, importlib.util, json, sys
modules, package, runtime = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3]
sys.path[:0] = [package, runtime]
failed = {}
for name in modules:
    try:
        importlib.import_module(name)
    except Exception as exc:  # reported, not swallowed: the test fails on any entry
        failed[name] = f"{type(exc).__name__}: {exc}"
found = {m: importlib.util.find_spec(m) is not None for m in ("numpy", "PIL", "opensearchpy")}
origins = {
    m: sys.modules[m].__file__ for m in ("pydantic_core", "requests", "boto3", "botocore") if m in sys.modules
}
print(json.dumps({"failed": failed, "found": found, "origins": origins}))
"""
_PHOTO_PROBE = """
import io
import numpy as np
from PIL import Image
buffer = io.BytesIO()
Image.new("RGB", (32, 24), (200, 30, 30)).save(buffer, format="JPEG")
pixels = np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"), dtype=np.float32)
assert pixels.shape == (24, 32, 3) and float(np.linalg.norm(pixels.mean(axis=(0, 1)))) > 0
"""


@contextlib.contextmanager
def network() -> Iterator[None]:
    """pip needs PyPI (or the local wheel mirror): these builds alone may use the network."""
    try:
        import pytest_socket
    except ImportError:  # without the plugin, sockets are not blocked in the first place
        yield
        return
    pytest_socket.enable_socket()
    try:
        yield
    finally:
        pytest_socket.disable_socket(allow_unix_socket=True)


def handler_modules(package: Path) -> list[str]:
    modules = [
        f"functions.{p.stem}"
        for p in sorted((package / "functions").glob("*.py"))
        if "def handler" in p.read_text(encoding="utf-8")
    ]
    if (package / "infra_lambda").is_dir():
        modules.append("infra_lambda.aoss_index")
    return modules


def mib(n_bytes: int) -> str:
    return f"{n_bytes / 2**20:.1f} MiB"


@pytest.fixture(scope="module")
def lambda_packages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("lambda-arm64")
    with network():
        return {name: build_package(name, root / name, "arm64") for name in (LIGHT, PHOTO)}


@pytest.fixture(scope="module")
def host_packages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("lambda-host")
    with network():
        return {name: build_package(name, root / name, None) for name in (LIGHT, PHOTO)}


@pytest.fixture(scope="module")
def lambda_runtime(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Links to this environment's boto3 and friends: the modules the Lambda runtime provides."""
    runtime = tmp_path_factory.mktemp("lambda-runtime")
    for name in RUNTIME_MODULES:
        spec = importlib.util.find_spec(name)
        assert spec is not None and spec.origin, f"{name} is not installed here"
        origin = Path(spec.origin)
        source = origin.parent if origin.name == "__init__.py" else origin
        (runtime / source.name).symlink_to(source, target_is_directory=source.is_dir())
    return runtime


@pytest.mark.slow
def test_real_packages_fit_lambda_without_torch_and_carry_the_pinned_sdk(lambda_packages, capsys) -> None:
    assert requirements_file(LIGHT).is_file() and requirements_file(PHOTO).is_file()
    sizes = {name: (package_size(path), zipped_size(path)) for name, path in lambda_packages.items()}
    with capsys.disabled():
        print()
        for name, (unzipped, zipped) in sizes.items():
            print(
                f"Lambda package {name} (arm64): {mib(unzipped)} unzipped, {mib(zipped)} zipped "
                f"(limit {MAX_UNZIPPED_BYTES / 2**20:.0f} MiB unzipped)"
            )
    for name, path in lambda_packages.items():
        assert sizes[name][0] <= MAX_UNZIPPED_BYTES, name
        assert forbidden_in(path) == [], name
        # The pinned SDK, not the runtime's (whose version differs by region).
        assert [m for m in SDK if (path / m).is_dir()] == list(SDK), name
        assert (path / "functions" / "api.py").is_file() and (path / "vehicle_assessment").is_dir()
    light, photo = lambda_packages[LIGHT], lambda_packages[PHOTO]
    assert [m for m in PHOTO_ONLY if (light / m).exists()] == []
    assert [m for m in PHOTO_ONLY if not (photo / m).exists()] == []
    assert (photo / "infra_lambda" / "aoss_index.py").is_file()
    assert not (light / "infra_lambda").exists()
    # Only what the photo step adds makes the difference (both share every light dependency, the
    # SDK's ~20 MiB included).
    assert sizes[LIGHT][0] < sizes[PHOTO][0] / 2


def _probe(package: Path, runtime: Path, modules: list[str], code: str = _IMPORT_PROBE) -> dict:
    done = subprocess.run(
        [sys.executable, "-I", "-S", "-c", code, json.dumps(modules), str(package), str(runtime)],
        capture_output=True,
        text=True,
        env={"AWS_DEFAULT_REGION": "us-east-1"},
        cwd=package,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1]) if code is _IMPORT_PROBE else {}


@pytest.mark.slow
def test_every_handler_imports_from_its_package_alone(host_packages, lambda_runtime) -> None:
    light, photo = host_packages[LIGHT], host_packages[PHOTO]

    result = _probe(light, lambda_runtime, [*handler_modules(light), "boto3", "botocore"])
    assert result["failed"] == {}
    assert result["found"] == {"numpy": False, "PIL": False, "opensearchpy": False}
    # The package's pinned SDK wins over the runtime's copy behind it.
    assert {"boto3", "botocore"} <= set(result["origins"]), result
    assert all(origin.startswith(str(light)) for origin in result["origins"].values()), result

    photo_modules = [
        *handler_modules(photo),
        "vehicle_assessment.domain.photo",
        "vehicle_assessment.adapters.aws.sagemaker_encoder",
        "vehicle_assessment.adapters.aws.opensearch_index",
        "numpy",
        "PIL.Image",
        "opensearchpy",
    ]
    assert "functions.analyse_photo" in photo_modules and "infra_lambda.aoss_index" in photo_modules
    result = _probe(photo, lambda_runtime, photo_modules)
    assert result["failed"] == {}
    assert result["found"] == {"numpy": True, "PIL": True, "opensearchpy": True}
    # numpy and pillow still work once their test suites and stubs are pruned.
    _probe(photo, lambda_runtime, [], "import json, sys\nsys.path[:0] = sys.argv[2:4]\n" + _PHOTO_PROBE)
