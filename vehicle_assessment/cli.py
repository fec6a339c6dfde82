"""`vehicle-assessment`: the local pipeline on one machine.

Exit codes: 0 success; 2 bad input (usage, VIN, photo files, labels); 3 environment not ready
(weights missing, index empty or built by another encoder, a state file under --data-dir damaged
or not ours); 4 the assessment ran and FAILED
(it is stored with the step and reason; see `show ID`); 5 the assessment ran but no photo could
be assessed (all rejected or copies): it is stored as NEEDS_PHOTOS, with no damage figure;
6 `submit` stopped waiting (the assessment goes on in the cloud), or `smoke` found a failure;
130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import argparse
import getpass
import json
import logging
import os
import sys
import webbrowser
from collections.abc import Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from vehicle_assessment.domain import figures, limits, upload_keys
from vehicle_assessment.domain.models import (
    UNTRAINED_ENCODER_WARNING,
    Assessment,
    AssessmentInputs,
    AssessmentStatus,
    DamageType,
    PhotoReview,
    Severity,
)
from vehicle_assessment.domain.review import ReviewRefused
from vehicle_assessment.domain.vin import InvalidVin, check_vin
from vehicle_assessment.ports import (
    AssessmentNotFound,
    ConcurrentUpdate,
    EncoderUnavailable,
    ImageEncoder,
    IndexMismatch,
    StateFileUnusable,
    WritableReferenceIndex,
)
from vehicle_assessment.remote.errors import RemoteError
from vehicle_assessment.remote.options import add_stack_arguments
from vehicle_assessment.report import render_assessment, render_list, render_queue
from vehicle_assessment.settings import LocalSettings

EXIT_OK, EXIT_BAD_INPUT, EXIT_NOT_READY, EXIT_FAILED = 0, 2, 3, 4
EXIT_NEEDS_PHOTOS = 5
EXIT_REMOTE_UNFINISHED = 6
EXIT_INTERRUPTED = 130  # 128 + SIGINT, what a shell reports for Ctrl-C

DEFAULT_LIST_LIMIT = 50

# What each input may be; the bounds come from domain/limits.py, which AssessmentInputs enforces.
_INPUT_OPTIONS = {"vin": "--vin", "color": "--color", "mileage": "--mileage", "estimate_usd": "--estimate"}
_INPUT_BOUNDS = {
    "mileage": f"a whole number of miles from 0 to {limits.MAX_MILEAGE_MILES:,}",
    "estimate_usd": (
        f"an amount in US dollars from {figures.usd(limits.MIN_ESTIMATE_USD)} "
        f"to {figures.usd(limits.MAX_ESTIMATE_USD)}"
    ),
    "color": (
        f"a colour name of 1 to {limits.MAX_COLOR_CHARS} characters: letters, digits, spaces "
        f"and {limits.COLOR_PUNCTUATION}"
    ),
}

EPILOG = f"""exit codes:
  {EXIT_OK:<4} success
  {EXIT_BAD_INPUT:<4} bad input (usage, VIN, photo files, labels, a value out of its bounds)
  {EXIT_NOT_READY:<4} environment not ready (weights missing, index empty or built by another encoder,
       a state file under --data-dir damaged or not ours)
  {EXIT_FAILED:<4} the assessment ran and FAILED (stored with the step and reason; see `show ID`);
       `submit`: also INCOMPLETE (not every photo arrived in time);
       `index build --manifest`: the build on AWS ended FAILED, TIMED_OUT or ABORTED
  {EXIT_NEEDS_PHOTOS:<4} the assessment ran but no photo could be assessed (all rejected or copies):
       stored as NEEDS_PHOTOS with no damage figure; take new photos
  {EXIT_REMOTE_UNFINISHED:<4} `submit`: still running when --timeout passed (it goes on in the cloud);
       `smoke`: a check FAILED (see the table)
  {EXIT_INTERRUPTED:<4} interrupted (Ctrl-C); `index build` keeps what it finished and resumes on rerun

limits:
  --mileage   {_INPUT_BOUNDS["mileage"]}
  --estimate  {_INPUT_BOUNDS["estimate_usd"]}
  --color     {_INPUT_BOUNDS["color"]}
  photos      JPEG, PNG or WebP; at most {limits.MAX_PHOTO_BYTES // (1024 * 1024)} MiB and \
{limits.MAX_PHOTO_PIXELS:,} pixels each

Global options (--data-dir, --verbose, the encoder options) may also follow the command."""


class CliError(Exception):
    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def _miles(text: str) -> int:
    # Only the format is checked here; the bounds are AssessmentInputs' (see _input_error).
    try:
        return int(text.replace(",", "").replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number of miles, got {text!r}") from None


def _usd_amount(text: str) -> float:
    try:
        return float(text.replace(",", "").lstrip("$"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an amount in US dollars, got {text!r}") from None


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port {value} is outside 0..65535")
    return value


def _input_error(exc: ValidationError) -> str:
    """One line naming the option, its bound and what was given."""
    error = exc.errors()[0]
    field = str(error["loc"][0]) if error["loc"] else "input"
    option = _INPUT_OPTIONS.get(field, field)
    reason = str(error["msg"]).removeprefix("Value error, ")
    bound = _INPUT_BOUNDS.get(field)
    text = f"{option} must be {bound}" if bound else f"{option}: {reason}"
    if bound and error["type"] == "value_error":  # the colour's own reason says what is wrong
        text += f" ({reason})"
    return f"{text}; got {error.get('input')!r}"


def _add_global_options(parser: argparse.ArgumentParser, *, after_command: bool) -> None:
    """The options every command shares, before the command or (after_command) after it.

    After the command they default to SUPPRESS, so an option given before the command is kept
    unless it is given again after it (then the later one wins).
    """
    unset: dict[str, Any] = {"default": argparse.SUPPRESS} if after_command else {}
    title = "global options" if after_command else None
    general = parser.add_argument_group(title) if title else parser
    general.add_argument(
        "--data-dir",
        type=Path,
        help="where local state lives (default: VDA_DATA_DIR or .local-data)",
        **unset,
    )
    general.add_argument("-v", "--verbose", action="store_true", help="log progress and details", **unset)
    enc = parser.add_argument_group("encoder (defaults: VDA_ENCODER__* or ViT-L-14 laion2b_s32b_b82k)")
    enc.add_argument("--model", help="open_clip architecture or hf-hub:org/repo", **unset)
    enc.add_argument("--pretrained", help="open_clip pretrained tag or local checkpoint path", **unset)
    enc.add_argument("--cache-dir", type=Path, help="where pretrained weights are cached", **unset)
    enc.add_argument(
        "--untrained", action="store_true", help="use random weights (verdicts not meaningful)", **unset
    )
    enc.add_argument(
        "--fallback-untrained",
        metavar="MODEL",
        help="if the weights cannot be loaded, use MODEL with random weights instead of failing",
        **unset,
    )


def _add_command(commands: argparse._SubParsersAction, name: str, help_text: str) -> argparse.ArgumentParser:
    parser = commands.add_parser(
        name, help=help_text, description=help_text, epilog=EPILOG, formatter_class=_HelpFormatter
    )
    _add_global_options(parser, after_command=True)
    return parser


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the epilog's line breaks (the exit-code and limits tables)."""


def _add_vehicle_inputs(parser: argparse.ArgumentParser) -> None:
    """What the yard says about the vehicle, and its photos: the same for `assess` and `submit`."""
    parser.add_argument("--vin", required=True, help="the 17-character vehicle identification number")
    parser.add_argument("--color", help=f"paint colour, spoken in the audio: {_INPUT_BOUNDS['color']}")
    parser.add_argument("--mileage", type=_miles, help=f"odometer: {_INPUT_BOUNDS['mileage']}")
    parser.add_argument(
        "--estimate", type=_usd_amount, help=f"your undamaged value estimate: {_INPUT_BOUNDS['estimate_usd']}"
    )
    parser.add_argument("photos", nargs="+", type=Path, help="photo files (JPEG, PNG or WebP)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vehicle-assessment",
        description=__doc__.split("\n")[0],
        epilog=EPILOG,
        formatter_class=_HelpFormatter,
    )
    _add_global_options(parser, after_command=False)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", help="what to do")

    index = _add_command(commands, "index", "manage the reference index")
    index_commands = index.add_subparsers(
        dest="index_command", required=True, metavar="INDEX_COMMAND", help="what to do with the index"
    )
    build = _add_command(index_commands, "build", "embed labelled reference photos (resumable)")
    build.add_argument(
        "photo_dir",
        type=Path,
        nargs="?",
        help="folder the labels' paths are relative to (not with --manifest)",
    )
    build.add_argument("--labels", type=Path, help="labels.csv (path,damaged,damage_type,severity)")
    build.add_argument(
        "--manifest",
        metavar="S3_URL",
        help="with --target aws: build inside AWS (a Step Functions Distributed Map) from "
        f"s3://PHOTOS_BUCKET/{upload_keys.REFERENCE_SET_PREFIX}SET/labels.csv, its photos beside it; "
        "shows progress until done. For large sets; the laptop loop (PHOTO_DIR --labels) suits small ones",
    )
    build.add_argument(
        "--state-machine-arn",
        default=os.environ.get("INDEX_BUILD_STATE_MACHINE_ARN"),
        help="with --manifest: the stack's IndexBuildStateMachineArn output "
        "(default: INDEX_BUILD_STATE_MACHINE_ARN)",
    )
    build.add_argument(
        "--batch-size", type=_positive_int, default=32, help="photos embedded at a time (default: 32)"
    )
    build.add_argument(
        "--target",
        choices=["local", "aws"],
        default="local",
        help="local: the in-process index under --data-dir; aws: the OpenSearch Serverless index through "
        "the SageMaker endpoint (AWS_REGION, SAGEMAKER and OPENSEARCH as for the analyse-photo Lambda)",
    )
    build.add_argument("--json", action="store_true", help="print the summary as JSON")

    assess = _add_command(commands, "assess", "assess a vehicle from its photos")
    _add_vehicle_inputs(assess)
    assess.add_argument("--json", action="store_true", help="print the stored record as JSON")

    show = _add_command(commands, "show", "print a stored assessment")
    show.add_argument("assessment_id", help="the id `assess` or `list` printed")
    show.add_argument("--json", action="store_true", help="print the stored record as JSON")

    review = _add_command(commands, "review", "record a person's decision on one photo (revalues, rewrites)")
    review.add_argument("assessment_id", help="the id `assess`, `list` or `reviews` printed")
    review.add_argument("photo_id", help="the photo's id, as `show` prints it in brackets")
    review.add_argument("--damaged", required=True, choices=["yes", "no"], help="does the photo show damage")
    review.add_argument(
        "--type",
        dest="damage_type",
        choices=[t.value for t in DamageType],
        help="damage type (none if --damaged no)",
    )
    review.add_argument(
        "--severity", choices=[s.value for s in Severity], help="severity (none if --damaged no)"
    )
    review.add_argument(
        "--note", help=f"why, for the record (at most {limits.MAX_REVIEW_NOTE_CHARS} characters)"
    )
    review.add_argument(
        "--as-reference", action="store_true", help="add the photo, with this label, to the reference index"
    )
    review.add_argument("--reviewer", help="who decides (default: the OS user)")
    review.add_argument("--json", action="store_true", help="print the updated record as JSON")

    reviews = _add_command(commands, "reviews", "the review queue: assessments with photos awaiting a person")
    reviews.add_argument(
        "--limit",
        type=_positive_int,
        default=limits.DEFAULT_REVIEW_QUEUE_LIMIT,
        help=f"entries, oldest first (default: {limits.DEFAULT_REVIEW_QUEUE_LIMIT}, "
        f"at most {limits.MAX_REVIEW_QUEUE_LIMIT})",
    )
    reviews.add_argument("--json", action="store_true", help="print the queue as JSON")

    listing = _add_command(commands, "list", "list assessments of a vehicle, newest first")
    listing.add_argument("--vin", required=True, help="the vehicle's VIN")
    listing.add_argument(
        "--limit",
        type=_positive_int,
        default=DEFAULT_LIST_LIMIT,
        help=f"assessments per page (default: {DEFAULT_LIST_LIMIT})",
    )
    listing.add_argument("--next", metavar="TOKEN", help="the next page: the token the previous page printed")
    listing.add_argument(
        "--json", action="store_true", help="print {vin, assessments, next_token} as JSON (records in full)"
    )

    submit = _add_command(
        commands,
        "submit",
        "run one assessment on a deployed stack as a yard app does: sign in, create, upload, wait",
    )
    _add_vehicle_inputs(submit)
    submit.add_argument("--json", action="store_true", help="print the final record as JSON")
    add_stack_arguments(submit)

    smoke = _add_command(
        commands,
        "smoke",
        "after a deploy: check each service once, then submit the sample photos end to end",
    )
    add_stack_arguments(smoke)

    serve = _add_command(
        commands,
        "serve",
        "the REST API (the Lambda's routes), photo uploads and the web app on this machine, over local state",
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    serve.add_argument("--port", type=_port, default=8000, help="port (default: 8000; 0: any free one)")
    serve.add_argument(
        "--token",
        help="bearer token every API request must carry (default: VDA_SERVE_TOKEN). Needed when --host "
        "is not a loopback address: without one, a token is generated and printed once",
    )
    serve.add_argument("--base-url", help="the URL clients reach this server at (default: http://HOST:PORT)")
    serve.add_argument(
        "--open",
        action="store_true",
        help="open the web app in the default browser, at the newest assessment (e.g. make demo's)",
    )

    evaluate = _add_command(
        commands, "evaluate", "leave-one-out evaluation of the reference index (metrics, report, plots)"
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
    from vehicle_assessment.adapters.local.openclip_encoder import load_encoder
    from vehicle_assessment.adapters.local.wiring import open_index
    from vehicle_assessment.indexing import read_labels

    if args.manifest is not None:
        return _distributed_index_build(args)
    if args.photo_dir is None or args.labels is None:
        raise CliError(
            "index build needs PHOTO_DIR and --labels (or, on AWS, --target aws --manifest s3://...)",
            EXIT_BAD_INPUT,
        )
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
    try:
        before = index.count()
        return _build_and_report(args, settings, photos, skipped, encoder, index, where)
    except KeyboardInterrupt:
        # Each finished batch is committed on its own, so what was done is kept; rerunning skips it.
        kept = index.count()
        print(
            f"interrupted: {kept - before} photos indexed by this run were kept ({kept} in {where}); "
            "rerun the same command to resume where it stopped",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    finally:
        index.close()


def index_build_runner(state_machine_arn: str) -> Any:
    """The runner on this machine's AWS credentials, in the state machine's region."""
    import boto3

    from vehicle_assessment.aws_runtime.index_build_runner import IndexBuildRunner

    region = state_machine_arn.split(":")[3] if state_machine_arn.count(":") >= 6 else None
    session = boto3.Session(region_name=region or None)
    return IndexBuildRunner(session.client("stepfunctions"), session.client("s3"), state_machine_arn)


def _distributed_index_build(args: argparse.Namespace) -> int:
    """Start the index build on AWS and follow it until it ends (see aws_runtime/index_build_runner.py)."""
    from tqdm import tqdm

    from vehicle_assessment.aws_runtime.index_build_runner import (
        IndexBuildError,
        IndexBuildUnavailable,
        Progress,
    )

    if args.target != "aws":
        raise CliError("--manifest builds the index inside AWS: add --target aws", EXIT_BAD_INPUT)
    if args.photo_dir is not None or args.labels is not None:
        raise CliError(
            "--manifest replaces PHOTO_DIR and --labels: the build reads the photos beside its manifest",
            EXIT_BAD_INPUT,
        )
    if not args.state_machine_arn:
        raise CliError(
            "the index-build state machine is not configured: pass --state-machine-arn or set "
            "INDEX_BUILD_STATE_MACHINE_ARN (the stack output IndexBuildStateMachineArn)",
            EXIT_NOT_READY,
        )
    runner = index_build_runner(args.state_machine_arn)
    try:
        execution_arn = runner.start(args.manifest)
    except IndexBuildUnavailable as exc:
        raise CliError(str(exc), EXIT_NOT_READY) from exc
    except IndexBuildError as exc:
        raise CliError(str(exc), EXIT_BAD_INPUT) from exc
    print(f"started {execution_arn}", file=sys.stderr)
    with tqdm(desc="indexing", unit="row", disable=args.json, file=sys.stderr) as bar:

        def show(progress: Progress) -> None:
            counts = progress.counts
            if counts:
                bar.total = counts["total"]
                done = sum(counts[name] for name in ("succeeded", "failed", "timedOut", "aborted"))
                bar.update(done - bar.n)
            bar.set_postfix_str(f"{progress.status}, {counts.get('failed', 0)} rows in failed batches")

        try:
            outcome = runner.wait(execution_arn, show)
        except KeyboardInterrupt:
            print(
                f"stopped waiting; the build goes on in AWS: {execution_arn} "
                "(aws stepfunctions describe-execution --execution-arn ...)",
                file=sys.stderr,
            )
            return EXIT_INTERRUPTED
        except IndexBuildError as exc:
            raise CliError(f"{exc} (the build goes on in AWS: {execution_arn})", EXIT_NOT_READY) from exc
    summary = {
        "execution": outcome.execution_arn,
        "status": outcome.status,
        "error": outcome.error,
        "rows": outcome.counts,
        "added": outcome.added,
        "already_indexed": outcome.already_indexed,
        "results": outcome.results_url,
        "skipped": [row.model_dump(mode="json") for row in outcome.skipped],
        "failed_batches": [{"error": f.error, "cause": f.cause} for f in outcome.failed_batches],
    }
    if args.json:
        _emit_json(summary)
    else:
        print(
            f"index build {outcome.status}: {outcome.added} added, {outcome.already_indexed} already there, "
            f"{len(outcome.skipped)} skipped, {len(outcome.failed_batches)} failed batches"
        )
        if outcome.error:
            print(f"  error: {outcome.error}")
        print(f"results: {outcome.results_url or '(none written)'}")
        for row in outcome.skipped:
            print(f"  skipped line {row.line} {row.source}: {row.reason}")
        for failed in outcome.failed_batches:
            print(f"  failed batch: {failed.error}: {failed.cause}")
    return EXIT_OK if outcome.status == "SUCCEEDED" else EXIT_FAILED


def _build_and_report(
    args: argparse.Namespace,
    settings: LocalSettings,
    photos: list,
    skipped: list,
    encoder: ImageEncoder,
    index: WritableReferenceIndex,
    where: str,
) -> int:
    from tqdm import tqdm

    from vehicle_assessment.adapters.local.object_store import FilesystemObjectStore
    from vehicle_assessment.indexing import build_index

    # The local index's photos get their display copies in the local object store (`serve` shows them);
    # the AWS target's are written by the distributed build into the bucket.
    display_store = FilesystemObjectStore(settings.objects_dir) if args.target == "local" else None
    warnings = list(getattr(encoder, "warnings", []))
    if encoder.identity.untrained:
        warnings.append(UNTRAINED_ENCODER_WARNING)
    with tqdm(total=len(photos), desc="indexing", unit="photo", disable=args.json, file=sys.stderr) as bar:

        def advance(done: int) -> None:
            bar.update(done)

        report = build_index(
            photos,
            encoder,
            index,
            settings.rules.intake,
            batch_size=args.batch_size,
            progress=advance,
            display_copies=display_store,
        )
    from vehicle_assessment.adapters.local.vector_index import LocalVectorIndex

    if isinstance(index, LocalVectorIndex):  # a large one: its ANN file is built now, not at first search
        index.prepare_search()
    report.skipped[:0] = skipped
    summary = {
        "index": where,
        "encoder": encoder.identity.model_dump(mode="json"),
        "added": report.added,
        "already_indexed": report.already_indexed,
        "total": index.count(),
        "display_copies": report.display_copies,
        "skipped": [{"source": s.source, "reason": s.reason} for s in report.skipped],
        "warnings": warnings,
    }
    if args.json:
        _emit_json(summary)
        return EXIT_OK
    for warning in warnings:
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
        if path.is_dir():
            raise CliError(
                f"photo {path} is a directory: pass the photo files (e.g. {path / '*.jpg'})", EXIT_BAD_INPUT
            )
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
        raise CliError(_input_error(exc), EXIT_BAD_INPUT) from exc
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
    return _report_outcome(assessment, args.json, settings.objects_dir)


def _report_outcome(assessment: Assessment, as_json: bool, objects_dir: Path | None) -> int:
    """Print a finished assessment; its exit code (`assess` and `submit` alike)."""
    if as_json:
        _emit_json(_assessment_json(assessment))
    else:
        print(render_assessment(assessment, objects_dir))
    if assessment.status == AssessmentStatus.INCOMPLETE:
        print(
            f"INCOMPLETE: not every photo arrived before the upload window closed "
            f"(assessment {assessment.assessment_id}); submit again",
            file=sys.stderr,
        )
        return EXIT_FAILED
    if assessment.status == AssessmentStatus.FAILED:
        return EXIT_FAILED
    if assessment.status == AssessmentStatus.NEEDS_PHOTOS:
        print(
            f"NEEDS PHOTOS: no photo could be assessed; see the reasons above, then assess again "
            f"with new photos (assessment {assessment.assessment_id})",
            file=sys.stderr,
        )
        return EXIT_NEEDS_PHOTOS
    return EXIT_OK


def cmd_submit(args: argparse.Namespace, settings: LocalSettings) -> int:
    from vehicle_assessment.aws_runtime.api import CreateAssessmentRequest
    from vehicle_assessment.remote.commands import submit_from_args

    try:
        request = CreateAssessmentRequest(
            vin=args.vin, color=args.color, mileage=args.mileage, estimate_usd=args.estimate
        )
        AssessmentInputs(vin=args.vin, color=args.color, mileage=args.mileage, estimate_usd=args.estimate)
    except ValidationError as exc:
        raise CliError(_input_error(exc), EXIT_BAD_INPUT) from exc
    check_vin(request.vin, date.today())  # refuse a bad VIN before signing in
    return _report_outcome(submit_from_args(args, request, args.photos), args.json, None)


def cmd_smoke(args: argparse.Namespace, settings: LocalSettings) -> int:
    from vehicle_assessment.remote.commands import smoke_from_args
    from vehicle_assessment.remote.smoke import passed, render_table, run_smoke

    results = run_smoke(*smoke_from_args(args))
    print(render_table(results))
    return EXIT_OK if passed(results) else EXIT_REMOTE_UNFINISHED


def cmd_show(args: argparse.Namespace, settings: LocalSettings) -> int:
    from vehicle_assessment.adapters.local.wiring import open_repository

    assessment = open_repository(settings).get(args.assessment_id)
    if args.json:
        _emit_json(_assessment_json(assessment))
    else:
        print(render_assessment(assessment, settings.objects_dir))
    return EXIT_OK


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError) as exc:  # no login name (e.g. a container's unnamed uid)
        raise CliError(f"cannot tell who you are ({exc}); pass --reviewer NAME", EXIT_BAD_INPUT) from exc


def cmd_review(args: argparse.Namespace, settings: LocalSettings) -> int:
    from vehicle_assessment.adapters.local.wiring import build_review_services
    from vehicle_assessment.reviewing import review_photo

    damaged = args.damaged == "yes"
    if damaged and not (args.damage_type and args.severity):
        raise CliError("--damaged yes needs --type and --severity", EXIT_BAD_INPUT)
    # Undamaged needs no type or severity: "none" is the only consistent answer.
    none = None if damaged else "none"
    try:
        review = PhotoReview.model_validate(
            {
                "reviewer": args.reviewer if args.reviewer is not None else _os_user(),
                "reviewed_at": datetime.now(UTC),
                "damaged": damaged,
                "damage_type": args.damage_type or none,
                "severity": args.severity or none,
                "note": args.note,
                "as_reference": args.as_reference,
            }
        )
    except ValidationError as exc:
        raise CliError(_review_error(exc), EXIT_BAD_INPUT) from exc
    saved = review_photo(build_review_services(settings), args.assessment_id, args.photo_id, review)
    if args.json:
        _emit_json(_assessment_json(saved))
    else:
        print(render_assessment(saved, settings.objects_dir))
    return EXIT_OK


_REVIEW_OPTIONS = {
    "reviewer": "--reviewer",
    "note": "--note",
    "damage_type": "--type",
    "severity": "--severity",
}


def _review_error(exc: ValidationError) -> str:
    """One line naming the option and what is wrong; the label's consistency in the options' words."""
    error = exc.errors()[0]
    field = str(error["loc"][0]) if error["loc"] else ""
    reason = str(error["msg"]).removeprefix("Value error, ")
    if field in _REVIEW_OPTIONS:
        return f"{_REVIEW_OPTIONS[field]}: {reason}"
    return f"--damaged/--type/--severity: {reason}"


def cmd_reviews(args: argparse.Namespace, settings: LocalSettings) -> int:
    from vehicle_assessment.adapters.local.wiring import open_repository
    from vehicle_assessment.reviewing import review_queue

    try:
        entries = review_queue(open_repository(settings), args.limit)
    except ValueError as exc:
        raise CliError(f"--limit: {exc}", EXIT_BAD_INPUT) from exc
    if args.json:
        _emit_json({"entries": [e.model_dump(mode="json") for e in entries]})
    else:
        print(render_queue(entries))
    return EXIT_OK


def cmd_list(args: argparse.Namespace, settings: LocalSettings) -> int:
    from vehicle_assessment.adapters.local.wiring import open_repository
    from vehicle_assessment.domain.vin import normalise_vin

    vin = normalise_vin(args.vin)
    try:
        assessments, next_token = open_repository(settings).page_by_vin(vin, args.limit, args.next)
    except ValueError as exc:  # a token this command did not print
        raise CliError(f"--next: {exc}", EXIT_BAD_INPUT) from exc
    if args.json:
        _emit_json(
            {"vin": vin, "assessments": [_assessment_json(a) for a in assessments], "next_token": next_token}
        )
        return EXIT_OK
    print(render_list(assessments))
    if next_token:
        print(
            f"showing {len(assessments)} of more; next page: "
            f"vehicle-assessment list --vin {vin} --limit {args.limit} --next {next_token}"
        )
    return EXIT_OK


def web_app_page(base_url: str, settings: LocalSettings) -> str:
    """The web app's page of the newest assessment in the local database, or its first page."""
    from vehicle_assessment.adapters.local.workflow_repository import SqliteWorkflowRepository
    from vehicle_assessment.ports import AssessmentFilter

    newest = SqliteWorkflowRepository(settings.database_path).list_assessments(AssessmentFilter(), 1)
    if not newest.assessments:
        return f"{base_url}/#/"
    return f"{base_url}/#/assessments/{newest.assessments[0].assessment_id}"


def cmd_serve(args: argparse.Namespace, settings: LocalSettings) -> int:
    import os
    import secrets

    from vehicle_assessment.adapters.local.openclip_encoder import load_encoder
    from vehicle_assessment.adapters.local.wiring import open_index
    from vehicle_assessment.serve.server import is_loopback
    from vehicle_assessment.serve.wiring import TOKEN_ENV, build_server

    token = args.token or os.environ.get(TOKEN_ENV) or None
    generated = token is None and not is_loopback(args.host)
    if generated:
        token = secrets.token_urlsafe(32)
    encoder = load_encoder(settings.encoder)  # weights missing: exit 3 before the port is taken
    for warning in getattr(encoder, "warnings", []):
        print(f"WARNING: {warning}", file=sys.stderr)
    index = open_index(settings)
    try:
        if index.count() == 0:
            print(
                f"WARNING: the reference index at {settings.index_path} is empty: assessments will fail "
                "until `vehicle-assessment index build` has run",
                file=sys.stderr,
            )
    finally:
        index.close()
    try:
        running = build_server(
            settings, args.host, args.port, token=token, encoder=lambda: encoder, base_url=args.base_url
        )
    except OSError as exc:
        raise CliError(
            f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}", EXIT_NOT_READY
        ) from exc
    # Request and worker lines (warnings always; every request with --verbose).
    logging.getLogger("vehicle_assessment").setLevel(logging.INFO if args.verbose else logging.WARNING)
    print(f"serving {running.base_url} (data: {settings.data_dir}); Ctrl-C stops", flush=True)
    page = web_app_page(running.base_url, settings)
    print(f"web app: {page}", flush=True)
    if args.open and not webbrowser.open(page):
        print(f"WARNING: no browser could be opened here; open {page} yourself", file=sys.stderr)
    if generated:
        print(f"API token (send 'Authorization: Bearer <token>'; shown once): {token}", flush=True)
    try:
        running.server.serve_forever()
    except KeyboardInterrupt:
        print("stopping: finishing the assessment in hand", file=sys.stderr)
    finally:
        running.close()
    return EXIT_OK


def cmd_evaluate(args: argparse.Namespace, settings: LocalSettings) -> int:
    from vehicle_assessment.adapters.local.wiring import open_index, open_repository
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
    # Reviewed photos come from the assessment store; without one (never assessed here) there are none,
    # and none is created just to be read.
    reviewed = open_repository(settings).reviewed_assessments() if settings.database_path.is_file() else None
    try:
        if index.count() == 0:
            raise CliError(empty, EXIT_NOT_READY)
        result = evaluate_index(
            index, verdict, args.out or settings.data_dir / "evaluation", reviewed=reviewed
        )
    finally:
        index.close()
    if result.metrics["notice"]:
        print(f"WARNING: {result.metrics['notice']}", file=sys.stderr)
    for warning in result.metrics["sources"]["warnings"]:
        print(f"WARNING: {warning}", file=sys.stderr)
    damaged = result.metrics["damaged"]["accuracy"]
    print(
        f"evaluated {result.metrics['judged']} reference photos (leave-one-out, k={verdict.k}): "
        f"damaged/undamaged accuracy {damaged:.3f}"
    )
    agreement = result.metrics["agreement"]
    if agreement and agreement["photos"]:
        ece = agreement["expected_calibration_error"]
        print(
            f"agreement with reviewers on {agreement['photos']} reviewed photos: "
            f"{agreement['damaged_agreement']:.3f} (expected calibration error {ece:.3f})"
        )
    else:
        print("agreement with reviewers: no reviewed photo with a model verdict yet")
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
        "review": cmd_review,
        "reviews": cmd_reviews,
        "list": cmd_list,
        "evaluate": cmd_evaluate,
        "submit": cmd_submit,
        "smoke": cmd_smoke,
        "serve": cmd_serve,
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
    except (AssessmentNotFound, ReviewRefused) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except ConcurrentUpdate as exc:
        print(f"error: {exc}; other changes kept arriving, run it again", file=sys.stderr)
        return EXIT_NOT_READY
    except (EncoderUnavailable, IndexMismatch, StateFileUnusable) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_NOT_READY
    except RemoteError as exc:
        return _remote_error(exc)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def _remote_error(exc: RemoteError) -> int:
    from vehicle_assessment.remote.client import ApiError
    from vehicle_assessment.remote.submit import BadPhoto, WaitTimedOut

    print(f"error: {exc}", file=sys.stderr)
    if isinstance(exc, WaitTimedOut):
        return EXIT_REMOTE_UNFINISHED
    if isinstance(exc, BadPhoto) or (isinstance(exc, ApiError) and exc.status in (400, 404, 413, 422)):
        return EXIT_BAD_INPUT
    return EXIT_NOT_READY  # the stack, Cognito or the API could not be used


if __name__ == "__main__":
    sys.exit(main())
