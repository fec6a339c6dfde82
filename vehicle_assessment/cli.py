"""`vehicle-assessment`: the local pipeline on one machine.

Exit codes: 0 success; 2 bad input (usage, VIN, photo files, labels); 3 environment not ready
(weights missing, index empty or built by another encoder, a state file under --data-dir damaged
or not ours); 4 the assessment ran and FAILED
(it is stored with the step and reason; see `show ID`).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from datetime import date
from pathlib import Path

from pydantic import ValidationError

from vehicle_assessment.domain.models import (
    UNTRAINED_ENCODER_WARNING,
    Assessment,
    AssessmentInputs,
    AssessmentStatus,
)
from vehicle_assessment.domain.vin import InvalidVin, check_vin
from vehicle_assessment.ports import (
    AssessmentNotFound,
    EncoderUnavailable,
    IndexMismatch,
    StateFileUnusable,
)
from vehicle_assessment.report import render_assessment, render_list
from vehicle_assessment.settings import LocalSettings

EXIT_OK, EXIT_BAD_INPUT, EXIT_NOT_READY, EXIT_FAILED = 0, 2, 3, 4


class CliError(Exception):
    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def _non_negative_int(text: str) -> int:
    try:
        value = int(text.replace(",", "").replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number of miles, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {value}")
    return value


def _positive_usd(text: str) -> float:
    try:
        value = float(text.replace(",", "").lstrip("$"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an amount in US dollars, got {text!r}") from None
    if not value > 0 or value != value or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive amount, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vehicle-assessment", description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", type=Path, help="where local state lives (VDA_DATA_DIR)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress and details")
    enc = parser.add_argument_group("encoder (defaults: VDA_ENCODER__* or ViT-L-14 laion2b_s32b_b82k)")
    enc.add_argument("--model", help="open_clip architecture or hf-hub:org/repo")
    enc.add_argument("--pretrained", help="open_clip pretrained tag or local checkpoint path")
    enc.add_argument("--cache-dir", type=Path, help="where pretrained weights are cached")
    enc.add_argument("--untrained", action="store_true", help="use random weights (verdicts not meaningful)")
    enc.add_argument(
        "--fallback-untrained",
        metavar="MODEL",
        help="if the weights cannot be loaded, use MODEL with random weights instead of failing",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    index = commands.add_parser("index", help="manage the reference index")
    index_commands = index.add_subparsers(dest="index_command", required=True)
    build = index_commands.add_parser("build", help="embed labelled reference photos (resumable)")
    build.add_argument("photo_dir", type=Path)
    build.add_argument(
        "--labels", type=Path, required=True, help="labels.csv (path,damaged,damage_type,severity)"
    )
    build.add_argument("--batch-size", type=int, default=32)
    build.add_argument(
        "--target",
        choices=["local", "aws"],
        default="local",
        help="local: the in-process index under --data-dir; aws: the OpenSearch Serverless index through "
        "the SageMaker endpoint (AWS_REGION, SAGEMAKER and OPENSEARCH as for the analyse-photo Lambda)",
    )
    build.add_argument("--json", action="store_true")

    assess = commands.add_parser("assess", help="assess a vehicle from its photos")
    assess.add_argument("--vin", required=True)
    assess.add_argument("--color")
    assess.add_argument("--mileage", type=_non_negative_int, help="odometer, miles")
    assess.add_argument("--estimate", type=_positive_usd, help="your undamaged value estimate, USD")
    assess.add_argument("--json", action="store_true", help="print the stored record as JSON")
    assess.add_argument("photos", nargs="+", type=Path)

    show = commands.add_parser("show", help="print a stored assessment")
    show.add_argument("assessment_id")
    show.add_argument("--json", action="store_true")

    listing = commands.add_parser("list", help="list assessments of a vehicle, newest first")
    listing.add_argument("--vin", required=True)
    listing.add_argument("--json", action="store_true")

    evaluate = commands.add_parser(
        "evaluate", help="leave-one-out evaluation of the reference index (metrics, report, plots)"
    )
    evaluate.add_argument("--out", type=Path, help="report folder (default: DATA_DIR/evaluation)")
    evaluate.add_argument("--k", type=int, help="neighbours that vote (default: VDA_RULES__VERDICT__K)")
    evaluate.add_argument("--confidence-threshold", type=float, help="below it a photo needs review")
    return parser


def settings_from_args(args: argparse.Namespace) -> LocalSettings:
    settings = LocalSettings()  # environment first, then explicit flags win
    encoder_updates = {
        key: value
        for key, value in {
            "model_name": args.model,
            "pretrained": args.pretrained,
            "cache_dir": args.cache_dir,
            "fallback_untrained_model": args.fallback_untrained,
        }.items()
        if value is not None
    }
    if args.untrained:
        encoder_updates["untrained"] = True
    updates: dict = {}
    if encoder_updates:
        updates["encoder"] = settings.encoder.model_copy(update=encoder_updates)
    if args.data_dir is not None:
        updates["data_dir"] = args.data_dir
    return settings.model_copy(update=updates) if updates else settings


def _emit_json(payload: object) -> None:
    print(json.dumps(payload, indent=2, ensure_ascii=False))


def _assessment_json(assessment: Assessment) -> dict:
    data = assessment.model_dump(mode="json")
    data["needs_review"] = assessment.needs_review
    if assessment.encoder and assessment.encoder.untrained:
        data["notice"] = UNTRAINED_ENCODER_WARNING
    return data


def cmd_index_build(args: argparse.Namespace, settings: LocalSettings) -> int:
    from tqdm import tqdm

    from vehicle_assessment.adapters.local.openclip_encoder import load_encoder
    from vehicle_assessment.adapters.local.wiring import open_index
    from vehicle_assessment.indexing import build_index, read_labels

    if not args.photo_dir.is_dir():
        raise CliError(f"{args.photo_dir} is not a directory", EXIT_BAD_INPUT)
    if not args.labels.is_file():
        raise CliError(f"labels file {args.labels} not found", EXIT_BAD_INPUT)
    try:
        photos, skipped = read_labels(args.photo_dir, args.labels)
    except (ValueError, UnicodeDecodeError) as exc:
        raise CliError(str(exc), EXIT_BAD_INPUT) from exc
    if args.target == "aws":
        from vehicle_assessment.aws_runtime.index_loader import IndexLoaderConfig, build_aws_index_target

        try:
            config = IndexLoaderConfig()
        except ValidationError as exc:
            missing = ", ".join(str(error["loc"][0]).upper() for error in exc.errors())
            raise CliError(f"the AWS target is not configured: set {missing}", EXIT_NOT_READY) from exc
        encoder, index = build_aws_index_target(config)
        where = f"OpenSearch {config.opensearch.collection_endpoint}/{config.opensearch.index_name}"
    else:
        encoder, index = load_encoder(settings.encoder), open_index(settings)
        where = str(settings.index_path)
    warnings = list(getattr(encoder, "warnings", []))
    if encoder.identity.untrained:
        warnings.append(UNTRAINED_ENCODER_WARNING)
    try:
        with tqdm(
            total=len(photos), desc="indexing", unit="photo", disable=args.json, file=sys.stderr
        ) as bar:
            report = build_index(
                photos, encoder, index, settings.rules.intake, batch_size=args.batch_size, progress=bar.update
            )
        report.skipped[:0] = skipped
        summary = {
            "index": where,
            "encoder": encoder.identity.model_dump(mode="json"),
            "added": report.added,
            "already_indexed": report.already_indexed,
            "total": index.count(),
            "skipped": [{"source": s.source, "reason": s.reason} for s in report.skipped],
            "warnings": warnings,
        }
    finally:
        index.close()
    if args.json:
        _emit_json(summary)
        return EXIT_OK
    for warning in summary["warnings"]:
        print(f"WARNING: {warning}", file=sys.stderr)
    print(
        f"index {summary['index']}: {summary['total']} reference photos "
        f"({report.added} added, {report.already_indexed} already there, {len(report.skipped)} skipped)"
    )
    print(f"encoder: {encoder.identity.describe()}")
    for item in report.skipped:
        print(f"  skipped {item.source}: {item.reason}")
    return EXIT_OK


def _read_photos(paths: Sequence[Path]):
    from vehicle_assessment.pipeline import PhotoUpload

    uploads = []
    for path in paths:
        if not path.is_file():
            raise CliError(f"photo {path} not found", EXIT_BAD_INPUT)
        uploads.append(PhotoUpload(filename=path.name, data=path.read_bytes()))
    return uploads


def cmd_assess(args: argparse.Namespace, settings: LocalSettings) -> int:
    from vehicle_assessment.adapters.local.wiring import build_local_ports
    from vehicle_assessment.pipeline import AssessmentRunner

    try:
        inputs = AssessmentInputs(
            vin=args.vin, color=args.color, mileage=args.mileage, estimate_usd=args.estimate
        )
    except ValidationError as exc:
        raise CliError(exc.errors()[0]["msg"], EXIT_BAD_INPUT) from exc
    check_vin(inputs.vin, date.today())  # refuse a bad VIN before loading any model
    uploads = _read_photos(args.photos)
    ports = build_local_ports(settings)
    if ports.index.count() == 0:
        raise CliError(
            f"the reference index at {settings.index_path} is empty: "
            "run `vehicle-assessment index build` first",
            EXIT_NOT_READY,
        )
    for warning in getattr(ports.encoder, "warnings", []):
        print(f"WARNING: {warning}", file=sys.stderr)
    assessment = AssessmentRunner(ports, settings.rules).assess(inputs, uploads)
    if args.json:
        _emit_json(_assessment_json(assessment))
    else:
        print(render_assessment(assessment, settings.objects_dir))
    return EXIT_FAILED if assessment.status == AssessmentStatus.FAILED else EXIT_OK


def cmd_show(args: argparse.Namespace, settings: LocalSettings) -> int:
    from vehicle_assessment.adapters.local.wiring import open_repository

    assessment = open_repository(settings).get(args.assessment_id)
    if args.json:
        _emit_json(_assessment_json(assessment))
    else:
        print(render_assessment(assessment, settings.objects_dir))
    return EXIT_OK


def cmd_list(args: argparse.Namespace, settings: LocalSettings) -> int:
    from vehicle_assessment.adapters.local.wiring import open_repository
    from vehicle_assessment.domain.vin import normalise_vin

    assessments = open_repository(settings).list_by_vin(normalise_vin(args.vin))
    if args.json:
        _emit_json([_assessment_json(a) for a in assessments])
    else:
        print(render_list(assessments))
    return EXIT_OK


def cmd_evaluate(args: argparse.Namespace, settings: LocalSettings) -> int:
    from vehicle_assessment.adapters.local.wiring import open_index
    from vehicle_assessment.domain.rules import VerdictSettings
    from vehicle_assessment.evaluation import evaluate_index

    updates = {"k": args.k, "confidence_threshold": args.confidence_threshold}
    try:
        verdict = VerdictSettings(
            **(settings.rules.verdict.model_dump() | {k: v for k, v in updates.items() if v is not None})
        )
    except ValidationError as exc:
        error = exc.errors()[0]
        raise CliError(f"--{str(error['loc'][0]).replace('_', '-')}: {error['msg']}", EXIT_BAD_INPUT) from exc
    empty = (
        f"the reference index at {settings.index_path} is empty: run `vehicle-assessment index build` first"
    )
    if not settings.index_path.is_file():  # don't create an empty index just to report it empty
        raise CliError(empty, EXIT_NOT_READY)
    index = open_index(settings)
    try:
        if index.count() == 0:
            raise CliError(empty, EXIT_NOT_READY)
        result = evaluate_index(index, verdict, args.out or settings.data_dir / "evaluation")
    finally:
        index.close()
    if result.metrics["notice"]:
        print(f"WARNING: {result.metrics['notice']}", file=sys.stderr)
    damaged = result.metrics["damaged"]["accuracy"]
    print(
        f"evaluated {result.metrics['judged']} reference photos (leave-one-out, k={verdict.k}): "
        f"damaged/undamaged accuracy {damaged:.3f}"
    )
    print(f"report: {result.report_path}")
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # Quiet by default: open_clip logs weight-loading failures at ERROR on the root logger before
    # we explain them ourselves, and every outcome worth knowing is in the report or the exit code.
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.CRITICAL,
        format="%(levelname)s %(name)s: %(message)s",
    )
    handlers = {
        "index": cmd_index_build,
        "assess": cmd_assess,
        "show": cmd_show,
        "list": cmd_list,
        "evaluate": cmd_evaluate,
    }
    try:
        settings = settings_from_args(args)
        return handlers[args.command](args, settings)
    except CliError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.code
    except (InvalidVin, ValidationError) as exc:
        print(f"error: {exc}".splitlines()[0], file=sys.stderr)
        return EXIT_BAD_INPUT
    except AssessmentNotFound as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except (EncoderUnavailable, IndexMismatch, StateFileUnusable) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_NOT_READY


if __name__ == "__main__":
    sys.exit(main())
