"""A colour that could not be read aloud is a 400 at the API, like any other bad input."""

from __future__ import annotations

import json

import pytest

from functions import api as api_handler
from tests.aws_runtime.conftest import VIN, Aws, rest_event


@pytest.mark.parametrize("color", ["🚗 red", "<speak>red</speak>", "1234"])
def test_unspeakable_colour_is_400(aws: Aws, lambda_context, color: str) -> None:
    response = api_handler.handler(
        rest_event("POST", "/assessments", {"vin": VIN, "color": color}), lambda_context
    )
    body = json.loads(response["body"])
    assert response["statusCode"] == 400, body
    assert body["message"] == "invalid request" and ("color",) in {
        tuple(e["loc"][-1:]) for e in body["errors"]
    }
