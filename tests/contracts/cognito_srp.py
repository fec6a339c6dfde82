"""Cognito's side of USER_SRP_AUTH, written from the protocol, to check a client's proof the way Cognito does.

moto answers PASSWORD_VERIFIER without checking the signature (any password signs in), so it cannot show
that a client's SRP is right. This fake does the server's half (SRP-6a as Cognito uses it, the
constants of amazon-cognito-identity-js's AuthenticationHelper): it keeps the verifier v = g^x, sends
B = k·v + g^b, computes S = (A·v^u)^b — the client computes the same S as (B − k·g^x)^(a+u·x), so they
agree only when the password and the arithmetic are right — and then checks the HMAC signature over
pool name, user, secret block and timestamp with the HKDF-derived key.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from typing import Any

from botocore.exceptions import ClientError

# RFC 5054's 3072-bit group, as Cognito uses it (the same N is pycognito's N_HEX and the JS SDK's).
N = int(
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A08798E3404DD"
    "EF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED"
    "EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF0598DA48361C55D39A69163FA8FD24CF5F"
    "83655D23DCA3AD961C62F356208552BB9ED529077096966D670C354E4ABC9804F1746C08CA18217C32905E462E36CE3B"
    "E39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF6955817183995497CEA956AE515D2261898FA0510"
    "15728E5A8AAAC42DAD33170D04507A33A85521ABDF1CBA64ECFB850458DBEF0A8AEA71575D060C7DB3970F85A6E1E4C7"
    "ABF5AE8CDB0933D71E8C94E04A25619DCEE3D2261AD2EE6BF12FFA06D98A0864D87602733EC86A64521F2B18177B200C"
    "BBE117577A615D6C770988C0BAD946E208E24FA074E5AB3143DB5BFCE0FD108E4B82D120A93AD2CAFFFFFFFFFFFFFFFF",
    16,
)
G = 2


def padded(value: int) -> bytes:
    """The value's big-endian bytes, with a leading zero byte when the top bit is set (a positive number)."""
    text = f"{value:x}"
    if len(text) % 2:
        text = "0" + text
    elif text[0] in "89abcdef":
        text = "00" + text
    return bytes.fromhex(text)


def h(data: bytes) -> int:
    return int(hashlib.sha256(data).hexdigest(), 16)


K = h(padded(N) + padded(G))


def hkdf_16(ikm: bytes, salt: bytes) -> bytes:
    prk = hmac.new(salt, ikm, hashlib.sha256).digest()
    return hmac.new(prk, b"Caldera Derived Key\x01", hashlib.sha256).digest()[:16]


def _refused(operation: str, code: str, message: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}}, operation)


class FakeCognitoSrp:
    """A cognito-idp client with one user, for InitiateAuth(USER_SRP_AUTH) and its PASSWORD_VERIFIER."""

    def __init__(self, user_pool_id: str, client_id: str, username: str, password: str, **after: Any) -> None:
        self.pool_name = user_pool_id.split("_", 1)[1]
        self.client_id, self.username = client_id, username
        self.salt = secrets.randbits(128)
        x = h(padded(self.salt) + hashlib.sha256(f"{self.pool_name}{username}:{password}".encode()).digest())
        self.verifier = pow(G, x, N)  # what Cognito stores instead of the password
        self.after = after  # e.g. {"ChallengeName": "NEW_PASSWORD_REQUIRED"} instead of tokens
        self.secret_block = base64.standard_b64encode(secrets.token_bytes(64)).decode()
        self.access_token = "srp-access-token"

    def initiate_auth(
        self, *, AuthFlow: str, AuthParameters: dict[str, str], ClientId: str
    ) -> dict[str, Any]:
        if AuthFlow != "USER_SRP_AUTH" or ClientId != self.client_id:
            raise _refused("InitiateAuth", "InvalidParameterException", "USER_SRP_AUTH is the flow enabled")
        if AuthParameters["USERNAME"] != self.username:
            raise _refused("InitiateAuth", "NotAuthorizedException", "Incorrect username or password.")
        self.big_a = int(AuthParameters["SRP_A"], 16)
        if self.big_a % N == 0:
            raise _refused("InitiateAuth", "InvalidParameterException", "SRP_A is zero mod N")
        self.b = secrets.randbits(256)
        self.big_b = (K * self.verifier + pow(G, self.b, N)) % N
        return {
            "ChallengeName": "PASSWORD_VERIFIER",
            "ChallengeParameters": {
                "SALT": f"{self.salt:x}",
                "SRP_B": f"{self.big_b:x}",
                "SECRET_BLOCK": self.secret_block,
                "USER_ID_FOR_SRP": self.username,
                "USERNAME": self.username,
            },
        }

    def respond_to_auth_challenge(
        self, *, ClientId: str, ChallengeName: str, ChallengeResponses: dict[str, str], **_: Any
    ) -> dict[str, Any]:
        assert (ClientId, ChallengeName) == (self.client_id, "PASSWORD_VERIFIER")
        assert ChallengeResponses["PASSWORD_CLAIM_SECRET_BLOCK"] == self.secret_block
        u = h(padded(self.big_a) + padded(self.big_b))
        shared = pow(self.big_a * pow(self.verifier, u, N), self.b, N)
        key = hkdf_16(padded(shared), padded(u))
        message = (
            self.pool_name.encode()
            + self.username.encode()
            + base64.standard_b64decode(self.secret_block)
            + ChallengeResponses["TIMESTAMP"].encode()
        )
        expected = base64.standard_b64encode(hmac.new(key, message, hashlib.sha256).digest()).decode()
        if not hmac.compare_digest(expected, ChallengeResponses["PASSWORD_CLAIM_SIGNATURE"]):
            raise _refused(
                "RespondToAuthChallenge", "NotAuthorizedException", "Incorrect username or password."
            )
        if self.after:
            return dict(self.after)
        return {"AuthenticationResult": {"AccessToken": self.access_token, "TokenType": "Bearer"}}
