"""People sign in with USER_SRP_AUTH; the proof is checked as Cognito checks it (contracts/cognito_srp.py)."""

from __future__ import annotations

import pytest

from tests.contracts.cognito_srp import FakeCognitoSrp
from vehicle_assessment.remote.client import AuthError, srp_token

POOL = "us-east-1_AbCdEf123"
CLIENT = "yard-app-client"
PASSWORD = "Yard-Passw0rd!xx"


def test_the_right_password_signs_in_and_yields_the_access_token() -> None:
    cognito = FakeCognitoSrp(POOL, CLIENT, "ana", PASSWORD)

    assert srp_token(cognito, POOL, CLIENT, "ana", PASSWORD) == cognito.access_token


def test_a_wrong_password_fails_the_proof_and_is_not_echoed() -> None:
    cognito = FakeCognitoSrp(POOL, CLIENT, "ana", PASSWORD)

    with pytest.raises(AuthError, match="sign-in as ana failed: NotAuthorizedException") as caught:
        srp_token(cognito, POOL, CLIENT, "ana", "Not-The-Passw0rd")
    assert "Not-The-Passw0rd" not in str(caught.value)


def test_another_pool_name_fails_the_proof() -> None:
    # The pool's name is part of both x and the signed message: a wrong --user-pool-id cannot sign in.
    cognito = FakeCognitoSrp(POOL, CLIENT, "ana", PASSWORD)

    with pytest.raises(AuthError, match="NotAuthorizedException"):
        srp_token(cognito, "us-east-1_Other", CLIENT, "ana", PASSWORD)


@pytest.mark.parametrize(
    ("challenge", "says"),
    [("NEW_PASSWORD_REQUIRED", "needs a new password first"), ("SOFTWARE_TOKEN_MFA", "asks for an MFA code")],
)
def test_a_further_challenge_is_explained(challenge: str, says: str) -> None:
    cognito = FakeCognitoSrp(POOL, CLIENT, "ana", PASSWORD, ChallengeName=challenge, Session="s")

    with pytest.raises(AuthError, match=says):
        srp_token(cognito, POOL, CLIENT, "ana", PASSWORD)
