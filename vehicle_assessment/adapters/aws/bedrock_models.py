"""Which Bedrock model id to call from a region, and where a cross-region inference profile may run it.

Pure (no boto3): the runtime picks the id it calls from its own region, and the CDK app grants IAM on
the same ids from the same table, so the two cannot disagree.

The default model is Amazon Nova Lite: a first-party model, so it needs no AWS Marketplace
subscription and no use-case form (third-party models such as Anthropic's do: see the README).
Outside us-east-1 it is offered only through a geographic cross-region inference profile, whose id is
the model id with the geography's prefix (``us.amazon.nova-lite-v1:0``).
AWS docs: "Supported Regions and models for inference profiles"
(bedrock/latest/userguide/inference-profiles-support.html) and the Nova Lite rows of "Supported Regions
and models for batch inference" (batch-inference-supported.html): foundation model in us-east-1 (and
GovCloud); inference profile in the regions listed below.
"""

from __future__ import annotations

DEFAULT_BEDROCK_MODEL_ID = "amazon.nova-lite-v1:0"
# The metric a function emits each time a description falls back to the template (functions/
# observability.py), and that an alarm watches (infra/constructs/monitoring.py).
DESCRIPTION_FALLBACK_METRIC = "DescriptionFallback"

# Geography prefix → the regions of its cross-region inference profile for the Nova models. Each
# region is both a source (a caller there may use the profile) and a possible destination (Bedrock may
# route the request there), so IAM must allow the foundation model in every one of them ("Prerequisites
# for inference profiles": a profile in Resource needs the foundation model in each of its Regions).
NOVA_PROFILE_REGIONS: dict[str, tuple[str, ...]] = {
    "us": ("us-east-1", "us-east-2", "us-west-2"),
    "eu": ("eu-central-1", "eu-north-1", "eu-south-1", "eu-south-2", "eu-west-1", "eu-west-3"),
    "apac": ("ap-northeast-1", "ap-northeast-2", "ap-south-1", "ap-southeast-1", "ap-southeast-2"),
}
# The model families offered through the profiles above (prefix of the foundation model id).
PROFILE_MODEL_PREFIXES = ("amazon.nova-",)
# Prefixes of system-defined cross-region profiles: an id that starts with one is already a profile.
PROFILE_GEOGRAPHIES = frozenset({"us", "eu", "apac", "global", "us-gov", "jp", "au", "ca"})


class UnsupportedBedrockRegion(ValueError):
    pass


def profile_geography(region: str) -> str | None:
    """The Nova inference profile a caller in ``region`` may use, or None where there is none."""
    return next((geo for geo, regions in NOVA_PROFILE_REGIONS.items() if region in regions), None)


def split_profile_id(model_id: str) -> tuple[str | None, str]:
    """(geography, foundation model id): ``us.amazon.nova-lite-v1:0`` → ("us", "amazon.nova-lite-v1:0")."""
    geo, _, base = model_id.partition(".")
    if geo in PROFILE_GEOGRAPHIES and base:
        return geo, base
    return None, model_id


def invocation_model_id(model_id: str, region: str) -> str:
    """The id to send from ``region``: a profile id as given, a Nova model through its region's profile.

    Any other foundation model id is called in-region as given. Raises UnsupportedBedrockRegion for a
    Nova model in a region that has no Nova profile (the call could only fail later, at every request).
    """
    geo, base = split_profile_id(model_id)
    if geo is not None or not base.startswith(PROFILE_MODEL_PREFIXES):
        return model_id
    region_geo = profile_geography(region)
    if region_geo is None:
        raise UnsupportedBedrockRegion(
            f"{model_id} is offered through a cross-region inference profile, and {region} is not a source "
            f"region of any ({', '.join(sorted(NOVA_PROFILE_REGIONS))}): deploy in one of "
            f"{sorted(r for regions in NOVA_PROFILE_REGIONS.values() for r in regions)} or set another model"
        )
    return f"{region_geo}.{model_id}"


def profile_destination_regions(profile_id: str) -> tuple[str, ...] | None:
    """The regions a profile may route to, where the table knows them (None: unknown, e.g. global.)."""
    geo, base = split_profile_id(profile_id)
    if geo is None or not base.startswith(PROFILE_MODEL_PREFIXES):
        return None
    return NOVA_PROFILE_REGIONS.get(geo)
