"""Monthly cost of the AWS stack for a number of assessments per day, and the latency of one assessment.

    python scripts/cost.py --per-day 1000 20000            # cost tables, one per volume
    python scripts/cost.py --per-day 1000 --latency         # and the latency model
    python scripts/cost.py -c collection_standby_replicas=false -c languages=en --per-day 1000

Everything the stack decides is read from the stack itself, not copied here:

* ``infra/config.py`` InfraConfig (defaults, or ``-c key=value`` as for ``cdk synth``): encoder instance
  type and min/max instances, standby replicas, languages, Bedrock model, photos per assessment;
* the synthesized CloudFormation template (``bundling=skip``, ≈15 s; or ``--template`` a synthesized
  one): every Lambda's memory and architecture, the state machine definition (state transitions per
  assessment), the SQS batching window, alarms, dashboards and KMS keys;
* one assessment run through the real workflow steps (``aws_runtime/workflow_steps.py``) on the
  in-memory adapters, counting every repository and object-store call (→ DynamoDB and S3 requests),
  the size of the stored item (→ request units), the Bedrock prompt the describer builds for each
  description (→ input tokens), and the template description's length (→ Polly characters and the
  output tokens of a description of the same length);
* the reference feedback function (a review "as reference", ``infra/constructs/learning.py``): its
  memory from the template, its S3 and DynamoDB calls from ``aws_runtime/reference_requests.py``, the
  display copy's size by making one; how many reviews are "as reference" is an assumption
  (``--reference-reviews``);
* the review web app (``infra/constructs/site.py``): the distribution's price class from the template,
  the files a page load fetches from the directory the stack deploys; page loads per assessment and
  CloudFront's cache misses are assumptions;
* prices from ONE dated table, ``scripts/prices_us_east_1.json``, each with its source and whether it
  was confirmed from a stored page ("unverified" ones are marked in the output).

What the code cannot know (how long a step runs, photo size, log volume, traffic hours) is an
ASSUMPTION named in ``Assumptions`` and printed with the tables.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import threading
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Literal

ROOT = Path(__file__).resolve().parents[1]
# jsii (imported by infra.config's constructs) prints a Node version banner otherwise.
os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
if str(ROOT) not in sys.path:  # run as `python scripts/cost.py` from anywhere
    sys.path.insert(0, str(ROOT))

from infra.config import InfraConfig  # noqa: E402
from vehicle_assessment.adapters.aws.bedrock_describer import (  # noqa: E402
    FACTS_PREAMBLE,
    request_facts,
    system_prompt,
)
from vehicle_assessment.adapters.aws.bedrock_models import split_profile_id  # noqa: E402
from vehicle_assessment.adapters.aws.settings import BedrockSettings, PollySettings  # noqa: E402
from vehicle_assessment.aws_runtime import reference_requests  # noqa: E402
from vehicle_assessment.domain import limits  # noqa: E402
from vehicle_assessment.domain.rules import IntakeSettings  # noqa: E402

PRICES_FILE = Path(__file__).with_name("prices_us_east_1.json")
STACK = "VehicleAssessmentStack"
HOURS_PER_MONTH = 730  # AWS's pricing pages use 730 hours a month
DAYS_PER_MONTH = 30.42  # 365 / 12
LineKind = Literal["fixed", "per-assessment", "scale-out"]


# --- prices -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Price:
    key: str
    usd: float
    unit: str
    verified: str  # "aws-doc", "third-party" or "unverified"
    source: str


@dataclass(frozen=True)
class PriceTable:
    region: str
    as_of: str
    prices: Mapping[str, Price]

    def __getitem__(self, key: str) -> Price:
        try:
            return self.prices[key]
        except KeyError:
            raise KeyError(f"{key!r} has no price in {PRICES_FILE.name}: add it with its source") from None


def load_prices(path: Path = PRICES_FILE) -> PriceTable:
    data = json.loads(path.read_text())
    return PriceTable(
        region=data["region"],
        as_of=data["as_of"],
        prices={key: Price(key=key, **value) for key, value in data["prices"].items()},
    )


# --- assumptions (what the code cannot know) ----------------------------------------------------


@dataclass(frozen=True)
class Assumptions:
    """Every figure here is assumed, not measured; each is printed beside the tables."""

    photo_mb: float = 2.0  # a phone JPEG as uploaded
    audio_bytes_per_char: float = 160.0  # MP3 at 24 kbps, ~15 characters spoken per second
    chars_per_token: float = 4.0  # English-like text; other scripts take more tokens per character
    active_hours_per_day: float = 10.0  # yard hours: the day's traffic arrives in these hours
    api_requests_per_assessment: int = 3  # POST /assessments, then two GET /assessments/{id}
    log_kb_per_invocation: float = 2.0  # START/END/REPORT + a few Powertools JSON lines
    sfn_log_kb_per_transition: float = 0.8  # level ALL, no execution data: entered + exited events
    sqs_requests_per_photo: int = 3  # S3 → SendMessage, Lambda's ReceiveMessage and DeleteMessage
    reference_index_gb: float = 1.0  # the k-NN index of reference photos (AOSS managed storage)
    log_retention_months: float = 1.0  # InfraConfig.log_retention_days = 30
    history_months_without_ttl: float = 12.0  # assessment_ttl_days unset: the table's size after a year
    # Reviews "as reference" per assessment, each one photo added by the reference feedback function:
    # one assessment in fifty has a photo a reviewer keeps as a reference (--reference-reviews).
    reference_reviews_per_assessment: float = 0.02
    reference_copy_months: float = 12.0  # display copies stay with the index: their storage after a year
    # The review web app: page loads per assessment (the yard's, then a reviewer's), each fetching every
    # deployed file (no browser cache: an upper bound); the share of them CloudFront's cache misses.
    site_page_loads_per_assessment: float = 2.0
    site_cache_miss_ratio: float = 0.1
    # Billed duration of one warm invocation, ms (Lambda bills GB-s while a step waits on a service).
    step_ms: Mapping[str, float] = field(
        default_factory=lambda: {
            "api": 150,
            "upload_trigger": 120,
            "decode_vin": 600,  # vPIC over the internet
            "analyse_photo": 450,  # S3 GET + endpoint + k-NN query + DynamoDB
            "value": 150,
            "describe_per_description": 2500,  # one Bedrock Converse, ~150 output tokens
            "speak_per_description": 800,  # one Polly SynthesizeSpeech
            "store": 150,
            "sweeper": 300,
            # The original's GET, intake + display copy (0.6 s CPU for 12 MP, aws_runtime/index_build.py),
            # the stored embedding, the OpenSearch upsert (mapping read, lookup, bulk).
            "reference_feedback": 1500,
        }
    )


# --- the stack, from its synthesized template ---------------------------------------------------


@dataclass(frozen=True)
class LambdaFacts:
    module: str  # functions.<module>.handler
    memory_mb: int
    timeout_s: int
    architecture: str


@dataclass(frozen=True)
class StackFacts:
    functions: Mapping[str, LambdaFacts]
    definition: Mapping[str, Any]  # the state machine's Amazon States Language, tokens blanked
    endpoint_instance_type: str
    endpoint_min_instances: int
    endpoint_max_instances: int
    standby_replicas: bool
    sqs_batching_window_s: float
    alarms: int
    dashboards: int
    kms_keys: int
    sweep_rate_minutes: int
    # The review web app: the distribution's PriceClass (which edges, so which prices), and what one page
    # load fetches: the deployed files (``site_files()``) plus the config.json the stack writes.
    site_price_class: str
    site_requests_per_load: int
    site_bytes_per_load: int

    def function(self, module: str) -> LambdaFacts:
        try:
            return self.functions[module]
        except KeyError:
            raise KeyError(f"the template has no function with handler functions.{module}.handler") from None

    def transitions_per_assessment(self, photos: int) -> int:
        return count_transitions(self.definition, photos)


def synthesize_template(context: Mapping[str, Any]) -> dict[str, Any]:
    """``cdk synth`` of the stack with bundling skipped (no pip, no Docker), as tests/infra does."""
    os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
    from infra.app import build_app

    with tempfile.TemporaryDirectory(prefix="cost-synth-") as outdir:
        build_app(dict(context), outdir=outdir).synth()
        result: dict[str, Any] = json.loads((Path(outdir) / f"{STACK}.template.json").read_text())
        return result


def site_files() -> list[Path]:
    """The review web app's files as the stack deploys them (the Site construct's source and excludes)."""
    from fnmatch import fnmatch

    from infra.constructs.site import WEBAPP_DIR, WEBAPP_EXCLUDE

    return sorted(
        path
        for path in WEBAPP_DIR.rglob("*")
        if path.is_file()
        and not any(
            fnmatch(part, pattern)
            for part in path.relative_to(WEBAPP_DIR).parts
            for pattern in WEBAPP_EXCLUDE
        )
    )


def _resources(template: Mapping[str, Any], kind: str) -> list[Mapping[str, Any]]:
    return [r.get("Properties", {}) for r in template["Resources"].values() if r["Type"] == kind]


def _only(template: Mapping[str, Any], kind: str) -> Mapping[str, Any]:
    found = _resources(template, kind)
    if len(found) != 1:
        raise ValueError(f"expected one {kind} in the template, found {len(found)}")
    return found[0]


def _resolve_join(value: Any) -> str:
    """A DefinitionString is a string or an Fn::Join whose tokens (ARNs) sit inside JSON strings."""
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping) and "Fn::Join" in value:
        separator, parts = value["Fn::Join"]
        return str(separator).join(p if isinstance(p, str) else "TOKEN" for p in parts)
    raise ValueError(f"cannot read the state machine definition {str(value)[:80]}")


# The assessment workflow's logical id starts with its construct's id (infra/constructs/workflow.py).
# The stack's other state machine, the reference-index build (Distributed Map), runs when an operator
# loads references, not per assessment, so it is not in the per-assessment model.
ASSESSMENT_WORKFLOW_ID_PREFIX = "WorkflowStateMachine"


def _assessment_workflow(template: Mapping[str, Any]) -> Mapping[str, Any]:
    found = [
        r.get("Properties", {})
        for logical_id, r in template["Resources"].items()
        if r["Type"] == "AWS::StepFunctions::StateMachine"
        and logical_id.startswith(ASSESSMENT_WORKFLOW_ID_PREFIX)
    ]
    if len(found) != 1:
        raise ValueError(
            f"expected one assessment workflow ({ASSESSMENT_WORKFLOW_ID_PREFIX}*), found {len(found)}"
        )
    return found[0]


def stack_facts(template: Mapping[str, Any]) -> StackFacts:
    functions: dict[str, LambdaFacts] = {}
    for props in _resources(template, "AWS::Lambda::Function"):
        handler = str(props.get("Handler", ""))
        if handler.startswith("functions."):
            module = handler.split(".")[1]
            functions[module] = LambdaFacts(
                module=module,
                memory_mb=int(props.get("MemorySize", 128)),  # Lambda's default when unset
                timeout_s=int(props.get("Timeout", 3)),
                architecture=str((props.get("Architectures") or ["x86_64"])[0]),
            )
    machine = _assessment_workflow(template)
    if machine.get("StateMachineType", "STANDARD") != "STANDARD":
        raise ValueError("this model prices a Standard workflow (per state transition)")
    variant = _only(template, "AWS::SageMaker::EndpointConfig")["ProductionVariants"][0]
    scaling = _only(template, "AWS::ApplicationAutoScaling::ScalableTarget")
    collection = _only(template, "AWS::OpenSearchServerless::Collection")
    mapping = _only(template, "AWS::Lambda::EventSourceMapping")
    # The sweeper's: the one scheduled rule (the others match events: stopped executions, rare).
    [schedule] = [
        str(rule["ScheduleExpression"])  # rate(15 minutes)
        for rule in _resources(template, "AWS::Events::Rule")
        if "ScheduleExpression" in rule
    ]
    distribution = _only(template, "AWS::CloudFront::Distribution")["DistributionConfig"]
    files = site_files()
    return StackFacts(
        functions=functions,
        definition=json.loads(_resolve_join(machine["DefinitionString"])),
        endpoint_instance_type=str(variant["InstanceType"]),
        endpoint_min_instances=int(scaling["MinCapacity"]),
        endpoint_max_instances=int(scaling["MaxCapacity"]),
        standby_replicas=collection.get("StandbyReplicas", "ENABLED") == "ENABLED",
        sqs_batching_window_s=float(mapping.get("MaximumBatchingWindowInSeconds", 0)),
        alarms=len(_resources(template, "AWS::CloudWatch::Alarm")),
        dashboards=len(_resources(template, "AWS::CloudWatch::Dashboard")),
        kms_keys=len(_resources(template, "AWS::KMS::Key")),
        sweep_rate_minutes=int(schedule.removeprefix("rate(").split()[0]),
        # CloudFront's default when the template names none: every edge location.
        site_price_class=str(distribution.get("PriceClass", "PriceClass_All")),
        # config.json is one request more; its few hundred bytes are left out.
        site_requests_per_load=len(files) + 1,
        site_bytes_per_load=sum(path.stat().st_size for path in files),
    )


def count_transitions(definition: Mapping[str, Any], items: int, only: str | None = None) -> int:
    """States entered by one successful execution: the happy path (Next until End, a Succeed or a
    Fail), a Map's item processor once per item; ``only`` counts one state type (e.g. "Task", the Lambda
    invocations). A Standard workflow is billed per state transition
    (https://aws.amazon.com/step-functions/pricing/; retries add more)."""
    states: Mapping[str, Any] = definition["States"]
    name: str | None = definition["StartAt"]
    total = 0
    while name is not None:
        state = states[name]
        total += only is None or state["Type"] == only
        if state["Type"] == "Map":
            processor = state.get("ItemProcessor") or state["Iterator"]
            total += items * count_transitions(processor, 1, only)
        if state["Type"] in ("Succeed", "Fail") or state.get("End"):
            break
        name = state.get("Next")
    return total


# --- one assessment, through the real steps ------------------------------------------------------


@dataclass(frozen=True)
class Workload:
    """Per-assessment counts measured by running the workflow steps (upload → COMPLETED)."""

    photos: int
    repository_calls: Mapping[str, int]  # WorkflowRepository method → calls
    item_bytes: int  # the DynamoDB item of the completed assessment
    object_puts: int  # S3 PUTs by the steps (audio)
    object_gets: int  # S3 GETs by the steps (photos)
    descriptions: int
    prompt_chars: Sequence[int]  # per description: system prompt + user message
    description_chars: Sequence[int]  # per description: the text
    polly_requests: Sequence[int]  # characters of each Polly request (languages with a voice, chunked)
    events: int  # EventBridge events published
    languages: Sequence[str]
    reference_copy_bytes: int  # a reference's display copy, made from a sample photo as the function does
    # The reused-photo check's DynamoDB traffic (adapters/aws/photo_registry.py, measured by running it
    # on a counting table): read requests (key Queries + GetItems) and the bytes of each item written.
    registry_reads: int = 0
    registry_item_bytes: Sequence[int] = ()
    # Of those reads, the key Queries of the searches (sent PHOTO_REGISTRY_QUERY_WORKERS at a time).
    registry_queries: int = 0

    @property
    def dynamodb_writes(self) -> int:
        writes = ("create", "save", "record_photo", "mark_status", "save_photo_result", "reject_upload")
        return sum(self.repository_calls.get(name, 0) for name in writes)

    @property
    def dynamodb_reads(self) -> int:
        reads = ("get", "exists", "upload_progress", "rejected_uploads", "rejected_uploads_overflow")
        return sum(self.repository_calls.get(name, 0) for name in reads)


class _Counting:
    """Counts every method call on the object it wraps (a repository or an object store)."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.calls: Counter[str] = Counter()

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._inner, name)
        if not callable(attribute):
            return attribute

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] += 1
            return attribute(*args, **kwargs)

        return counted


class _CountingTable:
    """The boto3 Table calls the photo registry makes, counted: reads answer nothing (a new photo
    matches no other vehicle's), writes keep each item's size. The registry Queries through the Table's
    client (``meta.client``) from several threads at once: this table is its own client, and counts
    under a lock."""

    name = "cost-model"

    def __init__(self) -> None:
        self.reads = 0
        self.queries = 0
        self.item_bytes: list[int] = []
        self._lock = threading.Lock()
        self.meta = SimpleNamespace(client=self)

    def query(self, **_: Any) -> dict[str, Any]:
        with self._lock:
            self.reads += 1
            self.queries += 1
        return {"Items": []}

    def get_item(self, **_: Any) -> dict[str, Any]:
        with self._lock:
            self.reads += 1
        return {}

    def batch_writer(self) -> Any:
        table = self

        class Writer:
            def __enter__(self) -> Writer:
                return self

            def __exit__(self, *exc: object) -> None:
                return None

            def put_item(self, Item: Mapping[str, Any]) -> None:
                table.item_bytes.append(_item_bytes(Item))

            def delete_item(self, Key: Mapping[str, Any]) -> None:
                table.item_bytes.append(_item_bytes(Key))

        return Writer()


def _item_bytes(item: Mapping[str, Any]) -> int:
    """An item's size as DynamoDB bills it: attribute names plus values (binary as its bytes)."""
    size = 0
    for name, value in item.items():
        size += len(name.encode())
        size += len(value) if isinstance(value, bytes) else len(str(value).encode())
    return size


def _display_copy_bytes(photo: bytes, intake: IntakeSettings) -> int:
    """The size of the display copy the reference feedback function writes for ``photo``."""
    from vehicle_assessment.domain.photo import display_copy_jpeg, intake_photo

    return len(display_copy_jpeg(intake_photo(photo, intake).image))


def measure_workload(config: InfraConfig) -> Workload:
    """Run one assessment with ``config.expected_photos`` sample photos through the steps, on the
    in-memory adapters (the same services the Lambdas run), with offline encoder, index and decoder."""
    import numpy as np

    from vehicle_assessment.adapters.aws.dynamodb import DynamoAssessmentRepository, to_dynamo
    from vehicle_assessment.adapters.aws.photo_registry import DynamoPhotoRegistry
    from vehicle_assessment.adapters.aws.polly_speaker import split_text
    from vehicle_assessment.adapters.memory import (
        InMemoryAssessmentRepository,
        InMemoryEventPublisher,
        InMemoryObjectStore,
    )
    from vehicle_assessment.aws_runtime import workflow_steps as steps
    from vehicle_assessment.aws_runtime.api import upload_key
    from vehicle_assessment.aws_runtime.uploads import (
        UploadedObject,
        UploadRules,
        UploadServices,
        handle_upload,
        open_assessment,
    )
    from vehicle_assessment.domain import limits
    from vehicle_assessment.domain.description import TEMPLATE_LANGUAGES, TemplateDescriber
    from vehicle_assessment.domain.models import (
        AssessmentInputs,
        DamageType,
        Description,
        DescriptionRequest,
        DescriptionStyle,
        EncoderIdentity,
        Neighbour,
        ReferenceLabel,
        Severity,
        VehicleFacts,
    )
    from vehicle_assessment.domain.rules import AssessmentRules
    from vehicle_assessment.ports import ObjectHead, SpeechClip, SpeechUnavailable, VinDecoderUnavailable

    identity = EncoderIdentity(model_name="cost-model", pretrained=None, untrained=True, dimension=4)
    bedrock = BedrockSettings(model_id=config.bedrock_model_id)
    prompts: list[int] = []
    texts: list[int] = []

    class Encoder:
        def __init__(self) -> None:
            self.identity = identity

        def embed(self, images: Sequence[Any]) -> Any:
            return np.ones((len(images), 4), dtype=np.float32) / 2

    class Index:
        def __init__(self) -> None:
            self.identity = identity

        def search(self, vectors: Any, k: int) -> list[list[Neighbour]]:
            dent = ReferenceLabel(damaged=True, damage_type=DamageType.DENT, severity=Severity.MODERATE)
            return [
                [
                    Neighbour(reference_id=f"r{i}", source=f"r/{i}.jpg", similarity=0.9, label=dent)
                    for i in range(k)
                ]
                for _ in range(len(vectors))
            ]

        def count(self) -> int:
            return 1

    class Decoder:
        def decode(self, vin: str, model_year: int | None) -> VehicleFacts:
            raise VinDecoderUnavailable("offline: the cost model makes no network call")

    class MeasuringDescriber:
        """The template's text, and the prompt the Bedrock describer would send for the same request."""

        def __init__(self) -> None:
            self.template = TemplateDescriber()

        def describe(
            self, request: DescriptionRequest, style: DescriptionStyle, language: str, creativity: float
        ) -> Description:
            user = FACTS_PREAMBLE + json.dumps(request_facts(request), ensure_ascii=False, sort_keys=True)
            prompts.append(len(system_prompt(language, style, bedrock.max_words)) + len(user))
            # A language the template cannot write is measured by the English text's length.
            written = language if language in TEMPLATE_LANGUAGES else "en"
            description = self.template.describe(request, style, written, creativity)
            texts.append(len(description.text))
            return description.model_copy(update={"language": language})

    polly = PollySettings()
    spoken: list[int] = []  # characters per Polly request

    class Speaker:
        """PollySpeaker's voice table and chunking (its requests), without the network."""

        def synthesize(self, text: str, language: str) -> SpeechClip:
            if language.strip().lower() not in polly.voices:
                raise SpeechUnavailable(f"no Polly voice configured for language {language!r}")
            spoken.extend(len(chunk) for chunk in split_text(text, polly.max_chunk_chars))
            return SpeechClip(audio=b"ID3", content_type="audio/mpeg", extension="mp3")

    photo_files = sorted((ROOT / "sample_data" / "queries" / "damaged").glob("*.jpg"))
    photos = config.expected_photos
    if len(photo_files) < 1:
        raise FileNotFoundError("sample_data/queries/damaged has no photos to run the steps with")
    repository = _Counting(InMemoryAssessmentRepository())
    objects = _Counting(InMemoryObjectStore())
    events = InMemoryEventPublisher()
    now = datetime(2026, 1, 1, 12, tzinfo=UTC)
    rules = AssessmentRules(languages=tuple(config.languages))
    inputs = AssessmentInputs(vin="1FTMW1T88MFA00001", color="red", mileage=12_345, estimate_usd=20_000.0)
    repository.create(open_assessment(inputs, photos, now, "cost-1"))
    store = objects._inner  # the client's uploads are priced per photo in the lines, not counted here

    class Probe:
        """The upload trigger's ranged read (its S3 GET), over the in-memory store."""

        def head(self, key: str, n_bytes: int, version_id: str | None = None) -> ObjectHead:
            data = store.get(key, version_id)
            return ObjectHead(data[:n_bytes], {}, len(data), version_id or store.current_version(key))

    class Starter:
        def __init__(self) -> None:
            self.started = 0

        def start(self, assessment_id: str) -> bool:
            self.started += 1
            return True

    starter = Starter()
    upload = UploadServices(repository=repository, probe=Probe(), starter=starter)
    upload_rules = UploadRules(max_upload_bytes=limits.MAX_PHOTO_BYTES, default_expected_photos=photos)
    for n in range(1, photos + 1):
        data = photo_files[(n - 1) % len(photo_files)].read_bytes() + n.to_bytes(2, "big")  # distinct photos
        key = upload_key("cost-1", n)
        store.put(key, data, "image/jpeg")
        event = UploadedObject(
            bucket="uploads", key=key, size=len(data), version_id=store.current_version(key)
        )
        handle_upload(event, upload, upload_rules, now)
    if starter.started != 1:
        raise RuntimeError(f"the uploads started {starter.started} workflows, not 1")
    ref = steps.AssessmentRef(assessment_id="cost-1")
    batch = steps.decode_vin(ref, repository, Decoder(), clock=lambda: now)
    registry_table = _CountingTable()
    registry = DynamoPhotoRegistry(registry_table, rules.reuse) if rules.reuse.enabled else None
    for photo in batch.photos:
        task = steps.PhotoTask(assessment_id="cost-1", photo=photo)
        steps.analyse_photo(task, repository, objects, Encoder(), Index(), rules, registry, clock=lambda: now)
    steps.value(ref, repository, rules, clock=lambda: now)
    steps.describe(ref, repository, MeasuringDescriber(), rules, clock=lambda: now)
    steps.speak(ref, repository, Speaker(), objects, clock=lambda: now)
    result = steps.store(ref, repository, events, clock=lambda: now)
    done = repository._inner.get("cost-1")
    if result.status.value not in ("COMPLETED",):
        raise RuntimeError(f"the measured assessment ended {result.status.value}, not COMPLETED")
    # The API's reads (its GETs) are added by the cost lines: the steps' calls only here.
    item = to_dynamo(DynamoAssessmentRepository._document_attributes(done))
    return Workload(
        photos=photos,
        repository_calls=dict(repository.calls),
        item_bytes=len(json.dumps(item, default=str).encode()),
        object_puts=objects.calls["put"],
        object_gets=objects.calls["get"],
        descriptions=len(texts),
        prompt_chars=tuple(prompts),
        description_chars=tuple(texts),
        polly_requests=tuple(spoken),
        events=len(events.events),
        languages=tuple(config.languages),
        reference_copy_bytes=_display_copy_bytes(photo_files[0].read_bytes(), rules.intake),
        registry_reads=registry_table.reads,
        registry_item_bytes=tuple(registry_table.item_bytes),
        registry_queries=registry_table.queries,
    )


# --- the cost model -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Line:
    service: str
    item: str
    kind: LineKind
    quantity: float  # per month
    unit: str
    price: Price

    @property
    def usd(self) -> float:
        return self.quantity * self.price.usd


def bedrock_price_keys(model_id: str) -> tuple[str, str]:
    _, base = split_profile_id(model_id)
    return f"bedrock_{base}_input_1k_tokens", f"bedrock_{base}_output_1k_tokens"


def endpoint_instance_hours(
    per_day: float, config: InfraConfig, stack: StackFacts, a: Assumptions
) -> tuple[float, float]:
    """(hours at the minimum, extra hours scaled out). Target tracking keeps invocations per instance
    per minute at ``encoder_invocations_per_instance``; the day's photos arrive in the active hours."""
    base = stack.endpoint_min_instances * HOURS_PER_MONTH
    per_minute = per_day * config.expected_photos / (a.active_hours_per_day * 60)
    needed = min(
        stack.endpoint_max_instances,
        max(stack.endpoint_min_instances, math.ceil(per_minute / config.encoder_invocations_per_instance)),
    )
    extra = (needed - stack.endpoint_min_instances) * a.active_hours_per_day * DAYS_PER_MONTH
    return base, extra


def lambda_gb_seconds(work: Workload, stack: StackFacts, a: Assumptions) -> float:
    """GB-s per assessment: each step's billed duration (assumed) × its memory (from the template)."""
    ms = a.step_ms
    invocations = {
        "api": (a.api_requests_per_assessment, ms["api"]),
        "upload_trigger": (work.photos, ms["upload_trigger"]),
        "decode_vin": (1, ms["decode_vin"]),
        "analyse_photo": (work.photos, ms["analyse_photo"]),
        "value": (1, ms["value"]),
        "describe": (1, work.descriptions * ms["describe_per_description"]),
        "speak": (1, work.descriptions * ms["speak_per_description"]),
        "store": (1, ms["store"]),
    }
    return sum(
        count * duration / 1000 * stack.function(m).memory_mb / 1024
        for m, (count, duration) in invocations.items()
    )


def lambda_invocations(work: Workload, stack: StackFacts, a: Assumptions) -> int:
    """The API's requests, one upload trigger per photo (a batch of one at these rates), and every
    Task state of the workflow's happy path (each invokes its Lambda)."""
    tasks = count_transitions(stack.definition, work.photos, only="Task")
    return a.api_requests_per_assessment + work.photos + tasks


def cost_lines(
    per_day: float,
    config: InfraConfig,
    stack: StackFacts,
    work: Workload,
    prices: PriceTable,
    a: Assumptions | None = None,
) -> list[Line]:
    a = a or Assumptions()
    month = per_day * DAYS_PER_MONTH  # assessments a month
    photos = month * work.photos
    arch = stack.function("analyse_photo").architecture
    base_hours, extra_hours = endpoint_instance_hours(per_day, config, stack, a)
    instance = prices[f"sagemaker_{stack.endpoint_instance_type}_hour"]
    # Minimum billed OCUs of a vector collection: with standby replicas 1 OCU indexing (0.5 × 2) + 1 OCU
    # search (0.5 × 2); without, 0.5 + 0.5 ("Managing capacity limits for Amazon OpenSearch Serverless",
    # https://docs.aws.amazon.com/opensearch-service/latest/developerguide/serverless-scaling.html).
    ocus = 2.0 if stack.standby_replicas else 1.0
    b_in, b_out = bedrock_price_keys(config.bedrock_model_id)
    input_tokens = sum(c / a.chars_per_token for c in work.prompt_chars)
    output_tokens = sum(c / a.chars_per_token for c in work.description_chars)
    # "SSML tags are not counted as billed characters" (Polly TextLengthExceededException, botocore
    # reference: docs.aws.amazon.com/botocore/latest/reference/services/polly/client/exceptions/
    # TextLengthExceededException.html): the plain text of each request is what is billed.
    polly_chars = sum(work.polly_requests)
    engine = PollySettings().engine
    wru_per_write = math.ceil(work.item_bytes / 1024)  # a write unit per KB of the (larger) item
    rru_per_read = math.ceil(work.item_bytes / 4096)  # strongly consistent: a read unit per 4 KB
    api_reads = a.api_requests_per_assessment - 1  # the GETs read the item; the POST creates it
    audio_gb = polly_chars * a.audio_bytes_per_char / 1e9
    stored_months = config.photo_retention_days / DAYS_PER_MONTH  # steady state: photos kept this long
    item_months = (
        config.assessment_ttl_days / DAYS_PER_MONTH
        if config.assessment_ttl_days
        else a.history_months_without_ttl
    )
    sweeps = HOURS_PER_MONTH * 60 / stack.sweep_rate_minutes
    transitions = stack.transitions_per_assessment(work.photos)
    invocations = lambda_invocations(work, stack, a)
    # The reference feedback function, once per review "as reference" (asynchronous, from the API).
    references = month * a.reference_reviews_per_assessment
    feedback = stack.function("reference_feedback")
    feedback_gb_s = a.step_ms["reference_feedback"] / 1000 * feedback.memory_mb / 1024
    # Its DynamoDB reads: the assessment item, and the photo's fingerprint item (the stored embedding:
    # the largest registry item written, at most 4 KB a read unit, at least one).
    fingerprint_rru = max(1, math.ceil(max(work.registry_item_bytes, default=0) / 4096))
    reference_rru = rru_per_read + (reference_requests.DYNAMODB_READS_PER_REFERENCE - 1) * fingerprint_rru
    log_gb = (
        (invocations + a.reference_reviews_per_assessment) * a.log_kb_per_invocation
        + transitions * a.sfn_log_kb_per_transition
    ) / 1e6
    # The review web app: every page load fetches the deployed files through CloudFront.
    page_loads = month * a.site_page_loads_per_assessment
    site_requests = page_loads * stack.site_requests_per_load
    traces = 1 + work.photos + a.api_requests_per_assessment  # execution, upload triggers, API calls
    lines = [
        Line(
            "SageMaker endpoint",
            f"{stack.endpoint_min_instances} × {stack.endpoint_instance_type}, always on",
            "fixed",
            base_hours,
            "instance-hours",
            instance,
        ),
        Line(
            "OpenSearch Serverless",
            f"{ocus:g} OCU minimum ({'standby replicas' if stack.standby_replicas else 'no standby'})",
            "fixed",
            ocus * HOURS_PER_MONTH,
            "OCU-hours",
            prices["aoss_ocu_hour"],
        ),
        Line(
            "OpenSearch Serverless",
            "reference index storage",
            "fixed",
            a.reference_index_gb,
            "GB-month",
            prices["aoss_storage_gb_month"],
        ),
        Line(
            "Lambda",
            "compute (all functions)",
            "per-assessment",
            month * lambda_gb_seconds(work, stack, a),
            "GB-s",
            prices[f"lambda_{arch}_gb_second"],
        ),
        Line(
            "Lambda",
            f"requests ({invocations} per assessment)",
            "per-assessment",
            month * invocations,
            "requests",
            prices["lambda_request"],
        ),
        Line(
            "Lambda",
            f"sweeper every {stack.sweep_rate_minutes} min",
            "fixed",
            sweeps,
            "requests",
            prices["lambda_request"],
        ),
        Line(
            "Lambda",
            f"reference feedback compute ({a.reference_reviews_per_assessment:g} per assessment, "
            f"{feedback.memory_mb} MB)",
            "per-assessment",
            references * feedback_gb_s,
            "GB-s",
            prices[f"lambda_{feedback.architecture}_gb_second"],
        ),
        Line(
            "Lambda",
            "reference feedback requests (asynchronous)",
            "per-assessment",
            references,
            "requests",
            prices["lambda_request"],
        ),
        Line(
            "Step Functions",
            f"Standard, {transitions} transitions per assessment",
            "per-assessment",
            month * transitions,
            "transitions",
            prices["sfn_standard_transition"],
        ),
        Line(
            "S3",
            "photo uploads + audio PUTs",
            "per-assessment",
            photos + month * work.object_puts,
            "PUT requests",
            prices["s3_put_request"],
        ),
        Line(
            "S3",
            "photo GETs (trigger's 16-byte read + analyse)",
            "per-assessment",
            photos + month * work.object_gets,
            "GET requests",
            prices["s3_get_request"],
        ),
        Line(
            "S3",
            f"storage, photos kept {config.photo_retention_days} d (steady state) + audio",
            "per-assessment",
            photos * a.photo_mb / 1000 * stored_months + month * audio_gb * stored_months,
            "GB-month",
            prices["s3_standard_gb_month"],
        ),
        Line(
            "S3",
            "reference feedback: the original's GET",
            "per-assessment",
            references * reference_requests.S3_GETS_PER_REFERENCE,
            "GET requests",
            prices["s3_get_request"],
        ),
        Line(
            "S3",
            "reference feedback: the display copy's PUT",
            "per-assessment",
            references * reference_requests.S3_PUTS_PER_REFERENCE,
            "PUT requests",
            prices["s3_put_request"],
        ),
        Line(
            "S3",
            f"reference display copies ({work.reference_copy_bytes / 1000:.0f} KB each, "
            f"{a.reference_copy_months:g} months)",
            "per-assessment",
            references * work.reference_copy_bytes / 1e9 * a.reference_copy_months,
            "GB-month",
            prices["s3_standard_gb_month"],
        ),
        Line(
            "S3",
            f"review site origin GETs ({a.site_cache_miss_ratio:.0%} of its requests miss the cache)",
            "per-assessment",
            site_requests * a.site_cache_miss_ratio,
            "GET requests",
            prices["s3_get_request"],
        ),
        Line(
            "DynamoDB",
            f"writes ({work.dynamodb_writes} × {wru_per_write} WRU)",
            "per-assessment",
            month * work.dynamodb_writes * wru_per_write,
            "WRU",
            prices["dynamodb_write_request_unit"],
        ),
        Line(
            "DynamoDB",
            f"reads ({work.dynamodb_reads + api_reads} × {rru_per_read} RRU)",
            "per-assessment",
            month * (work.dynamodb_reads + api_reads) * rru_per_read,
            "RRU",
            prices["dynamodb_read_request_unit"],
        ),
        Line(
            "DynamoDB",
            f"reused-photo check: {work.registry_reads} key reads",
            "per-assessment",
            # A strongly consistent read of up to 4 KB is one read unit, a write one unit per KB of each
            # item (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/read-write-operations.html);
            # a batch write bills each item as its own write.
            month * work.registry_reads,
            "RRU",
            prices["dynamodb_read_request_unit"],
        ),
        Line(
            "DynamoDB",
            f"reused-photo check: {len(work.registry_item_bytes)} item writes",
            "per-assessment",
            month * sum(math.ceil(size / 1024) for size in work.registry_item_bytes),
            "WRU",
            prices["dynamodb_write_request_unit"],
        ),
        Line(
            "DynamoDB",
            f"reference feedback reads ({reference_requests.DYNAMODB_READS_PER_REFERENCE} GetItems, "
            f"{reference_rru} RRU)",
            "per-assessment",
            references * reference_rru,
            "RRU",
            prices["dynamodb_read_request_unit"],
        ),
        Line(
            "DynamoDB",
            f"reference feedback save "
            f"({reference_requests.DYNAMODB_WRITES_PER_REFERENCE} × {wru_per_write} WRU)",
            "per-assessment",
            references * reference_requests.DYNAMODB_WRITES_PER_REFERENCE * wru_per_write,
            "WRU",
            prices["dynamodb_write_request_unit"],
        ),
        Line(
            "DynamoDB",
            f"storage ({item_months:g} months of assessments)",
            "per-assessment",
            month * work.item_bytes / 1e9 * item_months,
            "GB-month",
            prices["dynamodb_storage_gb_month"],
        ),
        Line(
            "Bedrock",
            f"{config.bedrock_model_id} input ({work.descriptions} descriptions)",
            "per-assessment",
            month * input_tokens / 1000,
            "1k tokens",
            prices[b_in],
        ),
        Line(
            "Bedrock",
            f"{config.bedrock_model_id} output",
            "per-assessment",
            month * output_tokens / 1000,
            "1k tokens",
            prices[b_out],
        ),
        Line(
            "Polly",
            f"{engine}, {len(work.languages)} language(s)",
            "per-assessment",
            month * polly_chars,
            "characters",
            prices[f"polly_{engine}_character"],
        ),
        Line(
            "API Gateway",
            "REST requests",
            "per-assessment",
            month * a.api_requests_per_assessment,
            "requests",
            prices["apigateway_rest_request"],
        ),
        Line(
            "CloudFront",
            f"review site HTTPS requests ({stack.site_requests_per_load} per page load, "
            f"{a.site_page_loads_per_assessment:g} loads per assessment, {stack.site_price_class})",
            "per-assessment",
            site_requests,
            "requests",
            prices[f"cloudfront_{stack.site_price_class}_https_request"],
        ),
        Line(
            "CloudFront",
            f"review site data transfer out ({stack.site_bytes_per_load / 1000:.0f} KB per page load)",
            "per-assessment",
            page_loads * stack.site_bytes_per_load / 1e9,
            "GB",
            prices[f"cloudfront_{stack.site_price_class}_data_transfer_out_gb"],
        ),
        Line(
            "SQS",
            "upload events",
            "per-assessment",
            photos * a.sqs_requests_per_photo,
            "requests",
            prices["sqs_standard_request"],
        ),
        Line(
            "CloudWatch",
            "logs ingested (estimate)",
            "per-assessment",
            month * log_gb,
            "GB",
            prices["cloudwatch_logs_ingest_gb"],
        ),
        Line(
            "CloudWatch",
            "logs stored (retention)",
            "per-assessment",
            month * log_gb * a.log_retention_months,
            "GB-month",
            prices["cloudwatch_logs_storage_gb_month"],
        ),
        Line(
            "CloudWatch",
            f"{stack.alarms} alarms",
            "fixed",
            stack.alarms,
            "alarm-months",
            prices["cloudwatch_alarm_month"],
        ),
        Line(
            "CloudWatch",
            f"{stack.dashboards} dashboard(s)",
            "fixed",
            stack.dashboards,
            "dashboard-months",
            prices["cloudwatch_dashboard_month"],
        ),
        Line(
            "X-Ray",
            "traces (active tracing)",
            "per-assessment",
            month * traces,
            "traces",
            prices["xray_trace_recorded"],
        ),
        Line(
            "EventBridge",
            "completion events",
            "per-assessment",
            month * work.events,
            "events",
            prices["eventbridge_custom_event"],
        ),
        Line(
            "KMS",
            f"{stack.kms_keys} customer managed key(s)",
            "fixed",
            stack.kms_keys,
            "key-months",
            prices["kms_key_month"],
        ),
    ]
    if extra_hours:
        lines.insert(
            1,
            Line(
                "SageMaker endpoint",
                "scale-out in active hours",
                "scale-out",
                extra_hours,
                "instance-hours",
                instance,
            ),
        )
    return lines


def total(lines: Iterable[Line]) -> float:
    return sum(line.usd for line in lines)


# --- levers -------------------------------------------------------------------------------------


def levers(
    per_day: float,
    config: InfraConfig,
    stack: StackFacts,
    work: Workload,
    prices: PriceTable,
    a: Assumptions | None = None,
) -> list[str]:
    """The three biggest levers at this volume: each candidate priced by re-running the model with the
    change (a config or stack field, or a line removed), largest monthly saving first."""
    lines = cost_lines(per_day, config, stack, work, prices, a)
    base, month = total(lines), per_day * DAYS_PER_MONTH
    endpoint = sum(line.usd for line in lines if line.service == "SageMaker endpoint")
    polly = sum(line.usd for line in lines if line.service == "Polly")
    standard = (
        polly
        * prices["polly_standard_character"].usd
        / prices[f"polly_{PollySettings().engine}_character"].usd
    )
    candidates = [
        (
            endpoint,
            f"Encoder endpoint (always on, {endpoint / base:.0%} of the total): serverless or asynchronous "
            "inference that scales to zero, or a CPU instance, saves up to ${:,.0f}/month.",
        ),
        (
            base
            - total(cost_lines(per_day, config, replace(stack, standby_replicas=False), work, prices, a)),
            "OpenSearch standby replicas off (collection_standby_replicas=false; minimum billed OCUs 2 → 1, "
            "no standby in a second AZ): saves ${:,.0f}/month.",
        ),
        (
            polly - standard,
            f"Polly standard voices instead of {PollySettings().engine} (PollySettings.engine): "
            "saves ${:,.0f}/month.",
        ),
        (
            base
            - total(
                cost_lines(
                    per_day, config.model_copy(update={"photo_retention_days": 90}), stack, work, prices, a
                )
            ),
            f"Photo retention {config.photo_retention_days} → 90 days (photo_retention_days): "
            "saves ${:,.0f}/month "
            "at steady state.",
        ),
    ]
    if len(config.languages) > 1:
        fewer = config.model_copy(update={"languages": config.languages[:-1]})
        saved = base - total(cost_lines(per_day, fewer, stack, measure_workload(fewer), prices, a))
        candidates.append(
            (
                saved,
                f"One language fewer (languages without '{config.languages[-1]}': Bedrock, Polly, "
                "Lambda time, "
                f"audio): saves ${{:,.0f}}/month (${saved / month:.5f} per assessment).",
            )
        )
    candidates.sort(key=lambda c: c[0], reverse=True)
    return [text.format(saved) for saved, text in candidates[:3]]


# --- latency ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Stage:
    name: str
    p50_ms: float
    source: str


# One DynamoDB request's p50 from a Lambda function in the region: "single-digit millisecond
# performance at any scale" (https://aws.amazon.com/dynamodb/), plus the SDK's signing and parsing.
DYNAMODB_ROUND_TRIP_MS = 10.0
DYNAMODB_LATENCY_SOURCE = "assumed: single-digit ms per request (aws.amazon.com/dynamodb) + SDK, ~10 ms each"


def _registry_stage(work: Workload) -> Stage | None:
    """The reused-photo check of one photo (adapters/aws/photo_registry.py), round trip by round trip:
    remember's GetItem and BatchWriteItem, then the search's key Queries in waves of
    PHOTO_REGISTRY_QUERY_WORKERS (counts measured by running the registry: measure_workload)."""
    if not work.registry_queries or not work.photos:
        return None
    queries = work.registry_queries // work.photos
    gets = (work.registry_reads - work.registry_queries) // work.photos
    waves = math.ceil(queries / limits.PHOTO_REGISTRY_QUERY_WORKERS)
    round_trips = gets + 1 + waves
    return Stage(
        f"AnalysePhoto: reused-photo check ({gets} GetItem + 1 BatchWriteItem, then {queries} Queries in "
        f"{waves} waves of {limits.PHOTO_REGISTRY_QUERY_WORKERS})",
        round_trips * DYNAMODB_ROUND_TRIP_MS,
        f"{DYNAMODB_LATENCY_SOURCE}; a wave waits for its slowest Query; gives up at "
        f"{limits.PHOTO_REGISTRY_DEADLINE_S:g} s (limits.PHOTO_REGISTRY_DEADLINE_S)",
    )


def latency_stages(
    config: InfraConfig,
    stack: StackFacts,
    work: Workload,
    cold: bool = False,
    parallel_descriptions: bool = False,
) -> list[Stage]:
    """ "Third photo landed → COMPLETED", step by step, p50. Photos run in parallel in the Map when
    map_max_concurrency ≥ photos; descriptions and their audio run one after another (the steps loop)."""
    parallel = config.map_max_concurrency >= work.photos
    waves = math.ceil(work.photos / config.map_max_concurrency)
    n = 1 if parallel_descriptions else work.descriptions  # calls in sequence on the critical path
    transitions = stack.transitions_per_assessment(1)  # critical path: one Map iteration per wave
    cold_start = 900.0 if cold else 0.0
    functions_on_path = 7  # upload trigger, decode, analyse, value, describe, speak, store
    registry_stage = _registry_stage(work)
    stages = [
        Stage("S3 event → SQS message", 300, "assumed (S3 event notifications are typically sub-second)"),
        Stage(
            f"SQS → Lambda (batching window {stack.sqs_batching_window_s:g} s)",
            stack.sqs_batching_window_s * 1000,
            "template: EventSourceMapping MaximumBatchingWindowInSeconds",
        ),
        Stage("upload trigger (record photo, StartExecution)", 120, "assumed warm duration"),
        Stage(
            f"Step Functions: {transitions + waves - 1} transitions on the critical path",
            40.0 * (transitions + waves - 1),
            "assumed ~40 ms per Standard transition",
        ),
        Stage("DecodeVin: vPIC decode", 500, "assumed (public vPIC API over the internet)"),
        Stage("AnalysePhoto: S3 GET of the photo", 80, "assumed (2 MB in-region)"),
        Stage(
            "AnalysePhoto: endpoint inference (1 photo per request)",
            75.6,
            "measured: README 'The serving path on a GPU' G3 batch 1, H200 (forward pass 0.7 ms)",
        ),
        Stage("AnalysePhoto: OpenSearch k-NN query", 40, "assumed (AOSS vector query, small index)"),
        *([registry_stage] if registry_stage else []),
        Stage("AnalysePhoto: DynamoDB read + write", DYNAMODB_ROUND_TRIP_MS * 2, DYNAMODB_LATENCY_SOURCE),
    ]
    photo_ms = sum(stage.p50_ms for stage in stages if stage.name.startswith("AnalysePhoto:"))
    stages += [
        Stage(
            f"AnalysePhoto ×{waves - 1} more wave(s)"
            if waves > 1
            else "AnalysePhoto: other photos in parallel",
            0 if parallel else (waves - 1) * photo_ms,
            f"map_max_concurrency={config.map_max_concurrency} (config)",
        ),
        Stage("Value", 100, "assumed"),
        Stage(
            f"Describe: {n} Bedrock call(s) in sequence",
            n * 2500,
            f"assumed ~2.5 s per {config.bedrock_model_id} listing (~150 output tokens)",
        ),
        Stage(
            f"Speak: {n} Polly call(s) in sequence + S3 PUT",
            n * 700,
            f"assumed ~0.7 s per SynthesizeSpeech of {max(work.polly_requests, default=0)} characters "
            "(measured text length)",
        ),
        Stage("Store + EventBridge PutEvents", 120, "assumed"),
    ]
    if cold:
        stages.append(
            Stage(
                f"cold starts: {functions_on_path} functions",
                functions_on_path * cold_start,
                "assumed ~0.9 s each: init + imports (README P4: handler imports 0.3–0.48 s)",
            )
        )
    return stages


def latency_report(config: InfraConfig, stack: StackFacts, work: Workload) -> str:
    warm = latency_stages(config, stack, work)
    cold = latency_stages(config, stack, work, cold=True)
    rows = ["| stage | p50 (ms) | source |", "|---|---:|---|"]
    rows += [f"| {s.name} | {s.p50_ms:,.0f} | {s.source} |" for s in cold]
    warm_total, cold_total = sum(s.p50_ms for s in warm), sum(s.p50_ms for s in cold)
    top = max(warm, key=lambda s: s.p50_ms)
    redesign = latency_stages(
        config, replace(stack, sqs_batching_window_s=0), work, parallel_descriptions=True
    )
    redesigned = sum(s.p50_ms for s in redesign)
    rows += [
        f"| **total, warm** | **{warm_total:,.0f}** | |",
        f"| **total, every function cold** | **{cold_total:,.0f}** | |",
        "",
        f"Dominant: {top.name} ({top.p50_ms / warm_total:.0%} of the warm total); Bedrock and Polly together "
        f"{sum(s.p50_ms for s in warm if s.name.startswith(('Describe', 'Speak'))) / warm_total:.0%}.",
        f"Redesigned as (1)–(3) below, warm: {redesigned:,.0f} ms.",
        "Under 5 s: (1) write the descriptions concurrently (a Map over language × style, or threads in "
        "the describe step) so the step takes one Bedrock call, not one per description; (2) speak each "
        "description as soon as it is written, in the same parallel branch, or synthesise audio on first "
        "request instead of in the workflow; (3) drop the SQS batching window to 0 and keep functions warm "
        "(SnapStart / provisioned concurrency) so no cold start is on the path; (4) an Express workflow "
        "would also cut the per-transition overhead.",
    ]
    return "\n".join(rows)


# --- output -------------------------------------------------------------------------------------


def _flag(price: Price) -> str:
    return "" if price.verified != "unverified" else " ⚠ unverified"


def cost_table(per_day: float, lines: Sequence[Line]) -> str:
    month = per_day * DAYS_PER_MONTH
    rows = [
        f"**{per_day:,.0f} assessments/day** ({month:,.0f}/month)",
        "",
        "| service | item | kind | quantity / month | unit price (USD) | USD / month |",
        "|---|---|---|---:|---:|---:|",
    ]
    for line in lines:
        rows.append(
            f"| {line.service} | {line.item} | {line.kind} | {line.quantity:,.1f} {line.unit} | "
            f"{line.price.usd:.10g} / {line.price.unit}{_flag(line.price)} | {line.usd:,.2f} |"
        )
    fixed = sum(line.usd for line in lines if line.kind == "fixed")
    variable = total(lines) - fixed
    rows += [
        f"| **total** | | | | | **{total(lines):,.2f}** |",
        "",
        f"Per assessment: ${total(lines) / month:.4f} (fixed ${fixed:,.0f}/month spread over {month:,.0f}, "
        f"plus ${variable / month:.4f} that scales with volume).",
    ]
    return "\n".join(rows)


def facts_report(
    config: InfraConfig, stack: StackFacts, work: Workload, prices: PriceTable, a: Assumptions
) -> str:
    fns = ", ".join(f"{f.module} {f.memory_mb} MB/{f.timeout_s} s" for f in stack.functions.values())
    return "\n".join(
        "- " + line
        for line in [
            f"Prices: {prices.region}, as of {prices.as_of} ({PRICES_FILE.name}); "
            "⚠ = not confirmed from a stored page.",
            f"Stack (synthesized): {stack.endpoint_min_instances}–{stack.endpoint_max_instances} × "
            f"{stack.endpoint_instance_type}; "
            f"vector collection standby replicas {'on' if stack.standby_replicas else 'off'}; Lambda "
            f"({stack.function('analyse_photo').architecture}): {fns}.",
            f"Measured per assessment ({work.photos} photos, languages {', '.join(work.languages)}): "
            f"{stack.transitions_per_assessment(work.photos)} state transitions; repository calls "
            f"{dict(sorted(work.repository_calls.items()))}; item {work.item_bytes:,} bytes; "
            f"{work.descriptions} descriptions, prompts {list(work.prompt_chars)} chars, texts "
            f"{list(work.description_chars)} chars, Polly requests {list(work.polly_requests)} chars; "
            f"{work.object_puts} S3 PUT(s), {work.object_gets} GET(s) "
            "by the steps; "
            f"{work.events} event(s); a reference's display copy {work.reference_copy_bytes:,} bytes.",
            f"Review site ({stack.site_price_class}): a page load fetches {stack.site_requests_per_load} "
            f"files, {stack.site_bytes_per_load:,} bytes (the deployed web app, uncompressed).",
            f"Assumed: {', '.join(f'{k}={v}' for k, v in vars(a).items() if k != 'step_ms')}; "
            f"step durations (ms) {dict(a.step_ms)}.",
        ]
    )


def parse_context(pairs: Sequence[str]) -> dict[str, Any]:
    context: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise SystemExit(f"-c takes key=value, got {pair!r}")
        context[key] = value
    return context


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-day", type=float, nargs="+", default=[1000, 20000], help="assessments per day")
    parser.add_argument("--latency", action="store_true", help="also print the latency model")
    parser.add_argument("-c", "--context", action="append", default=[], help="InfraConfig key=value")
    parser.add_argument("--template", type=Path, help="a synthesized template instead of synthesizing one")
    parser.add_argument(
        "--reference-reviews",
        type=float,
        default=Assumptions.reference_reviews_per_assessment,
        help="reviews 'as reference' per assessment (reference feedback invocations), default %(default)s",
    )
    args = parser.parse_args(argv)
    if args.reference_reviews < 0:
        print("--reference-reviews must be 0 or more", file=sys.stderr)
        return 2
    context = parse_context(args.context)
    try:
        config = InfraConfig.model_validate(context)
    except ValueError as exc:
        print(f"invalid configuration: {exc}", file=sys.stderr)
        return 2
    template = (
        json.loads(args.template.read_text())
        if args.template
        else synthesize_template({"bundling": "skip", "acknowledge_no_index_loader": True, **context})
    )
    stack, work, prices, assumptions = (
        stack_facts(template),
        measure_workload(config),
        load_prices(),
        Assumptions(reference_reviews_per_assessment=args.reference_reviews),
    )
    print(facts_report(config, stack, work, prices, assumptions), end="\n\n")
    for per_day in args.per_day:
        print(cost_table(per_day, cost_lines(per_day, config, stack, work, prices, assumptions)), end="\n\n")
        print(
            "Levers:",
            *(
                f"{i}. {text}"
                for i, text in enumerate(levers(per_day, config, stack, work, prices, assumptions), 1)
            ),
            sep="\n",
            end="\n\n",
        )
    if args.latency:
        print(latency_report(config, stack, work))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
