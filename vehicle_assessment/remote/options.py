"""The `submit` and `smoke` options (light: the CLI builds its parser with them at start-up).

Secrets never come from flags (they would sit in shell history and ``ps``): the password from
VDA_PASSWORD, the client secret from VDA_CLIENT_SECRET, else a prompt that does not echo.
"""

from __future__ import annotations

import argparse

PASSWORD_ENV = "VDA_PASSWORD"
CLIENT_SECRET_ENV = "VDA_CLIENT_SECRET"
# The token of a local `vehicle-assessment serve` (the server reads the same variable).
SERVE_TOKEN_ENV = "VDA_SERVE_TOKEN"
DEFAULT_WAIT_TIMEOUT_S = 600.0


def add_stack_arguments(parser: argparse.ArgumentParser) -> None:
    """Where the stack is and how to sign in: shared by `submit` and `smoke`."""
    stack = parser.add_argument_group(
        "stack (outputs read with CloudFormation DescribeStacks; a flag overrides its output)"
    )
    stack.add_argument("--stack", metavar="NAME", help="the deployed stack's name")
    stack.add_argument("--region", help="AWS region (default: AWS_REGION, or the user pool's region)")
    stack.add_argument("--api-url", help="the ApiUrl output")
    stack.add_argument("--user-pool-id", help="the UserPoolId output (SRP sign-in names the pool)")
    stack.add_argument("--user-pool-client-id", help="the UserPoolClientId output (people sign in with it)")
    stack.add_argument(
        "--integration-client-id", help="the IntegrationClientId output (systems sign in with it)"
    )
    stack.add_argument("--cognito-domain", help="the CognitoDomain output (its /oauth2/token endpoint)")
    sign_in = parser.add_argument_group(
        "sign-in (secrets only from the environment or a prompt, never from a flag)"
    )
    how = sign_in.add_mutually_exclusive_group()
    how.add_argument("--username", help=f"sign in as this person; password from {PASSWORD_ENV} or a prompt")
    how.add_argument(
        "--client-credentials",
        action="store_true",
        help=f"sign in as a system (OAuth client_credentials); secret from {CLIENT_SECRET_ENV} or a prompt",
    )
    how.add_argument(
        "--local",
        action="store_true",
        help="the API is a local `vehicle-assessment serve` (--api-url http://127.0.0.1:8000): no Cognito; "
        f"its token from {SERVE_TOKEN_ENV} when it was started with one (bound beyond localhost)",
    )
    sign_in.add_argument(
        "--auth-flow",
        choices=["srp", "password"],
        default="srp",
        help="how --username signs in: srp (USER_SRP_AUTH, the password never leaves this machine; the "
        "public app client's flow) or password (USER_PASSWORD_AUTH, if the app client allows it)",
    )
    sign_in.add_argument("--scope", help="OAuth scopes to ask for with --client-credentials (default: all)")
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_WAIT_TIMEOUT_S,
        metavar="SECONDS",
        help=f"how long to wait for a final status (default: {DEFAULT_WAIT_TIMEOUT_S:.0f})",
    )
