"""RabbitMQ's dead letters read back and recorded on the job's items: the item in hand when its
worker kept dying is set aside with the broker's reason, once, and `hie jobs retry` reopens it."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from pathlib import Path
from uuid import UUID, uuid4

from kombu import Connection

from hie.config import Settings
from hie.jobs.service import DEAD_LETTER, record_dead_letter
from hie.registry import Institution
from hie.storage import Database
from hie.storage.institutions import add_institution
from hie.storage.jobs import (
    NewItem,
    NewJob,
    add_items,
    count_attempt,
    create_job,
    failed_items,
    get_job,
    reopen_failed,
    set_state,
    state_counts,
)
from hie.workers import configure
from hie.workers.app import dead_letter_queue, queue_status
from hie.workers.deadletters import DeadLetter, parse_dead_letter
from hie.workers.ingest import record_dead_letters
from hie.workers.runtime import bind_runtime

INGEST = "hie.workers.ingest.ingest_items"
SPLIT = "hie.workers.ingest.split_job"


def a_job(db: Database, items: int) -> UUID:
    """A running NDJSON job whose lines are refused when worked (not JSON): cheap to work."""
    job_id = uuid4()
    received = datetime.now(UTC)
    with db.transaction() as tx:
        add_institution(tx.conn, Institution("H9", "医院", "hospital"), actor="t")
        create_job(
            tx.conn,
            NewJob(job_id, "fhir-ndjson", "H9", None, "admin", "t", None, received, False, None),
        )
        lines = [NewItem(n, str(n + 1), b"{not json") for n in range(items)]
        add_items(tx.conn, job_id, lines)
        set_state(tx.conn, job_id, "running", item_count=items)
    return job_id


def letter(task: str, args: tuple[object, ...], reason: str = "delivery_limit") -> DeadLetter:
    return DeadLetter(task, "t-1", args, reason, "hie.ingest")


def test_a_celery_message_dead_lettered_by_a_quorum_queue_is_read() -> None:
    headers = {
        "task": INGEST,
        "id": "0f0c",
        "argsrepr": "('j', 0, 199)",
        "x-death": [{"count": 1, "reason": "delivery_limit", "queue": "hie.ingest"}],
    }
    read = parse_dead_letter(headers, [["j", 0, 199], {}, {}])
    assert read == DeadLetter(INGEST, "0f0c", ("j", 0, 199), "delivery_limit", "hie.ingest")
    assert "delivery_limit" in read.describe() and "its worker died each time" in read.describe()
    assert parse_dead_letter({"x-death": []}, b"not ours") is None


def test_the_item_in_hand_is_set_aside_with_the_reason_once_and_the_rest_is_worked(
    db: Database,
) -> None:
    job_id = a_job(db, 6)
    with db.connection() as conn:
        # Items 0 and 1 were stored; item 2 was in hand each time the worker died.
        conn.execute(
            "update bulk_job_item set state = 'accepted' where job_id = %s and seq < 2", (job_id,)
        )
        count_attempt(conn, job_id, 2)
    dead = letter(INGEST, (str(job_id), 0, 5))
    assert record_dead_letter(db, dead)
    assert record_dead_letter(db, dead)  # recorded again (an acknowledgement lost): no change
    with db.connection() as conn:
        counts = state_counts(conn, job_id)
        [item] = failed_items(conn, job_id)
        job = get_job(conn, job_id)
        # The rest of the range was sent again (worked here: no broker), and the job ended.
        assert (counts["failed"], counts["rejected"], counts["pending"]) == (1, 3, 0)
        assert job is not None and job.state == "done"
        assert (item["seq"], item["error_code"]) == (2, DEAD_LETTER)
        reason = item["outcome"]["issue"][0]["diagnostics"]
        assert reason.startswith("items 0-5: dead-lettered by the broker (delivery_limit)")


def test_a_range_whose_task_gave_up_fails_whole_and_the_job_ends_then_retry_reopens_it(
    db: Database,
) -> None:
    job_id = a_job(db, 3)
    assert record_dead_letter(db, letter(INGEST, (str(job_id), 0, 2), reason="rejected"))
    with db.connection() as conn:
        assert state_counts(conn, job_id)["failed"] == 3
        job = get_job(conn, job_id)
        assert job is not None and job.state == "done"
    with db.transaction() as tx:
        assert reopen_failed(tx.conn, job_id) == [job_id]
    with db.connection() as conn:
        assert state_counts(conn, job_id)["pending"] == 3


def test_a_split_that_kills_its_worker_fails_the_job_with_the_reason(db: Database) -> None:
    job_id = a_job(db, 1)
    assert record_dead_letter(db, letter(SPLIT, (str(job_id),)))
    with db.connection() as conn:
        job = get_job(conn, job_id)
    assert job is not None and job.state == "failed"
    assert job.error is not None and "delivery_limit" in job.error


def test_letters_of_other_tasks_are_left_in_the_queue(db: Database) -> None:
    assert not record_dead_letter(db, letter("hie.workers.reports.compute_month_report", ()))
    assert not record_dead_letter(db, letter(INGEST, ("not-a-job", 0, 1)))


def test_the_maintenance_task_records_a_jobs_dead_letter_and_leaves_the_others_queued(
    db: Database, broker_url: str, queue_prefix: str, tmp_path: Path
) -> None:
    """Letters as RabbitMQ leaves them in ``<prefix>.dead``: the job's is recorded and leaves the
    queue, a report task's stays for the operator."""
    job_id = a_job(db, 2)
    with db.connection() as conn:
        count_attempt(conn, job_id, 0)
    settings = Settings(
        database_url="postgresql://unused@127.0.0.1/unused",
        broker_url=broker_url,
        task_queue=queue_prefix,
        data_dir=tmp_path,
        secret_key=secrets.token_urlsafe(48),
    )
    app = configure(settings)
    dead = dead_letter_queue(queue_prefix)
    try:
        with Connection(broker_url) as connection:
            producer = connection.Producer(serializer="json")
            for task, args in ((INGEST, [str(job_id), 0, 1]), ("hie.workers.reports.x", [])):
                producer.publish(
                    [args, {}, {}],
                    exchange=dead.exchange,
                    routing_key=dead.routing_key,
                    declare=[dead],
                    headers={
                        "task": task,
                        "id": task,
                        "x-death": [{"count": 1, "reason": "delivery_limit", "queue": "q"}],
                    },
                )
        bind_runtime(settings, db)
        assert record_dead_letters() == [INGEST]
        assert queue_status(app)["dead_letters"] == 1  # the report task's, left in place
    finally:
        bind_runtime(settings, None)
        configure(Settings(data_dir=tmp_path))
    with db.connection() as conn:
        [item] = failed_items(conn, job_id)
    assert item["seq"] == 0 and item["error_code"] == DEAD_LETTER
