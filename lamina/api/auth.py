"""The authentication and authorization seam of the Lambda API.

Every request to the Lambda API passes through an Authorizer before its handler runs. For now
Lamina accepts any SigV4 signature and any credentials (the foundation issue asks for that);
the security issue replaces `AllowAll` with signature checks and per-function policies.
"""

from __future__ import annotations

from typing import Protocol

from starlette.requests import Request


class Authorizer(Protocol):
    def authorize(self, request: Request, operation: str) -> None:
        """Return if `request` may perform `operation`; raise a LambdaError (e.g. 403) if not."""


class AllowAll:
    """Accepts every request, signed or not."""

    def authorize(self, request: Request, operation: str) -> None:
        return None
