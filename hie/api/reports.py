"""``/api/reports``: the monthly upload-completeness report for regulators."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response, status
from fastapi.responses import JSONResponse

from hie.errors import InvalidInput, NotFound, Problem
from hie.http.security import DatabaseDep, PrincipalDep
from hie.metrics.export import KINDS, to_csv, to_xlsx
from hie.metrics.flags import describe_flags
from hie.metrics.report import parse_month
from hie.metrics.trend import trend
from hie.storage.reports import load_report
from hie.workers.app import send_task

router = APIRouter(prefix="/api/reports", tags=["reports"])

MonthQuery = Annotated[str, Query(description="The month, YYYY-MM", examples=["2019-07"])]
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _month(text: str) -> Any:
    try:
        return parse_month(text)
    except ValueError as exc:
        raise InvalidInput("month", [Problem(str(exc), field="month")]) from None


@router.get("/completeness", summary="A month's report (regulator or admin)")
def completeness(
    principal: PrincipalDep,
    database: DatabaseDep,
    month: MonthQuery,
    kind: Annotated[Literal["district", "hospital"] | None, Query()] = None,
    format: Annotated[
        Literal["json", "csv", "xlsx"], Query(description="json, csv or xlsx")
    ] = "json",
    lang: Annotated[Literal["zh", "en"], Query(description="headings of csv and xlsx")] = "zh",
) -> Response:
    principal.require_role("regulator", "admin")
    first = _month(month)
    with database.connection() as conn:
        body = load_report(conn, first)
    if body is None:
        raise NotFound(f"no report has been computed for {first:%Y-%m} yet")
    kinds = [kind] if kind else list(KINDS)
    if format == "csv":
        return Response(
            to_csv(body, kinds, lang).encode("utf-8-sig"),
            media_type="text/csv; charset=utf-8",
            headers={
                "Content-Disposition": f'attachment; filename="completeness-{first:%Y-%m}.csv"'
            },
        )
    if format == "xlsx":
        return Response(
            to_xlsx(body, kinds, lang),
            media_type=XLSX,
            headers={
                "Content-Disposition": f'attachment; filename="completeness-{first:%Y-%m}.xlsx"'
            },
        )
    rows = [r for r in body["rows"] if kind is None or r["kind"] == kind]
    return JSONResponse({**body, "rows": rows})


@router.post(
    "/completeness/compute",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Queue the computation of a month (admin)",
)
def compute(principal: PrincipalDep, month: MonthQuery) -> dict[str, str]:
    from hie.workers.reports import compute_month_report

    principal.require_role("admin")
    wanted = f"{_month(month):%Y-%m}"
    task = send_task(compute_month_report, wanted)
    return {"month": wanted, "task": str(task.id)}


@router.get("/trend", summary="Twelve-month trend of an institution's figures")
def institution_trend(
    principal: PrincipalDep,
    database: DatabaseDep,
    institution: Annotated[str, Query(description="Institution code")],
    month: MonthQuery,
    months: Annotated[int, Query(ge=1, le=60)] = 12,
) -> dict[str, Any]:
    principal.require_read(institution)
    with database.connection() as conn:
        return trend(conn, institution, _month(month), months)


@router.get("/flags", summary="The data-quality rules that flag report rows")
def flags(principal: PrincipalDep) -> list[dict[str, Any]]:
    return describe_flags()
