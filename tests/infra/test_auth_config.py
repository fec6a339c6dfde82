"""The context that sign-in and browser access read: unsafe values fail the synth with the reason."""

from __future__ import annotations

from typing import Any

import pytest

from infra.config import InfraConfig


def test_defaults_allow_no_browser_origin_and_no_redirect() -> None:
    config = InfraConfig()
    assert config.cors_allowed_origins == [] and not config.cors_allow_any_origin
    assert config.cognito_callback_urls == [] and config.cognito_threat_protection == "enforced"


@pytest.mark.parametrize(
    ("context", "fragment"),
    [
        ({"cors_allowed_origins": "*"}, "cors_allow_any_origin"),
        ({"cors_allowed_origins": '["https://a.example.com", "*"]', "cors_allow_any_origin": True}, "alone"),
        ({"cors_allowed_origins": "https://a.example.com/"}, "not an origin"),
        ({"cognito_callback_urls": "http://yard.example.com/cb"}, "localhost"),
        ({"cognito_domain_prefix": "my-cognito-login"}, "must not contain"),
    ],
)
def test_synth_refuses_unsafe_browser_and_sign_in_settings(context: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        InfraConfig.model_validate(context)


def test_any_origin_only_when_explicitly_allowed() -> None:
    config = InfraConfig.model_validate({"cors_allowed_origins": "*", "cors_allow_any_origin": "true"})
    assert config.cors_allowed_origins == ["*"]
