"""`index build --target aws --manifest s3://…`: start the distributed build and follow it, against a
Step Functions client under botocore's Stubber (moto has no Map Runs) and the results in moto S3."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber

from vehicle_assessment import cli
from vehicle_assessment.aws_runtime.index_build import BatchResult, SkippedRow
from vehicle_assessment.aws_runtime.index_build_runner import IndexBuildRunner, execution_name

REGION = "us-east-1"
ACCOUNT = "123456789012"
BUCKET = "photos-bucket"
MACHINE = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:IndexBuildStateMachine"
EXECUTION = f"arn:aws:states:{REGION}:{ACCOUNT}:execution:IndexBuildStateMachine:run-1"
RUN_ID = "0e6fd2a7-0000-4000-8000-000000000001"
MAP_RUN = f"arn:aws:states:{REGION}:{ACCOUNT}:mapRun:IndexBuildStateMachine/IndexPhotos:{RUN_ID}"
MANIFEST_URL = f"s3://{BUCKET}/reference-sets/set-1/labels.csv"
DEFINITION = json.dumps(
    {
        "StartAt": "IndexPhotos",
        "States": {
            "IndexPhotos": {
                "Type": "Map",
                "ItemReader": {
                    "Resource": "arn:aws:states:::s3:getObject",
                    "ReaderConfig": {"InputType": "CSV", "CSVHeaderLocation": "FIRST_ROW"},
                    "Parameters": {"Bucket": BUCKET, "Key.$": "$.manifest_key"},
                },
                "End": True,
            }
        },
    }
)
DATE = "2026-11-27T12:00:00Z"


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, Stubber, list[float]]]:
    from moto import mock_aws

    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("INDEX_BUILD_STATE_MACHINE_ARN", raising=False)
    with mock_aws():
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket=BUCKET)
        sfn = boto3.client("stepfunctions", region_name=REGION)
        stubber = Stubber(sfn)
        stubber.activate()
        slept: list[float] = []

        def runner(arn: str) -> IndexBuildRunner:
            assert arn == MACHINE
            return IndexBuildRunner(sfn, s3, arn, poll_interval_s=7, sleep=slept.append)

        monkeypatch.setattr(cli, "index_build_runner", runner)
        yield s3, stubber, slept
        stubber.deactivate()


def counts(done: int, total: int = 32, failed: int = 0) -> dict[str, int]:
    return {
        "pending": total - done,
        "running": 0,
        "succeeded": done - failed,
        "failed": failed,
        "timedOut": 0,
        "aborted": 0,
        "total": total,
        "resultsWritten": done,
        "failuresNotRedrivable": 0,
        "pendingRedrive": 0,
    }


def describe_execution(status: str, output: dict[str, Any] | None = None, **extra: str) -> dict[str, Any]:
    answer = {
        "executionArn": EXECUTION,
        "stateMachineArn": MACHINE,
        "status": status,
        "startDate": DATE,
        **extra,
    }
    if output is not None:
        answer["output"] = json.dumps(output)
    return answer


def describe_map_run(item_counts: dict[str, int]) -> dict[str, Any]:
    return {
        "mapRunArn": MAP_RUN,
        "executionArn": EXECUTION,
        "status": "RUNNING",
        "startDate": DATE,
        "maxConcurrency": 8,
        "toleratedFailurePercentage": 5.0,
        "toleratedFailureCount": 0,
        "itemCounts": item_counts,
        "executionCounts": item_counts,
    }


def expect_describe_machine(stubber: Stubber) -> None:
    stubber.add_response(
        "describe_state_machine",
        {
            "stateMachineArn": MACHINE,
            "name": "IndexBuildStateMachine",
            "definition": DEFINITION,
            "roleArn": f"arn:aws:iam::{ACCOUNT}:role/machine",
            "type": "STANDARD",
            "creationDate": DATE,
        },
        {"stateMachineArn": MACHINE},
    )


def expect_start(stubber: Stubber) -> None:
    expect_describe_machine(stubber)
    stubber.add_response(
        "start_execution",
        {"executionArn": EXECUTION, "startDate": DATE},
        {
            "stateMachineArn": MACHINE,
            "name": ANY,
            "input": json.dumps({"manifest_key": "reference-sets/set-1/labels.csv"}),
        },
    )


def expect_poll(stubber: Stubber, status: str, item_counts: dict[str, int] | None) -> None:
    stubber.add_response("describe_execution", describe_execution(status), {"executionArn": EXECUTION})
    runs = (
        []
        if item_counts is None
        else [
            {"executionArn": EXECUTION, "mapRunArn": MAP_RUN, "stateMachineArn": MACHINE, "startDate": DATE}
        ]
    )
    stubber.add_response("list_map_runs", {"mapRuns": runs}, {"executionArn": EXECUTION})
    if item_counts is not None:
        stubber.add_response("describe_map_run", describe_map_run(item_counts), {"mapRunArn": MAP_RUN})


def write_results(s3: Any, succeeded: list[BatchResult], failed: list[dict[str, str]]) -> str:
    folder = f"index-builds/{RUN_ID}"
    files: dict[str, list[dict[str, Any]]] = {"FAILED": [], "PENDING": [], "SUCCEEDED": []}
    if succeeded:
        entries = [
            {"ExecutionArn": f"{EXECUTION}/{i}", "Status": "SUCCEEDED", "Output": r.model_dump_json()}
            for i, r in enumerate(succeeded)
        ]
        s3.put_object(Bucket=BUCKET, Key=f"{folder}/SUCCEEDED_0.json", Body=json.dumps(entries))
        files["SUCCEEDED"].append({"Key": f"{folder}/SUCCEEDED_0.json", "Size": 1})
    if failed:
        s3.put_object(Bucket=BUCKET, Key=f"{folder}/FAILED_0.json", Body=json.dumps(failed))
        files["FAILED"].append({"Key": f"{folder}/FAILED_0.json", "Size": 1})
    manifest = {"DestinationBucket": BUCKET, "MapRunArn": MAP_RUN, "ResultFiles": files}
    s3.put_object(Bucket=BUCKET, Key=f"{folder}/manifest.json", Body=json.dumps(manifest))
    return f"{folder}/manifest.json"


def run(capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, str, str]:
    code = cli.main(
        [
            "index",
            "build",
            "--target",
            "aws",
            "--manifest",
            MANIFEST_URL,
            "--state-machine-arn",
            MACHINE,
            *extra,
        ]
    )
    out, err = capsys.readouterr()
    return code, out, err


def test_the_cli_starts_the_build_follows_its_map_run_and_sums_the_batches(aws, capsys) -> None:
    s3, stubber, slept = aws
    results_key = write_results(
        s3,
        [
            BatchResult(
                rows=16,
                added=15,
                skipped=[SkippedRow(line=7, source="reference-sets/set-1/x.jpg", reason="blurry")],
            ),
            BatchResult(
                rows=16,
                added=10,
                already_indexed=5,
                skipped=[SkippedRow(line=20, source="y", reason="empty path")],
            ),
        ],
        [],
    )
    expect_start(stubber)
    expect_poll(stubber, "RUNNING", None)  # the manifest is still being read: no Map Run yet
    expect_poll(stubber, "RUNNING", counts(16))
    expect_poll(stubber, "SUCCEEDED", counts(32))
    output = {"MapRunArn": MAP_RUN, "ResultWriterDetails": {"Bucket": BUCKET, "Key": results_key}}
    stubber.add_response(
        "describe_execution", describe_execution("SUCCEEDED", output), {"executionArn": EXECUTION}
    )

    code, out, err = run(capsys, "--json")

    stubber.assert_no_pending_responses()
    assert code == cli.EXIT_OK
    assert slept == [7, 7]  # polled until the execution ended, never after
    summary = json.loads(out)
    assert summary["status"] == "SUCCEEDED" and summary["results"] == f"s3://{BUCKET}/{results_key}"
    assert (summary["added"], summary["already_indexed"]) == (25, 5)
    assert [row["line"] for row in summary["skipped"]] == [7, 20]
    assert summary["rows"]["succeeded"] == 32 and summary["failed_batches"] == []
    assert f"started {EXECUTION}" in err


def test_a_failed_build_lists_its_failed_batches_and_exits_failed(aws, capsys) -> None:
    s3, stubber, _ = aws
    write_results(
        s3,
        [BatchResult(rows=16, added=16)],
        [
            {
                "ExecutionArn": f"{EXECUTION}/1",
                "Status": "FAILED",
                "Error": "EncoderUnavailable",
                "Cause": "endpoint down",
            }
        ],
    )
    expect_start(stubber)
    expect_poll(stubber, "FAILED", counts(32, failed=16))
    # A failed Map Run leaves the execution without output: its results are found by the run's id.
    stubber.add_response(
        "describe_execution",
        describe_execution(
            "FAILED", error="States.ExceedToleratedFailureThreshold", cause="too many failures"
        ),
        {"executionArn": EXECUTION},
    )
    expect_describe_machine(stubber)

    code, out, _ = run(capsys)

    stubber.assert_no_pending_responses()
    assert code == cli.EXIT_FAILED
    assert "index build FAILED: 16 added, 0 already there, 0 skipped, 1 failed batches" in out
    assert "States.ExceedToleratedFailureThreshold too many failures" in out
    assert "failed batch: EncoderUnavailable: endpoint down" in out
    assert f"results: s3://{BUCKET}/index-builds/{RUN_ID}/manifest.json" in out


@pytest.mark.parametrize(
    ("manifest", "message"),
    [
        ("s3://other-bucket/reference-sets/set-1/labels.csv", "copy the reference set"),
        (f"s3://{BUCKET}/elsewhere/labels.csv", "must lie under reference-sets/"),
        ("/local/labels.csv", "must be an s3:// URL"),
    ],
)
def test_a_manifest_the_build_cannot_read_is_refused_before_starting(aws, capsys, manifest, message) -> None:
    _, stubber, _ = aws
    if "other-bucket" in manifest:
        expect_describe_machine(stubber)  # where the deployed map reads from; nothing starts
    code = cli.main(
        ["index", "build", "--target", "aws", "--manifest", manifest, "--state-machine-arn", MACHINE]
    )
    _, err = capsys.readouterr()
    stubber.assert_no_pending_responses()
    assert code == cli.EXIT_BAD_INPUT and message in err


def test_manifest_usage_errors(aws, capsys) -> None:
    assert cli.main(["index", "build", "--manifest", MANIFEST_URL, "--state-machine-arn", MACHINE]) == 2
    assert "add --target aws" in capsys.readouterr().err
    assert cli.main(["index", "build", "--target", "aws", "--manifest", MANIFEST_URL]) == cli.EXIT_NOT_READY
    assert "INDEX_BUILD_STATE_MACHINE_ARN" in capsys.readouterr().err
    code = cli.main(["index", "build", "somewhere", "--target", "aws", "--manifest", MANIFEST_URL])
    assert code == 2 and "replaces PHOTO_DIR" in capsys.readouterr().err
    assert cli.main(["index", "build", "photos"]) == 2
    assert "needs PHOTO_DIR and --labels" in capsys.readouterr().err


def test_a_refused_start_is_reported_without_a_traceback(aws, capsys) -> None:
    _, stubber, _ = aws
    expect_describe_machine(stubber)
    stubber.add_client_error("start_execution", "AccessDeniedException", "not allowed", 400)

    code, _, err = run(capsys)

    assert code == cli.EXIT_NOT_READY
    assert err.strip() == "error: starting the index build failed: AccessDeniedException: not allowed"


def test_execution_names_say_which_set_and_when_within_the_limits() -> None:
    from datetime import UTC, datetime

    now = datetime(2026, 11, 27, 12, 0, 5, tzinfo=UTC)
    assert execution_name("reference-sets/2026-11/labels.csv", now) == "2026-11-20261127T120005Z"
    assert execution_name("reference-sets/a b/ç/labels.csv", now) == "a-b-20261127T120005Z"
    long = execution_name(f"reference-sets/{'x' * 200}/labels.csv", now)
    assert len(long) == 80 and long.endswith("-20261127T120005Z")
