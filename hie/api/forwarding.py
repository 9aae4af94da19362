"""``/api/forwarding``: what forwarding to the upstream platforms has done, per destination."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool

from hie.config import Settings
from hie.forwarding import service
from hie.forwarding.queues import queue_of, waiting
from hie.http.security import DatabaseDep, PrincipalDep
from hie.storage import Database
from hie.storage.forwarding import list_destinations

router = APIRouter(prefix="/api/forwarding", tags=["forwarding"])


def _status(settings: Settings, database: Database) -> list[dict[str, Any]]:
    with database.connection() as conn:
        names = [d.name for d in list_destinations(conn)]
        depths: dict[str, int | None] = {}
        if settings.broker_url is not None and names:
            found = waiting(
                settings.broker_url.get_secret_value(),
                [queue_of(settings.task_queue, n) for n in names],
            )
            depths = {n: found.get(queue_of(settings.task_queue, n)) for n in names}
        return service.status(conn, depths)


@router.get("/status", summary="Pending, sent and failed per destination (regulator or admin)")
async def status(
    request: Request, principal: PrincipalDep, database: DatabaseDep
) -> dict[str, Any]:
    principal.require_role("regulator", "admin")
    settings: Settings = request.app.state.settings
    destinations = await run_in_threadpool(_status, settings, database)
    return {"destinations": destinations}
