"""The OpenCLIP encoder on a SageMaker real-time endpoint, with target-tracking auto scaling.

The image is built from ``containers/openclip`` with the weights baked in (BAKE_WEIGHTS=1): the
endpoint needs no model data in S3 and runs with network isolation. Synth only records the image
asset; Docker is needed when the asset is published (``cdk deploy``), unless ``encoder_image_uri``
names an image that is already in ECR.
"""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from pathlib import Path

from aws_cdk import ArnFormat, Stack
from aws_cdk import aws_applicationautoscaling as appscaling
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_sagemaker as sagemaker
from constructs import Construct

from infra import inference_ami
from infra.config import InfraConfig
from infra.constructs.lambdas import acknowledge

REPO_ROOT = Path(__file__).resolve().parents[2]
VARIANT = "AllTraffic"
# What the Dockerfile COPYs (see containers/openclip/Dockerfile.dockerignore), nothing else.
_CONTEXT_FILES = ("Dockerfile", "requirements.txt", "prepare_model_dir.py", "inference.py", "serve.py")


@functools.lru_cache(maxsize=1)
def stage_docker_context(repo_root: Path = REPO_ROOT) -> Path:
    """The build context the Dockerfile expects (repo-root layout), without the rest of the repo.

    Fingerprinting the repository root would hash node_modules, venvs and photos on every synth.
    """
    staging = Path(tempfile.mkdtemp(prefix="vda-encoder-ctx-"))
    atexit.register(shutil.rmtree, staging, True)
    target = staging / "containers" / "openclip"
    target.mkdir(parents=True)
    for name in _CONTEXT_FILES:
        shutil.copy2(repo_root / "containers" / "openclip" / name, target / name)
    shutil.copytree(
        repo_root / "vehicle_assessment",
        staging / "vehicle_assessment",
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
    )
    return staging


class Embedding(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, config: InfraConfig) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        gpu = inference_ami.is_nvidia_instance(config.encoder_instance_type)
        self.role = iam.Role(
            self,
            "ExecutionRole",
            assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
            description="SageMaker encoder endpoint: pull its image, write its logs and metrics",
        )
        if config.encoder_image_uri:
            image_uri = config.encoder_image_uri
            self.role.add_to_principal_policy(
                iam.PolicyStatement(
                    actions=[
                        "ecr:BatchGetImage",
                        "ecr:GetDownloadUrlForLayer",
                        "ecr:BatchCheckLayerAvailability",
                    ],
                    resources=[_repository_arn(stack, image_uri)],
                )
            )
        else:
            if gpu:
                # Fail the synth, not the endpoint: a CUDA the host's driver cannot run means no GPU.
                inference_ami.check_image_fits_host(
                    inference_ami.image_cuda_version(), config.inference_ami_version
                )
            asset = ecr_assets.DockerImageAsset(
                self,
                "Image",
                directory=str(stage_docker_context()),
                file="containers/openclip/Dockerfile",
                platform=ecr_assets.Platform.LINUX_AMD64,  # GPU instances are x86_64
                build_args={
                    "BAKE_WEIGHTS": "1",
                    "MODEL_NAME": config.encoder_model_name,
                    "PRETRAINED": config.encoder_pretrained or "",
                },
            )
            asset.repository.grant_pull(self.role)
            image_uri = asset.image_uri
        self.role.add_to_principal_policy(
            iam.PolicyStatement(actions=["ecr:GetAuthorizationToken"], resources=["*"])
        )
        self.role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=[
                    "logs:CreateLogGroup",
                    "logs:CreateLogStream",
                    "logs:PutLogEvents",
                    "logs:DescribeLogStreams",
                ],
                resources=[
                    stack.format_arn(
                        service="logs",
                        resource="log-group",
                        resource_name="/aws/sagemaker/Endpoints/*",
                        arn_format=ArnFormat.COLON_RESOURCE_NAME,
                    )
                ],
            )
        )
        self.role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["cloudwatch:PutMetricData"],
                resources=["*"],
                conditions={"StringEquals": {"cloudwatch:namespace": ["/aws/sagemaker/Endpoints"]}},
            )
        )
        for finding, reason in (
            (
                "Resource::*",
                "ecr:GetAuthorizationToken and cloudwatch:PutMetricData have no resource-level "
                "permissions; PutMetricData is limited to SageMaker's namespace by a condition.",
            ),
            (
                "Resource::arn:<AWS::Partition>:logs:<AWS::Region>:<AWS::AccountId>:log-group:"
                "/aws/sagemaker/Endpoints/*",
                "SageMaker creates and writes the endpoint's log groups and streams under this prefix.",
            ),
        ):
            acknowledge(self.role, f"AwsSolutions-IAM5[{finding}]", reason)

        self.model = sagemaker.CfnModel(
            self,
            "Model",
            execution_role_arn=self.role.role_arn,
            primary_container=sagemaker.CfnModel.ContainerDefinitionProperty(
                image=image_uri,
                # On a GPU instance the container refuses to start without a usable GPU instead of
                # serving on the CPU (containers/openclip/inference.py select_device).
                environment={"LOG_LEVEL": "INFO", "EXPECT_GPU": "true" if gpu else "false"},
            ),
            # Weights are baked into the image: the container never needs the network.
            enable_network_isolation=True,
        )
        self.model.node.add_dependency(self.role)
        self.endpoint_config = sagemaker.CfnEndpointConfig(
            self,
            "EndpointConfig",
            production_variants=[
                sagemaker.CfnEndpointConfig.ProductionVariantProperty(
                    variant_name=VARIANT,
                    model_name=self.model.attr_model_name,
                    initial_instance_count=config.encoder_min_instances,
                    instance_type=config.encoder_instance_type,
                    initial_variant_weight=1.0,
                    # The host's NVIDIA driver (infra/inference_ami.py); None: SageMaker's default.
                    inference_ami_version=config.inference_ami_version,
                )
            ],
        )
        acknowledge(
            self.endpoint_config,
            "AwsSolutions-SM2",
            f"{config.encoder_instance_type} has NVMe instance storage, which is hardware-encrypted; "
            "SageMaker refuses a KmsKeyId for instance types with local storage.",
        )
        # A fixed lower-case name: the IAM resource ARN and the scaling target need it at synth,
        # and SageMaker lower-cases names in ARNs.
        self.endpoint_name = f"{stack.stack_name.lower()}-encoder"[:63]
        self.endpoint = sagemaker.CfnEndpoint(
            self,
            "Endpoint",
            endpoint_name=self.endpoint_name,
            endpoint_config_name=self.endpoint_config.attr_endpoint_config_name,
        )
        acknowledge(
            self.model,
            "AwsSolutions-SM1",
            "The model runs with network isolation (no network at all), so a VPC adds nothing but NAT costs.",
        )

        target = appscaling.ScalableTarget(
            self,
            "ScalableTarget",
            service_namespace=appscaling.ServiceNamespace.SAGEMAKER,
            resource_id=f"endpoint/{self.endpoint_name}/variant/{VARIANT}",
            scalable_dimension="sagemaker:variant:DesiredInstanceCount",
            min_capacity=config.encoder_min_instances,
            max_capacity=config.encoder_max_instances,
        )
        target.node.add_dependency(self.endpoint)
        target.scale_to_track_metric(
            "InvocationsPerInstance",
            predefined_metric=appscaling.PredefinedMetric.SAGEMAKER_VARIANT_INVOCATIONS_PER_INSTANCE,
            target_value=config.encoder_invocations_per_instance,
        )

    def endpoint_arn(self) -> str:
        return Stack.of(self).format_arn(
            service="sagemaker", resource="endpoint", resource_name=self.endpoint_name
        )

    def grant_invoke(self, grantee: iam.IGrantable) -> None:
        grantee.grant_principal.add_to_principal_policy(
            iam.PolicyStatement(actions=["sagemaker:InvokeEndpoint"], resources=[self.endpoint_arn()])
        )


def _repository_arn(stack: Stack, image_uri: str) -> str:
    """arn:...:ecr:REGION:ACCOUNT:repository/NAME from ACCOUNT.dkr.ecr.REGION.amazonaws.com/NAME:TAG."""
    host, _, path = image_uri.partition("/")
    account, _, rest = host.partition(".dkr.ecr.")
    region = rest.split(".")[0]
    name = path.split("@")[0].rsplit(":", 1)[0]
    return f"arn:{stack.partition}:ecr:{region}:{account}:repository/{name}"
