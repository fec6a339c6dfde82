"""The REAL Lambda packages and SDK layer, built with pip as a synth builds them.

For Lambda's platform (arm64, Python 3.12): each function package within the P4 target (zipped) and
free of the AWS SDK, the layer holding the pinned SDK under python/, the biggest function and the layer
within Lambda's unzipped limit, no torch, numpy/PIL in the photo package only; sizes printed. For this
machine's platform: every handler imports from its package, then the layer, then what the Lambda
runtime ships (boto3, botocore and their dependencies) — Lambda's own search order — and the SDK
comes from the layer, never the runtime, so a missing pin fails here and not once deployed.
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
    SDK_LAYER,
    build_layer,
    build_package,
    forbidden_in,
    package_size,
    requirements_file,
    zipped_size,
)
from infra.lambda_package import (
    LAYER_PYTHON_DIR,
    installed_distributions,
    sdk_pins,
    shadowing_the_layer,
    unmet_requirements,
)
from vehicle_assessment.domain.limits import LAMBDA_PACKAGE_ZIPPED_TARGET_MIB

REPO = Path(__file__).resolve().parents[2]
# What Lambda's Python runtime has on its path (boto3 and its dependencies), next to /var/task.
RUNTIME_MODULES = ("boto3", "botocore", "s3transfer", "dateutil", "jmespath", "six", "urllib3")
SDK = ("boto3", "botocore", "s3transfer")
PHOTO_ONLY = ("numpy", "PIL", "opensearchpy")

# Run with `python -I -S`: no site-packages, only the package, the layer's python/ and the runtime's
# modules, in Lambda's order (/var/task, /opt/python, then the runtime's libraries:
# https://docs.aws.amazon.com/lambda/latest/dg/python-package.html#python-package-searchpath).
_IMPORT_PROBE = """
import importlib, importlib.util, json, sys
modules, package, layer, runtime = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
sys.path[:0] = [package, layer, runtime]
failed = {}
for name in modules:
    try:
        importlib.import_module(name)
    except Exception as exc:  # reported, not swallowed: the test fails on any entry
        failed[name] = f"{type(exc).__name__}: {exc}"
found = {m: importlib.util.find_spec(m) is not None for m in ("numpy", "PIL", "opensearchpy")}
origins = {
    m: sys.modules[m].__file__
    for m in ("pydantic_core", "requests", "boto3", "botocore", "s3transfer", "urllib3", "dateutil")
    if m in sys.modules
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
# The reused-photo check's hash, from the package alone: imagehash without scipy or PyWavelets.
from vehicle_assessment.domain.reuse import perceptual_hash
assert len(perceptual_hash(Image.open(io.BytesIO(buffer.getvalue())))) == 16
import importlib.util
assert importlib.util.find_spec("scipy") is None and importlib.util.find_spec("pywt") is None
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


def _build_all(root: Path, architecture: str | None) -> dict[str, Path]:
    with network():
        packages = {name: build_package(name, root / name, architecture) for name in (LIGHT, PHOTO)}
        return {**packages, SDK_LAYER: build_layer(root / SDK_LAYER, architecture)}


@pytest.fixture(scope="module")
def lambda_packages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The light and photo packages and the SDK layer (its content under python/), for arm64."""
    return _build_all(tmp_path_factory.mktemp("lambda-arm64"), "arm64")


@pytest.fixture(scope="module")
def host_packages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return _build_all(tmp_path_factory.mktemp("lambda-host"), None)


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


def _fake_distribution(target: Path, name: str, version: str, *requires: str) -> None:
    info = target / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    lines = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
    lines += [f"Requires-Dist: {requirement}" for requirement in requires]
    (info / "METADATA").write_text("\n".join(lines) + "\n")


def test_a_function_package_with_an_sdk_distribution_shadows_the_layer(tmp_path: Path) -> None:
    layer = sdk_pins()
    assert {"boto3", "botocore", "s3transfer", "urllib3"} <= set(layer)
    _fake_distribution(tmp_path, "requests", "2.34.2", "urllib3<3,>=1.21.1")
    assert shadowing_the_layer(tmp_path, layer) == []
    _fake_distribution(tmp_path, "boto3", layer["boto3"])
    assert shadowing_the_layer(tmp_path, layer) == ["boto3"]


def test_what_the_layer_pins_counts_as_provided_to_a_function_package(tmp_path: Path) -> None:
    _fake_distribution(tmp_path, "aws-xray-sdk", "2.15.0", "botocore>=1.11.3", "wrapt")
    _fake_distribution(tmp_path, "wrapt", "2.5.2")
    assert unmet_requirements(tmp_path) == ["aws-xray-sdk requires botocore>=1.11.3: not pinned"]
    assert unmet_requirements(tmp_path, provided=sdk_pins()) == []
    assert unmet_requirements(tmp_path, provided={"botocore": "1.0.0"}) == [
        "aws-xray-sdk requires botocore>=1.11.3: 1.0.0 is pinned"
    ]


@pytest.mark.slow
def test_real_packages_fit_lambda_without_torch_and_the_layer_carries_the_pinned_sdk(
    lambda_packages, capsys
) -> None:
    assert requirements_file(LIGHT).is_file() and requirements_file(PHOTO).is_file()
    assert requirements_file(SDK_LAYER).is_file()
    sizes = {name: (package_size(path), zipped_size(path)) for name, path in lambda_packages.items()}
    functions = {name: path for name, path in lambda_packages.items() if name != SDK_LAYER}
    biggest = max(functions, key=lambda name: sizes[name][0])
    combined = sizes[biggest][0] + sizes[SDK_LAYER][0]
    with capsys.disabled():
        print()
        for name, (unzipped, zipped) in sizes.items():
            kind = "layer" if name == SDK_LAYER else "package"
            print(f"Lambda {kind} {name} (arm64): {mib(unzipped)} unzipped, {mib(zipped)} zipped")
        print(
            f"biggest function ({biggest}) + layer: {mib(combined)} unzipped "
            f"(limit {MAX_UNZIPPED_BYTES / 2**20:.0f} MiB); target P4: each function "
            f"≤ {LAMBDA_PACKAGE_ZIPPED_TARGET_MIB:.0f} MiB zipped"
        )
    layer_site = lambda_packages[SDK_LAYER] / LAYER_PYTHON_DIR
    # Lambda's limit: a function and all its layers, unzipped (python-package.html, .zip limits).
    assert combined <= MAX_UNZIPPED_BYTES, (biggest, combined)
    for name, path in functions.items():
        assert sizes[name][1] <= LAMBDA_PACKAGE_ZIPPED_TARGET_MIB * 2**20, (name, mib(sizes[name][1]))
        assert forbidden_in(path) == [], name
        # No SDK in a function package: /var/task precedes /opt/python and would shadow the layer's.
        assert [m for m in (*SDK, "urllib3", "dateutil", "jmespath") if (path / m).exists()] == [], name
        assert set(installed_distributions(path)).isdisjoint(sdk_pins()), name
        assert (path / "functions" / "api.py").is_file() and (path / "vehicle_assessment").is_dir()
    # The layer: python/ at the root (packaging-layers.html), the pinned SDK in it, nothing else.
    assert sorted(p.name for p in lambda_packages[SDK_LAYER].iterdir()) == [LAYER_PYTHON_DIR]
    assert [m for m in SDK if not (layer_site / m).is_dir()] == []
    assert installed_distributions(layer_site) == sdk_pins()
    assert forbidden_in(layer_site) == []
    light, photo = lambda_packages[LIGHT], lambda_packages[PHOTO]
    assert [m for m in PHOTO_ONLY if (light / m).exists()] == []
    assert [m for m in PHOTO_ONLY if not (photo / m).exists()] == []
    assert (photo / "infra_lambda" / "aoss_index.py").is_file()
    assert not (light / "infra_lambda").exists()
    # Only what the photo step adds makes the difference (both share every light dependency).
    assert sizes[LIGHT][0] < sizes[PHOTO][0] / 2


def _probe(package: Path, layer: Path, runtime: Path, modules: list[str], code: str = _IMPORT_PROBE) -> dict:
    done = subprocess.run(
        [sys.executable, "-I", "-S", "-c", code, json.dumps(modules), str(package), str(layer), str(runtime)],
        capture_output=True,
        text=True,
        env={"AWS_DEFAULT_REGION": "us-east-1"},
        cwd=package,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1]) if code is _IMPORT_PROBE else {}


@pytest.mark.slow
def test_every_handler_imports_from_its_package_and_the_layer(host_packages, lambda_runtime) -> None:
    light, photo = host_packages[LIGHT], host_packages[PHOTO]
    layer = host_packages[SDK_LAYER] / LAYER_PYTHON_DIR

    result = _probe(light, layer, lambda_runtime, [*handler_modules(light), "boto3", "botocore"])
    assert result["failed"] == {}
    assert result["found"] == {"numpy": False, "PIL": False, "opensearchpy": False}
    # The layer's pinned SDK (and what it requires) wins over the runtime's copy behind it.
    origins = result["origins"]
    assert {"boto3", "botocore", "s3transfer", "urllib3", "dateutil"} <= set(origins), result
    sdk_origins = {m: o for m, o in origins.items() if m in {*SDK, "urllib3", "dateutil"}}
    assert all(origin.startswith(str(layer)) for origin in sdk_origins.values()), result
    assert origins["pydantic_core"].startswith(str(light)), result  # the package's own pins: /var/task

    photo_modules = [
        *handler_modules(photo),
        "vehicle_assessment.domain.photo",
        "vehicle_assessment.adapters.aws.sagemaker_encoder",
        "vehicle_assessment.adapters.aws.opensearch_index",
        "vehicle_assessment.adapters.aws.photo_registry",
        "vehicle_assessment.domain.reuse",
        "imagehash",
        "numpy",
        "PIL.Image",
        "opensearchpy",
    ]
    assert "functions.analyse_photo" in photo_modules and "infra_lambda.aoss_index" in photo_modules
    result = _probe(photo, layer, lambda_runtime, photo_modules)
    assert result["failed"] == {}
    assert result["found"] == {"numpy": True, "PIL": True, "opensearchpy": True}
    # The index custom resource imports boto3 (its credentials): the layer's, not the runtime's.
    assert result["origins"]["boto3"].startswith(str(layer)), result
    # numpy and pillow still work once their test suites and stubs are pruned.
    _probe(
        photo, layer, lambda_runtime, [], "import json, sys\nsys.path[:0] = sys.argv[2:5]\n" + _PHOTO_PROBE
    )


def test_a_deliberately_unbundled_requirement_is_not_reported(tmp_path: Path) -> None:
    _fake_distribution(tmp_path, "ImageHash", "4.3.2", "PyWavelets", "numpy", "pillow", "scipy")
    _fake_distribution(tmp_path, "numpy", "2.4.6")
    _fake_distribution(tmp_path, "pillow", "13.0.0")
    assert unmet_requirements(tmp_path) == []
    # Only imagehash's own scipy/PyWavelets: another distribution needing scipy still fails the build.
    _fake_distribution(tmp_path, "scikit-learn", "1.9.1", "scipy>=1.8")
    assert unmet_requirements(tmp_path) == ["scikit-learn requires scipy>=1.8: not pinned"]
