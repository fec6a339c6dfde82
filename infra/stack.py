"""VehicleAssessmentStack: the capabilities, each its own construct, wired together here."""

from __future__ import annotations

from typing import Any

from aws_cdk import Aws, CfnOutput, Fn, Stack
from constructs import Construct

from infra.bundling import lambda_code
from infra.config import InfraConfig, encoder_identity, rules_json
from infra.constructs.api import Api
from infra.constructs.auth import Auth
from infra.constructs.embedding import Embedding
from infra.constructs.events import AssessmentEvents
from infra.constructs.index_build import IndexBuild
from infra.constructs.ingest import Ingest
from infra.constructs.learning import ReferenceLearning
from infra.constructs.monitoring import Monitoring
from infra.constructs.site import Site
from infra.constructs.storage import Storage
from infra.constructs.vector_search import VectorSearch
from infra.constructs.workflow import Workflow


class VehicleAssessmentStack(Stack):
    def __init__(self, scope: Construct, construct_id: str, *, config: InfraConfig, **kwargs: Any) -> None:
        super().__init__(scope, construct_id, **kwargs)
        # Two assets, each bundled once per synth: "photo" (numpy, pillow, opensearch-py) for the
        # analyse step and the index custom resource, "light" for every other function.
        code = lambda_code(config.bundling, config.lambda_architecture)

        storage = Storage(self, "Storage", config=config)
        common_environment = {"TABLE_NAME": storage.table.table_name}
        if config.assessment_ttl_days:
            common_environment["ASSESSMENT_TTL_DAYS"] = str(config.assessment_ttl_days)

        auth = Auth(self, "Auth", config=config)
        # The review web app: the API and the upload bucket allow its origin (CORS); its page allows
        # the API, Cognito and S3 (CSP).
        site = Site(self, "Site", config=config, cognito_domain=auth.domain_url)
        ingest = Ingest(self, "Ingest", config=config, site_origin=site.origin)
        embedding = Embedding(self, "Embedding", config=config)
        search = VectorSearch(self, "VectorSearch", config=config, code=code.photo)
        identity = encoder_identity(config)
        rules = rules_json(config)
        workflow = Workflow(
            self,
            "Workflow",
            config=config,
            code=code,
            common_environment=common_environment,
            table=storage.table,
            bucket=ingest.bucket,
            embedding=embedding,
            search=search,
            encoder_identity=identity,
            rules_json=rules,
        )
        index_build = IndexBuild(
            self,
            "IndexBuild",
            config=config,
            code=code,
            bucket=ingest.bucket,
            embedding=embedding,
            search=search,
            encoder_identity=identity,
            rules_json=rules,
        )
        learning = ReferenceLearning(
            self,
            "Learning",
            config=config,
            code=code,
            common_environment=common_environment,
            table=storage.table,
            bucket=ingest.bucket,
            embedding=embedding,
            search=search,
            encoder_identity=identity,
            rules_json=rules,
        )
        # Every principal of the data access policy exists now.
        search.finish(identity)
        ingest.add_consumers(
            code=code.light,
            common_environment=common_environment,
            state_machine=workflow.state_machine,
            table=storage.table,
        )
        # Every final status is published to the bus: COMPLETED/NEEDS_PHOTOS by Store, FAILED by
        # MarkFailed, INCOMPLETE by the sweeper.
        finished = AssessmentEvents(self, "Events")
        for publisher in (workflow.functions["store"], workflow.functions["mark_failed"], ingest.sweeper):
            finished.grant_publish(publisher)
        api = Api(
            self,
            "Api",
            config=config,
            code=code.light,
            common_environment=common_environment,
            table=storage.table,
            bucket=ingest.bucket,
            user_pool=auth.user_pool,
            site_origin=site.origin,
            rules_json=rules,
        )
        learning.grant_request(api.handler)
        # The API's origin without its stage: the RestApi alone, so the distribution's headers do not
        # depend on the stage (whose deployment depends on methods that name the site's origin).
        api_origin = Fn.join(
            "", ["https://", api.rest_api.rest_api_id, ".execute-api.", Aws.REGION, ".", Aws.URL_SUFFIX]
        )
        site.allow_api(api_origin)
        site.add_client(auth.user_pool)
        site.deploy(api_url=api.rest_api.url)
        monitoring = Monitoring(
            self,
            "Monitoring",
            config=config,
            state_machine=workflow.state_machine,
            dead_letters=ingest.dead_letters,
            stopped_execution_dead_letters=workflow.stopped_execution_dead_letters,
            endpoint_name=embedding.endpoint_name,
            functions={
                **workflow.functions,
                "upload": ingest.upload_trigger,
                "sweeper": ingest.sweeper,
                "api": api.handler,
                "reference_feedback": learning.function,
            },
        )

        finished.alarm_on_unpublished(ingest.sweeper, monitoring.topic)
        learning.alarm_on_failures(api.handler, monitoring.topic)

        for name, value in {
            # Read by clients (the submit tool, the yard app's settings): keep these keys stable.
            "ApiUrl": api.rest_api.url,
            "UserPoolId": auth.user_pool.user_pool_id,
            "UserPoolClientId": auth.public_client.user_pool_client_id,
            "IntegrationClientId": auth.integration_client.user_pool_client_id,
            "CognitoDomain": auth.domain_url,
            "UploadBucketName": ingest.bucket.bucket_name,
            "TableName": storage.table.table_name,
            "StateMachineArn": workflow.state_machine.state_machine_arn,
            # `index build --target aws --manifest s3://...` starts this one.
            "IndexBuildStateMachineArn": index_build.state_machine.state_machine_arn,
            "EncoderEndpoint": embedding.endpoint_name,
            "CollectionEndpoint": search.collection_endpoint,
            "IndexName": config.index_name,
            "EventBusName": finished.bus.event_bus_name,
            "SiteUrl": site.redirect_uri,
            "SiteClientId": site.client.user_pool_client_id,
        }.items():
            CfnOutput(self, name, value=value)
