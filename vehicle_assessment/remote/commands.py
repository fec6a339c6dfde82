"""The `submit` and `smoke` commands' wiring: real clients from the parsed options (see options.py)."""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from vehicle_assessment.adapters.aws.clients import make_boto3_client
from vehicle_assessment.adapters.aws.settings import AwsClientSettings, OpenSearchSettings
from vehicle_assessment.aws_runtime.api import AssessmentView, CreateAssessmentRequest
from vehicle_assessment.domain.models import EncoderIdentity
from vehicle_assessment.remote.client import (
    ApiClient,
    TokenProvider,
    client_credentials_token,
    http_session,
    password_token,
    srp_token,
)
from vehicle_assessment.remote.options import CLIENT_SECRET_ENV, PASSWORD_ENV, SERVE_TOKEN_ENV
from vehicle_assessment.remote.smoke import (
    PROBE_VIN,
    ReferenceIndexProbe,
    SmokeServices,
    SmokeTargets,
    targets_from_stack,
)
from vehicle_assessment.remote.stack import RemoteError, StackOutputs, read_stack_outputs
from vehicle_assessment.remote.submit import (
    StderrProgress,
    read_photo,
    submit_assessment,
)

# The photos `smoke` submits: one of each kind in the repository's sample queries.
SAMPLE_QUERIES = Path(__file__).resolve().parents[2] / "sample_data" / "queries"
SMOKE_PHOTOS = (
    "damaged/0003_JPEG.jpg",
    "damaged/0303_JPEG.jpg",
    "undamaged/red_44070187_5e5a50b675_b.jpg",
)

Prompter = Callable[[str], str]


def _secret(env_name: str, prompt: str, environ: Mapping[str, str], prompter: Prompter) -> str:
    value = environ.get(env_name)
    if value:
        return value
    if not sys.stdin.isatty():
        raise RemoteError(f"set {env_name}: there is no terminal to ask for it")
    value = prompter(prompt)
    if not value:
        raise RemoteError("no secret given")
    return value


def region_of(args: argparse.Namespace, outputs: StackOutputs, environ: Mapping[str, str]) -> str:
    if args.region:
        return str(args.region)
    if environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION"):
        return environ.get("AWS_REGION") or environ["AWS_DEFAULT_REGION"]
    if outputs.user_pool_id and "_" in outputs.user_pool_id:  # "us-east-1_AbCdEf123"
        return outputs.user_pool_id.split("_", 1)[0]
    raise RemoteError("no region: give --region or set AWS_REGION")


def _aws_client(service: str, region: str) -> Any:
    return make_boto3_client(service, region, AwsClientSettings())


def stack_outputs(args: argparse.Namespace, environ: Mapping[str, str]) -> StackOutputs:
    outputs = StackOutputs()
    if args.stack:
        region = args.region or environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION")
        if not region:
            raise RemoteError("no region: give --region or set AWS_REGION")
        outputs = read_stack_outputs(_aws_client("cloudformation", region), args.stack)
    return outputs.overridden(
        api_url=args.api_url,
        user_pool_id=args.user_pool_id,
        user_pool_client_id=args.user_pool_client_id,
        integration_client_id=args.integration_client_id,
        cognito_domain=args.cognito_domain,
    )


def token_provider(
    args: argparse.Namespace,
    outputs: StackOutputs,
    environ: Mapping[str, str],
    prompter: Prompter = getpass.getpass,
) -> TokenProvider:
    if getattr(args, "local", False):
        # A server bound to localhost asks for no token and ignores this one.
        token = environ.get(SERVE_TOKEN_ENV) or "local"
        return lambda: token
    if args.username:
        client_id = outputs.require("user_pool_client_id", "--user-pool-client-id")
        region = region_of(args, outputs, environ)
        password = _secret(PASSWORD_ENV, f"password for {args.username}: ", environ, prompter)
        if args.auth_flow == "password":
            return lambda: password_token(
                _aws_client("cognito-idp", region), client_id, args.username, password
            )
        pool_id = outputs.require("user_pool_id", "--user-pool-id")
        return lambda: srp_token(
            _aws_client("cognito-idp", region), pool_id, client_id, args.username, password
        )
    if args.client_credentials:
        client_id = outputs.require("integration_client_id", "--integration-client-id")
        domain = outputs.require("cognito_domain", "--cognito-domain")
        secret = _secret(CLIENT_SECRET_ENV, f"client secret of {client_id}: ", environ, prompter)
        session = http_session(retry_post=True)  # a token request may be repeated safely
        return lambda: client_credentials_token(session, domain, client_id, secret, args.scope)
    raise RemoteError(
        "say how to sign in: --username USER (a person), --client-credentials (a system) or --local "
        "(a local `vehicle-assessment serve`)"
    )


def submit_from_args(
    args: argparse.Namespace,
    request: CreateAssessmentRequest,
    photo_paths: Sequence[Path],
    environ: Mapping[str, str] | None = None,
    outputs: StackOutputs | None = None,
) -> AssessmentView:
    """`submit`: raises RemoteError (BadPhoto, ApiError, AuthError, WaitTimedOut are ones)."""
    environ = os.environ if environ is None else environ
    photos = [read_photo(path) for path in photo_paths]  # refuse a bad photo before signing in
    outputs = outputs or stack_outputs(args, environ)
    api = ApiClient(
        outputs.require("api_url", "--api-url"),
        token_provider(args, outputs, environ),
        http_session(retry_post=False),
    )
    return submit_assessment(
        api, http_session(retry_post=True), request, photos, args.timeout, StderrProgress()
    )


def smoke_photos() -> list[Path]:
    return [SAMPLE_QUERIES / name for name in SMOKE_PHOTOS]


def smoke_from_args(
    args: argparse.Namespace, environ: Mapping[str, str] | None = None
) -> tuple[SmokeTargets, SmokeServices]:
    environ = os.environ if environ is None else environ
    if not args.stack:
        raise RemoteError("give --stack: the checks read the deployed functions' settings from it")
    region = args.region or environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION")
    if not region:
        raise RemoteError("no region: give --region or set AWS_REGION")
    targets = targets_from_stack(
        _aws_client("cloudformation", region), _aws_client("lambda", region), args.stack, region
    )

    def client(service: str) -> Any:
        return _aws_client(service, region)

    def open_index(settings: OpenSearchSettings, identity: EncoderIdentity | None) -> ReferenceIndexProbe:
        from vehicle_assessment.adapters.aws.opensearch_index import OpenSearchReferenceIndex

        return OpenSearchReferenceIndex.from_settings(settings, region, identity)

    # The outputs already read, with any flag in place of its output; the password or secret is
    # asked for when the end-to-end check signs in.
    outputs = targets.outputs.overridden(
        api_url=args.api_url,
        user_pool_id=args.user_pool_id,
        user_pool_client_id=args.user_pool_client_id,
        integration_client_id=args.integration_client_id,
        cognito_domain=args.cognito_domain,
    )

    def submit() -> AssessmentView:
        request = CreateAssessmentRequest(vin=PROBE_VIN, color="silver", mileage=120_000)
        return submit_from_args(args, request, smoke_photos(), environ, outputs)

    return targets, SmokeServices(client=client, open_index=open_index, submit=submit)
