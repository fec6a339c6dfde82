"""`vehicle-assessment index build --target aws --manifest s3://…`: start the distributed index build
(infra/constructs/index_build.py), follow its Map Run until it ends, and sum what its batches reported.

Progress comes from DescribeExecution (the execution's status) and DescribeMapRun's ``itemCounts``
(pending, running, succeeded, failed, timedOut, aborted, total: manifest rows, not batches). When
the execution ends, its output names the Map Run's results (``ResultWriterDetails``: the bucket and
the key of its ``manifest.json``); that manifest lists the ``SUCCEEDED_n.json`` / ``FAILED_n.json``
files, whose entries carry each child execution's Output (a batch result) or its Error and Cause
(Step Functions developer guide, "ResultWriter (Map)").
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from vehicle_assessment.adapters.aws.clients import one_line_reason
from vehicle_assessment.adapters.aws.errors import error_code
from vehicle_assessment.aws_runtime.index_build import BatchResult, SkippedRow
from vehicle_assessment.domain import upload_keys

# The Distributed Map state's name in the definition (infra/constructs/index_build.py MAP_STATE).
MAP_STATE = "IndexPhotos"
FINAL_STATUSES = {"SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"}
ITEM_COUNTS = ("pending", "running", "succeeded", "failed", "timedOut", "aborted", "total")


class IndexBuildError(Exception):
    """The build cannot be started as asked (a manifest it cannot read); the message says why."""


class IndexBuildUnavailable(IndexBuildError):
    """Step Functions or S3 refused or failed a call (credentials, permissions, a wrong ARN)."""


def _aws_call(what: str, call: Callable[..., Any], **kwargs: Any) -> Any:
    """One AWS call; botocore has retried it when this raises."""
    try:
        return call(**kwargs)
    except (ClientError, BotoCoreError) as exc:
        raise IndexBuildUnavailable(f"{what} failed: {one_line_reason(exc)}") from exc


def parse_manifest_url(url: str) -> tuple[str, str]:
    """``s3://bucket/reference-sets/<set>/labels.csv`` → (bucket, key), checked."""
    if not url.startswith("s3://"):
        raise IndexBuildError(f"--manifest must be an s3:// URL, got {url!r}")
    bucket, _, key = url.removeprefix("s3://").partition("/")
    if not bucket or not key or key.endswith("/"):
        raise IndexBuildError(f"--manifest must name an object, s3://BUCKET/KEY, got {url!r}")
    if not key.startswith(upload_keys.REFERENCE_SET_PREFIX):
        raise IndexBuildError(
            f"the manifest must lie under {upload_keys.REFERENCE_SET_PREFIX} of the photos bucket (only "
            f"there may the build read), got s3://{bucket}/{key}"
        )
    return bucket, key


def execution_name(manifest_key: str, now: datetime) -> str:
    """``<set>-<UTC time>``: which set a run built, and when; unique per second, so a rerun is a new
    execution. Names are 1-80 characters of letters, digits, ``-`` and ``_`` (StartExecution, "name")."""
    folder = manifest_key.removeprefix(upload_keys.REFERENCE_SET_PREFIX).rsplit("/", 1)[0]
    slug = re.sub(r"[^A-Za-z0-9_-]+", "-", folder).strip("-") or "set"
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    return f"{slug[: 80 - len(stamp) - 1]}-{stamp}"


@dataclass
class Progress:
    status: str
    counts: dict[str, int] = field(default_factory=dict)  # the Map Run's itemCounts (manifest rows)
    map_run_arn: str | None = None


@dataclass
class FailedBatch:
    error: str
    cause: str


@dataclass
class BuildOutcome:
    execution_arn: str
    status: str
    counts: dict[str, int]
    results_url: str | None = None  # the Map Run's manifest.json
    added: int = 0
    already_indexed: int = 0
    skipped: list[SkippedRow] = field(default_factory=list)
    failed_batches: list[FailedBatch] = field(default_factory=list)
    error: str | None = None  # the execution's own error, when it did not succeed


class IndexBuildRunner:
    """Starts and follows index-build executions; ``sfn`` and ``s3`` are boto3 clients."""

    def __init__(
        self,
        sfn: Any,
        s3: Any,
        state_machine_arn: str,
        *,
        poll_interval_s: float = 10.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.sfn = sfn
        self.s3 = s3
        self.state_machine_arn = state_machine_arn
        self.poll_interval_s = poll_interval_s
        self.sleep = sleep

    def manifest_bucket(self) -> str:
        """The bucket the deployed Distributed Map reads manifests from (its ItemReader's Bucket)."""
        machine = _aws_call(
            "describing the index-build state machine",
            self.sfn.describe_state_machine,
            stateMachineArn=self.state_machine_arn,
        )
        try:
            reader = json.loads(machine["definition"])["States"][MAP_STATE]["ItemReader"]
            return str(reader["Parameters"]["Bucket"])
        except (KeyError, ValueError, TypeError) as exc:
            raise IndexBuildError(
                f"{self.state_machine_arn} is not the index-build state machine "
                f"(no {MAP_STATE} state reading from S3)"
            ) from exc

    def start(self, manifest_url: str) -> str:
        bucket, key = parse_manifest_url(manifest_url)
        expected = self.manifest_bucket()
        if bucket != expected:
            raise IndexBuildError(
                f"the build reads manifests from s3://{expected}/{upload_keys.REFERENCE_SET_PREFIX} only: "
                f"copy the reference set (labels.csv and its photos) there, e.g. `aws s3 sync <folder> "
                f"s3://{expected}/{upload_keys.REFERENCE_SET_PREFIX}<set>/`"
            )
        started = _aws_call(
            "starting the index build",
            self.sfn.start_execution,
            stateMachineArn=self.state_machine_arn,
            name=execution_name(key, datetime.now(UTC)),
            input=json.dumps({"manifest_key": key}),
        )
        return str(started["executionArn"])

    def progress(self, execution_arn: str) -> Progress:
        execution = _aws_call("following the build", self.sfn.describe_execution, executionArn=execution_arn)
        progress = Progress(status=execution["status"])
        runs = _aws_call("listing its Map Run", self.sfn.list_map_runs, executionArn=execution_arn)
        if runs.get("mapRuns"):  # none until the Map state has read the manifest
            progress.map_run_arn = runs["mapRuns"][0]["mapRunArn"]
            map_run = _aws_call(
                "reading its Map Run", self.sfn.describe_map_run, mapRunArn=progress.map_run_arn
            )
            counts = map_run["itemCounts"]
            progress.counts = {name: int(counts.get(name, 0)) for name in ITEM_COUNTS}
        return progress

    def wait(self, execution_arn: str, on_progress: Callable[[Progress], None] | None = None) -> BuildOutcome:
        """Poll until the execution ends (Ctrl-C stops waiting, not the build), then read its results."""
        while True:
            progress = self.progress(execution_arn)
            if on_progress is not None:
                on_progress(progress)
            if progress.status in FINAL_STATUSES:
                break
            self.sleep(self.poll_interval_s)
        return self.outcome(execution_arn, progress)

    def outcome(self, execution_arn: str, progress: Progress) -> BuildOutcome:
        execution = _aws_call("following the build", self.sfn.describe_execution, executionArn=execution_arn)
        outcome = BuildOutcome(execution_arn, execution["status"], progress.counts)
        if execution["status"] != "SUCCEEDED":
            outcome.error = " ".join(filter(None, [execution.get("error"), execution.get("cause")])) or None
        details = json.loads(execution.get("output") or "{}").get("ResultWriterDetails")
        if details is None:
            # A failed Map Run writes its results too, but the execution's output is then empty: find
            # them from the Map Run's ARN (the results folder is named after the Map Run's id).
            details = self._results_of_failed_run(progress.map_run_arn)
        if details is None:
            return outcome
        outcome.results_url = f"s3://{details['Bucket']}/{details['Key']}"
        self._read_results(details["Bucket"], details["Key"], outcome)
        return outcome

    def _results_of_failed_run(self, map_run_arn: str | None) -> dict[str, str] | None:
        if map_run_arn is None:
            return None
        run_id = map_run_arn.rsplit(":", 1)[-1]
        bucket = self.manifest_bucket()
        key = f"{upload_keys.INDEX_BUILD_RESULTS_PREFIX}{run_id}/manifest.json"
        try:
            self.s3.head_object(Bucket=bucket, Key=key)
        except ClientError as exc:
            if error_code(exc) in {"404", "NoSuchKey", "NotFound"}:
                return None  # the run wrote nothing (e.g. the manifest could not be read)
            raise IndexBuildError(
                f"looking for the build's results at s3://{bucket}/{key} failed: {exc}"
            ) from exc
        return {"Bucket": bucket, "Key": key}

    def _read_json(self, bucket: str, key: str) -> Any:
        answer = _aws_call(
            f"reading the build's results at s3://{bucket}/{key}", self.s3.get_object, Bucket=bucket, Key=key
        )
        with answer["Body"] as body:
            return json.loads(body.read())

    def _read_results(self, bucket: str, key: str, outcome: BuildOutcome) -> None:
        manifest = self._read_json(bucket, key)
        files = manifest.get("ResultFiles", {})
        for entry in files.get("SUCCEEDED", []):
            for child in self._read_json(bucket, entry["Key"]):
                result = BatchResult.model_validate_json(child["Output"])
                outcome.added += result.added
                outcome.already_indexed += result.already_indexed
                outcome.skipped.extend(result.skipped)
        for entry in files.get("FAILED", []):
            for child in self._read_json(bucket, entry["Key"]):
                outcome.failed_batches.append(
                    FailedBatch(error=str(child.get("Error", "")), cause=str(child.get("Cause", "")))
                )
        outcome.skipped.sort(key=lambda row: row.line)
