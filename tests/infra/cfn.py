"""Turn a synthesized template's intrinsic functions into plain values, with readable placeholders."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

ACCOUNT = "123456789012"
REGION = "us-east-1"

Resolver = Callable[[str, str], str]


def placeholder(template: Mapping[str, Any]) -> Resolver:
    """A resolver for Ref/GetAtt: a Lambda's Arn becomes a Lambda ARN named after its logical id (an
    alias's, that ARN qualified by the alias name)."""
    resources = template["Resources"]

    def resolve(logical_id: str, attribute: str) -> str:
        kind = resources.get(logical_id, {}).get("Type", "")
        if kind == "AWS::Lambda::Function" and attribute == "Arn":
            return f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{logical_id}"
        if kind == "AWS::Lambda::Alias" and attribute == "Ref":  # an alias's Ref is its ARN
            alias = resources[logical_id]["Properties"]
            function = alias["FunctionName"]["Ref"]
            return f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{function}:{alias['Name']}"
        if kind == "AWS::StepFunctions::StateMachine" and attribute in ("Ref", "Arn"):
            return f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{logical_id}"
        if attribute.endswith("Arn"):
            return f"arn:aws:service:{REGION}:{ACCOUNT}:{logical_id.lower()}"
        if attribute == "CollectionEndpoint":
            return f"https://{logical_id.lower()}.{REGION}.aoss.amazonaws.com"
        return f"{logical_id.lower()}-{attribute.lower()}"

    return resolve


def resolve_value(value: Any, resolver: Resolver, mappings: Mapping[str, Any] | None = None) -> Any:
    """``mappings``: the template's Mappings section, for Fn::FindInMap."""
    if isinstance(value, list):
        return [resolve_value(v, resolver, mappings) for v in value]
    if not isinstance(value, dict):
        return value
    if len(value) == 1:
        ((key, arg),) = value.items()
        if key == "Fn::FindInMap" and mappings is not None:
            name, top, second = (resolve_value(a, resolver, mappings) for a in arg)
            return mappings[name][top][second]
        if key == "Ref":
            return {
                "AWS::Region": REGION,
                "AWS::AccountId": ACCOUNT,
                "AWS::Partition": "aws",
                "AWS::URLSuffix": "amazonaws.com",
                "AWS::StackName": "VehicleAssessmentStack",
            }.get(arg, resolver(arg, "Ref"))
        if key == "Fn::GetAtt":
            return resolver(arg[0], arg[1])
        if key == "Fn::Join":
            sep, parts = arg
            return sep.join(str(resolve_value(p, resolver, mappings)) for p in parts)
        if key == "Fn::Select":
            index, items = arg
            return resolve_value(items, resolver, mappings)[int(index)]
        if key == "Fn::Split":
            sep, text = arg
            return str(resolve_value(text, resolver, mappings)).split(sep)
    return {k: resolve_value(v, resolver, mappings) for k, v in value.items()}


def resources_of(template: Mapping[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == kind}


def state_machine_definition(
    template: Mapping[str, Any], resolver: Resolver | None = None, *, construct: str = "Workflow"
) -> str:
    """The definition of the state machine of ``construct``: the assessment workflow by default,
    ``"IndexBuild"`` for the distributed reference-index build."""
    [machine] = [
        resource
        for logical_id, resource in resources_of(template, "AWS::StepFunctions::StateMachine").items()
        if logical_id.startswith(f"{construct}StateMachine")
    ]
    return str(resolve_value(machine["Properties"]["DefinitionString"], resolver or placeholder(template)))
