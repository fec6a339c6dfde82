"""``make container-test``: build the SageMaker serving image with podman, run it as SageMaker does.

No Docker daemon and no container registry are needed (rootful podman
with runc, a Debian base made by mmdebstrap). Steps, each skipped when its result is already in the
work directory's podman storage:

  1. a minimal Debian rootfs (mmdebstrap, from the host's Debian mirror), imported as an image;
  2. a CPU-usable torch base (``containers/openclip/cpu-test-base.Containerfile``, local mode's pins);
  3. the project's ``containers/openclip/Dockerfile`` with ``BASE_IMAGE`` pointed at (2) (always
     rebuilt; podman's layer cache keeps that cheap);

then a tiny random-weight model is delivered as SageMaker model data (mounted read-only at
``/opt/ml/model``), the container runs ``serve`` as root with port 8080 published on 127.0.0.1 only,
and the test checks ``/ping`` and ``/invocations`` against local mode's vectors for a sample photo.
A second container started with ``EXPECT_GPU=true`` must refuse to start (this machine has no GPU).

Everything lives in ``.container-test/`` inside the clone (gitignored): podman's storage and
configuration, the rootfs, the model directory. ``--fresh`` wipes it first (a from-scratch run).
Containers are named ``vda-container-test-*`` and removed by name before and after.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
CONTAINER_DIR = REPO_ROOT / "containers" / "openclip"
WORK = REPO_ROOT / ".container-test"
MIN_FREE_DISK_BYTES = 15 * 10**9
TINY_CONFIG = REPO_ROOT / "tests" / "data" / "models" / "tiny-test-clip.json"
PHOTOS = sorted((REPO_ROOT / "sample_data" / "queries" / "damaged").glob("*.jpg"))[:2]

DEBIAN_SUITE = "bookworm"
DEBIAN_IMAGE = f"localhost/vda-debian-min:{DEBIAN_SUITE}"
APP_IMAGE = "localhost/vda-openclip:container-test"
CONTAINER = "vda-container-test-serve"
REFUSING_CONTAINER = "vda-container-test-expect-gpu"
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
PING_TIMEOUT_S = 180.0
# Tolerance between the container's vectors and local mode's (same weights, same torch, fp32 on CPU).
ATOL = 1e-5


class ContainerTestFailure(Exception):
    """A check failed; the message says which and why."""


def log(message: str) -> None:
    print(f"[container-test {time.strftime('%H:%M:%S')}] {message}", flush=True)


# --- podman, confined to the work directory --------------------------------------------------


def podman_env() -> dict[str, str]:
    """CONTAINERS_CONF / CONTAINERS_STORAGE_CONF / TMPDIR pointing into WORK (nothing in system paths)."""
    for sub in ("storage", "run", "tmp", "libpod"):
        (WORK / sub).mkdir(parents=True, exist_ok=True)
    hard_nofile = subprocess.run(["sh", "-c", "ulimit -Hn"], capture_output=True, text=True, check=True)
    nofile = hard_nofile.stdout.strip()
    conf = WORK / "containers.conf"
    # crun refuses this machine's hybrid cgroups: runc. Root cannot raise the open-files hard limit
    # and podman caps nproc at 32768, so both ulimits are explicit.
    conf.write_text(
        "[containers]\n"
        f'default_ulimits = ["nofile={nofile}:{nofile}", "nproc=32768:32768"]\n'
        "[engine]\n"
        'runtime = "runc"\n'
        'cgroup_manager = "cgroupfs"\n'
        'events_logger = "file"\n'
        f'tmp_dir = "{WORK / "libpod"}"\n'
    )
    storage = WORK / "storage.conf"
    storage.write_text(
        f'[storage]\ndriver = "overlay"\ngraphroot = "{WORK / "storage"}"\nrunroot = "{WORK / "run"}"\n'
    )
    return {
        **os.environ,
        "CONTAINERS_CONF": str(conf),
        "CONTAINERS_STORAGE_CONF": str(storage),
        "TMPDIR": str(WORK / "tmp"),
    }


def podman(env: dict[str, str], *args: str, check: bool = True, capture: bool = False) -> str:
    result = subprocess.run(["podman", *args], env=env, text=True, check=False, capture_output=capture)
    if check and result.returncode != 0:
        detail = f": {result.stderr.strip()[-2000:]}" if capture else ""
        raise ContainerTestFailure(f"podman {' '.join(args[:3])} ... exited {result.returncode}{detail}")
    return result.stdout if capture else ""


def image_exists(env: dict[str, str], image: str) -> bool:
    return subprocess.run(["podman", "image", "exists", image], env=env, check=False).returncode == 0


def remove_container(env: dict[str, str], name: str) -> None:
    subprocess.run(["podman", "rm", "--force", "--ignore", name], env=env, check=False, capture_output=True)


# --- images ----------------------------------------------------------------------------------


def debian_mirror() -> str:
    """The host's Debian mirror (deb822 sources), so the rootfs comes from where apt already goes."""
    sources = Path("/etc/apt/sources.list.d/debian.sources")
    if sources.is_file():
        match = re.search(r"^URIs:\s*(\S+)", sources.read_text(), re.MULTILINE)
        if match:
            return match.group(1)
    return "http://deb.debian.org/debian"


def build_debian_base(env: dict[str, str]) -> None:
    if image_exists(env, DEBIAN_IMAGE):
        log(f"{DEBIAN_IMAGE}: cached")
        return
    rootfs = WORK / f"debian-{DEBIAN_SUITE}-minbase.tar"
    mirror = debian_mirror()
    log(f"{DEBIAN_IMAGE}: mmdebstrap from {mirror}")
    subprocess.run(
        [
            "mmdebstrap",
            "--quiet",
            "--variant=minbase",
            "--include=python3,python3-venv,ca-certificates",
            DEBIAN_SUITE,
            str(rootfs),
            f"deb {mirror} {DEBIAN_SUITE} main",
            f"deb {mirror} {DEBIAN_SUITE}-updates main",
        ],
        env=env,
        check=True,
    )
    podman(env, "import", "--quiet", "--change", 'CMD ["/bin/bash"]', str(rootfs), DEBIAN_IMAGE)
    rootfs.unlink()  # the image holds it now


def pinned_versions() -> dict[str, str]:
    """torch/torchvision as local mode pins them (requirements.txt): the container must embed alike."""
    pins = dict(
        re.findall(r"^(torch|torchvision)==(\S+)", (REPO_ROOT / "requirements.txt").read_text(), re.MULTILINE)
    )
    if set(pins) != {"torch", "torchvision"}:
        raise ContainerTestFailure("requirements.txt must pin torch== and torchvision==")
    return pins


def build_torch_base(env: dict[str, str]) -> str:
    pins = pinned_versions()
    image = f"localhost/vda-torch-cpu:{pins['torch']}-{pins['torchvision']}"
    if image_exists(env, image):
        log(f"{image}: cached")
        return image
    log(f"{image}: building (PyPI)")
    context = WORK / "empty-context"
    context.mkdir(exist_ok=True)
    podman(
        env,
        "build",
        "--quiet",
        "--file",
        str(CONTAINER_DIR / "cpu-test-base.Containerfile"),
        "--build-arg",
        f"DEBIAN_IMAGE={DEBIAN_IMAGE}",
        "--build-arg",
        f"TORCH_VERSION={pins['torch']}",
        "--build-arg",
        f"TORCHVISION_VERSION={pins['torchvision']}",
        # Outbound TLS is intercepted here: pip needs the host's CA bundle.
        "--volume",
        f"{CA_BUNDLE}:{CA_BUNDLE}:ro",
        "--tag",
        image,
        str(context),
    )
    return image


def stage_context() -> Path:
    """The build context as the Dockerfile's .dockerignore allows it (podman does not read
    ``<Dockerfile>.dockerignore``; sending the repository would upload venvs and photos)."""
    context = WORK / "context"
    shutil.rmtree(context, ignore_errors=True)
    ignore = (CONTAINER_DIR / "Dockerfile.dockerignore").read_text().splitlines()
    allowed = [line[1:].rstrip("/") for line in ignore if line.startswith("!")]
    for relative in allowed:
        source, target = REPO_ROOT / relative, context / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(source, target)
    return context


def build_app_image(env: dict[str, str], base_image: str) -> None:
    log(f"{APP_IMAGE}: building containers/openclip/Dockerfile on {base_image}")
    context = stage_context()
    podman(
        env,
        "build",
        "--file",
        str(CONTAINER_DIR / "Dockerfile"),  # read from the repo; the context holds what it COPYs
        "--build-arg",
        f"BASE_IMAGE={base_image}",
        "--volume",
        f"{CA_BUNDLE}:{CA_BUNDLE}:ro",
        "--tag",
        APP_IMAGE,
        str(context),
    )


# --- the model, and what local mode makes of the photos --------------------------------------


def make_model_dir() -> tuple[Path, np.ndarray]:
    """A tiny model as SageMaker model data, and local mode's L2-normalised vectors for PHOTOS."""
    import torch
    from PIL import Image

    sys.path.insert(0, str(CONTAINER_DIR))
    import prepare_model_dir

    from vehicle_assessment.adapters.local.openclip_encoder import OpenClipEncoder, register_model_config
    from vehicle_assessment.settings import EncoderSettings

    register_model_config(TINY_CONFIG)
    torch.manual_seed(0)
    untrained = OpenClipEncoder(EncoderSettings(model_name=TINY_CONFIG.stem, untrained=True, threads=2))
    source = WORK / "model-source"
    source.mkdir(exist_ok=True)
    checkpoint = source / "tiny-weights.bin"
    torch.save(untrained._model.state_dict(), checkpoint)
    model_dir = WORK / "model"
    shutil.rmtree(model_dir, ignore_errors=True)
    prepare_model_dir.prepare_model_dir(
        model_dir, TINY_CONFIG.stem, checkpoint=checkpoint, architecture_config=TINY_CONFIG
    )
    # Local mode loading the same checkpoint file, as `vehicle-assessment` would.
    local = OpenClipEncoder(
        EncoderSettings(model_name=TINY_CONFIG.stem, pretrained=str(checkpoint), threads=2)
    )
    expected = local.embed([Image.open(p).convert("RGB") for p in PHOTOS])
    return model_dir, expected


# --- running it as SageMaker does ------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def http_call(port: int, method: str, path: str, body: bytes | None = None) -> tuple[int, dict]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        headers = {"Content-Type": "application/json", "Accept": "application/json"} if body else {}
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, json.loads(response.read() or b"{}")
    finally:
        connection.close()


def container_state(env: dict[str, str], name: str) -> str:
    return podman(env, "inspect", "--format", "{{.State.Status}}", name, capture=True).strip()


def wait_until_ready(env: dict[str, str], port: int) -> tuple[float, list[int]]:
    """Poll /ping; returns the seconds until 200 and the statuses seen before it."""
    started = time.monotonic()
    seen: list[int] = []
    while time.monotonic() - started < PING_TIMEOUT_S:
        try:
            status, _ = http_call(port, "GET", "/ping")
        except (ConnectionError, http.client.HTTPException, OSError):
            status = 0  # not listening yet
        if status == 200:
            return time.monotonic() - started, seen
        if status not in (0, 503):
            raise ContainerTestFailure(f"/ping answered {status} (expected 503 while loading, then 200)")
        if not seen or seen[-1] != status:
            seen.append(status)
        if container_state(env, CONTAINER) != "running":
            raise ContainerTestFailure("the container stopped before /ping answered 200")
        time.sleep(0.5)
    raise ContainerTestFailure(f"/ping did not answer 200 within {PING_TIMEOUT_S:.0f} s")


@contextlib.contextmanager
def serving(env: dict[str, str], model_dir: Path, port: int) -> Iterator[None]:
    remove_container(env, CONTAINER)
    # As SageMaker: `docker run IMAGE serve`, model data at /opt/ml/model, default user (root).
    podman(
        env,
        "run",
        "--detach",
        "--name",
        CONTAINER,
        "--publish",
        f"127.0.0.1:{port}:8080",
        "--volume",
        f"{model_dir}:/opt/ml/model:ro",
        APP_IMAGE,
        "serve",
        capture=True,  # the container id
    )
    try:
        yield
    finally:
        logs = subprocess.run(["podman", "logs", CONTAINER], env=env, capture_output=True, text=True)
        (WORK / "serve.log").write_text(logs.stdout + logs.stderr)
        remove_container(env, CONTAINER)


def check_image_layout(env: dict[str, str]) -> None:
    """Root (SageMaker runs the container as root) and nothing baked into /opt/ml/model."""
    user = podman(env, "image", "inspect", "--format", "{{.Config.User}}", APP_IMAGE, capture=True).strip()
    if user not in ("", "root", "0", "0:0"):
        raise ContainerTestFailure(f"the image runs as {user!r}; SageMaker expects root")
    probe = (
        "import os, pathlib; m = pathlib.Path('/opt/ml/model');"
        "print(os.getuid(), m.exists() and any(m.iterdir()))"
    )
    out = podman(env, "run", "--rm", "--entrypoint", "python", APP_IMAGE, "-c", probe, capture=True).split()
    if out != ["0", "False"]:
        raise ContainerTestFailure(f"uid / /opt/ml/model populated: {out} (expected root and an empty path)")


def check_serving(env: dict[str, str], model_dir: Path, expected: np.ndarray) -> dict[str, float]:
    from PIL import Image

    from vehicle_assessment import endpoint_protocol

    port = free_port()
    timings: dict[str, float] = {}
    with serving(env, model_dir, port):
        timings["start_to_ping_200_s"], seen = wait_until_ready(env, port)
        log(f"/ping 200 after {timings['start_to_ping_200_s']:.1f} s (before: {seen or 'nothing'})")
        _, ping = http_call(port, "GET", "/ping")
        request = endpoint_protocol.build_request([Image.open(p).convert("RGB") for p in PHOTOS])
        started = time.monotonic()
        status, answer = http_call(port, "POST", "/invocations", request)
        timings["invocation_s"] = time.monotonic() - started
        if status != 200:
            raise ContainerTestFailure(f"/invocations answered {status}: {answer}")
        response = endpoint_protocol.EmbedResponse.model_validate(answer)
        vectors = response.as_array()
        norms = np.linalg.norm(vectors, axis=1)
        if not np.allclose(norms, 1.0, atol=1e-5):
            raise ContainerTestFailure(f"the endpoint's vectors are not L2-normalised: norms {norms}")
        if vectors.shape != expected.shape or not np.allclose(vectors, expected, atol=ATOL):
            worst = (
                float(np.abs(vectors - expected).max()) if vectors.shape == expected.shape else float("nan")
            )
            raise ContainerTestFailure(
                f"the endpoint's vectors differ from local mode's: shape {vectors.shape} vs "
                f"{expected.shape}, max |diff| {worst:.2e} (tolerance {ATOL})"
            )
        if ping.get("model") != response.model.model_dump(mode="json"):
            raise ContainerTestFailure(f"/ping reports {ping.get('model')}, /invocations {response.model}")
        log(f"/invocations: {len(PHOTOS)} photos, {response.model.describe()}, equal to local mode's")
        status, _ = http_call(port, "POST", "/invocations", b'{"images": []}')
        if status != 400:
            raise ContainerTestFailure(f"an empty request answered {status}, expected 400")
    serve_log = (WORK / "serve.log").read_text()
    if not re.search(r"loaded .* on cpu \(fp32\)", serve_log):
        raise ContainerTestFailure(f"no 'loaded ... on cpu (fp32)' line in the container's log:\n{serve_log}")
    return timings


def check_gpu_refusal(env: dict[str, str], model_dir: Path) -> None:
    """EXPECT_GPU=true on a host without a usable GPU: exit non-zero with the reason, never serve on CPU."""
    remove_container(env, REFUSING_CONTAINER)
    result = subprocess.run(
        [
            "podman",
            "run",
            "--name",
            REFUSING_CONTAINER,
            "--env",
            "EXPECT_GPU=true",
            "--volume",
            f"{model_dir}:/opt/ml/model:ro",
            APP_IMAGE,
            "serve",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    remove_container(env, REFUSING_CONTAINER)
    output = result.stdout + result.stderr
    if result.returncode == 0 or "no CUDA device" not in output:
        raise ContainerTestFailure(
            f"EXPECT_GPU=true without a GPU exited {result.returncode}; expected a refusal:\n{output[-2000:]}"
        )
    log(f"EXPECT_GPU=true without a GPU: refused (exit {result.returncode})")


def fresh_start(env: dict[str, str]) -> None:
    log(f"--fresh: removing {WORK}")
    subprocess.run(["podman", "system", "reset", "--force"], env=env, check=False, capture_output=True)
    shutil.rmtree(WORK, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--fresh", action="store_true", help="wipe .container-test/ first (from scratch)")
    args = parser.parse_args(argv)
    missing = [tool for tool in ("podman", "runc", "mmdebstrap") if shutil.which(tool) is None]
    if missing:
        log(f"missing {', '.join(missing)}: apt-get install -y podman runc mmdebstrap")
        return 2
    if os.geteuid() != 0:
        log("rootful podman is needed (run as root)")
        return 2
    WORK.mkdir(exist_ok=True)
    free = shutil.disk_usage(WORK).free
    # Measured: the images and their build layers take about 13 GB from scratch (the torch base
    # alone ~6 GB, held twice while podman commits it); a full disk fails deep inside a build.
    if free < MIN_FREE_DISK_BYTES and not (WORK / "storage").exists():
        log(
            f"only {free / 1e9:.1f} GB free under {WORK}; a build from scratch needs about "
            f"{MIN_FREE_DISK_BYTES / 1e9:.0f} GB: free some space (e.g. old .container-test/ folders)"
        )
        return 2
    started = time.monotonic()
    env = podman_env()
    if args.fresh:
        fresh_start(env)
        env = podman_env()
    stages: dict[str, float] = {}

    def timed(name: str, since: float) -> None:
        stages[name] = time.monotonic() - since

    try:
        since = time.monotonic()
        build_debian_base(env)
        timed("debian_base_s", since)
        since = time.monotonic()
        base_image = build_torch_base(env)
        timed("torch_base_s", since)
        since = time.monotonic()
        build_app_image(env, base_image)
        timed("app_image_s", since)
        check_image_layout(env)
        model_dir, expected = make_model_dir()
        stages.update(check_serving(env, model_dir, expected))
        check_gpu_refusal(env, model_dir)
    except (ContainerTestFailure, subprocess.CalledProcessError) as exc:
        log(f"FAILED: {exc}")
        return 1
    finally:
        remove_container(env, CONTAINER)
        remove_container(env, REFUSING_CONTAINER)
    summary = ", ".join(f"{k} {v:.1f}" for k, v in stages.items())
    log(f"passed in {time.monotonic() - started:.0f} s ({summary})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
