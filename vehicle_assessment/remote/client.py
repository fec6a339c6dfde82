"""HTTP to a deployed stack as a yard app or an integrating system makes it: a Cognito token, then the API.

Retries are urllib3's (``Retry`` on a requests adapter), never a loop of ours: throttling and gateway
errors are retried with backoff for requests that are safe to repeat; creating an assessment (a POST
that is not idempotent) is retried only when the connection was never made. Tokens and secrets never
appear in a message or a log line.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import requests
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel, ValidationError
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from vehicle_assessment.adapters.aws.clients import one_line_reason
from vehicle_assessment.aws_runtime.api import (
    AssessmentView,
    CreateAssessmentRequest,
    CreateAssessmentResponse,
)
from vehicle_assessment.domain.text import one_line
from vehicle_assessment.remote.stack import RemoteError

logger = logging.getLogger(__name__)

ResponseModel = TypeVar("ResponseModel", bound=BaseModel)

# (connect, read) seconds: API Gateway answers within 29 s or times out itself.
API_TIMEOUT_S = (5.0, 35.0)
# An upload of a photo up to limits.MAX_PHOTO_BYTES on a slow yard connection.
UPLOAD_TIMEOUT_S = (5.0, 120.0)
RETRY_STATUSES = (429, 500, 502, 503, 504)
RETRY_TOTAL = 4
RETRY_BACKOFF_S = 0.5


class AuthError(RemoteError):
    """Cognito refused the sign-in (wrong password, flow not enabled, unknown client)."""


class ApiError(RemoteError):
    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def http_session(*, retry_post: bool) -> requests.Session:
    """A session that retries transient failures; POST only when ``retry_post`` (an idempotent POST)."""
    methods = {"GET", "HEAD", "OPTIONS"} | ({"POST"} if retry_post else set())
    retry = Retry(
        total=RETRY_TOTAL,
        # Connection errors never reached the server, so even a non-idempotent POST may be resent.
        connect=RETRY_TOTAL,
        backoff_factor=RETRY_BACKOFF_S,
        status_forcelist=RETRY_STATUSES,
        allowed_methods=frozenset(methods),
        respect_retry_after_header=True,
        raise_on_status=False,  # the last answer comes back and is reported with its status
    )
    session = requests.Session()
    adapter = HTTPAdapter(max_retries=retry)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


# --- signing in ----------------------------------------------------------------------------------

TokenProvider = Callable[[], str]


def password_token(cognito_idp: Any, client_id: str, username: str, password: str) -> str:
    """A person's access token: Cognito InitiateAuth with USER_PASSWORD_AUTH on the public app client.

    The app client must allow ALLOW_USER_PASSWORD_AUTH (Cognito developer guide, "Authentication flows":
    the password travels over TLS to Cognito rather than an SRP proof). InitiateAuth is an unsigned
    call, so no AWS credentials are needed. The access token (not the ID token) is sent to the API:
    methods that also accept client-credentials tokens have authorization scopes, and API Gateway
    then checks an access token ("Integrate a REST API with an Amazon Cognito user pool").
    """
    try:
        response = cognito_idp.initiate_auth(
            AuthFlow="USER_PASSWORD_AUTH",
            ClientId=client_id,
            AuthParameters={"USERNAME": username, "PASSWORD": password},
        )
    except (ClientError, BotoCoreError) as exc:
        raise AuthError(f"sign-in as {username} failed: {one_line_reason(exc)}") from exc
    result = response.get("AuthenticationResult")
    if not result:
        challenge = response.get("ChallengeName", "an unknown challenge")
        raise AuthError(
            f"sign-in as {username} needs {challenge} first (e.g. a new password or MFA); "
            "complete it in the yard app or ask an administrator"
        )
    token: str = result["AccessToken"]
    return token


def srp_token(cognito_idp: Any, user_pool_id: str, client_id: str, username: str, password: str) -> str:
    """A person's access token: Cognito InitiateAuth with USER_SRP_AUTH, then the PASSWORD_VERIFIER answer.

    SRP proves the password without sending it (Cognito developer guide, "Authentication flows"); the
    public app client allows only this flow. The SRP arithmetic is pycognito's ``AWSSRP`` (the
    client Cognito's own SDKs implement), not ours. InitiateAuth and RespondToAuthChallenge are
    unsigned calls: no AWS credentials are needed.
    """
    from pycognito.aws_srp import AWSSRP
    from pycognito.exceptions import ForceChangePasswordException, MFAChallengeException

    srp = AWSSRP(
        username=username, password=password, pool_id=user_pool_id, client_id=client_id, client=cognito_idp
    )
    try:
        tokens = srp.authenticate_user()
    except (ClientError, BotoCoreError) as exc:
        raise AuthError(f"sign-in as {username} failed: {one_line_reason(exc)}") from exc
    except ForceChangePasswordException as exc:
        raise AuthError(
            f"sign-in as {username} needs a new password first (NEW_PASSWORD_REQUIRED): sign in once in "
            "the yard app, or ask an administrator"
        ) from exc
    except MFAChallengeException as exc:
        raise AuthError(
            f"sign-in as {username} asks for an MFA code, which this command does not take: use a user "
            "without MFA for scripted runs, or --client-credentials"
        ) from exc
    except NotImplementedError as exc:  # another challenge (e.g. a remembered-device flow)
        raise AuthError(f"sign-in as {username}: {exc}") from exc
    result = tokens.get("AuthenticationResult") if isinstance(tokens, dict) else None
    if not result:
        raise AuthError(f"sign-in as {username} answered no tokens")
    token: str = result["AccessToken"]
    return token


def client_credentials_token(
    session: requests.Session, cognito_domain: str, client_id: str, client_secret: str, scope: str | None
) -> str:
    """A system's access token from the user pool domain's token endpoint (grant client_credentials).

    Cognito developer guide, "The token endpoint": POST /oauth2/token, form-encoded, the client
    authenticated with HTTP Basic (client id and secret); scope is optional (all the client's scopes).
    """
    base = cognito_domain if "://" in cognito_domain else f"https://{cognito_domain}"
    data = {"grant_type": "client_credentials", "client_id": client_id}
    if scope:
        data["scope"] = scope
    try:
        response = session.post(
            f"{base.rstrip('/')}/oauth2/token",
            data=data,
            auth=(client_id, client_secret),
            timeout=API_TIMEOUT_S,
        )
    except requests.RequestException as exc:
        raise AuthError(f"the token endpoint {base} could not be reached: {type(exc).__name__}") from exc
    if response.status_code != 200:
        # The endpoint answers {"error": "invalid_client"} and the like: no secret in it.
        raise AuthError(
            f"the token endpoint refused client {client_id} ({response.status_code}): {_error_text(response)}"
        )
    token = _json_object(response).get("access_token")
    if not isinstance(token, str) or not token:
        raise AuthError("the token endpoint answered without an access_token")
    return token


# --- the API -----------------------------------------------------------------------------------


def _json_object(response: requests.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _error_text(response: requests.Response) -> str:
    body = _json_object(response)
    text = body.get("message") or body.get("error") or body.get("Message") or response.reason or ""
    errors = body.get("errors")
    if isinstance(errors, list) and errors:
        text += ": " + "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', []))}: {e.get('msg')}"
            for e in errors
            if isinstance(e, dict)
        )
    return one_line(text, 300)


@dataclass
class ApiClient:
    """The assessment API with a bearer token; one token per client (an hour is longer than a run)."""

    api_url: str
    token: TokenProvider
    session: requests.Session

    def __post_init__(self) -> None:
        self._token: str | None = None

    def _url(self, path: str) -> str:
        return f"{self.api_url.rstrip('/')}/{path.lstrip('/')}"

    def _call(self, method: str, path: str, json_body: dict[str, Any] | None = None) -> dict[str, Any]:
        if self._token is None:
            self._token = self.token()
        try:
            response = self.session.request(
                method,
                self._url(path),
                json=json_body,
                headers={"Authorization": f"Bearer {self._token}", "Accept": "application/json"},
                timeout=API_TIMEOUT_S,
            )
        except requests.RequestException as exc:
            raise RemoteError(
                f"{method} {path}: the API could not be reached ({type(exc).__name__})"
            ) from exc
        if response.status_code >= 400:
            raise ApiError(
                f"{method} {path} answered {response.status_code}: {_error_text(response)}",
                response.status_code,
            )
        return _json_object(response)

    def _parse(self, model: type[ResponseModel], body: dict[str, Any], what: str) -> ResponseModel:
        try:
            return model.model_validate(body)
        except ValidationError as exc:
            error = exc.errors()[0]
            where = ".".join(str(p) for p in error["loc"])
            raise RemoteError(f"the API answered an unexpected {what}: {where}: {error['msg']}") from exc

    def create_assessment(self, request: CreateAssessmentRequest) -> CreateAssessmentResponse:
        body = self._call("POST", "assessments", request.model_dump(mode="json", exclude_none=True))
        return self._parse(CreateAssessmentResponse, body, "create response")

    def get_assessment(self, assessment_id: str) -> AssessmentView:
        return self._parse(AssessmentView, self._call("GET", f"assessments/{assessment_id}"), "assessment")
