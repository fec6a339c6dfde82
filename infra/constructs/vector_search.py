"""The reference index: an OpenSearch Serverless VECTORSEARCH collection and its k-NN index.

Access is granted twice, as AOSS requires: IAM (``aoss:APIAccessAll`` on the collection) and the
collection's data access policy, which names each principal and what it may do with the index.
The index itself is created at deploy time by a custom resource that uses the application's own
mapping (``OpenSearchReferenceIndex.create_index``), so its dimension matches the encoder.
"""

from __future__ import annotations

import json

from aws_cdk import CustomResource, Duration, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_opensearchserverless as aoss
from constructs import Construct

from infra.config import InfraConfig
from infra.constructs.lambdas import FunctionSpec, PipelineFunction

READ_INDEX = ["aoss:DescribeIndex", "aoss:ReadDocument"]
CREATE_INDEX = ["aoss:CreateIndex", "aoss:DescribeIndex", "aoss:UpdateIndex"]
LOAD_INDEX = [*CREATE_INDEX, "aoss:ReadDocument", "aoss:WriteDocument"]


class VectorSearch(Construct):
    def __init__(
        self, scope: Construct, construct_id: str, *, config: InfraConfig, code: lambda_.Code
    ) -> None:
        super().__init__(scope, construct_id)
        self.config = config
        self.collection = self._build_collection()
        self.collection_endpoint = self.collection.attr_collection_endpoint
        self._rules: list[tuple[list[str], list[str]]] = []
        self.index_creator = self._build_index_creator(code)
        self.grant(self.index_creator.role, CREATE_INDEX)
        self._loader_arns = list(config.index_loader_principal_arns)

    def _build_collection(self) -> aoss.CfnCollection:
        """The vector collection and the encryption and network policies it cannot exist without."""
        config = self.config
        name = config.collection_name
        collection_rule = {"ResourceType": "collection", "Resource": [f"collection/{name}"]}
        encryption = aoss.CfnSecurityPolicy(
            self,
            "EncryptionPolicy",
            name=f"{name}-enc"[:32],
            type="encryption",
            policy=json.dumps({"Rules": [collection_rule], "AWSOwnedKey": True}),
        )
        # Public endpoint, but every request is SigV4-signed and checked against IAM and the data
        # access policy below; a VPC endpoint would need a VPC for the Lambdas (and NAT for vPIC).
        network = aoss.CfnSecurityPolicy(
            self,
            "NetworkPolicy",
            name=f"{name}-net"[:32],
            type="network",
            policy=json.dumps([{"Rules": [collection_rule], "AllowFromPublic": True}]),
        )
        collection = aoss.CfnCollection(
            self,
            "Collection",
            name=name,
            type="VECTORSEARCH",
            description="Reference photo embeddings for damage verdicts (k-NN)",
            standby_replicas="ENABLED" if config.collection_standby_replicas else "DISABLED",
        )
        # AOSS refuses a collection that no encryption policy covers.
        collection.node.add_dependency(encryption)
        collection.node.add_dependency(network)
        return collection

    def _build_index_creator(self, code: lambda_.Code) -> PipelineFunction:
        return PipelineFunction(
            self,
            "IndexCreator",
            spec=FunctionSpec(
                handler="infra_lambda.aoss_index.handler",
                description="Custom resource: creates the k-NN index in the AOSS collection",
                # Retries 403s while the new data access policy propagates.
                timeout=Duration.minutes(10),
                memory_mb=256,
                snap_start_excluded=(
                    "A CloudFormation custom resource, invoked once per deployment: a snapshot (built "
                    "at every publish, billed while cached) would never be restored."
                ),
            ),
            code=code,
            config=self.config,
            common_environment={},
        )

    def grant(self, role: iam.IRole, permissions: list[str]) -> None:
        """IAM access to the collection's API plus a data access rule for ``role``."""
        role.add_to_principal_policy(
            iam.PolicyStatement(actions=["aoss:APIAccessAll"], resources=[self.collection.attr_arn])
        )
        self._rules.append(([role.role_arn], permissions))

    def finish(self, identity: dict[str, object]) -> None:
        """Write the data access policy (every principal is known now) and create the index."""
        name = self.config.collection_name
        rules = list(self._rules)
        if self._loader_arns:
            rules.append((self._loader_arns, LOAD_INDEX))
        statements = [
            {
                "Description": f"rule {n}",
                "Rules": [
                    {
                        "ResourceType": "index",
                        "Resource": [f"index/{name}/{self.config.index_name}"],
                        "Permission": perms,
                    },
                    {
                        "ResourceType": "collection",
                        "Resource": [f"collection/{name}"],
                        "Permission": ["aoss:DescribeCollectionItems"],
                    },
                ],
                "Principal": principals,
            }
            for n, (principals, perms) in enumerate(rules, start=1)
        ]
        self.access_policy = aoss.CfnAccessPolicy(
            self,
            "DataAccessPolicy",
            name=f"{name}-data"[:32],
            type="data",
            policy=Stack.of(self).to_json_string(statements),
        )
        self.index = CustomResource(
            self,
            "Index",
            service_token=self.index_creator.function.function_arn,
            resource_type="Custom::AossKnnIndex",
            properties={
                "CollectionName": name,
                "CollectionEndpoint": self.collection_endpoint,
                "IndexName": self.config.index_name,
                "Identity": json.dumps(identity, sort_keys=True),
            },
        )
        self.index.node.add_dependency(self.access_policy)
        self.index.node.add_dependency(self.collection)
