"""Whose data a FHIR request reads or writes.

A submitter token acts only for its own institution. An admin (and, for reads, a regulator) names
the institution in the ``X-HIE-Institution`` header: FHIR URLs have no place for it, and every
FHIR client can send an extra header. Every query then filters on that one institution.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from hie.auth import Principal
from hie.auth.principal import INSTITUTION_ROLES
from hie.errors import PermissionDenied
from hie.storage import Connection
from hie.storage.institutions import get_institution
from hie.storage.partitions import receipt_time_problem

INSTITUTION_HEADER = "X-HIE-Institution"
# An administrator's backfill of historical uploads keeps their original receipt time.
RECEIVED_AT_HEADER = "X-HIE-Received-At"


class InstitutionMissing(ValueError):
    """An admin or regulator request that does not say which institution it is about."""


@dataclass(frozen=True)
class Scope:
    institution_code: str
    token_id: int | None
    received_at: datetime | None = None  # a backfill's receipt time; None: the server's clock


def backfill_time(principal: Principal, header: str | None) -> datetime | None:
    """The receipt time an admin's backfill asks for; raises PermissionDenied or ValueError."""
    if header is None:
        return None
    principal.require_role("admin")
    moment = datetime.fromisoformat(header.strip())
    if moment.tzinfo is None:
        raise ValueError("needs a time zone offset, e.g. +08:00")
    if (why := receipt_time_problem(moment)) is not None:
        raise ValueError(why)
    return moment


def scope_of(
    conn: Connection, principal: Principal, requested: str | None, *, write: bool
) -> Scope:
    """The institution the request acts for; raises PermissionDenied, NotFound or
    InstitutionMissing."""
    code = requested.strip() if requested else None
    # A clinician may name another institution to read a resident's records there: each such
    # read is then decided by the resident's consent (hie/fhir/consented.py), not here.
    across = principal.role == "clinician" and not write
    if principal.role in INSTITUTION_ROLES:
        own = principal.institution_code
        if own is None or (code not in (None, own) and not across):
            raise PermissionDenied(f"a {principal.role} token of {own} cannot act for {code}")
        code = code or own
    elif code is None:
        raise InstitutionMissing(
            f"a {principal.role} token must name the institution in the {INSTITUTION_HEADER} header"
        )
    if write:
        principal.require_write_for(code)
    elif not across:
        principal.require_read(code)
    get_institution(conn, code)  # NotFound when it is not registered
    return Scope(code, principal.token_id)
