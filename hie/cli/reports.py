"""``hie metrics compute`` and ``hie report``: the monthly upload-completeness figures."""

from __future__ import annotations

import json
import sys
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table as RichTable

from hie.cli.context import console, database, errors, fail
from hie.config import load_settings
from hie.metrics.export import KINDS, TITLES, columns_for, headings, table_rows, to_csv, to_xlsx
from hie.metrics.report import parse_month
from hie.storage.reports import load_report, months_with_records

metrics_app = typer.Typer(
    help="Compute the monthly figures (through the Celery workers).", no_args_is_help=True
)

MonthOption = Annotated[str, typer.Option("--month", help="The month, as YYYY-MM.")]
ReportMonthOption = Annotated[
    str | None,
    typer.Option(
        "--month", metavar="YYYY-MM", help="The month (default: the latest month with uploads)."
    ),
]


def _month(text: str) -> str:
    try:
        return f"{parse_month(text):%Y-%m}"
    except ValueError as exc:
        raise fail(str(exc), 2) from None


def run_compute(month: str, timeout: float = 600) -> dict[str, Any]:
    """Run the report task through the configured broker (in-process without one) and wait."""
    from hie.workers import configure
    from hie.workers.reports import compute_month_report
    from hie.workers.runtime import bind_runtime

    settings = load_settings()
    configure(settings)
    with database(settings) as db:
        bind_runtime(settings, db)
        try:
            result: dict[str, Any] = compute_month_report.delay(month).get(timeout=timeout)
        finally:
            bind_runtime(settings, None)
    return result


@metrics_app.command("compute")
def compute(
    month: MonthOption,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the worker.")] = 600,
) -> None:
    """Compute one month's report for every institution, replacing any earlier one."""
    summary = run_compute(_month(month), timeout)
    state = "final" if summary["final"] else "month in progress"
    console.print(
        f"{summary['month']}: {summary['institutions']} institutions, "
        f"{summary['cumulative_records']:,} records in all ({state})"
    )


def _latest_month_with_records() -> str:
    with database() as db, db.connection() as conn:
        months = months_with_records(conn)
    if not months:
        raise fail(
            "no uploads are stored yet, so there is no month to report; "
            "load some with hie demo, hie ingest or hie push, or name one with --month"
        )
    return f"{months[-1]:%Y-%m}"


def report(
    month: ReportMonthOption = None,
    kind: Annotated[str | None, typer.Option(help="district or hospital (default: both).")] = None,
    format: Annotated[str, typer.Option("--format", help="json, csv, xlsx or table.")] = "table",
    lang: Annotated[str, typer.Option(help="zh (the bulletin's headings) or en.")] = "zh",
    output: Annotated[
        Path | None, typer.Option(help="Write to this file instead of the terminal.")
    ] = None,
    compute_missing: Annotated[
        bool, typer.Option("--compute/--no-compute", help="Compute the month if it never was.")
    ] = True,
) -> None:
    """Print a month's report, laid out like the bulletin."""
    wanted = _month(month) if month is not None else _latest_month_with_records()
    if kind is not None and kind not in KINDS:
        raise fail(f"--kind must be district or hospital, not {kind!r}", 2)
    if format not in ("json", "csv", "xlsx", "table"):
        raise fail(f"--format must be json, csv, xlsx or table, not {format!r}", 2)
    if lang not in ("zh", "en"):
        raise fail("--lang must be zh or en", 2)
    with database() as db, db.connection() as conn:
        body = load_report(conn, parse_month(wanted))
        with_records = months_with_records(conn)
    if body is None:
        if not compute_missing:
            raise fail(f"no report for {wanted}; run: hie metrics compute --month {wanted}")
        run_compute(wanted)
        with database() as db, db.connection() as conn:
            body = load_report(conn, parse_month(wanted))
        assert body is not None  # noqa: S101 (just computed)
    kinds = [kind] if kind else list(KINDS)
    if format == "json":
        text = json.dumps(
            {**body, "rows": [r for r in body["rows"] if kind is None or r["kind"] == kind]},
            ensure_ascii=False,
            indent=2,
        )
        _emit(text.encode(), output)
    elif format == "csv":
        _emit(to_csv(body, kinds, lang).encode("utf-8-sig" if output else "utf-8"), output)
    elif format == "xlsx":
        if output is None:
            raise fail("--format xlsx needs --output FILE.xlsx", 2)
        _emit(to_xlsx(body, kinds, lang), output)
    else:
        print_tables(body, kinds, lang)
    if format != "json" or output is not None:
        warn_if_empty(body, with_records)


def warn_if_empty(body: dict[str, Any], with_records: list[date]) -> None:
    """Say so when nothing at all was uploaded in the month: an all-zero table reads like a
    region that stopped working, when it is most often the wrong month."""
    if any(r["records"] or r["rejected"] for r in body["rows"]):
        return
    others = ", ".join(f"{m:%Y-%m}" for m in with_records[-6:]) or "none yet"
    errors.print(
        f"[yellow]note:[/] no uploads were received in {body['month']}. "
        f"Months with uploads: {others}.",
        highlight=False,
    )


def print_tables(body: dict[str, Any], kinds: list[str], lang: str = "zh") -> None:
    """The bulletin's tables in the terminal, totals row in bold, then the cumulative line."""
    for k in kinds:
        table = RichTable(title=TITLES[lang][k].format(month=body["month"]), show_lines=False)
        # Flags are sentences: they follow the table instead of widening it.
        shown = [i for i, c in enumerate(columns_for(k)) if c.key != "flags"]
        all_headings = headings(k, lang)
        for i in shown:
            table.add_column(all_headings[i], overflow="fold")
        rows = table_rows(body, k, lang)
        for index, row in enumerate(rows):
            table.add_row(
                *[f"{row[i]:,}" if isinstance(row[i], int) else str(row[i]) for i in shown],
                style="bold" if index == len(rows) - 1 else None,
            )
        console.print(table)
        for r in body["rows"]:
            if r["kind"] == k:
                for flag in r["flags"]:
                    console.print(
                        f"  ! {r['name']}: {flag['message']} [{flag['rule']}]", markup=False
                    )
    console.print(
        f"区及医院累计校验入库数据 (cumulative records): {body['cumulative_records']:,}"
        if lang == "zh"
        else f"Cumulative records: {body['cumulative_records']:,}"
    )


def _emit(data: bytes, output: Path | None) -> None:
    if output is None:
        sys.stdout.buffer.write(data if data.endswith(b"\n") else data + b"\n")
        sys.stdout.flush()
    else:
        output.write_bytes(data)
        console.print(f"wrote {output}")
