"""End to end: the SYNTHESIZED index-build state machine, executed by moto (its Distributed Map reads
the CSV manifest from moto S3, selects each row, writes its results), each child run by the REAL
handler (moto's Lambda invocation routed to it, as in test_workflow_e2e.py), writing into the
OpenSearch fake over HTTP; then the CLI's runner follows the execution and reads the results.

moto (5.2) falls short of the service in two ways, worked around here and covered elsewhere:
  * its ASL parser does not know ``ItemBatcher``: the harness removes it from the definition and hands
    each child's item to the handler as ItemBatcher would, ``{"Items": [item]}`` (one-row batches); the
    batcher is checked against the template (test_index_build.py) and by asl-validator;
  * its ResultWriter writes the Map Run's ``manifest.json`` but no ``SUCCEEDED_n.json`` files, so the
    batches' outputs are recorded as the harness returns them; the runner's summing of result files
    is tested against the documented format (tests/cli/test_cli_index_build_aws.py).
"""

from __future__ import annotations

import csv
import io
import json
import time
import zipfile
from collections.abc import Iterator
from typing import Any

import pytest

from tests.aws_runtime.conftest import FakeEncoder
from tests.aws_runtime.test_index_build_batch import (  # noqa: F401 (stored_index: a fixture)
    IDENTITY,
    INDEX,
    photo_bytes,
    stored_index,
)
from tests.infra.cfn import ACCOUNT, REGION, placeholder, resources_of, state_machine_definition
from tests.infra.test_workflow_e2e import TERMINAL, _invoke_real_handler
from vehicle_assessment.domain import upload_keys

pytestmark = [pytest.mark.slow, pytest.mark.allow_hosts(["127.0.0.1"])]

BUCKET = "e2e-photos"
SET = f"{upload_keys.REFERENCE_SET_PREFIX}set-1"


class BuildHarness:
    def __init__(self, template: dict[str, Any]) -> None:
        import boto3

        self.template = template
        self.s3 = boto3.client("s3", region_name=REGION)
        self.sfn = boto3.client("stepfunctions", region_name=REGION)
        self.lambda_ = boto3.client("lambda", region_name=REGION)
        self.iam = boto3.client("iam", region_name=REGION)

    def deploy(self) -> None:
        self.s3.create_bucket(Bucket=BUCKET)
        role = self.iam.create_role(RoleName="e2e-lambda", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
        archive = io.BytesIO()
        with zipfile.ZipFile(archive, "w") as zf:
            zf.writestr("placeholder.py", "")  # never run: invocations go to the real handler
        arns: dict[str, str] = {}
        for logical_id, alias in resources_of(self.template, "AWS::Lambda::Alias").items():
            function = alias["Properties"]["FunctionName"]["Ref"]
            handler = self.template["Resources"][function]["Properties"]["Handler"]
            if handler != "functions.index_build_batch.handler":
                continue
            self.lambda_.create_function(
                FunctionName=function,
                Runtime="python3.12",
                Role=role,
                Handler=handler,
                Code={"ZipFile": archive.getvalue()},
            )
            version = self.lambda_.publish_version(FunctionName=function)["Version"]
            arns[logical_id] = self.lambda_.create_alias(
                FunctionName=function, Name=alias["Properties"]["Name"], FunctionVersion=version
            )["AliasArn"]
        [bucket_id] = [
            k for k in resources_of(self.template, "AWS::S3::Bucket") if k.startswith("IngestUploads")
        ]
        fallback = placeholder(self.template)

        def resolver(logical_id: str, attribute: str) -> str:
            if logical_id == bucket_id and attribute == "Ref":
                return BUCKET
            return arns.get(logical_id) or fallback(logical_id, attribute)

        definition = json.loads(state_machine_definition(self.template, resolver, construct="IndexBuild"))
        photos = definition["States"]["IndexPhotos"]
        assert photos.pop("ItemBatcher")  # moto cannot parse it (above)
        # moto's grammar takes the percentage as a decimal number only ("5.0"); AWS takes 5 as well.
        photos["ToleratedFailurePercentage"] = float(photos["ToleratedFailurePercentage"])
        self.machine_arn = self.sfn.create_state_machine(
            name="e2e-index-build",
            definition=json.dumps(definition),
            roleArn=f"arn:aws:iam::{ACCOUNT}:role/e2e-sfn",
        )["stateMachineArn"]

    def upload_set(self, rows: list[dict[str, str]], photos: dict[str, bytes]) -> str:
        for path, data in photos.items():
            self.s3.put_object(Bucket=BUCKET, Key=f"{SET}/{path}", Body=data)
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=["path", "damaged", "damage_type", "severity"])
        writer.writeheader()
        writer.writerows(rows)
        self.s3.put_object(Bucket=BUCKET, Key=f"{SET}/labels.csv", Body=text.getvalue().encode())
        return f"s3://{BUCKET}/{SET}/labels.csv"


@pytest.fixture
def build(template_json: dict[str, Any], stored_index, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:  # noqa: F811
    from moto import mock_aws
    from moto.awslambda_simple.models import LambdaSimpleBackend

    from functions import container_cache, index_build_batch

    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        "POWERTOOLS_TRACE_DISABLED": "true",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)

    outputs: list[dict[str, Any]] = []

    def invoke_as_batch(self: Any, function_name: str, qualifier: Any, body: Any, *args: Any) -> bytes:
        event = json.loads(body)
        batch = event if "Items" in event else {"Items": [event]}  # what ItemBatcher would hand over
        answer = _invoke_real_handler(self, function_name, qualifier, json.dumps(batch), *args)
        outputs.append(json.loads(answer))
        return answer

    monkeypatch.setattr(LambdaSimpleBackend, "invoke", invoke_as_batch)
    stored, index = stored_index
    encoder = FakeEncoder()
    # The endpoint reports its weights' fingerprint; the index (as the stack creates it) records the
    # configured identity without one, and the first batch claims it.
    encoder.identity = IDENTITY
    monkeypatch.setattr(index_build_batch, "get_encoder", lambda: encoder)
    monkeypatch.setattr(index_build_batch, "get_index", lambda: index)
    container_cache.reset_all()
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": False}}):
        harness = BuildHarness(template_json)
        harness.deploy()
        [fn] = [
            f
            for f in resources_of(template_json, "AWS::Lambda::Function").values()
            if f["Properties"].get("Handler") == "functions.index_build_batch.handler"
        ]
        monkeypatch.setenv("BUCKET_NAME", BUCKET)
        monkeypatch.setenv(
            "SAGEMAKER", json.dumps({"endpoint_name": "e2e", "identity": encoder.identity.model_dump()})
        )
        monkeypatch.setenv(
            "OPENSEARCH", json.dumps({"collection_endpoint": "e2e.aoss.test", "index_name": INDEX})
        )
        assert set(fn["Properties"]["Environment"]["Variables"]) >= {"BUCKET_NAME", "SAGEMAKER", "OPENSEARCH"}
        yield harness, stored, outputs
    container_cache.reset_all()


def _run(harness: BuildHarness, manifest_url: str) -> Any:
    from vehicle_assessment.aws_runtime.index_build_runner import IndexBuildRunner

    runner = IndexBuildRunner(
        harness.sfn, harness.s3, harness.machine_arn, poll_interval_s=0.1, sleep=time.sleep
    )
    execution = runner.start(manifest_url)
    # moto's worker sets up its environment on a thread of its own; ListMapRuns before that fails.
    time.sleep(1.0)
    seen: list[str] = []
    outcome = runner.wait(execution, lambda progress: seen.append(progress.status))
    assert seen[-1] in TERMINAL
    return outcome


def _summed(outputs: list[dict[str, Any]]) -> tuple[int, int, list[tuple[int, str]]]:
    from vehicle_assessment.aws_runtime.index_build import BatchResult

    results = [BatchResult.model_validate(output) for output in outputs]
    skipped = sorted((row.line, row.reason) for result in results for row in result.skipped)
    return sum(r.added for r in results), sum(r.already_indexed for r in results), skipped


def test_the_synthesized_build_indexes_a_manifest_and_a_rerun_adds_nothing(build) -> None:
    harness, stored, outputs = build
    dent = {"damaged": "true", "damage_type": "dent", "severity": "moderate"}
    clean = {"damaged": "false", "damage_type": "none", "severity": "none"}
    photos = {f"dents/{n}.jpg": photo_bytes("damaged_0003_JPEG.jpg", variant=n) for n in range(1, 20)}
    photos["clean/white.jpg"] = photo_bytes("undamaged_white_6150526860_fd9cd2c04c_b.jpg")
    rows = [{"path": path, **dent} for path in photos if path.startswith("dents/")]
    rows += [{"path": "clean/white.jpg", **clean}, {"path": "missing.jpg", **dent}]
    manifest = harness.upload_set(rows, photos)

    first = _run(harness, manifest)

    assert first.status == "SUCCEEDED", first.error
    assert first.counts["succeeded"] == first.counts["total"] == 21  # every manifest row, header excluded
    assert first.results_url is not None and first.results_url.startswith(
        f"s3://{BUCKET}/{upload_keys.INDEX_BUILD_RESULTS_PREFIX}"
    )
    assert _summed(outputs) == (20, 0, [(22, f"no object at s3://{BUCKET}/{SET}/missing.jpg")])
    assert len(stored.documents) == 20
    for document in stored.documents:
        key = upload_keys.reference_image_key(document["sha256"])
        assert harness.s3.head_object(Bucket=BUCKET, Key=key)["ContentType"] == "image/jpeg"
    outputs.clear()

    again = _run(harness, manifest)

    assert again.status == "SUCCEEDED"
    assert _summed(outputs) == (0, 20, [(22, f"no object at s3://{BUCKET}/{SET}/missing.jpg")])
    assert len(stored.documents) == 20
