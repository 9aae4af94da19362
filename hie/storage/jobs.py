"""Bulk ingestion jobs: the raw upload in chunks, its items, and their states.

An item leaves ``pending`` exactly once: :func:`claim_item` is an update guarded by the state,
run in the transaction that stores the item's record, so of two workers handed the same item
the second finds it claimed and rolls its own work back.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from psycopg.types.json import Jsonb

from hie.storage.database import Connection

# The raw body is stored in pieces of this size; a reader fetches one piece at a time.
CHUNK_BYTES = 1024 * 1024

STATES = ("pending", "accepted", "rejected", "failed")


@dataclass(frozen=True)
class NewJob:
    id: UUID
    kind: str  # fhir-ndjson | cda-zip
    institution_code: str | None
    token_id: int | None
    role: str
    actor: str
    address: str | None
    received_at: datetime
    backfill: bool
    content_type: str | None


@dataclass(frozen=True)
class Job:
    id: UUID
    kind: str
    institution_code: str | None
    token_id: int | None
    role: str
    actor: str
    address: str | None
    received_at: datetime
    backfill: bool
    content_type: str | None
    byte_size: int
    content_sha256: bytes
    state: str
    error: str | None
    item_count: int | None
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None

    @classmethod
    def of(cls, row: dict[str, Any]) -> Job:
        return cls(**{name: row[name] for name in cls.__dataclass_fields__})


@dataclass(frozen=True)
class Refusal:
    """Why an item is refused before any worker sees it."""

    status: int
    code: str
    outcome: dict[str, Any]


@dataclass(frozen=True)
class NewItem:
    seq: int
    name: str
    data: bytes | None
    refusal: Refusal | None = None


@dataclass(frozen=True)
class Item:
    seq: int
    name: str
    data: bytes | None
    attempts: int


def create_job(conn: Connection, job: NewJob) -> None:
    """The job's row, before its chunks; size and hash are set by :func:`close_upload`."""
    conn.execute(
        """
        insert into bulk_job (id, kind, institution_code, token_id, role, actor, address,
                              received_at, backfill, content_type, byte_size, content_sha256)
        values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, 0, ''::bytea)
        """,
        (
            job.id,
            job.kind,
            job.institution_code,
            job.token_id,
            job.role,
            job.actor,
            job.address,
            job.received_at,
            job.backfill,
            job.content_type,
        ),
    )


def append_chunk(conn: Connection, job_id: UUID, seq: int, data: bytes) -> None:
    conn.execute(
        "insert into bulk_job_chunk (job_id, seq, data) values (%s, %s, %s)", (job_id, seq, data)
    )


def close_upload(conn: Connection, job_id: UUID, byte_size: int, sha256: bytes) -> None:
    conn.execute(
        "update bulk_job set byte_size = %s, content_sha256 = %s where id = %s",
        (byte_size, sha256, job_id),
    )


def get_job(conn: Connection, job_id: UUID) -> Job | None:
    row = conn.execute("select * from bulk_job where id = %s", (job_id,)).fetchone()
    return Job.of(row) if row else None


def list_jobs(conn: Connection, *, institution: str | None = None, limit: int = 50) -> list[Job]:
    rows = conn.execute(
        """
        select * from bulk_job
        where %(institution)s::text is null or institution_code = %(institution)s
        order by created_at desc limit %(limit)s
        """,
        {"institution": institution, "limit": limit},
    ).fetchall()
    return [Job.of(r) for r in rows]


def chunks(conn: Connection, job_id: UUID) -> Iterator[bytes]:
    """The raw body, one chunk at a time (each fetched on its own: bounded memory)."""
    row = conn.execute(
        "select count(*) as n from bulk_job_chunk where job_id = %s", (job_id,)
    ).fetchone()
    for seq in range(row["n"] if row else 0):
        yield read_chunk(conn, job_id, seq)


def read_chunk(conn: Connection, job_id: UUID, seq: int) -> bytes:
    row = conn.execute(
        "select data from bulk_job_chunk where job_id = %s and seq = %s", (job_id, seq)
    ).fetchone()
    if row is None:
        raise LookupError(f"job {job_id} has no chunk {seq}")
    return bytes(row["data"])


def add_items(conn: Connection, job_id: UUID, items: Iterable[NewItem]) -> int:
    """Items as the split found them: pending, or refused already (oversized, unreadable)."""
    count = 0
    with conn.cursor().copy(
        "copy bulk_job_item (job_id, seq, name, data, state, status, error_code, outcome)"
        " from stdin"
    ) as copy:
        for item in items:
            refused = item.refusal
            copy.write_row(
                (
                    job_id,
                    item.seq,
                    item.name,
                    item.data,
                    "pending" if refused is None else "rejected",
                    None if refused is None else refused.status,
                    None if refused is None else refused.code,
                    None if refused is None else Jsonb(refused.outcome),
                )
            )
            count += 1
    return count


def clear_items(conn: Connection, job_id: UUID) -> None:
    """Items of an earlier, interrupted split (its transaction committed nothing else)."""
    conn.execute("delete from bulk_job_item where job_id = %s", (job_id,))


def set_state(
    conn: Connection,
    job_id: UUID,
    state: str,
    *,
    item_count: int | None = None,
    error: str | None = None,
) -> None:
    conn.execute(
        """
        update bulk_job set state = %s, item_count = coalesce(%s, item_count),
               error = %s, updated_at = now(),
               finished_at = case when %s in ('done', 'failed') then now() end
        where id = %s
        """,
        (state, item_count, error, state, job_id),
    )


def touch(conn: Connection, job_id: UUID) -> None:
    """The job made progress (what the stall detector reads)."""
    conn.execute("update bulk_job set updated_at = now() where id = %s", (job_id,))


def pending_items(conn: Connection, job_id: UUID, first: int, last: int) -> list[Item]:
    rows = conn.execute(
        """
        select seq, name, data, attempts from bulk_job_item
        where job_id = %s and seq between %s and %s and state = 'pending' order by seq
        """,
        (job_id, first, last),
    ).fetchall()
    return [
        Item(
            r["seq"], r["name"], bytes(r["data"]) if r["data"] is not None else None, r["attempts"]
        )
        for r in rows
    ]


def count_attempt(conn: Connection, job_id: UUID, seq: int) -> int:
    """Counted before an item is worked on, on an autocommit connection: an item that keeps
    killing its worker is recognised by its count and set aside."""
    row = conn.execute(
        """
        update bulk_job_item set attempts = attempts + 1
        where job_id = %s and seq = %s returning attempts
        """,
        (job_id, seq),
    ).fetchone()
    return int(row["attempts"]) if row else 0


def claim_item(
    conn: Connection,
    job_id: UUID,
    seq: int,
    state: str,
    status: int | None,
    error_code: str | None = None,
    outcome: dict[str, Any] | None = None,
) -> bool:
    """Move a pending item to ``state``; False when it is not pending any more."""
    row = conn.execute(
        """
        update bulk_job_item
        set state = %s, status = %s, error_code = %s, outcome = %s, updated_at = now()
        where job_id = %s and seq = %s and state = 'pending'
        returning seq
        """,
        (state, status, error_code, Jsonb(outcome) if outcome is not None else None, job_id, seq),
    ).fetchone()
    return row is not None


def claim_items(conn: Connection, job_id: UUID, states: Mapping[int, str]) -> set[int]:
    """:func:`claim_item` of many items at once (seq → state); the seqs claimed, the others
    were not pending any more. Status and outcome follow (:func:`settle_items`)."""
    seqs = sorted(states)
    rows = conn.execute(
        """
        update bulk_job_item i set state = c.state, updated_at = now()
        from unnest(%s::integer[], %s::text[]) as c(seq, state)
        where i.job_id = %s and i.seq = c.seq and i.state = 'pending'
        returning i.seq
        """,
        (seqs, [states[seq] for seq in seqs], job_id),
    ).fetchall()
    return {int(r["seq"]) for r in rows}


def settle_items(
    conn: Connection, job_id: UUID, outcomes: list[tuple[int, int, str | None, dict[str, Any]]]
) -> None:
    """The status, first refusing rule and outcome of items claimed by :func:`claim_items`
    (seq, status, code, outcome), in one statement."""
    if not outcomes:
        return
    conn.execute(
        """
        update bulk_job_item i
        set status = o.status, error_code = o.code, outcome = o.outcome
        from unnest(%s::integer[], %s::integer[], %s::text[], %s::jsonb[])
            as o(seq, status, code, outcome)
        where i.job_id = %s and i.seq = o.seq
        """,
        (
            [o[0] for o in outcomes],
            [o[1] for o in outcomes],
            [o[2] for o in outcomes],
            [Jsonb(o[3]) for o in outcomes],
            job_id,
        ),
    )


def describe_items(
    conn: Connection, job_id: UUID, outcomes: list[tuple[int, str | None, dict[str, Any]]]
) -> None:
    """The outcome and first refusing rule of items already claimed (written after their
    transaction: the claim is what must be atomic, the description may follow)."""
    with conn.cursor() as cur:
        cur.executemany(
            """
            update bulk_job_item set error_code = coalesce(%s, error_code), outcome = %s
            where job_id = %s and seq = %s
            """,
            [(code, Jsonb(outcome), job_id, seq) for seq, code, outcome in outcomes],
        )


def state_counts(conn: Connection, job_id: UUID) -> dict[str, int]:
    rows = conn.execute(
        "select state, count(*) as n from bulk_job_item where job_id = %s group by state",
        (job_id,),
    ).fetchall()
    counts = dict.fromkeys(STATES, 0)
    counts.update({r["state"]: int(r["n"]) for r in rows})
    return counts


def finish_if_done(conn: Connection, job_id: UUID) -> bool:
    """Mark a running job done when no item is pending; True if it is done now."""
    row = conn.execute(
        """
        update bulk_job set state = 'done', finished_at = now(), updated_at = now()
        where id = %s and state = 'running'
          and not exists (
              select 1 from bulk_job_item where job_id = %s and state = 'pending')
        returning id
        """,
        (job_id, job_id),
    ).fetchone()
    return row is not None


def pending_ranges(conn: Connection, job_id: UUID, size: int) -> list[tuple[int, int]]:
    """The pending items as ranges of at most ``size`` items (what one task works on)."""
    rows = conn.execute(
        """
        select min(seq) as first, max(seq) as last from (
            select seq, (row_number() over (order by seq) - 1) / %s as bucket
            from bulk_job_item where job_id = %s and state = 'pending'
        ) numbered group by bucket order by first
        """,
        (size, job_id),
    ).fetchall()
    return [(int(r["first"]), int(r["last"])) for r in rows]


def item_page(
    conn: Connection,
    job_id: UUID,
    *,
    states: tuple[str, ...] = STATES,
    after: int = -1,
    limit: int = 100,
) -> list[dict[str, Any]]:
    return conn.execute(
        """
        select seq, name, state, status, error_code, outcome from bulk_job_item
        where job_id = %s and state = any(%s) and seq > %s order by seq limit %s
        """,
        (job_id, list(states), after, limit),
    ).fetchall()


def failures_by_code(conn: Connection, job_id: UUID | None = None) -> list[dict[str, Any]]:
    """Refused and failed items grouped by error code, most frequent first."""
    return conn.execute(
        """
        select error_code, state, count(*) as items, count(distinct job_id) as jobs,
               min(job_id::text) as example_job
        from bulk_job_item
        where state in ('rejected', 'failed') and (%(job)s::uuid is null or job_id = %(job)s)
        group by error_code, state order by items desc, error_code
        """,
        {"job": job_id},
    ).fetchall()


def reopen_failed(conn: Connection, job_id: UUID | None = None) -> list[UUID]:
    """Failed items (those that never reached a verdict) back to pending, their jobs running
    again; returns the jobs to run."""
    rows = conn.execute(
        """
        update bulk_job_item set state = 'pending', attempts = 0, status = null,
               error_code = null, outcome = null, updated_at = now()
        where state = 'failed' and (%(job)s::uuid is null or job_id = %(job)s)
        returning job_id
        """,
        {"job": job_id},
    ).fetchall()
    jobs = sorted({r["job_id"] for r in rows})
    stalled = conn.execute(
        """
        select id from bulk_job
        where state in ('queued', 'running') and (%(job)s::uuid is null or id = %(job)s)
        """,
        {"job": job_id},
    ).fetchall()
    jobs = sorted(set(jobs) | {r["id"] for r in stalled})
    if jobs:
        conn.execute(
            """
            update bulk_job set state = case when state = 'queued' then 'queued' else 'running' end,
                   finished_at = null, updated_at = now()
            where id = any(%s) and state <> 'failed'
            """,
            (jobs,),
        )
    return jobs


def stalled_jobs(conn: Connection, idle_seconds: float) -> list[Job]:
    """Open jobs that have not moved for ``idle_seconds`` (their messages lost or dead)."""
    rows = conn.execute(
        """
        select * from bulk_job where state in ('queued', 'running')
          and updated_at < now() - make_interval(secs => %s)
        order by created_at
        """,
        (idle_seconds,),
    ).fetchall()
    return [Job.of(r) for r in rows]


def open_jobs(conn: Connection) -> list[Job]:
    rows = conn.execute(
        "select * from bulk_job where state in ('queued', 'running') order by created_at"
    ).fetchall()
    return [Job.of(r) for r in rows]


def set_aside_dead(
    conn: Connection,
    job_id: UUID,
    first: int,
    last: int,
    *,
    whole_range: bool,
    code: str,
    outcome: dict[str, Any],
) -> list[int]:
    """Items of a range whose message the broker dead-lettered, failed with ``outcome``.

    Items are worked in order and an attempt is counted on the first pending one before it is
    worked (:func:`count_attempt`), so the pending item of the range with attempts is the one
    that was in hand each time its worker died: only it is set aside, unless ``whole_range``
    (the range's task gave up as a whole) or none was in hand (the crash came before). A second
    record of the same dead letter sets nothing more aside. Returns the items set aside."""
    in_hand = conn.execute(
        """
        select seq from bulk_job_item
        where job_id = %s and seq between %s and %s and state = 'pending' and attempts > 0
        order by seq limit 1
        """,
        (job_id, first, last),
    ).fetchone()
    if in_hand is not None and not whole_range:
        seqs = [in_hand["seq"]]
    else:
        recorded = conn.execute(
            """
            select 1 from bulk_job_item
            where job_id = %s and seq between %s and %s and state = 'failed' and error_code = %s
            limit 1
            """,
            (job_id, first, last, code),
        ).fetchone()
        if recorded is not None:
            return []
        seqs = list(range(first, last + 1))
    rows = conn.execute(
        """
        update bulk_job_item
        set state = 'failed', status = null, error_code = %(code)s, outcome = %(outcome)s,
            updated_at = now()
        where job_id = %(job)s and state = 'pending' and seq = any(%(seqs)s)
        returning seq
        """,
        {"code": code, "outcome": Jsonb(outcome), "job": job_id, "seqs": seqs},
    ).fetchall()
    return sorted(r["seq"] for r in rows)


def note_error(conn: Connection, job_id: UUID, error: str, *, fail: bool) -> None:
    """Why a job's own message (its split) was dead-lettered; ``fail`` ends an open job."""
    conn.execute(
        """
        update bulk_job set error = %s, updated_at = now(),
               state = case when %s and state in ('queued', 'running') then 'failed' else state end,
               finished_at = case when %s and state in ('queued', 'running') then now()
                                  else finished_at end
        where id = %s
        """,
        (error, fail, fail, job_id),
    )


def failed_items(
    conn: Connection,
    job_id: UUID | None = None,
    *,
    codes: tuple[str, ...] | None = None,
    limit: int = 20,
) -> list[dict[str, Any]]:
    """Failed items (no verdict: a crash, a dead letter, an error of the platform), newest
    first, with their job's kind (an item is a line or a zip entry) and reason."""
    return conn.execute(
        """
        select i.job_id, j.kind, i.seq, i.name, i.error_code, i.outcome, i.updated_at
        from bulk_job_item i join bulk_job j on j.id = i.job_id
        where i.state = 'failed' and (%(job)s::uuid is null or i.job_id = %(job)s)
          and (%(codes)s::text[] is null or i.error_code = any(%(codes)s))
        order by i.updated_at desc, i.job_id, i.seq limit %(limit)s
        """,
        {"job": job_id, "codes": list(codes) if codes is not None else None, "limit": limit},
    ).fetchall()
