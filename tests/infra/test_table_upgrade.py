"""Upgrading a deployed table: CloudFormation adds at most one GSI per update, so the two indexes this
release adds (GSI3 review queue, GSI4 list by status) can be deployed one per step."""

from __future__ import annotations

from typing import Any

import pytest

from infra.config import InfraConfig

# The indexes of the release before the review queue and the list route.
PREVIOUS_RELEASE_INDEXES = {"GSI1", "GSI2"}


def _table_indexes(config: InfraConfig) -> set[str]:
    from aws_cdk import App, Stack
    from aws_cdk.assertions import Template

    from infra.constructs.storage import Storage

    stack = Stack(App(), "UpgradeStep")
    Storage(stack, "Storage", config=config)
    [table] = Template.from_stack(stack).find_resources("AWS::DynamoDB::Table").values()
    indexes: list[dict[str, Any]] = table["Properties"].get("GlobalSecondaryIndexes", [])
    return {index["IndexName"] for index in indexes}


def test_each_upgrade_step_adds_one_index() -> None:
    first = _table_indexes(InfraConfig(deferred_table_indexes=["GSI4"], index_loader_principal_arns=[]))
    second = _table_indexes(InfraConfig(index_loader_principal_arns=[]))
    assert first - PREVIOUS_RELEASE_INDEXES == {"GSI3"}
    assert second - first == {"GSI4"}
    # A fresh deployment (no table yet) creates them all at once, which CloudFormation allows.
    assert second == {"GSI1", "GSI2", "GSI3", "GSI4"}


def test_only_the_new_indexes_can_be_deferred() -> None:
    with pytest.raises(ValueError, match="GSI1"):
        InfraConfig.model_validate({"deferred_table_indexes": ["GSI1"]})
