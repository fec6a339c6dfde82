"""Make a model directory the endpoint serves: ``model.json`` plus the weights.

Used both ways the endpoint gets its weights:
  1. baked into the image:  the Dockerfile runs this with BAKE_WEIGHTS=1 into /opt/weights;
  2. as SageMaker model data:  run it on a connected machine, then
     ``tar -czf model.tar.gz -C DIR .`` and upload; SageMaker extracts it to /opt/ml/model.

Examples::

    # an open_clip tag (downloads once into DIR/hf-cache; the endpoint later reads it offline)
    python containers/openclip/prepare_model_dir.py --out DIR \\
        --model-name ViT-L-14 --pretrained laion2b_s32b_b82k
    # a checkpoint you already have (+ an extra architecture config for a custom model)
    python containers/openclip/prepare_model_dir.py --out DIR --model-name my-arch \\
        --checkpoint my.bin --architecture-config my-arch.json --pretrained-label my-weights-v1

Only open_clip and the stdlib are needed (it runs in the image before the service code is copied).
The format of model.json is ``inference.ModelSpec``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

HF_CACHE = "hf-cache"


def download_tag(out: Path, model_name: str, tag: str) -> None:
    """Fetch an open_clip tag's weights into ``out/hf-cache``, the layout open_clip reads offline."""
    from open_clip.pretrained import download_pretrained, get_pretrained_cfg

    cfg = get_pretrained_cfg(model_name, tag)
    if not cfg:
        raise SystemExit(f"open_clip knows no pretrained tag {tag!r} for {model_name!r}")
    if not cfg.get("hf_hub"):
        raise SystemExit(f"{model_name} [{tag}] is not on the Hugging Face hub; pass --checkpoint instead")
    path = download_pretrained(cfg, cache_dir=str(out / HF_CACHE))
    print(f"downloaded {path}")
    materialise_symlinks(out / HF_CACHE)


def materialise_symlinks(cache_dir: Path) -> None:
    """Replace the HF cache's snapshot symlinks by the files they point at, and drop ``blobs/``.

    huggingface_hub resolves a snapshot file offline whether it is a link or a file (its no-symlink
    layout); plain files survive any tar/S3/COPY step unchanged and are not stored twice.
    """
    for link in sorted(p for p in cache_dir.rglob("*") if p.is_symlink()):
        target = link.resolve(strict=True)
        link.unlink()
        shutil.move(target, link)
    for blobs in cache_dir.glob("models--*/blobs"):
        shutil.rmtree(blobs)


def prepare_model_dir(
    out: Path,
    model_name: str,
    pretrained: str | None = None,
    checkpoint: Path | None = None,
    architecture_config: Path | None = None,
    pretrained_label: str | None = None,
    untrained: bool = False,
) -> Path:
    """Fill `out` and write its model.json; returns the model.json path."""
    out.mkdir(parents=True, exist_ok=True)
    spec: dict[str, object] = {"model_name": model_name}
    if architecture_config is not None:
        shutil.copyfile(architecture_config, out / architecture_config.name)
        spec["architecture_config"] = architecture_config.name
    if untrained:
        spec["untrained"] = True
    elif checkpoint is not None:
        shutil.copyfile(checkpoint, out / checkpoint.name)
        spec["pretrained"] = checkpoint.name
    elif model_name.startswith("hf-hub:"):
        from open_clip.pretrained import download_pretrained_from_hf as fetch

        repo = model_name.removeprefix("hf-hub:")
        fetch(repo, filename="open_clip_config.json", cache_dir=str(out / HF_CACHE))
        fetch(repo, cache_dir=str(out / HF_CACHE))
        materialise_symlinks(out / HF_CACHE)
        spec["hf_cache_dir"] = HF_CACHE
    elif pretrained:
        download_tag(out, model_name, pretrained)
        spec["pretrained"] = pretrained
        spec["hf_cache_dir"] = HF_CACHE
    else:
        raise SystemExit("give --pretrained TAG, --checkpoint FILE, an hf-hub: model name or --untrained")
    if pretrained_label is not None:
        spec["pretrained_label"] = pretrained_label
    spec_path = out / "model.json"
    spec_path.write_text(json.dumps(spec, indent=2) + "\n")
    return spec_path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, required=True, help="the model directory to fill")
    parser.add_argument("--model-name", default="ViT-L-14", help="open_clip architecture or hf-hub:org/repo")
    parser.add_argument("--pretrained", default="laion2b_s32b_b82k", help="open_clip pretrained tag")
    parser.add_argument("--checkpoint", type=Path, help="use this local checkpoint instead of a tag")
    parser.add_argument("--architecture-config", type=Path, help="extra open_clip architecture JSON")
    parser.add_argument("--pretrained-label", help="the `pretrained` the endpoint reports in its identity")
    parser.add_argument("--untrained", action="store_true", help="random weights (smoke tests only)")
    args = parser.parse_args(argv)
    spec_path = prepare_model_dir(
        args.out,
        args.model_name,
        pretrained=args.pretrained,
        checkpoint=args.checkpoint,
        architecture_config=args.architecture_config,
        pretrained_label=args.pretrained_label,
        untrained=args.untrained,
    )
    print(spec_path.read_text(), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
