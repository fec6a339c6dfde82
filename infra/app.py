"""CDK entry point: ``npx cdk synth`` (cdk.json runs ``python3 -m infra.app`` from the repo root).

Settings come from the CDK context only (cdk.json or ``-c key=value``), validated by
``infra.config.InfraConfig``. ``cdk-nag`` (AwsSolutions) runs on every synth: an unacknowledged
finding fails it.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

# jsii starts Node on the first aws_cdk import; Node 20's end-of-life banner would bury the output.
os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")

# Run as a script (python3 infra/app.py), Python would put infra/ first on sys.path, where
# infra/constructs would shadow the `constructs` library: use the repository root instead.
_INFRA = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _INFRA]
if str(_INFRA.parent) not in sys.path:
    sys.path.insert(0, str(_INFRA.parent))

from aws_cdk import App, Environment, Validations  # noqa: E402
from cdk_nag import AwsSolutionsChecks  # noqa: E402

from infra.config import InfraConfig  # noqa: E402
from infra.stack import VehicleAssessmentStack  # noqa: E402

STACK_NAME = "VehicleAssessmentStack"


def build_app(context: dict[str, object] | None = None, outdir: str | None = None) -> App:
    app = App(context=context or {}, outdir=outdir)
    config = InfraConfig.from_node(app.node)
    VehicleAssessmentStack(
        app,
        STACK_NAME,
        config=config,
        description="Vehicle damage assessment: uploads, workflow, encoder endpoint, vector search, API",
        # Environment-agnostic unless the CLI supplies an account/region (CDK_DEFAULT_*).
        env=_env_from_cli(),
    )
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    return app


def _env_from_cli() -> Environment | None:
    account, region = os.environ.get("CDK_DEFAULT_ACCOUNT"), os.environ.get("CDK_DEFAULT_REGION")
    return Environment(account=account, region=region) if account and region else None


if __name__ == "__main__":
    build_app().synth()
