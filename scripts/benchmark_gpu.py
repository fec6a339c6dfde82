"""Throughput of the serving code on an NVIDIA GPU, against the GPU's own measured peak, in one run.

    python scripts/benchmark_gpu.py                     # ViT-L-14, random weights, fp16 (a few minutes)
    python scripts/benchmark_gpu.py --batches 1,3,8     # fewer rows
    python scripts/benchmark_gpu.py --device cpu --model-config tests/data/models/tiny-test-clip.json \\
        --batches 1,3 --matmul-size 512                 # a dry run of the script itself, no GPU

It loads the model the way the endpoint does (``containers/openclip/inference.py`` ``model_fn``: fp16 on
CUDA) and prints one Markdown table, each figure measured in this run:

* request path: ``handle_invocation`` with the endpoint's JSON body (base64 PNGs of intake-sized photos),
  up to the protocol's 16 photos per request, and the latency of one 3-photo request (an assessment);
* ``predict_fn`` (preprocessing + forward pass) and the forward pass alone (``embed_tensors`` on
  preprocessed tensors, host-to-device copy included) at each batch size, in images/s;
* the forward pass's FLOP/s (FLOPs counted by ``torch.utils.flop_counter`` on this model) over the
  GPU's dense fp16 matmul rate measured here (an 8192³ product): the fraction of roofline achieved;
* peak GPU memory per batch size.

Needs nothing from the internet: random weights (speed does not depend on them).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "containers" / "openclip"))
sys.path.insert(0, str(REPO / "scripts"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # random weights: never wait on the hub

import inference  # noqa: E402
from gpu_check import intake_sized_photos  # noqa: E402

from vehicle_assessment import endpoint_protocol  # noqa: E402

DEFAULT_BATCHES = "1,3,8,16,32,64"
ASSESSMENT_PHOTOS = 3


def _timed(run: Callable[[], object], repeats: int, synchronize: Callable[[], None]) -> float:
    """Median seconds of `run` after one warm-up (kernels, allocator, autotuning)."""
    run()
    synchronize()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _matmul_flops_per_s(device: str, size: int, repeats: int) -> float:
    """Dense fp16 (fp32 on CPU) matmul rate of this device: the roofline the model is held against."""
    import torch as th

    dtype = th.float16 if device.startswith("cuda") else th.float32
    a = th.randn(size, size, device=device, dtype=dtype)
    b = th.randn(size, size, device=device, dtype=dtype)
    sync = th.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    seconds = _timed(lambda: a @ b, repeats, sync)
    return 2 * size**3 / seconds


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="ViT-L-14", help="open_clip architecture (random weights)")
    parser.add_argument(
        "--model-config", type=Path, help="an open_clip architecture JSON to register and use"
    )
    parser.add_argument("--device", default="cuda", help="cuda (the benchmark) or cpu (a dry run)")
    parser.add_argument("--batches", default=DEFAULT_BATCHES, help="batch sizes, comma-separated")
    parser.add_argument("--photos", type=Path, default=REPO / "sample_data", help="folder of photos to use")
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats per measurement")
    parser.add_argument(
        "--matmul-size", type=int, default=8192, help="side of the square matmul for the peak"
    )
    args = parser.parse_args()
    batches = [int(b) for b in args.batches.split(",") if b.strip()]
    if not batches or min(batches) < 1:
        parser.error("--batches takes positive whole numbers, e.g. 1,3,8")

    import torch
    from torch.utils.flop_counter import FlopCounterMode

    cuda = args.device.startswith("cuda")
    if cuda and not torch.cuda.is_available():
        print(f"torch {torch.__version__} sees no CUDA device: run with --device cpu for a dry run")
        return 1
    synchronize = torch.cuda.synchronize if cuda else (lambda: None)
    images = intake_sized_photos(args.photos, max(batches))

    spec: dict[str, object] = {"model_name": args.model, "untrained": True}
    with tempfile.TemporaryDirectory() as model_dir:
        if args.model_config is not None:
            config = Path(model_dir) / args.model_config.name
            config.write_text(args.model_config.read_text())
            spec = {"model_name": config.stem, "untrained": True, "architecture_config": config.name}
        (Path(model_dir) / inference.MODEL_SPEC_FILE).write_text(json.dumps(spec))
        start = time.perf_counter()
        model = inference.model_fn(model_dir, device=args.device)
        load_s = time.perf_counter() - start
    encoder = model.encoder
    device, dtype = encoder.placement

    peak = _matmul_flops_per_s(args.device, args.matmul_size, args.repeats)
    one = torch.stack([encoder.preprocess(images[0])])
    with FlopCounterMode(display=False) as counter:
        encoder.embed_tensors(one)
    flops_per_image = counter.get_total_flops()

    def request(chunk: list) -> Callable[[], object]:
        body = endpoint_protocol.build_request(chunk)
        return lambda: inference.handle_invocation(model, body, endpoint_protocol.CONTENT_TYPE, None)

    rows = []
    for batch in batches:
        chunk = (images * batch)[:batch]
        tensors = torch.stack([encoder.preprocess(image) for image in chunk])
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        forward_s = _timed(partial(encoder.embed_tensors, tensors), args.repeats, synchronize)
        memory = f"{torch.cuda.max_memory_allocated() / 2**30:.2f} GiB" if cuda else "-"
        predict_s = _timed(partial(inference.predict_fn, chunk, model), args.repeats, synchronize)
        if batch <= endpoint_protocol.MAX_IMAGES_PER_REQUEST:
            request_s = _timed(request(chunk), args.repeats, synchronize)
            request_rate = f"{batch / request_s:,.1f}"
        else:
            request_rate = f"(over {endpoint_protocol.MAX_IMAGES_PER_REQUEST} per request)"
        achieved = flops_per_image * batch / forward_s
        rows.append(
            (
                batch,
                request_rate,
                f"{batch / predict_s:,.1f}",
                f"{batch / forward_s:,.1f}",
                f"{achieved / 1e12:,.1f}",
                f"{achieved / peak:.0%}",
                memory,
            )
        )
    assessment_s = _timed(request(images[:ASSESSMENT_PHOTOS]), args.repeats, synchronize)

    name = torch.cuda.get_device_name(0) if cuda else "CPU"
    print(
        f"{name}, torch {torch.__version__}, model {encoder.identity.describe()}, on {device} in {dtype}, "
        f"loaded in {load_s:.1f} s\n"
        f"measured matmul peak: {peak / 1e12:,.1f} TFLOP/s ({args.matmul_size}³, {dtype}); "
        f"forward pass: {flops_per_image / 1e9:,.1f} GFLOP per image (torch flop counter)\n"
        f"one {ASSESSMENT_PHOTOS}-photo request (an assessment's photos): {assessment_s * 1000:,.1f} ms\n"
    )
    print(
        "| batch | request path (img/s) | predict_fn (img/s) | forward pass (img/s) "
        "| forward TFLOP/s | of measured peak | peak GPU memory |"
    )
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(str(cell) for cell in row) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
