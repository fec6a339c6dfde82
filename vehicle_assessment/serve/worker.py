"""The local stand-in for the Step Functions workflow: one worker thread runs an assessment's steps.

The steps are the Lambdas' own (``aws_runtime/workflow_steps.py``) over the local adapters, in the
state machine's order: DecodeVin, AnalysePhotos (one photo after another: one process holds one model),
Value, Describe, Speak, Store; any failure goes to MarkFailed with the step's state name and the
error, as the state machine's Catch does. So statuses move as on AWS: AWAITING_PHOTOS, PROCESSING,
then COMPLETED, NEEDS_PHOTOS or FAILED. One thread and one queue: photos are embedded one at a time
(torch uses the cores), and ``start`` of an assessment already queued or running is a no-op.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass

from vehicle_assessment.aws_runtime import workflow_steps as steps
from vehicle_assessment.domain.events import AssessmentFinished
from vehicle_assessment.domain.rules import AssessmentRules
from vehicle_assessment.ports import (
    Describer,
    ImageEncoder,
    ObjectStore,
    PhotoRegistry,
    ReferenceIndex,
    Speaker,
    VinDecoder,
    WorkflowRepository,
)

logger = logging.getLogger(__name__)


class LoggedEvents:
    """The EventPublisher of one machine: no bus, so each finished assessment is a log line."""

    def __init__(self) -> None:
        self.published: list[AssessmentFinished] = []

    def publish(self, event: AssessmentFinished) -> None:
        logger.info("assessment %s finished: %s", event.assessment_id, event.status.value)
        self.published.append(event)


@dataclass(frozen=True)
class WorkflowPorts:
    repository: WorkflowRepository
    objects: ObjectStore
    vin_decoder: VinDecoder
    # Opened on the first assessment, in the worker thread (the index holds a SQLite connection,
    # which belongs to the thread that opened it), then kept.
    encoder: Callable[[], ImageEncoder]
    index: Callable[[], ReferenceIndex]
    describer: Describer
    speaker: Speaker
    rules: AssessmentRules
    # The reused-photo check's registry (None: the check is switched off), as the CLI runner uses it.
    registry: PhotoRegistry | None = None


class LocalWorkflow:
    """Implements WorkflowStarter: ``start`` queues the assessment; the worker thread runs it."""

    def __init__(self, ports: WorkflowPorts) -> None:
        self.ports = ports
        self.events = LoggedEvents()
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._pending: set[str] = set()
        self._index: ReferenceIndex | None = None
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._work, name="assessment-worker", daemon=True)
        self._thread.start()

    def start(self, assessment_id: str) -> bool:
        """Idempotent, as a start with the assessment id as execution name: queued once at a time."""
        with self._lock:
            if assessment_id in self._pending:
                return True
            self._pending.add(assessment_id)
        self._queue.put(assessment_id)
        return True

    def join(self, timeout_s: float | None = None) -> bool:
        """Wait until every queued assessment has run; False if ``timeout_s`` passed first."""
        finished = threading.Event()

        def wait() -> None:
            self._queue.join()
            finished.set()

        threading.Thread(target=wait, daemon=True).start()
        return finished.wait(timeout_s)

    def stop(self, timeout_s: float = 30.0) -> None:
        """Finish the assessment in hand (queued ones stay AWAITING/PROCESSING and are logged), then end."""
        with self._lock:
            left = sorted(self._pending)
        if left:
            logger.warning("stopping with assessments not finished: %s", ", ".join(left))
        self._queue.put(None)
        self._thread.join(timeout_s)

    def _work(self) -> None:
        while True:
            assessment_id = self._queue.get()
            try:
                if assessment_id is None:
                    return
                self.run(assessment_id)
            finally:
                if assessment_id is not None:
                    with self._lock:
                        self._pending.discard(assessment_id)
                self._queue.task_done()

    def run(self, assessment_id: str) -> None:
        """The state machine, step by step; every exception is recorded by MarkFailed, never raised."""
        ports = self.ports
        ref = steps.AssessmentRef(assessment_id=assessment_id)
        step = "DecodeVin"
        try:
            batch = steps.decode_vin(ref, ports.repository, ports.vin_decoder)
            step = "AnalysePhotos"
            encoder = ports.encoder()
            if self._index is None:
                self._index = ports.index()
            for photo in batch.photos:
                task = steps.PhotoTask(assessment_id=assessment_id, photo=photo)
                steps.analyse_photo(
                    task, ports.repository, ports.objects, encoder, self._index, ports.rules, ports.registry
                )
            step = "Value"
            steps.value(ref, ports.repository, ports.rules)
            step = "Describe"
            steps.describe(ref, ports.repository, ports.describer, ports.rules)
            step = "Speak"
            steps.speak(ref, ports.repository, ports.speaker, ports.objects)
            step = "Store"
            result = steps.store(ref, ports.repository, self.events)
            logger.info("assessment %s is %s", assessment_id, result.status.value)
        except Exception as exc:  # the state machine's Catch on States.ALL
            logger.exception("assessment %s failed in %s", assessment_id, step)
            self._mark_failed(assessment_id, step, exc)

    def _mark_failed(self, assessment_id: str, step: str, exc: Exception) -> None:
        failure = steps.FailureInput(
            assessment_id=assessment_id,
            failed_step=step,
            # The Catch's {Error, Cause}, as Step Functions hands it to MarkFailed.
            error=steps.StepError.model_validate({"Error": type(exc).__name__, "Cause": str(exc)}),
        )
        try:
            steps.mark_failed(failure, self.ports.repository, self.events)
        except Exception:  # the state machine's MarkFailedFailed: the log is all that is left
            logger.exception("could not record the failure of assessment %s", assessment_id)
