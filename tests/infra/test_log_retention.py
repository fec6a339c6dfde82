"""One table of log retention periods: the config accepts exactly the days it can name in the CDK."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from infra.config import LOG_RETENTION_NAMES, InfraConfig


def test_every_accepted_period_is_a_cdk_retention() -> None:
    from aws_cdk import aws_logs as logs

    names = {member.name for member in logs.RetentionDays}
    assert [name for name in LOG_RETENTION_NAMES.values() if name not in names] == []


@pytest.mark.parametrize("days", [2, 31, 3653])
def test_a_period_cloudwatch_does_not_offer_is_refused(days: int) -> None:
    with pytest.raises(ValidationError, match="log_retention_days must be one of"):
        InfraConfig(log_retention_days=days)
