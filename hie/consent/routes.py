"""``GET /api/persons/{id}/access-history``: who read a resident's records (admin)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request

from hie.audit import FLUSH_BEFORE_READING, Agent, address_of, flush_reads, record_read, status_of
from hie.consent import service
from hie.errors import HieError
from hie.http.security import DatabaseDep, PrincipalDep

router = APIRouter(prefix="/api/persons", tags=["persons"])


@router.get("/{person_id}/access-history", summary="A resident's access history (admin)")
def access_history(
    request: Request,
    principal: PrincipalDep,
    database: DatabaseDep,
    person_id: Annotated[int, Path(ge=1, le=2**63 - 1)],
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> dict[str, Any]:
    """Every audited access naming the person (or a person merged into it), newest first: who,
    when, what, the outcome, and the consent or break-glass reason used. Itself audited."""
    agent = Agent.of(principal, address_of(request))
    target = f"person/{person_id}"
    try:
        principal.require_role("admin")
        flush_reads(database, timeout=FLUSH_BEFORE_READING)  # this process's latest reads too
        with database.connection() as conn:
            entries = service.access_history(conn, person_id, limit)
    except HieError as exc:
        record_read(database, agent, "person.access-history", target, status=status_of(exc))
        raise
    record_read(database, agent, "person.access-history", target)
    return {
        "person": person_id,
        "entries": [
            {
                "id": e["id"],
                "at": e["at"].isoformat(),
                "actor": e["actor"],
                "role": e["role"],
                "institution": e["institution"],
                "action": e["action"],
                "target": e["target"],
                "outcome": e["outcome"],
                "resources": e["detail"].get("resources", []),
                "consents": e["detail"].get("consents", []),
                "break_glass": e["detail"].get("break_glass"),
            }
            for e in entries
        ],
    }
