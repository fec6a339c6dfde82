"""The REAL Lambda package (pip, Lambda's platform): size within Lambda's limit, no torch."""

from __future__ import annotations

import pytest

from infra.bundling import (
    MAX_UNZIPPED_BYTES,
    PipLocalBundling,
    forbidden_in,
    package_size,
    requirements_file,
    stage_sources,
)


@pytest.mark.slow
def test_real_bundle_fits_lambda_and_has_no_torch(tmp_path, capsys) -> None:
    assert requirements_file().is_file()
    # pip needs PyPI (or the local wheel mirror): this test alone may use the network.
    pytest_socket = pytest.importorskip("pytest_socket")
    pytest_socket.enable_socket()
    try:
        out = tmp_path / "bundle"
        out.mkdir()
        assert PipLocalBundling(stage_sources(), "arm64").try_bundle(str(out), image=None)  # type: ignore[arg-type]
    finally:
        pytest_socket.disable_socket(allow_unix_socket=True)
    size = package_size(out)
    with capsys.disabled():
        print(f"\nLambda package: {size / 1e6:.1f} MB unzipped (limit {MAX_UNZIPPED_BYTES / 1e6:.0f} MB)")
    assert size <= MAX_UNZIPPED_BYTES
    assert forbidden_in(out) == []
    assert (out / "functions" / "api.py").is_file() and (out / "vehicle_assessment").is_dir()
    assert (out / "infra_lambda" / "aoss_index.py").is_file()
