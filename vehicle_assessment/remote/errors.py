"""The one error the remote commands raise (light: the CLI imports it at start-up)."""

from __future__ import annotations


class RemoteError(Exception):
    """The stack, the API or Cognito could not be used; the message says why, without secrets."""
