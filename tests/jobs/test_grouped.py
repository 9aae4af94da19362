"""NDJSON lines of a job are written together, a range per transaction, yet each leaves what its
own synchronous request would: upload row, audit entry, event, person link, figures. A range
worked twice at once is stored once; a line that sinks its group fails alone."""

from __future__ import annotations

import json
import threading
from datetime import UTC, date, datetime
from typing import Any
from uuid import UUID, uuid4

from fastapi.testclient import TestClient

from hie.app import create_app
from hie.config import Settings
from hie.jobs.processor import JobProcessor
from hie.metrics.report import compute_month
from hie.storage import Connection, open_database
from hie.storage.jobs import NewJob, append_chunk, close_upload, create_job
from tests.hospitals import Tokens, auth
from tests.jobs.data import ndjson, resources
from tests.jobs.test_import import NDJSON, wait_done


def mixed_lines() -> list[Any]:
    """Patients and Encounters, an Encounter before its Patient, a Patient sent again changed
    and again unchanged, and lines refused for two reasons."""
    lines: list[Any] = resources(20)
    late = resources(2, prefix="late")
    lines.insert(3, late[1])  # an Encounter whose Patient comes later in the same range
    lines.append(late[0])
    changed = json.loads(json.dumps(lines[0]))
    changed["gender"] = "male" if changed.get("gender") == "female" else "female"
    lines += [changed, lines[2], "{not json", {"resourceType": "Patient", "gender": "x"}]
    return lines


def send_one_by_one(client: TestClient, token: str, lines: list[Any]) -> None:
    """Each line as its own synchronous request: PUT when it has an id, else POST."""
    for line in ndjson(lines).splitlines():
        try:
            resource = json.loads(line)
        except ValueError:
            resource = None
        headers = auth(token, **{"Content-Type": "application/fhir+json"})
        if isinstance(resource, dict) and resource.get("id"):
            path = f"/fhir/{resource['resourceType']}/{resource['id']}"
            answer = client.put(path, content=line, headers=headers)
        else:
            kind = resource.get("resourceType", "Patient") if resource else "Patient"
            answer = client.post(f"/fhir/{kind}", content=line, headers=headers)
        assert answer.status_code < 500, answer.text


def trail(conn: Connection, institution: str) -> dict[str, Any]:
    """What the writes of one institution left, without ids that differ between runs."""

    def rows(query: str) -> list[tuple[Any, ...]]:
        return sorted(tuple(r.values()) for r in conn.execute(query, {"i": institution}).fetchall())

    return {
        "uploads": rows(
            "select outcome, http_status, records_written, rejected_count, receipt->'written',"
            " receipt->'unchanged' from upload where institution_code = %(i)s"
        ),
        "audit": rows(
            # (a line that is no JSON names no type; its request would have named one)
            "select action, outcome,"
            " case when outcome = 0 then split_part(target, '/', 1) else '' end"
            " from audit_event where detail->>'acting_for' = %(i)s"
            " and action in ('fhir.create', 'fhir.update')"
        ),
        "events": rows(
            "select outcome, table_code, record_kind, version, rules from event_outbox"
            " where institution_code = %(i)s"
        ),
        "links": rows(
            "select record_id from person_link where institution_code = %(i)s"
            " and record_id like 'Patient/%%'"
        ),
        "versions_per_upload": rows(
            "select count(*) from record_version v join upload u on u.id = v.upload_id"
            " where v.institution_code = %(i)s group by v.upload_id"
        ),
    }


def month(conn: Connection, institution: str, settings: Settings) -> list[dict[str, Any]]:
    today = datetime.now(UTC).astimezone(settings.zone).date()
    report = compute_month(conn, date(today.year, today.month, 1), settings.zone)
    out = []
    for row in report.rows:
        if row.institution == institution:
            figures = json.loads(json.dumps(row.to_json(), default=str))
            out.append({k: v for k, v in figures.items() if k not in ("institution", "name")})
    return out


def test_lines_written_together_leave_what_one_request_per_line_leaves(
    client: TestClient, tokens: Tokens, bulk_settings: Settings
) -> None:
    lines = mixed_lines()
    answer = client.post(
        "/fhir/$import", content=ndjson(lines), headers=auth(tokens.h1, **{"Content-Type": NDJSON})
    )
    summary = wait_done(client, answer.headers["Content-Location"], tokens.h1)
    assert (summary["accepted"], summary["rejected"], summary["failed"]) == (len(lines) - 2, 2, 0)
    # A bulk load runs with the referential integrity check of writes off (lines come in any
    # order); the synchronous requests compared with it too.
    unchecked = bulk_settings.model_copy(update={"enforce_referential_integrity_on_write": False})
    with TestClient(create_app(unchecked)) as other:
        send_one_by_one(other, tokens.h2, lines)

    database = client.app.state.database  # type: ignore[attr-defined]
    with database.connection() as conn:
        bulk, synchronous = trail(conn, "H1"), trail(conn, "H2")
        for key in bulk:
            assert bulk[key] == synchronous[key], key
        assert len(bulk["uploads"]) == len(lines)
        assert month(conn, "H1", bulk_settings) == month(conn, "H2", bulk_settings)
        # Every line's audit entry names the job.
        job = answer.headers["Content-Location"].rsplit("/", 1)[1]
        named = conn.execute(
            "select count(*) as n from audit_event where detail->>'job' = %s"
            " and action in ('fhir.create', 'fhir.update')",
            (job,),
        ).fetchone()
    assert named["n"] == len(lines)


def stored_job(settings: Settings, lines: list[Any]) -> UUID:
    """A job as `POST /fhir/$import` leaves it (queued, its bytes stored), for the test to work."""
    database = open_database(settings)
    job = uuid4()
    body = ndjson(lines)
    try:
        with database.transaction() as tx:
            create_job(
                tx.conn,
                NewJob(
                    job,
                    "fhir-ndjson",
                    "H1",
                    None,
                    "submitter",
                    "t",
                    None,
                    datetime.now(UTC),
                    False,
                    NDJSON,
                ),
            )
            append_chunk(tx.conn, job, 0, body)
            import hashlib

            close_upload(tx.conn, job, len(body), hashlib.sha256(body).digest())
    finally:
        database.close()
    return job


def test_the_same_range_worked_twice_at_once_is_stored_once(
    bulk_settings: Settings, tokens: Tokens
) -> None:
    count = 120
    job = stored_job(bulk_settings, resources(count))
    database = open_database(bulk_settings)
    try:
        processor = JobProcessor(bulk_settings, database)
        assert processor.plan(job) == [(1, count)]
        results: list[Any] = []
        # Two deliveries overlapping on items 2..count, both writing their lines together.
        workers = [
            threading.Thread(
                target=lambda f=first: results.append(processor.process(job, f, count))
            )
            for first in (1, 2)
        ]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(120)
        assert sum(r.done for r in results) == count
        assert sum(r.skipped for r in results) == count - 1
        with database.connection() as conn:
            counts = conn.execute(
                """
                select (select count(*) from record_version where institution_code = 'H1') as v,
                       (select count(*) from upload where institution_code = 'H1') as u,
                       (select count(*) from event_outbox where institution_code = 'H1') as e,
                       (select count(*) from audit_event where detail->>'job' = %s
                        and action in ('fhir.create', 'fhir.update')) as a,
                       (select count(*) from bulk_job_item
                        where job_id = %s and state = 'accepted' and status is not null) as i
                """,
                (str(job), job),
            ).fetchone()
        assert dict(counts) == {"v": count, "u": count, "e": count, "a": count, "i": count}
    finally:
        database.close()


def test_a_line_that_sinks_its_group_fails_alone(bulk_settings: Settings, tokens: Tokens) -> None:
    lines: list[Any] = resources(10)
    job = stored_job(bulk_settings, lines)
    database = open_database(bulk_settings)
    try:
        with database.transaction() as tx:
            # The database refuses one record (as it would a conflict): the statement that
            # writes the group's records fails, and with it the group's transaction.
            tx.conn.execute(
                """
                create function refuse_p2() returns trigger language plpgsql as $$
                begin
                    if new.logical_id = 'Patient/p2' then
                        raise exception 'refused' using errcode = 'check_violation';
                    end if;
                    return new;
                end $$;
                create trigger refuse_p2 before insert on record_head
                    for each row execute function refuse_p2();
                """
            )
        processor = JobProcessor(bulk_settings, database)
        processor.plan(job)
        result = processor.process(job, 1, len(lines))
        assert (result.done, result.failed) == (9, 1)
        with database.connection() as conn:
            states = conn.execute(
                "select name, state from bulk_job_item where job_id = %s order by seq", (job,)
            ).fetchall()
            stored = conn.execute(
                """
                select (select count(*) from record_version where institution_code = 'H1') as v,
                       (select count(*) from upload where institution_code = 'H1') as u,
                       (select count(*) from event_outbox where institution_code = 'H1') as e
                """
            ).fetchone()
        # p2 is the fifth line (Patients and Encounters alternate).
        assert [r["state"] for r in states] == ["accepted"] * 4 + ["failed"] + ["accepted"] * 5
        assert dict(stored) == {"v": 9, "u": 9, "e": 9}
    finally:
        database.close()
