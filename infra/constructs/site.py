"""The review web app on AWS: a private S3 bucket behind CloudFront, signing in with Cognito.

- The bucket is private (no public access, SSE-S3, TLS only); CloudFront reads it through origin access
  control (OAC), so the objects are reachable only through the distribution.
- Viewers are redirected to HTTPS; every answer carries a response-headers policy: a content security
  policy that allows scripts and styles from the site only, connections to the API, the Cognito domain
  and the region's S3 (upload forms, presigned GETs), HSTS, frame-options DENY, nosniff, a referrer policy.
- A BucketDeployment copies ``vehicle_assessment/webapp/`` plus a ``config.json`` made from stack values.
- A Cognito app client for the site: public (no secret), authorization code grant (PKCE is required by
  the page; Cognito accepts S256), callback and logout URLs on the distribution's domain.

The API's CORS (gateway preflights, the Lambda's headers, the upload bucket's rule) allows this site's
origin: see ``infra/stack.py``.
"""

from __future__ import annotations

from pathlib import Path

from aws_cdk import Aws, Duration, Fn
from aws_cdk import aws_cloudfront as cloudfront
from aws_cdk import aws_cloudfront_origins as origins
from aws_cdk import aws_cognito as cognito
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_deployment as s3deploy
from constructs import Construct

import vehicle_assessment
from infra.config import InfraConfig
from infra.constructs.lambdas import acknowledge, logical_id, removal

WEBAPP_DIR = Path(vehicle_assessment.__file__).resolve().parent / "webapp"
# What of WEBAPP_DIR is not deployed (scripts/cost.py prices what is).
WEBAPP_EXCLUDE = ("__pycache__", "*.pyc")
CONFIG_FILE = "config.json"
# The OAuth scopes the page asks for; "openid" makes the access token one the API's methods accept
# (authz.PERSON_TOKEN_SCOPES), "email" and "profile" name the person in the page.
SITE_SCOPES = (cognito.OAuthScope.OPENID, cognito.OAuthScope.EMAIL, cognito.OAuthScope.PROFILE)
# HSTS: two years, the preload list's minimum is one.
HSTS_MAX_AGE = Duration.days(730)
# Static files change only with a deployment, which invalidates the distribution.
ACCESS_LOG_DAYS = 365


def content_security_policy(api_origin: str, cognito_domain: str, s3_regional_origin: str) -> str:
    """The page's CSP. No inline script or style anywhere in the app, so none is allowed.

    S3 URLs (upload forms, presigned GETs of photos, audio, reference copies) are named by the region's
    S3 endpoint with a subdomain wildcard for the bucket: naming the upload bucket itself would make the
    distribution depend on the bucket whose CORS rule depends on the distribution (a cycle).
    """
    s3_sources = f"https://*.{s3_regional_origin} https://{s3_regional_origin}"
    api = f" {api_origin}" if api_origin else ""
    directives = {
        "default-src": "'none'",
        "script-src": "'self'",
        "style-src": "'self'",
        "img-src": f"'self' blob: {s3_sources}",
        "media-src": s3_sources,
        "connect-src": f"'self'{api} {cognito_domain} {s3_sources}",
        "manifest-src": "'self'",
        "base-uri": "'none'",
        "form-action": "'none'",
        "frame-ancestors": "'none'",
        "object-src": "'none'",
    }
    return "; ".join(f"{name} {value}" for name, value in directives.items())


class Site(Construct):
    """Build order: Site (needs Cognito's domain), then the API (needs ``origin``), then ``allow_api``
    (the CSP names the API, which exists only now), ``add_client`` and ``deploy``."""

    def __init__(
        self, scope: Construct, construct_id: str, *, config: InfraConfig, cognito_domain: str
    ) -> None:
        super().__init__(scope, construct_id)
        self._config = config
        self._cognito_domain = cognito_domain
        self._s3_regional_origin = Fn.join("", ["s3.", Aws.REGION, ".", Aws.URL_SUFFIX])
        self.logs = self._build_log_bucket()
        self.bucket = self._build_bucket()
        self.headers = self._build_headers_policy()
        self.distribution = self._build_distribution()
        self._acknowledge_distribution()

    @property
    def origin(self) -> str:
        """https://<distribution>.cloudfront.net: the one browser origin of the web app."""
        return Fn.join("", ["https://", self.distribution.distribution_domain_name])

    def allow_api(self, api_origin: str) -> None:
        """Lets the page call the API: until this runs, the CSP allows no connection to it (fail closed)."""
        policy = self.headers.node.default_child
        assert isinstance(policy, cloudfront.CfnResponseHeadersPolicy)
        policy.add_property_override(
            "ResponseHeadersPolicyConfig.SecurityHeadersConfig.ContentSecurityPolicy.ContentSecurityPolicy",
            content_security_policy(api_origin, self._cognito_domain, self._s3_regional_origin),
        )

    def _build_headers_policy(self) -> cloudfront.ResponseHeadersPolicy:
        return cloudfront.ResponseHeadersPolicy(
            self,
            "SecurityHeaders",
            comment="Review web app: CSP, HSTS, no framing, no sniffing, no referrer",
            security_headers_behavior=cloudfront.ResponseSecurityHeadersBehavior(
                content_security_policy=cloudfront.ResponseHeadersContentSecurityPolicy(
                    content_security_policy=content_security_policy(
                        "", self._cognito_domain, self._s3_regional_origin
                    ),
                    override=True,
                ),
                strict_transport_security=cloudfront.ResponseHeadersStrictTransportSecurity(
                    access_control_max_age=HSTS_MAX_AGE, include_subdomains=True, override=True
                ),
                frame_options=cloudfront.ResponseHeadersFrameOptions(
                    frame_option=cloudfront.HeadersFrameOption.DENY, override=True
                ),
                content_type_options=cloudfront.ResponseHeadersContentTypeOptions(override=True),
                referrer_policy=cloudfront.ResponseHeadersReferrerPolicy(
                    referrer_policy=cloudfront.HeadersReferrerPolicy.NO_REFERRER, override=True
                ),
            ),
        )

    def _build_distribution(self) -> cloudfront.Distribution:
        return cloudfront.Distribution(
            self,
            "Distribution",
            comment="Vehicle assessment review web app",
            default_root_object="index.html",
            default_behavior=cloudfront.BehaviorOptions(
                origin=origins.S3BucketOrigin.with_origin_access_control(self.bucket),
                viewer_protocol_policy=cloudfront.ViewerProtocolPolicy.REDIRECT_TO_HTTPS,
                allowed_methods=cloudfront.AllowedMethods.ALLOW_GET_HEAD,
                cache_policy=cloudfront.CachePolicy.CACHING_OPTIMIZED,
                response_headers_policy=self.headers,
            ),
            http_version=cloudfront.HttpVersion.HTTP2_AND_3,
            price_class=cloudfront.PriceClass.PRICE_CLASS_100,
            enable_logging=True,
            log_bucket=self.logs,
            log_file_prefix="distribution/",
        )

    def add_client(self, user_pool: cognito.IUserPool) -> cognito.UserPoolClient:
        """The site's own app client: public, authorization code (+ PKCE), redirects to the site only."""
        redirect = Fn.join("", [self.origin, "/"])
        self.client = user_pool.add_client(
            "ReviewSiteClient",
            user_pool_client_name="review-web-app",
            # A page's code is public: it cannot keep a secret, so PKCE proves the code's requester.
            generate_secret=False,
            auth_flows=cognito.AuthFlow(user_srp=False),
            o_auth=cognito.OAuthSettings(
                flows=cognito.OAuthFlows(authorization_code_grant=True),
                scopes=list(SITE_SCOPES),
                callback_urls=[redirect],
                logout_urls=[redirect],
            ),
            supported_identity_providers=[cognito.UserPoolClientIdentityProvider.COGNITO],
            prevent_user_existence_errors=True,
            enable_token_revocation=True,
            access_token_validity=Duration.hours(1),
            id_token_validity=Duration.hours(1),
            # The page keeps no refresh token (sessionStorage holds the access token only).
            refresh_token_validity=Duration.hours(1),
        )
        self.redirect_uri = redirect
        return self.client

    def deploy(self, *, api_url: str) -> s3deploy.BucketDeployment:
        """The static files and the config.json the page reads first."""
        # The page's settings (vehicle_assessment/webapp/config.js reads them).
        page_config = {
            "api_base_url": api_url,
            "mode": "aws",
            "sign_in": "cognito",
            "cognito": {
                "domain": self._cognito_domain,
                "client_id": self.client.user_pool_client_id,
                "redirect_uri": self.redirect_uri,
                "logout_uri": self.redirect_uri,
                "scopes": [scope.scope_name for scope in SITE_SCOPES],
            },
        }
        deployment = s3deploy.BucketDeployment(
            self,
            "Deploy",
            sources=[
                s3deploy.Source.asset(str(WEBAPP_DIR), exclude=list(WEBAPP_EXCLUDE)),
                s3deploy.Source.json_data(CONFIG_FILE, page_config),
            ],
            destination_bucket=self.bucket,
            distribution=self.distribution,
            distribution_paths=["/*"],
            # Files of a former version (e.g. a removed page module) must not stay reachable.
            prune=True,
            memory_limit=256,
        )
        self._acknowledge_deployment(deployment, self.bucket)
        return deployment

    @staticmethod
    def _acknowledge_deployment(deployment: s3deploy.BucketDeployment, bucket: s3.Bucket) -> None:
        """CDK's own BucketDeployment handler (a singleton function per memory size, its role made by CDK)."""
        role = deployment.handler_role
        handler = role.node.scope
        assert handler is not None
        acknowledge(
            role,
            "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
            "AWSLambdaBasicExecutionRole]",
            "CDK's BucketDeployment handler writes its own logs with this AWS managed policy (CloudWatch "
            "Logs only); it runs during deployments, never on a request.",
        )
        copy = "CDK's BucketDeployment copies the site's asset zip from CDK's asset bucket to the site bucket"
        for finding, reason in (
            ("Action::s3:GetObject*", f"{copy}: it reads the asset (CDK grants read as GetObject*)."),
            ("Action::s3:GetBucket*", f"{copy}: CDK's read grant on both buckets."),
            ("Action::s3:List*", f"{copy}: it lists the site bucket to prune files of a former version."),
            ("Action::s3:DeleteObject*", f"{copy}: prune=True deletes files of a former version."),
            ("Action::s3:Abort*", f"{copy}: CDK's write grant includes aborting multipart uploads."),
            (
                "Resource::arn:<AWS::Partition>:s3:::cdk-hnb659fds-assets-<AWS::AccountId>-<AWS::Region>/*",
                f"{copy}: the assets are objects of CDK's bootstrap bucket, named by content hash.",
            ),
            (
                f"Resource::<{logical_id(bucket)}.Arn>/*",
                f"{copy}: every object of the site bucket is a site file.",
            ),
            (
                "Resource::*",
                "CDK's BucketDeployment invalidates the distribution after copying "
                "(cloudfront:CreateInvalidation and GetInvalidation), which CDK grants on all resources.",
            ),
        ):
            acknowledge(role, f"AwsSolutions-IAM5[{finding}]", reason)
        acknowledge(
            handler,
            "AwsSolutions-L1",
            "CDK's BucketDeployment handler: CDK pins its runtime with each release; it runs only during "
            "deployments.",
        )

    def _build_log_bucket(self) -> s3.Bucket:
        bucket = s3.Bucket(
            self,
            "AccessLogs",
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            # CloudFront standard logging (legacy) writes with an ACL: the bucket must accept ACLs.
            # https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/standard-logging-legacy-s3.html
            object_ownership=s3.ObjectOwnership.OBJECT_WRITER,
            lifecycle_rules=[
                s3.LifecycleRule(id="expire-access-logs", expiration=Duration.days(ACCESS_LOG_DAYS))
            ],
            removal_policy=removal(self._config),
        )
        acknowledge(
            bucket,
            "AwsSolutions-S1",
            "This is the access log bucket of the site bucket and its distribution; logging it to itself "
            "would loop.",
        )
        return bucket

    def _build_bucket(self) -> s3.Bucket:
        return s3.Bucket(
            self,
            "Files",
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            server_access_logs_bucket=self.logs,
            server_access_logs_prefix="site-bucket/",
            removal_policy=removal(self._config),
        )

    def _acknowledge_distribution(self) -> None:
        distribution = self.distribution
        acknowledge(
            distribution,
            "AwsSolutions-CFR1",
            "No geo restriction: appraisers and yards may sign in from any country; the site serves static "
            "files only, and every piece of data behind it needs a Cognito sign-in at the API.",
        )
        acknowledge(
            distribution,
            "AwsSolutions-CFR2",
            "No WAF web ACL: the distribution serves the same public static files (HTML, CSS, JS) to "
            "everyone, with GET/HEAD only; the data lives behind the API, whose methods need a Cognito "
            "access token and are throttled per stage.",
        )
        acknowledge(
            distribution,
            "AwsSolutions-CFR4",
            "The distribution uses its default *.cloudfront.net certificate, with which CloudFront sets "
            "the security policy to TLSv1 whatever MinimumProtocolVersion says (https://docs.aws.amazon.com/"
            "sdk-for-kotlin/api/latest/cloudfront/aws.sdk.kotlin.services.cloudfront.model/"
            "-viewer-certificate/minimum-protocol-version.html); a TLS 1.2 minimum needs a custom domain and "
            "ACM certificate, which this stack does not own.",
        )
