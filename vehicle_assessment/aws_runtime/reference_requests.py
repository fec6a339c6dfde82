"""Learning from reviews on AWS: the API hands a review "as reference" to its own function.

Why not in the API function: API Gateway waits at most 29 s for a REST API's integration
(https://docs.aws.amazon.com/apigateway/latest/developerguide/limits.html, "Maximum integration
timeout"; raising it needs a quota increase paid for with account throttling), and a review already
spends most of that on a describer call plus its speech (aws_runtime/api.py). Adding the photo reads
the original and its stored embedding, may call the SageMaker endpoint, writes the display copy and
replaces the OpenSearch document (mapping, lookup, index, delete): its worst case,
`reference_feedback_worst_case_s`, is minutes, not seconds (tests/infra/test_client_budgets.py). So
the API records REFERENCE_PENDING and invokes the reference feedback function asynchronously
(InvocationType "Event": Lambda answers 202 once the event is queued); that function records
REFERENCE_ADDED or REFERENCE_FAILED with a conditional write (reviewing.add_requested_reference).

Lambda retries an asynchronous invocation that fails twice, and may deliver an event more than once
(https://docs.aws.amazon.com/lambda/latest/dg/invocation-async-error-handling.html): serving a
request twice is harmless (the outcome already on the record is not written again).
"""

from __future__ import annotations

import logging
import math
from datetime import datetime
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from vehicle_assessment.aws_runtime.config import ReferenceFeedbackConfig
from vehicle_assessment.domain import limits

logger = logging.getLogger(__name__)

# A reviewed photo did not join the reference index (the API: learning off, or the request could not be
# queued; the reference feedback function: the addition failed or the request cannot be served).
# Emitted by both functions (dimension ``service``); infra/constructs/learning.py alarms on it.
REFERENCE_FEEDBACK_FAILED_METRIC = "ReferenceFeedbackFailed"

# What adding one photo asks OpenSearch (adapters/aws/opensearch_index.py): the index's identity
# (mapping read), the provenance fields (mapping read + write for an index from before them), the
# source's older documents (search), the new document (bulk) and the older ones' deletion (bulk).
OPENSEARCH_CALLS_PER_REFERENCE = 6
OPENSEARCH_BULK_CALLS_PER_REFERENCE = 2
# S3 and DynamoDB calls with the function's generic client (the time budget below; scripts/cost.py
# prices each kind): the original (GetObject of its version), the display copy (PutObject), the stored
# embedding and the assessment (GetItem each), the assessment's conditional save (UpdateItem).
S3_GETS_PER_REFERENCE = 1
S3_PUTS_PER_REFERENCE = 1
DYNAMODB_READS_PER_REFERENCE = 2
DYNAMODB_WRITES_PER_REFERENCE = 1
GENERIC_CALLS_PER_REFERENCE = (
    S3_GETS_PER_REFERENCE
    + S3_PUTS_PER_REFERENCE
    + DYNAMODB_READS_PER_REFERENCE
    + DYNAMODB_WRITES_PER_REFERENCE
)


class ReferenceRequest(BaseModel):
    """The event the reference feedback function is invoked with: which review of which photo."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    assessment_id: str = Field(min_length=1, max_length=128)
    photo_id: str = Field(min_length=1, max_length=64)
    reviewed_at: AwareDatetime


class AsyncReferenceRequester:
    """`reviewing.ReferenceRequester` over Lambda's asynchronous Invoke of the feedback function."""

    def __init__(self, lambda_client: Any, function_arn: str) -> None:
        self.client = lambda_client
        self.function_arn = function_arn

    def __call__(self, assessment_id: str, photo_id: str, reviewed_at: datetime) -> None:
        request = ReferenceRequest(assessment_id=assessment_id, photo_id=photo_id, reviewed_at=reviewed_at)
        response = self.client.invoke(
            FunctionName=self.function_arn,
            InvocationType="Event",
            Payload=request.model_dump_json().encode("utf-8"),
        )
        # Lambda answers 202 Accepted for an asynchronous invocation it queued (Invoke API reference).
        status = response.get("StatusCode")
        if status != 202:
            raise RuntimeError(f"Lambda did not queue the reference request (status {status})")


def reference_feedback_worst_case_s(config: ReferenceFeedbackConfig) -> float:
    """The longest adding one reviewed photo can take, each call at its client's worst case (every
    attempt timing out after the longest backoffs): what the feedback function's timeout must hold."""
    search = config.opensearch
    bulk_backoff = sum(search.bulk_initial_backoff_s * 2**retry for retry in range(search.bulk_max_retries))
    return (
        GENERIC_CALLS_PER_REFERENCE * config.client.worst_case_s()
        + config.sagemaker.client.worst_case_s()
        + OPENSEARCH_CALLS_PER_REFERENCE * search.worst_case_s()
        + OPENSEARCH_BULK_CALLS_PER_REFERENCE * bulk_backoff
    )


def reference_feedback_timeout_s(config: ReferenceFeedbackConfig) -> int:
    """The feedback function's timeout: the worst case within the share of it clients may use."""
    needed = math.ceil(reference_feedback_worst_case_s(config) / limits.CLIENT_SHARE_OF_TIMEOUT)
    if needed > limits.LAMBDA_MAX_TIMEOUT_S:
        raise ValueError(
            f"adding a reference could take {needed} s, more than Lambda's {limits.LAMBDA_MAX_TIMEOUT_S} s: "
            "lower the OpenSearch or SageMaker client's retries or timeouts"
        )
    return needed
