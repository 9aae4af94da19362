"""``hie jobs``: the bulk uploads' jobs, their failures grouped by error code, and reruns."""

from __future__ import annotations

import json
from typing import Annotated, Any
from uuid import UUID

import typer
from rich.table import Table as RichTable

from hie.cli.context import console, database, fail, reported_errors
from hie.config import load_settings
from hie.jobs.summary import item_rows, summary
from hie.storage.jobs import (
    failed_items,
    failures_by_code,
    get_job,
    item_page,
    list_jobs,
    state_counts,
)

app = typer.Typer(
    help="Bulk upload jobs ($import, CDA batches): list, show, failures, dead letters, retry.",
    invoke_without_command=True,
)


def _job_id(text: str) -> UUID:
    try:
        return UUID(text)
    except ValueError:
        raise fail(f"{text!r} is not a job id") from None


@app.callback()
def jobs(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option(min=1, help="How many of the latest jobs.")] = 20,
    institution: Annotated[str | None, typer.Option(help="Only this institution's.")] = None,
) -> None:
    """List the latest jobs (newest first) with their progress."""
    if ctx.invoked_subcommand is not None:
        return
    with database() as db, db.connection() as conn:
        found = list_jobs(conn, institution=institution, limit=limit)
        table = RichTable(title="bulk jobs")
        for column in ("id", "request", "institution", "state", "items", "accepted", "rejected"):
            table.add_column(column)
        table.add_column("failed")
        table.add_column("received")
        for job in found:
            counts = state_counts(conn, job.id)
            row = summary(job, counts, "")
            table.add_row(
                str(job.id),
                row["request"],
                job.institution_code or "(custodians)",
                job.state,
                row["progress"],
                str(counts["accepted"]),
                str(counts["rejected"]),
                str(counts["failed"]),
                f"{job.received_at:%Y-%m-%d %H:%M}",
            )
    console.print(table)


@app.command("show")
def show(
    job: Annotated[str, typer.Argument(help="The job's id.")],
    limit: Annotated[int, typer.Option(min=0, help="Refused or failed items to list.")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """A job's summary and its first refused or failed items, each with its line or entry."""
    job_id = _job_id(job)
    with database() as db, db.connection() as conn:
        found = get_job(conn, job_id)
        if found is None:
            raise fail(f"no job {job_id}")
        body = summary(found, state_counts(conn, job_id), f"/api/jobs/{job_id}")
        rows = item_page(conn, job_id, states=("rejected", "failed"), limit=limit)
    items = item_rows(found, rows)
    if as_json:
        console.print_json(json.dumps({**body, "failures": items}))
        return
    for key in ("id", "request", "state", "institution", "transactionTime", "progress"):
        console.print(f"{key}: {body[key]}", highlight=False)
    console.print(
        f"accepted {body['accepted']}, rejected {body['rejected']}, failed {body['failed']}, "
        f"pending {body['pending']}",
        highlight=False,
    )
    if found.error:
        console.print(f"error: {found.error}", highlight=False, markup=False)
    for item in items:
        where = item.get("line", item.get("entry"))
        issues = (item.get("outcome") or {}).get("issue") or [{}]
        message = issues[0].get("diagnostics", "")
        console.print(
            f"  {where}: {item['state']} {item['status'] or ''} {item.get('code', '')}: {message}",
            highlight=False,
            markup=False,
        )


@app.command("failed")
def failed(
    job: Annotated[str | None, typer.Argument(help="One job's id (default: every job).")] = None,
    limit: Annotated[int, typer.Option(min=0, help="Failed items to list with reasons.")] = 20,
) -> None:
    """Refused and failed items grouped by error code, most frequent first, then the failed
    items (no verdict: a crash, a dead letter) each with its reason; `hie jobs retry` reruns
    them."""
    job_id = _job_id(job) if job else None
    with database() as db, db.connection() as conn:
        rows = failures_by_code(conn, job_id)
        items = failed_items(conn, job_id, limit=limit)
    table = RichTable(title="failures by error code")
    for column in ("error code", "state", "items", "jobs", "example job"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            row["error_code"] or "(none)",
            row["state"],
            str(row["items"]),
            str(row["jobs"]),
            row["example_job"],
        )
    console.print(table)
    _print_failed(items, "failed items (rerun with hie jobs retry)")


def _print_failed(items: list[dict[str, Any]], title: str) -> None:
    if not items:
        return
    console.print(title, highlight=False)
    for item in items:
        where = f"line {item['name']}" if item["kind"] == "fhir-ndjson" else item["name"]
        issues = (item["outcome"] or {}).get("issue") or [{}]
        console.print(
            f"  job {item['job_id']} {where}: {item['error_code'] or 'failed'}: "
            f"{issues[0].get('diagnostics', '')}",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )


@app.command("dead")
def dead(
    limit: Annotated[int, typer.Option(min=0, help="Dead-lettered items to list.")] = 50,
) -> None:
    """Record the jobs' messages that RabbitMQ dead-lettered (a range whose worker kept dying,
    a task that gave up): the item in hand fails with the broker's reason and the rest of its
    range is sent again. Then list every item set aside so, with its reason."""
    import kombu.exceptions

    from hie.jobs.processor import CRASHED
    from hie.jobs.service import DEAD_LETTER, record_dead_letter
    from hie.workers.app import configure
    from hie.workers.deadletters import drain_dead_letters

    with reported_errors():
        settings = load_settings()
    with database(settings) as db:
        try:
            letters = drain_dead_letters(
                configure(settings), lambda letter: record_dead_letter(db, letter)
            )
        except (OSError, kombu.exceptions.OperationalError) as exc:
            raise fail(f"the broker does not answer: {type(exc).__name__}") from None
        with db.connection() as conn:
            items = failed_items(conn, codes=(DEAD_LETTER, CRASHED), limit=limit)
    console.print(f"{len(letters)} dead letters recorded", highlight=False)
    _print_failed(items, "items set aside (rerun with hie jobs retry)")


@app.command("retry")
def retry(
    job: Annotated[str | None, typer.Argument(help="One job's id (default: every job).")] = None,
) -> None:
    """Rerun failed items (those that never got a verdict: a crash, an error of the platform)
    and every open job that stalled. Refused items are not rerun: their verdict stands; fix
    them and upload them again. Without a broker the work is done here, before returning."""
    from hie.jobs.service import retry_jobs

    job_id = _job_id(job) if job else None
    with database() as db:
        started = retry_jobs(db, job_id)
    if not started:
        console.print("nothing to retry")
        return
    for job_started in started:
        console.print(f"job {job_started} started again", highlight=False)
