"""The serving container's request path on a GPU, checked and timed against its CPU path in one run.

Run on a machine with an NVIDIA GPU and the encoder extras installed (torch, open_clip)::

    python scripts/gpu_check.py                      # ViT-L-14, random weights (speed ignores weights)
    python scripts/gpu_check.py --model ViT-B-32 --n-photos 16

It drives ``containers/openclip/inference.py`` exactly as ``serve.py`` does (``model_fn`` once, then
``handle_invocation`` with the endpoint's JSON body) and prints one Markdown table:

G1 device and dtype the container chose                      must be cuda / torch.float16
G2 agreement of fp16 GPU vectors with fp32 CPU vectors        min cosine >= 0.99
G3 per-photo latency at each batch size, GPU and CPU          ratio CPU/GPU printed, measured here
G4 identity (with weights fingerprint) equal on both devices  must hold: the index check relies on it

Exit status 1 when G1, G2 or G4 fails: a GPU host that silently serves on the CPU is a failure.
The weights are random: the vectors' meaning is irrelevant here, their agreement and speed are not.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "containers" / "openclip"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # random weights: never wait on the hub

import inference  # noqa: E402

from vehicle_assessment import endpoint_protocol  # noqa: E402
from vehicle_assessment.domain.rules import IntakeSettings  # noqa: E402

MIN_COSINE = 0.99
BATCH_SIZES = (1, 4, 16)


def intake_sized_photos(root: Path, n: int) -> list[Image.Image]:
    """Up to `n` photos under `root`, shrunk as intake shrinks the copy it embeds."""
    paths = sorted(p for p in root.rglob("*") if p.suffix.lower() in {".jpg", ".jpeg", ".png"})[:n]
    if not paths:
        raise SystemExit(f"no photos under {root}")
    # The runtime sends intake's embedding copy (short side at most 448 px), not the original.
    short_side = IntakeSettings().embedding_short_side
    images = []
    for path in paths:
        image = Image.open(path).convert("RGB")
        scale = short_side / min(image.size)
        if scale < 1:
            image = image.resize((round(image.width * scale), round(image.height * scale)))
        images.append(image)
    return images


def _embed(model: inference.LoadedModel, images: list[Image.Image]) -> np.ndarray:
    body = endpoint_protocol.build_request(images)
    answer = inference.handle_invocation(model, body, endpoint_protocol.CONTENT_TYPE, "application/json")
    return endpoint_protocol.EmbedResponse.model_validate_json(answer).as_array()


def _latency_per_photo(
    model: inference.LoadedModel, images: list[Image.Image], batch: int, repeats: int
) -> float:
    chunk = (images * batch)[:batch]
    _embed(model, chunk)  # warm-up: CUDA kernels, allocator, cuDNN autotuning
    times = []
    for _ in range(repeats):
        if model.encoder.settings.device.startswith("cuda"):
            import torch

            torch.cuda.synchronize()
        start = time.perf_counter()
        _embed(model, chunk)
        times.append(time.perf_counter() - start)
    return statistics.median(times) / batch


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="ViT-L-14", help="open_clip architecture (random weights)")
    parser.add_argument("--photos", type=Path, default=REPO / "sample_data", help="folder of photos to embed")
    parser.add_argument("--n-photos", type=int, default=16, help="photos compared between GPU and CPU")
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats per batch size")
    args = parser.parse_args()

    import torch

    if not torch.cuda.is_available():
        print(f"FAIL: torch {torch.__version__} sees no CUDA device (built for CUDA {torch.version.cuda})")
        return 1
    images = intake_sized_photos(args.photos, args.n_photos)
    with tempfile.TemporaryDirectory() as model_dir:
        (Path(model_dir) / inference.MODEL_SPEC_FILE).write_text(
            json.dumps({"model_name": args.model, "untrained": True})
        )
        start = time.perf_counter()
        gpu = inference.model_fn(model_dir)  # the device SageMaker's call would get
        gpu_load_s = time.perf_counter() - start
        cpu = inference.model_fn(model_dir, device="cpu")

    device, dtype = gpu.encoder.placement
    rows = [("G1 device / dtype", f"{device} / {dtype}", "cuda / torch.float16")]
    ok = device.startswith("cuda") and dtype == "torch.float16"

    on_gpu, on_cpu = _embed(gpu, images), _embed(cpu, images)
    cosines = np.sum(on_gpu * on_cpu, axis=1)
    agree = float(cosines.min()) >= MIN_COSINE
    ok &= agree
    rows.append(
        (
            "G2 min cosine fp16 GPU vs fp32 CPU",
            f"{cosines.min():.5f} (mean {cosines.mean():.5f})",
            f">= {MIN_COSINE}",
        )
    )
    for batch in BATCH_SIZES:
        g = _latency_per_photo(gpu, images, batch, args.repeats)
        c = _latency_per_photo(cpu, images, batch, max(1, args.repeats // 2))
        rows.append(
            (f"G3 per photo, batch {batch}", f"GPU {g * 1000:.1f} ms, CPU {c * 1000:.0f} ms", f"{c / g:.1f}x")
        )
    # The forward pass alone (preprocessed tensors already in hand): what the GPU itself costs, so
    # the rest of G3 is the request path (PNG decode, resize/normalise, JSON) on the host's CPUs.
    tensors = torch.stack([gpu.encoder.preprocess(image) for image in (images * 16)[:16]])
    gpu.encoder.embed_tensors(tensors)
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(args.repeats):
        gpu.encoder.embed_tensors(tensors)
    torch.cuda.synchronize()
    forward = (time.perf_counter() - start) / args.repeats / 16
    g16 = _latency_per_photo(gpu, images, 16, args.repeats)
    rows.append(
        (
            "G5 GPU forward pass alone, batch 16",
            f"{forward * 1000:.1f} ms per photo",
            f"{forward / g16:.0%} of G3",
        )
    )
    same_identity = gpu.identity == cpu.identity
    ok &= same_identity
    rows.append(("G4 identity equal on both devices", str(same_identity), gpu.identity.describe()))

    print(
        f"{torch.cuda.get_device_name(0)}, torch {torch.__version__}, CUDA {torch.version.cuda}, "
        f"model {args.model} (random weights), GPU load {gpu_load_s:.1f} s\n"
    )
    print("| check | measured | target / ratio |\n|---|---|---|")
    for name, measured, target in rows:
        print(f"| {name} | {measured} | {target} |")
    print("\nPASS" if ok else "\nFAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
