"""Policies: AddPermission / RemovePermission / GetPolicy (spec 2.2); no HTTP.

A resource-based policy belongs to a function (unqualified), a published version or an alias.
Lamina stores statements in Lambda's rendered form (principal and conditions as IAM writes
them) and uses them for one decision: whether a NONE-auth function URL may be called by anyone
(`allows_public_url`, spec 9). Other principals are kept and shown, not enforced (Lamina has one
set of credentials, the account's own).
"""

from __future__ import annotations

import re
import uuid

from lamina.functions.service import FunctionRecord, FunctionService
from lamina.model.errors import (
    InvalidParameterValueException,
    ResourceConflictException,
    ResourceNotFoundException,
)
from lamina.model.ids import LATEST, VERSION_NUMBER, FunctionRef
from lamina.model.urls import PermissionInput, Policy, PolicyStatement
from lamina.store.urls import UrlRepo
from lamina.functions import validate

_ACCOUNT = re.compile(r"^\d{12}$")


class Policies:
    def __init__(self, *, functions: FunctionService, repo: UrlRepo) -> None:
        self._functions = functions
        self._repo = repo

    async def load(self) -> None:
        """Put every stored policy on its function's record (after FunctionService.load)."""
        for p in await self._repo.load_policies():
            rec = self._functions.find(p.function_name)
            if rec is not None:
                rec.policies[p.qualifier] = p

    def get(self, ref: FunctionRef) -> Policy:
        rec, qualifier = self._target(ref)
        policy = rec.policies.get(qualifier)
        if policy is None:
            raise ResourceNotFoundException("No policy is associated with the given resource.")
        return policy

    def allows_public_url(self, name: str, qualifier: str | None) -> bool:
        """Whether the policy of name[:qualifier] lets anyone call its NONE-auth URL."""
        rec = self._functions.find(name)
        policy = rec.policies.get(qualifier) if rec is not None else None
        return policy is not None and any(s.allows_public_url() for s in policy.statements)

    async def add(self, ref: FunctionRef, req: PermissionInput) -> PolicyStatement:
        async with self._functions.lock(ref.name):
            rec, qualifier = self._target(ref)
            current = rec.policies.get(qualifier)
            self._check_revision(rec, qualifier, current, req.revision_id)
            if current is not None and any(s.sid == req.statement_id for s in current.statements):
                raise ResourceConflictException(
                    f"The statement id ({req.statement_id}) provided already exists. Please provide a new statement id, "
                    "or remove the existing statement."
                )
            statement = PolicyStatement(
                sid=req.statement_id,
                action=req.action,
                principal=_principal(req.principal),
                resource=self._functions.arns.function(rec.name, qualifier),
                conditions=_conditions(req),
            )
            before = current.statements if current is not None else ()
            policy = Policy(function_name=rec.name, qualifier=qualifier, statements=(*before, statement),
                            revision_id=str(uuid.uuid4()))  # fmt: skip
            await self._repo.put_policy(policy)
            rec.policies[qualifier] = policy
            return statement

    async def remove(self, ref: FunctionRef, sid: str, revision_id: str | None) -> None:
        async with self._functions.lock(ref.name):
            rec, qualifier = self._target(ref)
            current = rec.policies.get(qualifier)
            if current is None or not any(s.sid == sid for s in current.statements):
                raise ResourceNotFoundException(f"Statement {sid} is not found in resource policy.")
            self._check_revision(rec, qualifier, current, revision_id)
            policy = Policy(function_name=rec.name, qualifier=qualifier, revision_id=str(uuid.uuid4()),
                            statements=tuple(s for s in current.statements if s.sid != sid))  # fmt: skip
            await self._repo.put_policy(policy)
            if policy.statements:
                rec.policies[qualifier] = policy
            else:
                del rec.policies[qualifier]

    def _target(self, ref: FunctionRef) -> tuple[FunctionRecord, str | None]:
        q = ref.qualifier
        arn = self._functions.arns.function(ref.name, q)
        rec = self._functions.find(ref.name)
        if rec is None:
            raise ResourceNotFoundException(f"Function not found: {arn}")
        if q == LATEST:
            raise InvalidParameterValueException("We currently do not support adding policies for $LATEST.")
        if q is not None and q not in (rec.versions if VERSION_NUMBER.match(q) else rec.aliases):
            raise ResourceNotFoundException(f"Function not found: {arn}")
        return rec, q

    def _check_revision(self, rec: FunctionRecord, qualifier: str | None, current: Policy | None, given: str | None) -> None:
        """RevisionId guards against a concurrent change: the policy's, or the function's before it has one."""
        validate.revision(given, current.revision_id if current is not None else rec.latest.revision_id, api="GetPolicy")


def _principal(raw: str) -> str | dict[str, str]:
    """The principal as IAM renders it: `*`, an account's root, a service, or an ARN."""
    if raw == "*":
        return "*"
    if _ACCOUNT.match(raw):
        return {"AWS": f"arn:aws:iam::{raw}:root"}
    if raw.startswith("arn:"):
        return {"AWS": raw}
    if "." in raw:
        return {"Service": raw}
    raise InvalidParameterValueException("The provided principal was invalid. Please check the principal and try again.")


def _conditions(req: PermissionInput) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    equals: dict[str, str] = {}
    if req.source_account:
        equals["AWS:SourceAccount"] = req.source_account
    if req.principal_org_id:
        equals["aws:PrincipalOrgID"] = req.principal_org_id
    if req.event_source_token:
        equals["lambda:EventSourceToken"] = req.event_source_token
    if req.url_auth_type is not None:
        equals["lambda:FunctionUrlAuthType"] = req.url_auth_type.value
    if equals:
        out["StringEquals"] = equals
    if req.source_arn:
        out["ArnLike"] = {"AWS:SourceArn": req.source_arn}
    if req.invoked_via_function_url:
        out["Bool"] = {"lambda:InvokedViaFunctionUrl": "true"}
    return out
