"""One function per Step Functions task. Their pydantic models ARE the state machine's state.

State shapes (JSON), in workflow order::

    execution input / DecodeVin in   {"assessment_id": "..."}                           AssessmentRef
    DecodeVin out                    {"assessment_id", "photos": [{"photo_id", "object_key"}]}  PhotoBatch
    Map over $.photos, ItemSelector  {"assessment_id.$": "$.assessment_id", "photo.$": "$$.Map.Item.Value"}
      AnalysePhoto in                {"assessment_id", "photo": {"photo_id", "object_key"}}     PhotoTask
      AnalysePhoto out               {"assessment_id", "photo_id", "status", "needs_review", "reason"}
    Map ResultPath                   null (keep the batch; results are in DynamoDB)
    Value / Describe / Speak         in: AssessmentRef (extra keys ignored), out: AssessmentRef
    Store out                        {"assessment_id", "status", "needs_review"}        AssessmentResult
    MarkFailed in (Catch, ResultPath "$.error")
                                     {"assessment_id", "failed_step"?, "error": {"Error", "Cause"}}
    MarkFailed out                   AssessmentResult

Store and MarkFailed publish an "Assessment Finished" event after their save (domain/events.py).
A retried step publishes it again (the save is idempotent, PutEvents is not): delivery is
at-least-once, and consumers dedupe on the event's ``event_id`` (assessment id + final status).

The state carries ids, never the assessment: each step loads it from the repository (strongly
consistent reads) and saves what it changed, so the state stays a few hundred bytes whatever the
photos hold (the limit is 256 KB) and a failed step leaves everything before it stored.

Every step's change is a function of the stored assessment, so a step re-run by a Step Functions
retry simply reads again and redoes it. Its save is conditional on the revision it read
(``WorkflowRepository.save``): a step never overwrites what another writer saved meanwhile
(another attempt of the same step; an API regeneration racing a retried Store, the one step that
runs while the assessment is already COMPLETED), it reads again and re-applies its change
(``pipeline.save_with_retries``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from vehicle_assessment import pipeline
from vehicle_assessment.aws_runtime.config import WorkflowConfig
from vehicle_assessment.domain import limits
from vehicle_assessment.domain.events import assessment_finished
from vehicle_assessment.domain.models import Assessment, AssessmentStatus, PhotoStatus
from vehicle_assessment.domain.rules import AssessmentRules
from vehicle_assessment.domain.text import one_line
from vehicle_assessment.ports import (
    AssessmentNotFound,
    Clock,
    Describer,
    EventPublisher,
    ImageEncoder,
    IndexMismatch,
    ObjectStore,
    PhotoRegistry,
    ReferenceIndex,
    ReferenceIndexEmpty,
    Speaker,
    VinDecoder,
    WorkflowRepository,
)

logger = logging.getLogger(__name__)

_MAX_REASON = 1000
# The metric the analyse step emits for a photo analysed without the reused-photo check (a registry
# outage or its deadline); infra/constructs/monitoring.py alarms on it.
REUSE_CHECK_UNAVAILABLE_METRIC = "ReuseCheckUnavailable"
# What a fresh stack's assessments fail with until someone loads the reference photos.
REFERENCE_INDEX_EMPTY = (
    "the reference index is empty: load reference photos with `vehicle-assessment index build --target aws`"
)


class WorkflowConflict(RuntimeError):
    """The assessment is not in a state this step may act on (e.g. swept as INCOMPLETE)."""


class State(BaseModel):
    # Inputs ignore extra keys: a step may receive more of the state than it needs.
    model_config = ConfigDict(extra="ignore", frozen=True)


class AssessmentRef(State):
    assessment_id: str = Field(min_length=1, max_length=80)


class PhotoRef(State):
    photo_id: str = Field(min_length=1)
    object_key: str = Field(min_length=1)


class PhotoBatch(AssessmentRef):
    photos: list[PhotoRef]


class PhotoTask(AssessmentRef):
    photo: PhotoRef


class PhotoOutcome(AssessmentRef):
    photo_id: str
    status: PhotoStatus
    needs_review: bool
    reason: str | None = None
    # The reused-photo check: matched another vehicle's photo; or why it could not run.
    possible_reuse: bool = False
    reuse_unchecked: str | None = None


class StepError(State):
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)
    error: str = Field(default="Unknown", alias="Error")
    cause: str | None = Field(default=None, alias="Cause")


# How an execution that ran no Catch ended: the state machine's EventBridge rule for these
# (infra/constructs/workflow.py) passes the execution's status, and the recorded reason says it.
StoppedExecutionStatus = Literal["TIMED_OUT", "ABORTED"]


class FailureInput(AssessmentRef):
    failed_step: str | None = None
    error: StepError | None = None
    # Set by the stopped-execution rule instead of ``error``: a Catch never saw these endings.
    execution_status: StoppedExecutionStatus | None = None


class AssessmentResult(AssessmentRef):
    status: AssessmentStatus
    needs_review: bool


# --- steps ----------------------------------------------------------------------------------


def decode_vin(
    state: AssessmentRef,
    repository: WorkflowRepository,
    decoder: VinDecoder,
    clock: Clock = pipeline.utc_now,
) -> PhotoBatch:
    """Take the assessment into PROCESSING, decode its vehicle, and list its photos for the Map."""
    now = clock()
    moved = repository.mark_status(
        state.assessment_id,
        AssessmentStatus.PROCESSING,
        # PROCESSING too: a retried step (or a redriven execution) must be able to run again.
        {AssessmentStatus.AWAITING_PHOTOS, AssessmentStatus.PROCESSING},
        now,
    )
    assessment = repository.get(state.assessment_id)
    if not moved:
        raise WorkflowConflict(
            f"assessment {state.assessment_id} is {assessment.status.value}; not processing it"
        )
    assessment = pipeline.save_with_retries(
        repository,
        assessment,
        lambda current: pipeline.decode_vehicle(current, decoder, now.date()).model_copy(
            update={"updated_at": now}
        ),
    )
    return PhotoBatch(
        assessment_id=state.assessment_id,
        photos=[PhotoRef(photo_id=p.photo_id, object_key=p.object_key) for p in assessment.photos],
    )


def analyse_photo(
    state: PhotoTask,
    repository: WorkflowRepository,
    objects: ObjectStore,
    encoder: ImageEncoder,
    index: ReferenceIndex,
    rules: AssessmentRules,
    registry: PhotoRegistry | None = None,
    clock: Clock = pipeline.utc_now,
) -> PhotoOutcome:
    """One Map iteration: intake, embed and judge one photo; its record goes to its own path.

    With ``registry`` the photo is remembered and checked against other vehicles' photos
    (``pipeline.check_reuse``); a retried iteration finds its own earlier entry, which is the same
    vehicle's and so never a match.
    """
    assessment = repository.get(state.assessment_id)
    record = next((p for p in assessment.photos if p.photo_id == state.photo.photo_id), None)
    if record is None:
        raise ValueError(f"assessment {state.assessment_id} has no photo {state.photo.photo_id!r}")
    # The version counted at upload: a re-upload under the same key never replaces the evidence.
    data = objects.get(record.object_key, record.object_version)
    # The upload trigger read 16 bytes; the digest and true size are known only now. A retried or
    # redriven Map starts again from the received photo: the Value step re-marks copies.
    record = record.model_copy(
        update={
            "sha256": hashlib.sha256(data).hexdigest(),
            "size_bytes": len(data),
            "status": PhotoStatus.RECEIVED,
            "reason": None,
            "duplicate_of": None,
            "perceptual_hash": None,
            "reuse_matches": [],
            "reuse_unchecked": None,
        }
    )
    try:
        reuse = None
        if registry is not None:
            reuse = pipeline.ReuseCheck(registry, state.assessment_id, assessment.vin, clock())
        [analysed] = pipeline.analyse_photos([record], [data], encoder, index, rules, reuse)
    except IndexMismatch as exc:
        # A fresh stack's index records the configured encoder (no weights fingerprint) and no vectors,
        # so it reads as a mismatch, or as a search with no neighbours: name the real cause. Counted
        # only on this unhappy path, so a working index costs no extra request per photo.
        if index.count() == 0:
            raise ReferenceIndexEmpty(REFERENCE_INDEX_EMPTY) from exc
        raise
    repository.save_photo_result(state.assessment_id, analysed, encoder.identity)
    return PhotoOutcome(
        assessment_id=state.assessment_id,
        photo_id=analysed.photo_id,
        status=analysed.status,
        needs_review=bool(analysed.verdict and analysed.verdict.needs_review),
        reason=analysed.reason,
        possible_reuse=bool(analysed.reuse_matches),
        reuse_unchecked=analysed.reuse_unchecked,
    )


def analyse_photo_worst_case_s(config: WorkflowConfig) -> dict[str, float]:
    """The AWS calls one AnalysePhoto invocation (``analyse_photo`` in a fresh container) makes, one
    after another, each at its worst case (every attempt timing out after the longest backoffs): what
    the step's Lambda timeout must hold (``analyse_photo_timeout_s``).

    The IndexMismatch path (an empty index: one more OpenSearch count) stops before the registry, so
    it is shorter than this one.
    """
    if config.sagemaker is None or config.opensearch is None:
        raise ValueError("the analyse step needs SAGEMAKER and OPENSEARCH")
    generic = config.client.worst_case_s()  # DynamoDB and S3 share the function's client (factory.py)
    encoder = config.sagemaker.client.worst_case_s()
    search = config.opensearch.worst_case_s()
    calls = {
        "DynamoDB GetItem: the assessment": generic,
        "S3 GetObject: the photo": generic,
        # Read once per container (per invocation while the index has no weights fingerprint).
        "OpenSearch: the index mapping (its encoder)": search,
        "SageMaker InvokeEndpoint: which weights it serves (once per container)": encoder,
        "SageMaker InvokeEndpoint: the photo's embedding": encoder,
        "OpenSearch _msearch: the k-NN query": search,
    }
    if config.rules.reuse.enabled:
        # Each gives up at its deadline (adapters/aws/photo_registry.py), whatever DynamoDB does.
        calls["photo registry: remember (deadline)"] = limits.PHOTO_REGISTRY_DEADLINE_S
        calls["photo registry: find_reuse (deadline)"] = limits.PHOTO_REGISTRY_DEADLINE_S
    calls["DynamoDB UpdateItem: the photo's result"] = generic
    return calls


def analyse_photo_timeout_s(config: WorkflowConfig) -> int:
    """The analyse function's timeout: its calls' sequential worst case within the clients' share."""
    needed = math.ceil(sum(analyse_photo_worst_case_s(config).values()) / limits.CLIENT_SHARE_OF_TIMEOUT)
    if needed > limits.LAMBDA_MAX_TIMEOUT_S:
        raise ValueError(
            f"analysing a photo could take {needed} s, more than Lambda's {limits.LAMBDA_MAX_TIMEOUT_S} s: "
            "lower the SageMaker, OpenSearch or DynamoDB client's retries or timeouts"
        )
    return needed


def value(
    state: AssessmentRef,
    repository: WorkflowRepository,
    rules: AssessmentRules,
    clock: Clock = pipeline.utc_now,
) -> AssessmentRef:
    now = clock()

    def valued(assessment: Assessment) -> Assessment:
        # Local mode notes this when it analyses all photos; here they were analysed one by one.
        analysed = {p.photo_id: p for p in assessment.photos}
        noted = pipeline.note_unchecked_reuse(pipeline.note_untrained_encoder(assessment))
        assessment = pipeline.value_assessment(noted, rules, now.date())
        # Copies are resolved here, not in the Map: its iterations run concurrently and each knows
        # only its own photo's digest. Every read merges `photo_results` over the document's photos,
        # so a photo this step marks DUPLICATE is written back to its own result path too (the same
        # record again if the change is re-applied; these writes leave the revision alone).
        changed = [photo for photo in assessment.photos if photo != analysed[photo.photo_id]]
        if changed:
            encoder = assessment.encoder
            if encoder is None:  # a copy is known only from analysed photos' digests
                raise WorkflowConflict(f"assessment {state.assessment_id} has photo results but no encoder")
            for photo in changed:
                repository.save_photo_result(state.assessment_id, photo, encoder)
        return assessment.model_copy(update={"updated_at": now})

    pipeline.save_with_retries(repository, repository.get(state.assessment_id), valued)
    return AssessmentRef(assessment_id=state.assessment_id)


def describe(
    state: AssessmentRef,
    repository: WorkflowRepository,
    describer: Describer,
    rules: AssessmentRules,
    clock: Clock = pipeline.utc_now,
) -> AssessmentRef:
    pipeline.save_with_retries(
        repository,
        repository.get(state.assessment_id),
        lambda current: pipeline.describe_assessment(
            current, describer, rules.languages, rules.styles
        ).model_copy(update={"updated_at": clock()}),
    )
    return AssessmentRef(assessment_id=state.assessment_id)


def speak(
    state: AssessmentRef,
    repository: WorkflowRepository,
    speaker: Speaker,
    objects: ObjectStore,
    clock: Clock = pipeline.utc_now,
) -> AssessmentRef:
    pipeline.save_with_retries(
        repository,
        repository.get(state.assessment_id),
        lambda current: pipeline.speak_descriptions(current, speaker, objects).model_copy(
            update={"updated_at": clock()}
        ),
    )
    return AssessmentRef(assessment_id=state.assessment_id)


def store(
    state: AssessmentRef,
    repository: WorkflowRepository,
    events: EventPublisher,
    clock: Clock = pipeline.utc_now,
) -> AssessmentResult:
    """The last step: COMPLETED (or NEEDS_PHOTOS when no photo could be assessed), with the reasons a
    person should look at it. Both end the execution successfully: the state machine needs no Choice.

    The event goes out after the save, so a consumer that reads the assessment on it finds it final;
    if publishing fails (EventPublishFailed) the step fails and Step Functions retries it."""
    done = pipeline.save_with_retries(
        repository, repository.get(state.assessment_id), lambda current: pipeline.complete(current, clock())
    )
    events.publish(assessment_finished(done))
    return AssessmentResult(
        assessment_id=done.assessment_id, status=done.status, needs_review=done.needs_review
    )


def failure_reason(error: StepError | None) -> str:
    """One line from a Catch's {Error, Cause}; a Lambda's Cause is JSON with a stack trace we drop."""
    if error is None:
        return "unknown error"
    reason = error.error
    if error.cause:
        try:
            cause = json.loads(error.cause)
        except ValueError:
            cause = None
        if isinstance(cause, dict) and "errorMessage" in cause:
            reason = f"{cause.get('errorType') or error.error}: {cause['errorMessage']}"
        else:
            reason = f"{error.error}: {error.cause}"
    return one_line(reason, _MAX_REASON)


def stopped_execution_reason(status: StoppedExecutionStatus) -> str:
    """The recorded reason for an execution that timed out or was stopped (StopExecution)."""
    if status == "TIMED_OUT":
        return f"the workflow timed out after its {limits.WORKFLOW_TIMEOUT_HOURS}-hour limit"
    return "the workflow was stopped (aborted)"


def mark_failed(
    state: FailureInput,
    repository: WorkflowRepository,
    events: EventPublisher,
    clock: Clock = pipeline.utc_now,
) -> AssessmentResult | None:
    """Record FAILED with the step and reason, and publish the assessment's final event.

    Also the target of the rule for executions that timed out or were stopped, which may report
    late: an assessment already final keeps its status, and its final event is published again (a
    stopped execution may have ended between the save and the publication; consumers dedupe on
    event_id). None for an unknown assessment (an execution someone started by hand under another
    name): logged, nothing to record, and no error for Lambda to retry.
    """
    if state.execution_status is not None:
        reason = stopped_execution_reason(state.execution_status)
    else:
        reason = failure_reason(state.error)
    try:
        read = repository.get(state.assessment_id)
    except AssessmentNotFound:
        logger.warning(
            "no assessment %r to mark FAILED (%s); ignored: the execution was not started for one",
            state.assessment_id,
            reason,
        )
        return None
    try:
        failed = pipeline.save_with_retries(
            repository,
            read,
            lambda current: pipeline.mark_failed(current, state.failed_step or "workflow", reason, clock()),
        )
    except pipeline.AssessmentAlreadyFinished as finished:
        logger.warning("%s; ignoring the failure (%s) and publishing its final event again", finished, reason)
        failed = finished.assessment
    events.publish(assessment_finished(failed))
    return AssessmentResult(
        assessment_id=failed.assessment_id, status=failed.status, needs_review=failed.needs_review
    )
