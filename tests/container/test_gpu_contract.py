"""A GPU that is used, or a refusal: the image's CUDA fits the endpoint host's driver, and the
container refuses to serve on the CPU when a GPU is expected (this machine's torch finds none)."""

from __future__ import annotations

import logging
import re
import threading
from pathlib import Path

import inference
import pytest
import serve
import torch

from infra import inference_ami
from infra.config import InfraConfig

from ..conftest import REPO_ROOT

DOCKERFILE = REPO_ROOT / "containers" / "openclip" / "Dockerfile"


# --- the image's CUDA against the chosen AMI's driver ----------------------------------------


def test_the_images_cuda_runs_on_the_configured_inference_amis_driver() -> None:
    """Fails when the Dockerfile's base image outgrows the default InferenceAmiVersion (or the
    default AMI is lowered below it): torch on the endpoint would then find no GPU."""
    cuda = inference_ami.image_cuda_version(DOCKERFILE)
    ami = InfraConfig().inference_ami_version
    assert ami is not None, "ml.g5 without an InferenceAmiVersion runs driver 470 / CUDA 11.4"
    inference_ami.check_image_fits_host(cuda, ami)


def test_cuda_is_read_from_the_base_image_tag(tmp_path: Path) -> None:
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text("ARG BASE_IMAGE=pytorch/pytorch:2.7.1-cuda12.8-cudnn9-runtime\nFROM x\n")
    assert inference_ami.image_cuda_version(dockerfile) == (12, 8)
    dockerfile.write_text("ARG BASE_IMAGE=python:3.11-slim\nFROM ${BASE_IMAGE}\n")
    with pytest.raises(ValueError, match="no `ARG BASE_IMAGE"):
        inference_ami.image_cuda_version(dockerfile)


@pytest.mark.parametrize(
    ("cuda", "ami", "fits"),
    [
        ((12, 8), "al2-ami-sagemaker-inference-gpu-3-1", False),  # the image before this fix
        ((12, 4), "al2-ami-sagemaker-inference-gpu-3-1", True),
        ((12, 4), "al2-ami-sagemaker-inference-gpu-2", False),
        ((12, 4), None, False),  # no override: driver 470, CUDA 11.4
        ((11, 4), None, True),
        ((13, 0), "al2023-ami-sagemaker-inference-gpu-4-1", True),
    ],
)
def test_an_image_newer_than_the_driver_is_refused(cuda, ami, fits) -> None:
    if fits:
        inference_ami.check_image_fits_host(cuda, ami)
    else:
        with pytest.raises(ValueError, match="torch would find no GPU"):
            inference_ami.check_image_fits_host(cuda, ami)


def test_every_ami_in_the_table_is_one_sagemaker_accepts() -> None:
    """The table's names are the API's enum (botocore's service model), so a typo cannot deploy."""
    import gzip
    import json
    from importlib.resources import files

    # Read directly: botocore.loaders imports urllib3, which probes a socket (pytest-socket warns).
    model = files("botocore") / "data" / "sagemaker" / "2017-07-24" / "service-2.json.gz"
    shapes = json.loads(gzip.decompress(model.read_bytes()))["shapes"]
    accepted = set(shapes["ProductionVariantInferenceAmiVersion"]["enum"])
    assert set(inference_ami.INFERENCE_AMIS) <= accepted
    assert inference_ami.DEFAULT_INFERENCE_AMI in inference_ami.INFERENCE_AMIS


def test_inference_ami_context_is_checked() -> None:
    assert InfraConfig().inference_ami_version == inference_ami.DEFAULT_INFERENCE_AMI
    assert InfraConfig(inference_ami_version="none").inference_ami_version is None
    with pytest.raises(ValueError, match="unknown InferenceAmiVersion 'al2-gpu-9'"):
        InfraConfig(inference_ami_version="al2-gpu-9")
    with pytest.raises(ValueError, match="set inference_ami_version=none"):
        InfraConfig(encoder_instance_type="ml.c5.xlarge")
    cpu = InfraConfig(encoder_instance_type="ml.c5.xlarge", inference_ami_version="none")
    assert cpu.inference_ami_version is None


# --- the container: GPU expected and absent means no start -----------------------------------


@pytest.fixture
def no_gpu_expected(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    monkeypatch.delenv("EXPECT_GPU", raising=False)
    monkeypatch.delenv("SM_NUM_GPUS", raising=False)
    return monkeypatch


def test_this_machine_has_no_cuda() -> None:
    # The refusal tests below rely on it; a CUDA machine would test the other branch.
    assert not torch.cuda.is_available()


@pytest.mark.parametrize(("variable", "value"), [("EXPECT_GPU", "true"), ("SM_NUM_GPUS", "1")])
def test_expected_gpu_without_cuda_is_refused(
    no_gpu_expected, trained_model_dir: Path, variable: str, value: str
) -> None:
    no_gpu_expected.setenv(variable, value)
    with pytest.raises(inference.DeviceError, match="finds no CUDA device") as caught:
        inference.select_device()
    assert "InferenceAmiVersion" in str(caught.value) and f"CUDA {torch.version.cuda}" in str(caught.value)
    with pytest.raises(inference.DeviceError):
        inference.model_fn(trained_model_dir)  # SageMaker's toolkit route (no device given) checks too


def test_no_gpu_expected_runs_on_the_cpu(no_gpu_expected, caplog: pytest.LogCaptureFixture) -> None:
    no_gpu_expected.setenv("EXPECT_GPU", "false")
    no_gpu_expected.setenv("SM_NUM_GPUS", "0")
    with caplog.at_level(logging.INFO, logger="inference"):
        assert inference.select_device() == "cpu"
        assert inference.select_device("cpu") == "cpu"
    assert "device cpu (no GPU expected: EXPECT_GPU=false, SM_NUM_GPUS=0)" in caplog.text


def test_expected_and_present_gpu_is_used_and_named(
    no_gpu_expected, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # This machine has no CUDA: stand in for a host whose driver runs the image's CUDA.
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA A10G")
    no_gpu_expected.setenv("EXPECT_GPU", "true")
    with caplog.at_level(logging.INFO, logger="inference"):
        assert inference.select_device() == "cuda"
    assert "device cuda: NVIDIA A10G" in caplog.text
    with pytest.raises(inference.DeviceError, match="device 'cpu' was asked for"):
        inference.select_device("cpu")


def test_malformed_gpu_expectation_is_refused(no_gpu_expected) -> None:
    no_gpu_expected.setenv("EXPECT_GPU", "perhaps")
    with pytest.raises(inference.DeviceError, match="invalid EXPECT_GPU"):
        inference.select_device()


def test_serve_exits_with_a_clear_line_before_binding_when_the_gpu_is_missing(
    no_gpu_expected, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    no_gpu_expected.setenv("EXPECT_GPU", "true")
    outcome: list[int] = []
    runner = threading.Thread(
        target=lambda: outcome.append(serve.main(["serve", "--model-dir", str(tmp_path), "--port", "0"])),
        daemon=True,
    )
    with caplog.at_level(logging.INFO):
        runner.start()
        runner.join(timeout=60)
    assert outcome == [1]
    assert re.search(r"refusing to start: a GPU is expected .* finds no CUDA device", caplog.text)
    assert "listening on" not in caplog.text  # never bound: SageMaker's ping never succeeds


def test_model_fn_logs_device_dtype_and_identity(
    no_gpu_expected, trained_model_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="inference"):
        model = inference.model_fn(trained_model_dir)
    assert f"loaded {model.identity.describe()} on cpu (fp32)" in caplog.text


# --- where the weights come from -------------------------------------------------------------


def _model_dir(path: Path) -> Path:
    path.mkdir(parents=True)
    (path / inference.MODEL_SPEC_FILE).write_text("{}")
    return path


def test_model_dir_is_the_baked_one_or_sagemakers_model_data(tmp_path: Path) -> None:
    baked, data = tmp_path / "weights", tmp_path / "ml-model"
    env = {"BAKED_MODEL_DIR": str(baked), "SM_MODEL_DIR": str(data)}
    assert serve.resolve_model_dir(None, env) == data  # nothing baked: model data (or its error)
    _model_dir(baked)
    assert serve.resolve_model_dir(None, env) == baked
    _model_dir(data)
    with pytest.raises(inference.ModelConfigError, match="both the image's baked weights"):
        serve.resolve_model_dir(None, env)
    assert serve.resolve_model_dir("/explicit", env) == Path("/explicit")
    assert serve.resolve_model_dir(None, {}) == Path("/opt/ml/model")


def test_dockerfile_runs_as_root_and_bakes_nothing_into_opt_ml_model() -> None:
    """SageMaker runs the container as root and mounts model data at /opt/ml/model (podman proves it
    for real in `make container-test`; this keeps the text honest without a container engine)."""
    text = DOCKERFILE.read_text()
    assert not re.search(r"^USER\b", text, re.MULTILINE)
    run_lines = " ".join(re.findall(r"^RUN .*(?:\n .*)*", text, re.MULTILINE))
    assert "/opt/ml/model" not in run_lines
    assert "ENV BAKED_MODEL_DIR=/opt/weights" in text
    # The constraint pins distribution versions (2.14.1), not torch.__version__ (2.14.1+cu130).
    assert re.search(r"from importlib\.metadata import version.*\(\"torch\"\)", text)
