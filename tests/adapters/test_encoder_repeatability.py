"""The untrained encoder is the same model in every process, and an index knows which weights made it.

Issue 8: each process used to draw its own random model while reporting the same identity, so the
same photo embedded differently in two runs and the index check never fired. These tests run real
separate processes: an in-process check could not see that.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ..conftest import REPO_ROOT, SAMPLE_DATA, TEST_DATA, TINY_MODEL

pytestmark = pytest.mark.slow

TINY_CONFIG = TEST_DATA / "models" / f"{TINY_MODEL}.json"
PHOTO = sorted((TEST_DATA / "photos").glob("*.jpg"))[0]
VIN = "1FTMW1T88MFA00001"

# Run from the repository root so the child imports this checkout; the tiny architecture is
# registered first, as the tests' conftest does in-process.
_REGISTER = """
import sys
from pathlib import Path
from vehicle_assessment.adapters.local.openclip_encoder import register_model_config
register_model_config(Path(sys.argv[1]))
"""
_EMBED = (
    _REGISTER
    + """
import json
from PIL import Image
from vehicle_assessment.adapters.local.openclip_encoder import OpenClipEncoder
from vehicle_assessment.settings import EncoderSettings

image = Image.open(sys.argv[2]).convert("RGB")
model = sys.argv[3]
paths = {
    "untrained": EncoderSettings(model_name=model, untrained=True, threads=1),
    # The demo's path: the configured weights are missing, so the fallback model is used.
    "fallback": EncoderSettings(
        model_name=model, pretrained="/nonexistent/weights.bin", fallback_untrained_model=model, threads=1
    ),
}
out = {}
for name, settings in paths.items():
    encoder = OpenClipEncoder(settings)
    out[name] = {
        "identity": encoder.identity.model_dump(mode="json"),
        "vector": encoder.embed([image])[0].tobytes().hex(),
    }
print(json.dumps(out))
"""
)
_CLI = (
    _REGISTER
    + """
from vehicle_assessment.cli import main
sys.exit(main(sys.argv[2:]))
"""
)


def _environment(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VDA_")}
    return {**env, "HF_HUB_OFFLINE": "1", "VDA_VPIC__ENABLED": "false", **extra}


def _run(code: str, *args: str, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code, str(TINY_CONFIG), *args],
        cwd=REPO_ROOT,
        env=env or _environment(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_two_processes_embed_the_same_photo_identically() -> None:
    first, second = (json.loads(_run(_EMBED, str(PHOTO), TINY_MODEL)) for _ in range(2))
    for path in ("untrained", "fallback"):
        assert first[path]["vector"] == second[path]["vector"], f"{path}: bit-identical float32 vectors"
        assert first[path]["identity"] == second[path]["identity"], path
        assert first[path]["identity"]["weights_fingerprint"], path
    # Explicitly untrained or fallen back to: one seeded model, one fingerprint.
    assert first["untrained"] == first["fallback"]


def _labels(path: Path, per_class: int = 4) -> Path:
    with (SAMPLE_DATA / "reference" / "labels.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    chosen = [r for r in rows if r["damaged"] == "false"][:per_class]
    chosen += [r for r in rows if r["damaged"] == "true"][:per_class]
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(chosen)
    return path


def test_demo_assess_in_two_processes_gives_the_same_value(tmp_path: Path) -> None:
    """`make demo`: the index built by one process, then `assess` run twice, each its own process."""
    env = _environment(
        VDA_ENCODER__MODEL_NAME=TINY_MODEL,
        VDA_ENCODER__PRETRAINED="/nonexistent/weights.bin",
        VDA_ENCODER__FALLBACK_UNTRAINED_MODEL=TINY_MODEL,
    )
    data = ["--data-dir", str(tmp_path / "data")]
    labels = _labels(tmp_path / "labels.csv")
    _run(_CLI, *data, "index", "build", str(SAMPLE_DATA / "reference"), "--labels", str(labels), env=env)
    queries = sorted(str(p) for p in (SAMPLE_DATA / "queries").glob("*/*.jpg"))
    assess = [*data, "assess", "--vin", VIN, "--mileage", "48200", "--estimate", "38500", "--json", *queries]
    runs = [json.loads(_run(_CLI, *assess, env=env)) for _ in range(2)]

    def outcome(record: dict) -> dict:
        return {
            "photos": [(p["status"], p.get("verdict")) for p in record["photos"]],
            "valuation": record["valuation"],
        }

    assert runs[0]["status"] == "COMPLETED"
    assert all(p["status"] == "analysed" for p in runs[0]["photos"]), runs[0]["photos"]
    assert outcome(runs[0]) == outcome(runs[1])


def test_an_index_of_other_weights_under_the_same_name_is_refused(
    sample_index_path: Path, tiny_encoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before the fingerprint, an index of one untrained draw answered queries of another."""
    from vehicle_assessment import pipeline
    from vehicle_assessment.adapters.local import openclip_encoder
    from vehicle_assessment.adapters.local.vector_index import LocalVectorIndex
    from vehicle_assessment.domain.rules import AssessmentRules
    from vehicle_assessment.ports import IndexMismatch

    monkeypatch.setattr(openclip_encoder, "UNTRAINED_SEED_PREFIX", "another-seed/")
    other_draw = openclip_encoder.OpenClipEncoder(tiny_encoder.settings)
    assert other_draw.identity.without_fingerprint() == tiny_encoder.identity.without_fingerprint()

    index = LocalVectorIndex(sample_index_path)
    try:
        with pytest.raises(IndexMismatch, match="rebuild"):
            index.bind(other_draw.identity)  # what `index build` does first
        with pytest.raises(IndexMismatch, match="rebuild"):
            pipeline.analyse_photos([], [], other_draw, index, AssessmentRules())  # what `assess` does
        index.bind(tiny_encoder.identity)  # the weights that built it are still welcome
    finally:
        index.close()
