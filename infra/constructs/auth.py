"""Sign-in: an Amazon Cognito user pool for people (yard app, review page) and integrations.

- People are created by an administrator only (no self sign-up) and put in the groups of
  ``vehicle_assessment.aws_runtime.authz.Group``; the API allows routes by group.
- The public client (no secret) signs people in with SRP, or with the hosted sign-in and the
  authorization code grant with PKCE when callback URLs are configured.
- The confidential integration client uses the client credentials grant with the resource server's
  scopes (``authz.Scope``); the token endpoint lives on the user pool domain.
"""

from __future__ import annotations

from aws_cdk import Aws, Duration, Fn
from aws_cdk import aws_cognito as cognito
from constructs import Construct

from infra.config import InfraConfig
from infra.constructs.lambdas import acknowledge, removal
from vehicle_assessment.aws_runtime import authz

# Passwords: the same strength for admins and yard staff (shared tablets are the weak point).
MIN_PASSWORD_LENGTH = 14
# A temporary password from admin-create-user expires if not used for this long.
TEMPORARY_PASSWORD_DAYS = 3

_THREAT_PROTECTION = {
    "enforced": cognito.StandardThreatProtectionMode.FULL_FUNCTION,
    "audit": cognito.StandardThreatProtectionMode.AUDIT_ONLY,
}


class Auth(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, config: InfraConfig) -> None:
        super().__init__(scope, construct_id)
        self.user_pool = self._build_user_pool(config)
        self.groups = {
            group: cognito.UserPoolGroup(
                self,
                f"Group{group.value.capitalize()}",
                user_pool=self.user_pool,
                group_name=group.value,
                description=authz.GROUP_DESCRIPTIONS[group],
            )
            for group in authz.Group
        }
        self.resource_server = self.user_pool.add_resource_server(
            "AssessmentsResourceServer",
            identifier=authz.RESOURCE_SERVER,
            user_pool_resource_server_name="Vehicle assessment API",
            scopes=[
                cognito.ResourceServerScope(
                    scope_name=scope.value.split("/", 1)[1], scope_description=authz.SCOPE_DESCRIPTIONS[scope]
                )
                for scope in authz.Scope
            ],
        )
        # The hosted domain serves /oauth2/authorize and /oauth2/token. Prefixes are unique per region
        # across all accounts: the default carries the account id.
        prefix = config.cognito_domain_prefix or Fn.join("-", ["vehicle-assessment", Aws.ACCOUNT_ID])
        self.domain = self.user_pool.add_domain(
            "Domain", cognito_domain=cognito.CognitoDomainOptions(domain_prefix=prefix)
        )
        self.public_client = self._build_public_client(config)
        self.integration_client = self._build_integration_client()
        self._acknowledge_findings(config)

    @property
    def domain_url(self) -> str:
        """https://<prefix>.auth.<region>.amazoncognito.com"""
        return self.domain.base_url()

    def _build_user_pool(self, config: InfraConfig) -> cognito.UserPool:
        threat_protection = _THREAT_PROTECTION.get(config.cognito_threat_protection)
        return cognito.UserPool(
            self,
            "UserPool",
            # Administrators create every account (README: admin-create-user); nobody signs up.
            self_sign_up_enabled=False,
            sign_in_aliases=cognito.SignInAliases(username=True, email=True),
            sign_in_case_sensitive=False,
            auto_verify=cognito.AutoVerifiedAttrs(email=True),
            keep_original=cognito.KeepOriginalAttrs(email=True),
            standard_attributes=cognito.StandardAttributes(
                email=cognito.StandardAttribute(required=True, mutable=True)
            ),
            password_policy=cognito.PasswordPolicy(
                min_length=MIN_PASSWORD_LENGTH,
                require_lowercase=True,
                require_uppercase=True,
                require_digits=True,
                require_symbols=True,
                temp_password_validity=Duration.days(TEMPORARY_PASSWORD_DAYS),
            ),
            # TOTP only: SMS codes can be intercepted and need an SMS role and spending limit.
            mfa=cognito.Mfa.OPTIONAL,
            mfa_second_factor=cognito.MfaSecondFactor(otp=True, sms=False),
            account_recovery=cognito.AccountRecovery.EMAIL_ONLY,
            # Threat protection (compromised credentials, risky sign-ins) needs the Plus plan.
            feature_plan=cognito.FeaturePlan.PLUS if threat_protection else cognito.FeaturePlan.ESSENTIALS,
            standard_threat_protection_mode=threat_protection,
            # Passwords cannot be exported: losing the pool locks every user out.
            deletion_protection=config.removal_policy == "retain",
            removal_policy=removal(config),
        )

    def _build_public_client(self, config: InfraConfig) -> cognito.UserPoolClient:
        hosted_sign_in = bool(config.cognito_callback_urls)
        return self.user_pool.add_client(
            "PublicClient",
            user_pool_client_name="yard-app-and-review-page",
            # A mobile or browser app cannot keep a secret.
            generate_secret=False,
            # SRP: the password never leaves the device; no USER_PASSWORD_AUTH.
            auth_flows=cognito.AuthFlow(user_srp=True),
            # Authorization code only (Cognito accepts PKCE's code_challenge on it; no implicit grant).
            # Without callback URLs there is no redirect to return to: OAuth off, SRP only.
            disable_o_auth=not hosted_sign_in,
            o_auth=cognito.OAuthSettings(
                flows=cognito.OAuthFlows(authorization_code_grant=True),
                scopes=[cognito.OAuthScope.OPENID, cognito.OAuthScope.EMAIL, cognito.OAuthScope.PROFILE],
                callback_urls=list(config.cognito_callback_urls),
                logout_urls=list(config.cognito_logout_urls) or None,
            )
            if hosted_sign_in
            else None,
            supported_identity_providers=[cognito.UserPoolClientIdentityProvider.COGNITO],
            prevent_user_existence_errors=True,
            enable_token_revocation=True,
            access_token_validity=Duration.hours(1),
            id_token_validity=Duration.hours(1),
            # A yard shift, then sign in again.
            refresh_token_validity=Duration.hours(12),
        )

    def _build_integration_client(self) -> cognito.UserPoolClient:
        return self.user_pool.add_client(
            "IntegrationClient",
            user_pool_client_name="integrations",
            generate_secret=True,
            # No user sign-in at all: client credentials only.
            auth_flows=cognito.AuthFlow(
                user_srp=False, user_password=False, custom=False, admin_user_password=False
            ),
            o_auth=cognito.OAuthSettings(
                flows=cognito.OAuthFlows(client_credentials=True),
                scopes=[
                    cognito.OAuthScope.resource_server(
                        self.resource_server,
                        cognito.ResourceServerScope(
                            scope_name=scope.value.split("/", 1)[1],
                            scope_description=authz.SCOPE_DESCRIPTIONS[scope],
                        ),
                    )
                    for scope in authz.Scope
                ],
            ),
            supported_identity_providers=[cognito.UserPoolClientIdentityProvider.COGNITO],
            enable_token_revocation=True,
            access_token_validity=Duration.hours(1),
        )

    def _acknowledge_findings(self, config: InfraConfig) -> None:
        acknowledge(
            self.user_pool,
            "AwsSolutions-COG2",
            "MFA is optional (TOTP): yard staff sign in on shared tablets where an authenticator app per "
            "person is not always practical; threat protection, a 14-character password policy and short "
            "sessions cover them, and administrators are expected to enrol TOTP (README).",
        )
        if config.cognito_threat_protection == "off":
            for rule in ("AwsSolutions-COG3", "AwsSolutions-COG8"):
                acknowledge(
                    self.user_pool,
                    rule,
                    "Threat protection (and with it the Plus plan) was switched off with the context "
                    "cognito_threat_protection=off: the Essentials plan, e.g. for a test deployment "
                    "without the Plus plan's per-user price.",
                )
