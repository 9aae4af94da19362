"""``/api/forwarding``: what forwarding to the upstream platforms has done, per destination."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool

from hie.config import Settings
from hie.forwarding.service import current_status
from hie.http.security import DatabaseDep, PrincipalDep
from hie.storage import Database

router = APIRouter(prefix="/api/forwarding", tags=["forwarding"])


def _status(settings: Settings, database: Database) -> list[dict[str, Any]]:
    broker = None if settings.broker_url is None else settings.broker_url.get_secret_value()
    with database.connection() as conn:
        return current_status(conn, broker, settings.task_queue)


@router.get("/status", summary="Pending, sent and failed per destination (regulator or admin)")
async def status(
    request: Request, principal: PrincipalDep, database: DatabaseDep
) -> dict[str, Any]:
    principal.require_role("regulator", "admin")
    settings: Settings = request.app.state.settings
    destinations = await run_in_threadpool(_status, settings, database)
    return {"destinations": destinations}
