"""Composition root of `vehicle-assessment serve`: the Lambda API's routes over the local adapters.

The API handler (``functions/api.py``) is given local services through its one seam,
``provide_services``: the SQLite WorkflowRepository (the CLI's database file), the filesystem object
store, the template describer, espeak-ng, locally signed media links, and an S3 client that signs
upload forms for this server (botocore's own ``generate_presigned_post``, with a key pair made for
this process and this server as endpoint: nothing is sent anywhere). The workflow runs in one
background worker (``worker.py``).
"""

from __future__ import annotations

import os
import secrets
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vehicle_assessment.adapters.local.espeak_speaker import EspeakSpeaker
from vehicle_assessment.adapters.local.object_store import FilesystemObjectStore
from vehicle_assessment.adapters.local.s3_post_policy import Credentials
from vehicle_assessment.adapters.local.vector_index import LocalVectorIndex
from vehicle_assessment.adapters.local.wiring import build_reference_feedback, open_photo_registry
from vehicle_assessment.adapters.local.workflow_repository import SqliteWorkflowRepository
from vehicle_assessment.adapters.vpic import VpicVinDecoder
from vehicle_assessment.aws_runtime.api import ApiServices
from vehicle_assessment.aws_runtime.config import ApiConfig
from vehicle_assessment.aws_runtime.uploads import UploadRules, UploadServices
from vehicle_assessment.domain.description import TemplateDescriber
from vehicle_assessment.domain.models import Assessment, PhotoRecord, PhotoReview
from vehicle_assessment.ports import ImageEncoder, ObjectStore
from vehicle_assessment.serve.media import SignedMediaLinks
from vehicle_assessment.serve.server import LocalApi, LocalServer, UploadEndpoint, is_loopback
from vehicle_assessment.serve.worker import LocalWorkflow, WorkflowPorts
from vehicle_assessment.settings import LocalSettings

LOCAL_BUCKET = "local-photos"
# Any region will do: the signature's scope names it, and this server checks with the same one.
LOCAL_REGION = "us-east-1"
# The web app the package ships (written by the web app's work); absent, `/` answers 404.
WEBAPP_DIR = Path(__file__).resolve().parents[1] / "webapp"
TOKEN_ENV = "VDA_SERVE_TOKEN"
# Powertools reads these when functions/api.py is first imported: a service name for the log lines,
# no X-Ray, and no CloudWatch metrics (EMF lines on stdout mean nothing without CloudWatch).
POWERTOOLS_DEFAULTS = {
    "POWERTOOLS_SERVICE_NAME": "vehicle-assessment-serve",
    "POWERTOOLS_METRICS_NAMESPACE": "VehicleAssessmentLocal",
    "POWERTOOLS_TRACE_DISABLED": "true",
    "POWERTOOLS_METRICS_DISABLED": "true",
    # The handler's own lines (JSON on stdout): client errors are info there; keep warnings and errors.
    "POWERTOOLS_LOG_LEVEL": "WARNING",
}


def local_presigning_client(base_url: str, credentials: Credentials) -> Any:
    """An S3 client that signs POST forms (SigV4) for ``{base_url}/{bucket}``; it never sends a request."""
    import botocore.session
    from botocore.config import Config

    return botocore.session.get_session().create_client(
        "s3",
        region_name=LOCAL_REGION,
        endpoint_url=base_url,
        aws_access_key_id=credentials.access_key,
        aws_secret_access_key=credentials.secret_key,
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
    )


def default_base_url(host: str, port: int) -> str:
    shown = "127.0.0.1" if host in ("", "0.0.0.0", "::") else host
    return f"http://[{shown}]:{port}" if ":" in shown else f"http://{shown}:{port}"


@dataclass
class RunningServer:
    server: LocalServer
    workflow: LocalWorkflow
    base_url: str
    token: str | None

    def close(self) -> None:
        """Stop taking requests, finish the assessment in hand, and let go of the port."""
        from functions import api as api_handler

        self.server.shutdown()
        self.server.server_close()
        self.workflow.stop()
        api_handler.provide_services(None, None)


class PerRequestReferenceFeedback:
    """Learning from reviews behind the server: the local index holds a SQLite connection bound to the
    thread that opened it, and each request runs on its own thread, so each review opens (and closes)
    the index it adds to."""

    def __init__(self, settings: LocalSettings, objects: ObjectStore) -> None:
        self.settings = settings
        self.objects = objects

    def add_reviewed_photo(self, assessment: Assessment, photo: PhotoRecord, review: PhotoReview) -> str:
        feedback = build_reference_feedback(self.settings, objects=self.objects)
        try:
            return feedback.add_reviewed_photo(assessment, photo, review)
        finally:
            feedback.index.close()


def build_server(
    settings: LocalSettings,
    host: str,
    port: int,
    *,
    token: str | None,
    encoder: Callable[[], ImageEncoder],
    static_dir: Path | None = WEBAPP_DIR,
    base_url: str | None = None,
) -> RunningServer:
    """Bind, wire, and hand back a server ready for ``serve_forever`` (not yet serving).

    ``token``: required on every API request; refused as None when ``host`` is not a loopback address.
    """
    if token is None and not is_loopback(host):
        raise ValueError(f"bound to {host}, the server needs a token: give --token or set {TOKEN_ENV}")
    for name, value in POWERTOOLS_DEFAULTS.items():
        os.environ.setdefault(name, value)
    # Said after every request that adds no metric; here no request does (metrics are off).
    warnings.filterwarnings("ignore", message="No application metrics to publish", category=UserWarning)
    from functions import api as api_handler

    server = LocalServer((host, port))
    base = (base_url or default_base_url(host, server.port)).rstrip("/")
    repository = SqliteWorkflowRepository(settings.database_path)
    objects = FilesystemObjectStore(settings.objects_dir)
    credentials = Credentials(
        access_key="LOCAL" + secrets.token_hex(8).upper(), secret_key=secrets.token_urlsafe(32)
    )
    media = SignedMediaLinks(base, secrets.token_bytes(32))
    config = ApiConfig(table_name="local-sqlite", bucket_name=LOCAL_BUCKET, aws_region=LOCAL_REGION)
    describer, speaker = TemplateDescriber(), EspeakSpeaker(settings.speech)
    api_handler.provide_services(
        config,
        ApiServices(
            repository=repository,
            s3_client=local_presigning_client(base, credentials),
            objects=objects,
            describer=describer,
            speaker=speaker,
            media=media,
            # The review routes: the queue from the same database, revalued with the local rules.
            review_queue=repository,
            valuation=settings.rules.valuation,
            references=PerRequestReferenceFeedback(settings, objects),
        ),
    )
    workflow = LocalWorkflow(
        WorkflowPorts(
            repository=repository,
            objects=objects,
            vin_decoder=VpicVinDecoder(settings.vpic, settings.vpic_cache_path),
            encoder=encoder,
            index=lambda: LocalVectorIndex(settings.index_path, settings.index),
            describer=describer,
            speaker=speaker,
            rules=settings.rules,
            registry=open_photo_registry(settings),
        )
    )
    uploads = UploadEndpoint(
        bucket=LOCAL_BUCKET,
        region=LOCAL_REGION,
        credentials=credentials,
        max_expires_in_s=config.presigned_post_expires_s,
        max_upload_bytes=config.max_upload_bytes,
        services=UploadServices(repository=repository, probe=objects, starter=workflow),
        rules=UploadRules(
            max_upload_bytes=config.max_upload_bytes,
            default_expected_photos=config.expected_photos,
            upload_bucket=LOCAL_BUCKET,
        ),
        objects=objects,
    )
    server.attach(
        LocalApi(
            lambda_handler=api_handler.handler,
            openapi_json=api_handler.openapi_json,
            repository=repository,
            uploads=uploads,
            media=media,
            objects=objects,
            base_url=base,
            token=token,
            bound_host=host,
            static_dir=static_dir if static_dir is not None and static_dir.is_dir() else None,
        )
    )
    return RunningServer(server=server, workflow=workflow, base_url=base, token=token)
