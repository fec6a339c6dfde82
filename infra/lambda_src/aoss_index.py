"""Custom resource: create the k-NN index in the AOSS collection at deploy time.

The mapping is the application's own (``OpenSearchReferenceIndex.create_index`` → ``index_body``),
so the index the analyse step queries is exactly the one it expects, encoder identity included.

Create/Update create the index when it is missing (idempotent). Delete does nothing: deleting the
stack deletes the collection with its indexes, and an update must never drop reference vectors.
A freshly created data access policy takes a while to apply, so 403 answers are retried until the
invocation is about to time out.
"""

from __future__ import annotations

import json
import logging
import time
import urllib.request
from typing import Any

logger = logging.getLogger()
logger.setLevel(logging.INFO)

_RETRY_PAUSE_S = 15.0
_MARGIN_MS = 30_000


def send_response(
    event: dict[str, Any], status: str, physical_id: str, reason: str = "", data: Any = None
) -> None:
    """PUT the result to CloudFormation's presigned URL (what cfn-response does, without the dep)."""
    body = json.dumps(
        {
            "Status": status,
            "Reason": reason[:3000] or f"see CloudWatch Logs stream for {physical_id}",
            "PhysicalResourceId": physical_id,
            "StackId": event["StackId"],
            "RequestId": event["RequestId"],
            "LogicalResourceId": event["LogicalResourceId"],
            "Data": data or {},
        }
    ).encode()
    request = urllib.request.Request(
        event["ResponseURL"],
        data=body,
        method="PUT",
        headers={"Content-Type": "", "Content-Length": str(len(body))},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        logger.info("CloudFormation answered %s", response.status)


def create_index(props: dict[str, Any], region: str, remaining_ms: Any) -> bool:
    import boto3
    from opensearchpy import AuthorizationException

    from vehicle_assessment.adapters.aws.opensearch_index import OpenSearchReferenceIndex
    from vehicle_assessment.adapters.aws.settings import OpenSearchSettings
    from vehicle_assessment.domain.models import EncoderIdentity

    settings = OpenSearchSettings(
        collection_endpoint=props["CollectionEndpoint"], index_name=props["IndexName"]
    )
    identity = EncoderIdentity.model_validate(json.loads(props["Identity"]))
    index = OpenSearchReferenceIndex.from_settings(
        settings, region, identity, boto3.Session().get_credentials()
    )
    while True:
        try:
            return index.create_index(identity)
        except AuthorizationException:
            if remaining_ms() < _MARGIN_MS:
                raise
            logger.info("403 from the collection: the access policy is not applied yet; retrying")
            time.sleep(_RETRY_PAUSE_S)


def handler(event: dict[str, Any], context: Any) -> None:
    props = event.get("ResourceProperties", {})
    physical_id = (
        event.get("PhysicalResourceId")
        or f"{props.get('CollectionName', 'collection')}/{props.get('IndexName')}"
    )
    try:
        if event["RequestType"] in ("Create", "Update"):
            import os

            created = create_index(props, os.environ["AWS_REGION"], context.get_remaining_time_in_millis)
            logger.info("index %s %s", props["IndexName"], "created" if created else "already existed")
        send_response(event, "SUCCESS", physical_id, data={"IndexName": props.get("IndexName", "")})
    except Exception as exc:
        # Always answer: a custom resource that never responds blocks the stack for an hour.
        logger.exception("index custom resource failed")
        send_response(event, "FAILED", physical_id, reason=f"{type(exc).__name__}: {exc}")
