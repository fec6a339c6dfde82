"""Synth refuses a stack whose reference index nobody may load, unless the context says it is meant."""

from __future__ import annotations

import pytest

from infra.config import InfraConfig


def _config(**context: object) -> InfraConfig:
    from aws_cdk import App

    return InfraConfig.from_node(App(context=context).node)


def test_no_index_loader_fails_synth_with_the_remedy() -> None:
    with pytest.raises(ValueError, match="no index_loader_principal_arns") as raised:
        _config()
    message = str(raised.value)
    assert "-c index_loader_principal_arns=" in message and "acknowledge_no_index_loader=true" in message


def test_a_loader_or_the_acknowledgment_lets_it_through() -> None:
    loader = "arn:aws:iam::123456789012:role/reference-loader"
    assert _config(index_loader_principal_arns=f'["{loader}"]').index_loader_principal_arns == [loader]
    assert _config(acknowledge_no_index_loader="true").acknowledge_no_index_loader is True
