"""Hostile S3 events and queue messages against the upload trigger (moto S3, DynamoDB, Step Functions).

Every case asserts what was recorded (the assessment's photos and rejections, or an orphan item),
that every uploaded object is accounted for in exactly one place, and whether a workflow started.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote_plus

import pytest
from boto3.dynamodb.types import TypeSerializer

from functions import upload_trigger
from tests.aws_runtime.conftest import BUCKET, NOW, VIN, Aws, s3_notification, sqs_event
from tests.aws_runtime.observed import Observed
from vehicle_assessment.adapters.aws.dynamodb import DynamoAssessmentRepository
from vehicle_assessment.adapters.aws.s3_object_probe import S3ObjectProbe
from vehicle_assessment.aws_runtime import api
from vehicle_assessment.aws_runtime.uploads import (
    UploadedObject,
    UploadResultKind,
    UploadRules,
    UploadServices,
    handle_upload,
    incoming_assessment_id,
    open_assessment,
)
from vehicle_assessment.domain import limits
from vehicle_assessment.domain.models import AssessmentInputs
from vehicle_assessment.ports import ObjectHead

GIF = b"GIF89a not a photo we take"


def _event_key(key: str) -> str:
    """A key as S3 writes it into an event: URL-encoded, spaces as '+'."""
    return quote_plus(key, safe="/")


def _deliver(aws: Aws, context: Any, key: str, data: bytes, metadata: dict[str, str] | None = None) -> dict:
    aws.put_photo(key, data, metadata)
    return upload_trigger.handler(sqs_event([s3_notification(_event_key(key), len(data))]), context)


def _items(aws: Aws) -> list[dict[str, Any]]:
    return aws.table.scan(ConsistentRead=True)["Items"]


def _places(aws: Aws, key: str) -> list[str]:
    """Where the table records an uploaded object: counted photo, rejection on an assessment, orphan."""
    found = []
    for item in _items(aws):
        if item.get("entity") == "orphan_upload" and item["object_key"] == key:
            found.append(f"orphan:{item.get('assessment_id')}")
        if item.get("entity") == "assessment":
            if any(u.get("object_key") == key for u in item.get("uploads", {}).values()):
                found.append(f"photo:{item['assessment_id']}")
            if key in item.get("rejected_uploads", {}):
                found.append(f"rejected:{item['assessment_id']}")
    return found


def _reason(aws: Aws, key: str) -> str:
    for item in _items(aws):
        if item.get("entity") == "orphan_upload" and item["object_key"] == key:
            return item["reason"]
        if key in item.get("rejected_uploads", {}):
            return item["rejected_uploads"][key]["reason"]
    raise AssertionError(f"{key!r} is recorded nowhere")


def _open(repository: DynamoAssessmentRepository, assessment_id: str, expected: int) -> None:
    assert repository.create(open_assessment(AssessmentInputs(vin=VIN), expected, NOW, assessment_id))


def _consistent(repository: DynamoAssessmentRepository, assessment_id: str) -> int:
    """The counter and the document agree: every counted photo is a photo the workflow will analyse."""
    received = repository.upload_progress(assessment_id).received
    assert len(repository.get(assessment_id).photos) == received
    return received


# --- keys outside the grammar are refused at the door ------------------------------------------

INCOMING = f"incoming/{VIN}"
HOSTILE_KEYS = [
    # (key, where it must be recorded, a fragment of the reason)
    ("uploads/h1/1.gif", "rejected:h1", "{n}.jpg"),
    ("uploads/h1/0.jpg", "rejected:h1", "{n}.jpg"),
    ("uploads/h1/21.jpg", "rejected:h1", "{n}.jpg"),
    ("uploads/h1/01.jpg", "rejected:h1", "{n}.jpg"),
    ("uploads/h1/1.jpg.exe", "rejected:h1", "{n}.jpg"),
    ("uploads/h1/-1.jpg", "rejected:h1", "{n}.jpg"),
    ("uploads/h1/1 .jpg", "rejected:h1", "{n}.jpg"),
    ("uploads/h1/..", "rejected:h1", "{n}.jpg"),
    ("uploads/h1/../1.jpg", "orphan:None", "unexpected key layout"),
    ("uploads/../h1/1.jpg", "orphan:None", "unexpected key layout"),
    ("uploads/h1/1.jpg/x.jpg", "orphan:None", "unexpected key layout"),
    ("uploads//1.jpg", "orphan:None", "assessment id"),
    ("uploads/h_1/1.jpg", "orphan:None", "assessment id"),
    ("/uploads/h1/1.jpg", "orphan:None", "unexpected key layout"),
    ("UPLOADS/h1/1.jpg", "orphan:None", "unexpected key layout"),
    ("uploads/h1\\1.jpg", "orphan:None", "unexpected key layout"),
    ("elsewhere/photo.jpg", "orphan:None", "unexpected key layout"),
    (f"{INCOMING}/../front.jpg", "orphan:None", "batch"),
    (f"{INCOMING}/-b/front.jpg", "orphan:None", "batch"),
    (f"{INCOMING}//front.jpg", "orphan:None", "batch"),
    (f"{INCOMING}/b1/x/front.jpg", "orphan:None", "unexpected key layout"),
    ("incoming/1FTMW-1T88/b1/front.jpg", "orphan:None", "VIN segment"),
    (f"{INCOMING}/b1/..", "orphan:b1", "must not start with '.'"),
    (f"{INCOMING}/b1/.DS_Store", "orphan:b1", "must not start with '.'"),
    (f"{INCOMING}/b1/front\x01.jpg", "orphan:b1", "control"),
    (f"{INCOMING}/b1/front\n.jpg", "orphan:b1", "control"),
    (f"{INCOMING}/b1/ front.jpg", "orphan:b1", "spaces"),
    (f"{INCOMING}/b1/{'a' * 201}.jpg", "orphan:b1", "1-200 characters"),
]


@pytest.mark.parametrize(
    ("key", "place", "reason"), HOSTILE_KEYS, ids=[repr(k[0])[1:41] for k in HOSTILE_KEYS]
)
def test_keys_outside_the_grammar_are_recorded_and_start_nothing(
    aws: Aws, repository, jpeg_bytes, lambda_context, observed: Observed, key: str, place: str, reason: str
) -> None:
    _open(repository, "h1", expected=1)  # one accepted photo would start the workflow
    response = upload_trigger.handler(
        sqs_event([s3_notification(_event_key(key), len(jpeg_bytes))]), lambda_context
    )
    assert response == {"batchItemFailures": []}
    expected_place = place.replace(":b1", f":{incoming_assessment_id(VIN, 'b1')}")
    assert _places(aws, key) == [expected_place]
    assert reason in _reason(aws, key)
    assert _consistent(repository, "h1") == 0
    assert aws.executions() == []
    assert sum(observed.metrics[m] for m in ("PhotoRejected", "UploadOrphaned")) == 1
    assert "ERROR" not in observed.levels()


# --- two spellings of one photo are one photo --------------------------------------------------

SPELLINGS = [
    ("uploads/s1/1.jpg", "uploads/s1/1.JPG", "uploads/s1/2.jpg"),
    ("uploads/s1/1.jpg", "uploads/s1/1.jpeg", "uploads/s1/2.png"),
    (f"incoming/{VIN.lower()}/b/front.jpg", f"incoming/{VIN}/b/front.jpg", f"incoming/{VIN}/b/rear.jpg"),
    (f"incoming/{VIN}/b/Front.JPG", f"incoming/{VIN}/b/front.jpg", f"incoming/{VIN}/b/rear.jpg"),
    (f"incoming/{VIN}/b/ｆｒｏｎｔ.jpg", f"incoming/{VIN}/b/front.jpg", f"incoming/{VIN}/b/rear.jpg"),
    (f"incoming/{VIN}/b/caf\u00e9.jpg", f"incoming/{VIN}/b/cafe\u0301.jpg", f"incoming/{VIN}/b/rear.jpg"),
    (f"incoming/{VIN}/b/\ufb01le.jpg", f"incoming/{VIN}/b/file.jpg", f"incoming/{VIN}/b/rear.jpg"),
]


@pytest.mark.parametrize(("first", "second", "other"), SPELLINGS, ids=[s[1][-22:] for s in SPELLINGS])
def test_two_spellings_of_one_photo_count_once(
    aws: Aws, repository, jpeg_bytes, other_jpeg_bytes, lambda_context, first: str, second: str, other: str
) -> None:
    metadata = {"expected-photos": "2"}
    assessment_id = "s1" if first.startswith("uploads/") else incoming_assessment_id(VIN, "b")
    if first.startswith("uploads/"):
        _open(repository, "s1", expected=2)

    _deliver(aws, lambda_context, first, jpeg_bytes, metadata)
    _deliver(aws, lambda_context, second, other_jpeg_bytes, metadata)
    # The second spelling is a second object for a photo already counted: kept, with the reason.
    assert _consistent(repository, assessment_id) == 1
    assert _places(aws, second) == [f"rejected:{assessment_id}"]
    assert "already received as" in _reason(aws, second)
    assert aws.executions() == []

    _deliver(aws, lambda_context, other, other_jpeg_bytes, metadata)
    assert _consistent(repository, assessment_id) == 2
    assert [e["name"] for e in aws.executions()] == [assessment_id]
    assert _places(aws, first) == [f"photo:{assessment_id}"]
    assert _places(aws, other) == [f"photo:{assessment_id}"]


def test_a_name_that_looks_like_a_hashed_id_is_a_photo_of_its_own(
    aws: Aws, repository, jpeg_bytes, lambda_context
) -> None:
    from vehicle_assessment.aws_runtime.uploads import photo_id_for

    lookalike = photo_id_for("a b.jpg")
    metadata = {"expected-photos": "2"}
    for name in ("a b.jpg", lookalike):
        _deliver(aws, lambda_context, f"incoming/{VIN}/b/{name}", jpeg_bytes, metadata)
    assessment_id = incoming_assessment_id(VIN, "b")
    assert _consistent(repository, assessment_id) == 2
    assert len(aws.executions()) == 1


# --- S3 user metadata: text, parsed strictly, bounded by AssessmentInputs -------------------------

BAD_METADATA = [
    ({"mileage": "1e400"}, "mileage '1e400' is not a whole number"),
    ({"mileage": "nan"}, "mileage 'nan' is not a whole number"),
    ({"mileage": "true"}, "mileage 'true' is not a whole number"),
    ({"mileage": "-5"}, "is not a whole number"),
    ({"mileage": "12.5"}, "is not a whole number"),
    ({"mileage": "\u0663"}, "is not a whole number"),  # an Arabic-Indic three
    ({"mileage": "0x10"}, "is not a whole number"),
    ({"mileage": str(limits.MAX_MILEAGE_MILES + 1)}, "mileage"),
    ({"estimate-usd": "1e-300"}, "is not a plain decimal number"),
    ({"estimate-usd": "1e400"}, "is not a plain decimal number"),
    ({"estimate-usd": "nan"}, "is not a plain decimal number"),
    ({"estimate-usd": "inf"}, "is not a plain decimal number"),
    ({"estimate-usd": "1,000"}, "is not a plain decimal number"),
    ({"estimate-usd": "0.5"}, "estimate_usd"),
    ({"estimate-usd": "60000000"}, "estimate_usd"),
    ({"expected-photos": "0"}, "expected-photos 0 is outside"),
    ({"expected-photos": "21"}, "expected-photos 21 is outside"),
    ({"expected-photos": "\u00b2"}, "is not a whole number"),  # a superscript two: isdigit() says yes
    ({"color": "red\x00"}, "color"),
    ({"color": "red\x1b[31m"}, "may hold only letters"),
    ({"color": "Red & <b>"}, "found '<>'"),
    ({"color": "x" * (limits.MAX_COLOR_CHARS + 1)}, "color"),
]


class _MetadataProbe:
    """The real ranged GET for the bytes; the metadata as a hostile writer could have set it (S3 would
    carry control characters only RFC 2047-encoded, which the SDK hands over as given)."""

    def __init__(self, probe: S3ObjectProbe, metadata: dict[str, str]) -> None:
        self.probe = probe
        self.metadata = metadata

    def head(self, key: str, n_bytes: int, version_id: str | None = None) -> ObjectHead:
        head = self.probe.head(key, n_bytes, version_id)
        return ObjectHead(head.first_bytes, dict(self.metadata), head.size, head.version_id)


@pytest.fixture
def metadata_services(aws: Aws, repository) -> Iterator[Any]:
    from tests.aws_runtime.conftest import STATE_MACHINE_ARN
    from vehicle_assessment.adapters.aws.step_functions import StepFunctionsStarter

    def make(metadata: dict[str, str]) -> UploadServices:
        return UploadServices(
            repository,
            _MetadataProbe(S3ObjectProbe(aws.s3, BUCKET), metadata),
            StepFunctionsStarter(aws.sfn, STATE_MACHINE_ARN),
        )

    yield make


RULES = UploadRules(limits.MAX_PHOTO_BYTES, 1, BUCKET)


@pytest.mark.parametrize(("metadata", "reason"), BAD_METADATA, ids=[repr(m)[:40] for m, _ in BAD_METADATA])
def test_bad_metadata_is_recorded_and_opens_nothing(
    aws: Aws, repository, jpeg_bytes, metadata_services, metadata: dict[str, str], reason: str
) -> None:
    key = f"incoming/{VIN}/m1/front.jpg"
    aws.put_photo(key, jpeg_bytes)
    result = handle_upload(
        UploadedObject(bucket=BUCKET, key=key, size=len(jpeg_bytes)), metadata_services(metadata), RULES, NOW
    )
    assert result.kind == UploadResultKind.ORPHANED
    assert reason in result.reason
    assert _places(aws, key) == [f"orphan:{incoming_assessment_id(VIN, 'm1')}"]
    assert not repository.exists(incoming_assessment_id(VIN, "m1"))
    assert aws.executions() == []


@pytest.mark.parametrize(
    ("metadata", "inputs"),
    [
        ({"mileage": " 42000 ", "estimate-usd": "12500.50"}, {"mileage": 42000, "estimate_usd": 12500.5}),
        ({"color": " Deep\tBlue\n"}, {"color": "Deep Blue"}),
        ({"Colour": "Black & Gold"}, {"color": "Black & Gold"}),
    ],
)
def test_good_metadata_opens_the_assessment(
    aws: Aws, repository, jpeg_bytes, metadata_services, metadata: dict[str, str], inputs: dict[str, Any]
) -> None:
    key = f"incoming/{VIN}/m2/front.jpg"
    aws.put_photo(key, jpeg_bytes)
    result = handle_upload(
        UploadedObject(bucket=BUCKET, key=key, size=len(jpeg_bytes)), metadata_services(metadata), RULES, NOW
    )
    assert result.kind == UploadResultKind.STARTED
    stored = repository.get(incoming_assessment_id(VIN, "m2")).inputs
    assert {name: getattr(stored, name) for name in inputs} == inputs


# --- queue messages that are no upload --------------------------------------------------------


def _sns(message: Any) -> dict[str, Any]:
    return {
        "Type": "Notification",
        "MessageId": "5e1f0a9c-0000-4000-8000-000000000001",
        "TopicArn": "arn:aws:sns:us-east-1:123456789012:photo-uploads",
        "Message": message if isinstance(message, str) else json.dumps(message),
    }


def _removed() -> dict[str, Any]:
    return s3_notification("uploads/q1/1.jpg", 0, event_name="ObjectRemoved:Delete")


def _foreign() -> dict[str, Any]:
    body = s3_notification("uploads/q1/1.jpg", 100)
    body["Records"][0]["s3"]["bucket"] = {"name": "someone-elses-bucket", "arn": "arn:aws:s3:::x"}
    return body


IGNORED_MESSAGES = [
    ("s3 test event", {"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": BUCKET}, "S3TestEvent"),
    ("sns test event", _sns({"Service": "Amazon S3", "Event": "s3:TestEvent"}), "S3TestEvent"),
    ("empty object", {}, "QueueMessageIgnored"),
    ("json array", [s3_notification("uploads/q1/1.jpg", 100)], "QueueMessageIgnored"),
    ("json string", '"uploads/q1/1.jpg"', "QueueMessageIgnored"),
    ("no records", {"Records": []}, "QueueMessageIgnored"),
    ("records not a list", {"Records": {"s3": {}}}, "QueueMessageIgnored"),
    ("sqs-shaped record", {"Records": [{"eventSource": "aws:sqs", "body": "x"}]}, "QueueMessageIgnored"),
    ("object removed", _removed(), "QueueMessageIgnored"),
    ("sns message not json", _sns("not json"), "QueueMessageIgnored"),
    ("foreign bucket", _foreign(), "UploadForeignBucket"),
    ("nested too deeply", "[" * 100_000 + "]" * 100_000, "QueueMessageIgnored"),
    ("sns nested too deeply", _sns("[" * 50_000 + "]" * 50_000), "QueueMessageIgnored"),
]


@pytest.mark.parametrize(
    ("body", "metric"), [m[1:] for m in IGNORED_MESSAGES], ids=[m[0] for m in IGNORED_MESSAGES]
)
def test_messages_that_are_no_upload_are_logged_counted_and_consumed(
    aws: Aws, repository, jpeg_bytes, lambda_context, observed: Observed, body: Any, metric: str
) -> None:
    _open(repository, "q1", expected=1)
    aws.put_photo("uploads/q1/1.jpg", jpeg_bytes)  # present, so only the message decides
    response = upload_trigger.handler(sqs_event([body]), lambda_context)
    assert response == {"batchItemFailures": []}
    assert observed.metrics[metric] == 1
    assert observed.messages("WARNING") or observed.messages("INFO")
    assert "ERROR" not in observed.levels()
    assert _consistent(repository, "q1") == 0
    assert [i for i in _items(aws) if i.get("entity") != "assessment"] == []  # no orphan written
    assert aws.executions() == []


def test_an_sns_wrapped_s3_event_is_processed(aws: Aws, repository, jpeg_bytes, lambda_context) -> None:
    _open(repository, "q2", expected=1)
    aws.put_photo("uploads/q2/1.jpg", jpeg_bytes)
    body = _sns(s3_notification("uploads/q2/1.jpg", len(jpeg_bytes)))
    assert upload_trigger.handler(sqs_event([body]), lambda_context) == {"batchItemFailures": []}
    assert _consistent(repository, "q2") == 1
    assert [e["name"] for e in aws.executions()] == ["q2"]


def test_a_body_that_is_not_json_is_logged_and_left_for_the_dead_letter_queue(
    aws: Aws, lambda_context, observed: Observed
) -> None:
    test_event = {"Service": "Amazon S3", "Event": "s3:TestEvent"}
    response = upload_trigger.handler(sqs_event([test_event, "{not json"]), lambda_context)
    assert response == {"batchItemFailures": [{"itemIdentifier": "msg-1"}]}
    assert observed.metrics["QueueMessageUnreadable"] == 1
    assert any("not JSON" in m for m in observed.messages("WARNING"))


# --- an upload flood cannot grow an assessment item without bound ------------------------------


def test_rejections_past_the_cap_become_orphan_items_and_the_item_stays_small(
    aws: Aws, repository, jpeg_bytes, lambda_context
) -> None:
    cap = limits.MAX_REJECTED_UPLOADS_PER_ASSESSMENT
    _open(repository, "f1", expected=1)
    keys = [f"uploads/f1/flood-{'x' * 150}-{n:03d}.jpg" for n in range(cap + 10)]
    event = sqs_event([s3_notification(_event_key(key), 10) for key in keys])
    assert upload_trigger.handler(event, lambda_context) == {"batchItemFailures": []}
    # A redelivered overflow rejection is not counted twice.
    upload_trigger.handler(sqs_event([s3_notification(_event_key(keys[-1]), 10)]), lambda_context)

    assert len(repository.rejected_uploads("f1")) == cap
    assert repository.rejected_uploads_overflow("f1") == 10
    assert all(len(_places(aws, key)) == 1 for key in keys)
    assert [p for key in keys[cap:] for p in _places(aws, key)] == ["orphan:f1"] * 10
    item = aws.table.get_item(Key={"PK": "ASSESSMENT#f1", "SK": "META"})["Item"]
    serialised = json.dumps({k: TypeSerializer().serialize(v) for k, v in item.items()}, default=str)
    assert len(serialised.encode()) < 400 * 1024 // 2
    # The API shows the listed rejections and how many more are kept elsewhere.
    view = api.get_assessment("f1", api.ApiServices(repository=repository, s3_client=aws.s3, objects=None))
    assert (len(view.rejected_uploads), view.rejected_uploads_overflow) == (cap, 10)
    # The item still takes writes: the real photo counts and starts the workflow.
    _deliver(aws, lambda_context, "uploads/f1/1.jpg", jpeg_bytes)
    assert [e["name"] for e in aws.executions()] == ["f1"]
