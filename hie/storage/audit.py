"""The audit trail: who read or changed what, when, from where, and with what outcome.

Append-only and tamper-evident: every entry carries the SHA-256 of the entry before it in its
chain segment (one UTC day and one of ``SHARDS`` shards, chosen by the writer's backend pid) and
the hash of its own fields (the SQL function ``audit_entry_hash`` of migration 0006).
``audit_chain_head`` holds each segment's last sequence number and hash. An entry is written by
one statement that advances the head under its row lock and inserts the entry, so it is as cheap
as one round trip, and part of the caller's transaction when there is one.

Entries hold codes and ids, never tokens or resident ID numbers: callers mask what they pass.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from psycopg.types.json import Jsonb

from hie.storable import printable
from hie.storage.database import Connection

SHARDS = 8

# Outcomes as FHIR AuditEvent.outcome codes.
SUCCESS, MINOR_FAILURE, SERIOUS_FAILURE, MAJOR_FAILURE = 0, 4, 8, 12
_OUTCOME_WORDS = {
    "success": SUCCESS,
    "succeeded": SUCCESS,
    "ok": SUCCESS,
    "accepted": SUCCESS,
    "allowed": SUCCESS,
    "failure": MINOR_FAILURE,
    "failed": MINOR_FAILURE,
    "denied": MINOR_FAILURE,
    "refused": MINOR_FAILURE,
    "rejected": MINOR_FAILURE,
    "error": SERIOUS_FAILURE,
}

# The last word of an action name says what kind of action it is (FHIR AuditEvent.action).
VERBS: dict[str, tuple[str, ...]] = {
    "C": ("create", "add", "import", "load", "set", "transaction", "batch"),
    "R": ("read", "vread", "history", "view", "get", "list"),
    "U": ("update", "revoke", "clear", "patch"),
    "D": ("delete",),
    "E": (
        "search",
        "export",
        "validate",
        "compute",
        *("signin", "signout", "signin_failed", "signin_locked", "login", "logout"),
    ),
}


def action_code(action: str) -> str:
    """C, R, U, D or E for an action name such as ``fhir.read`` or ``token.create``."""
    verb = action.rsplit(".", 1)[-1]
    return next((code for code, verbs in VERBS.items() if verb in verbs), "E")


def outcome_code(outcome: object) -> int:
    """An outcome given as a FHIR code, an HTTP status or a word, as a FHIR code."""
    if isinstance(outcome, bool):
        return SUCCESS if outcome else MINOR_FAILURE
    if isinstance(outcome, int) or (
        isinstance(outcome, str) and outcome.isascii() and outcome.isdigit()
    ):
        number = int(outcome)
        if number in (SUCCESS, MINOR_FAILURE, SERIOUS_FAILURE, MAJOR_FAILURE):
            return number
        return SUCCESS if number < 400 else MINOR_FAILURE if number < 500 else SERIOUS_FAILURE
    return _OUTCOME_WORDS.get(str(outcome).lower(), MINOR_FAILURE)


_FIELDS = (
    "%(actor)s::text, %(role)s::text, %(institution)s::text, %(action)s::text, %(target)s::text, "
    "%(outcome)s::smallint, %(address)s::text, %(detail)s::jsonb"
)

# One statement: lock and advance the segment's head (creating it for the day's first entry),
# then insert the entry with the hashes the head now holds. {settings} is empty, or turns off the
# wait for the WAL flush for the (implicit) transaction of a read's entry.
_APPEND = f"""
with moment as (
    select coalesce(%(at)s::timestamptz, clock_timestamp()) as at,
           (pg_backend_pid() %% {SHARDS})::smallint as shard{{settings}}
), head as (
    insert into audit_chain_head as h (day, shard, seq, prev_hash, hash, last_at)
    select (m.at at time zone 'UTC')::date, m.shard, 1, '\\x'::bytea,
           audit_entry_hash('\\x'::bytea, (m.at at time zone 'UTC')::date, m.shard, 1, m.at,
                            {_FIELDS}),
           m.at
    from moment m
    on conflict (day, shard) do update set
        seq = h.seq + 1,
        prev_hash = h.hash,
        last_at = excluded.last_at,
        hash = audit_entry_hash(h.hash, h.day, h.shard, h.seq + 1, excluded.last_at, {_FIELDS})
    returning day, shard, seq, prev_hash, hash, last_at
)
insert into audit_event (at, day, shard, seq, prev_hash, hash,
                         actor, role, institution, action, target, outcome, address, detail)
select last_at, day, shard, seq, prev_hash, hash, {_FIELDS} from head
"""  # noqa: S608 (constants only; values are parameters)
_APPEND_DURABLE = _APPEND.format(settings="")
_APPEND_NOWAIT = _APPEND.format(settings=", set_config('synchronous_commit', 'off', true)")


def record_event(
    conn: Connection, actor: str, action: str, target: str | None, **detail: Any
) -> None:
    """Append one entry. Callers pass codes and ids only, never tokens or resident ID numbers.

    ``role``, ``institution`` (the actor's), ``address`` (the client's) and ``outcome`` (a FHIR
    outcome code, an HTTP status, or a word such as ``success`` or ``failure``) in ``detail``
    are kept in their own columns, as is ``at`` (default: now); the rest is kept as JSON.
    """
    _append(conn, _APPEND_DURABLE, actor, action, target, detail)


def record_event_nowait(
    conn: Connection, actor: str, action: str, target: str | None, **detail: Any
) -> None:
    """``record_event`` for a read's entry, alone on an autocommit connection: its commit does
    not wait for the disk (PostgreSQL's asynchronous commit). Waiting would cost a read more
    than its search; a crash of the database server may lose the last fraction of a second of
    such entries, never a write's, and never breaks the chain (an entry and its head commit
    together). Inside a caller's transaction it would turn the wait off for all of it: don't."""
    _append(conn, _APPEND_NOWAIT, actor, action, target, detail)


def _append(
    conn: Connection,
    statement: str,
    actor: str,
    action: str,
    target: str | None,
    detail: dict[str, Any],
) -> None:
    at = detail.pop("at", None)  # when it happened, if not now (a read written a moment later)
    role = detail.pop("role", None)
    institution = detail.pop("institution", None)
    address = detail.pop("address", None)
    outcome = outcome_code(detail.pop("outcome", SUCCESS))
    conn.execute(
        statement,
        {
            "at": at,
            "actor": _storable(actor),
            "role": _storable(role),
            "institution": _storable(institution),
            "action": _storable(action),
            "target": _storable(target),
            "outcome": outcome,
            "address": _storable(address),
            "detail": Jsonb(_storable(detail)),
        },
    )


def _storable(value: Any) -> Any:
    """``value`` with the characters PostgreSQL cannot store (NUL, lone surrogates) replaced.

    A refused request is audited with what it asked for, and a hostile one asks for exactly
    these: the entry must still be written, never fail (and, for reads, take its batch with it).
    """
    if isinstance(value, str):
        return printable(value)
    if isinstance(value, dict):
        return {printable(str(k)): _storable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_storable(v) for v in value]
    return value


# -- reading --------------------------------------------------------------------------------


@dataclass(frozen=True)
class EventFilter:
    """Which entries to read; every field narrows, None does not."""

    actor: str | None = None  # exactly, e.g. token:12 or cli:alice
    target: str | None = None  # exactly, or a type: "Patient" matches "Patient/123"
    action: str | None = None  # an action name (fhir.read) or a code (C, R, U, D, E)
    outcome: int | None = None
    since: datetime | None = None  # inclusive
    until: datetime | None = None  # exclusive
    failed: bool = False  # only entries whose outcome is not success


_COLUMNS = (
    "id, at, actor, role, institution, action, target, outcome, address, detail, day, shard, seq"
)


def _where(f: EventFilter) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    if f.actor is not None:
        clauses.append("actor = %s")
        params.append(f.actor)
    if f.target is not None:
        clauses.append("(target = %s or target like %s)")
        params += [f.target, f"{f.target.replace('%', '').replace('_', '')}/%"]
    if f.action is not None:
        if f.action in VERBS:
            words = "|".join(VERBS[f.action])
            if f.action == "E":
                # Unknown verbs count as E too, as action_code says.
                every = "|".join(w for verbs in VERBS.values() for w in verbs)
                clauses.append("(action ~ %s or action !~ %s)")
                params += [f"(^|\\.)({words})$", f"(^|\\.)({every})$"]
            else:
                clauses.append("action ~ %s")
                params.append(f"(^|\\.)({words})$")
        else:
            clauses.append("action = %s")
            params.append(f.action)
    if f.outcome is not None:
        clauses.append("outcome = %s")
        params.append(f.outcome)
    if f.failed:
        clauses.append("outcome <> 0")
    if f.since is not None:
        clauses.append("at >= %s")
        params.append(f.since)
    if f.until is not None:
        clauses.append("at < %s")
        params.append(f.until)
    return (" where " + " and ".join(clauses)) if clauses else "", params


def search_events(
    conn: Connection, f: EventFilter, *, limit: int = 50, offset: int = 0
) -> list[dict[str, Any]]:
    """Entries matching ``f``, newest first."""
    where, params = _where(f)
    query = f"select {_COLUMNS} from audit_event{where} order by at desc, id desc"  # noqa: S608
    return conn.execute(f"{query} limit %s offset %s", [*params, limit, offset]).fetchall()


def count_events(conn: Connection, f: EventFilter) -> int:
    where, params = _where(f)
    query = f"select count(*) as n from audit_event{where}"  # noqa: S608 (parameters only)
    row = conn.execute(query, params).fetchone()
    return int(row["n"]) if row else 0


def get_event(conn: Connection, event_id: int) -> dict[str, Any] | None:
    query = f"select {_COLUMNS} from audit_event where id = %s"  # noqa: S608
    return conn.execute(query, (event_id,)).fetchone()


def recent_events(conn: Connection, limit: int = 50) -> list[dict[str, Any]]:
    return search_events(conn, EventFilter(), limit=limit)


# -- verifying ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Break:
    """The first broken entry of a chain segment, and what is wrong with it."""

    day: date
    shard: int | None
    seq: int | None
    event_id: int | None  # None when the entry named is missing
    problem: str

    def describe(self) -> str:
        where = f"{self.day.isoformat()} shard {self.shard} #{self.seq}"
        entry = f"entry {self.event_id}" if self.event_id is not None else "a missing entry"
        return f"{entry} ({where}): {self.problem}"


@dataclass(frozen=True)
class Verification:
    entries: int
    segments: int
    breaks: list[Break]

    @property
    def intact(self) -> bool:
        return not self.breaks


def _range(alias: str, start: date | None, end: date | None) -> tuple[str, list[Any]]:
    clauses, params = [], []
    if start is not None:
        clauses.append(f"{alias}day >= %s")
        params.append(start)
    if end is not None:
        clauses.append(f"{alias}day < %s")
        params.append(end)
    return "".join(f" and {c}" for c in clauses), params


_ROW_BREAKS = """
select id, day, shard, seq, step, edited, unlinked from (
    select id, day, shard, seq,
           seq - coalesce(lag(seq) over w, 0) as step,
           hash is distinct from audit_entry_hash(prev_hash, day, shard, seq, at, actor, role,
               institution, action, target, outcome, address, detail) as edited,
           prev_hash is distinct from coalesce(lag(hash) over w, '\\x'::bytea) as unlinked
    from audit_event
    where day is not null and shard is not null and seq is not null{range}
    window w as (partition by day, shard order by seq, id)
) r
where step <> 1 or edited or unlinked
order by day, shard, seq, id
"""

_HEAD_BREAKS = """
select day, shard, h.seq as head_seq, h.hash as head_hash, t.seq as last_seq,
       t.hash as last_hash, t.id as last_id, h.day is null as headless
from audit_chain_head h
full join (
    select distinct on (day, shard) day, shard, seq, hash, id
    from audit_event
    where day is not null and shard is not null and seq is not null{range}
    order by day, shard, seq desc, id desc
) t using (day, shard)
where (h.seq is distinct from t.seq or h.hash is distinct from t.hash){head_range}
"""


_UNCHAINED = """
select id, (at at time zone 'UTC')::date as day from audit_event
where (day is null or shard is null or seq is null)
  and id > (select max(last_unchained_id) from audit_chain_start)"""

_COUNTED = """
select count(*) as entries, count(distinct (day, shard)) as segments from audit_event
where seq is not null"""


def _row_problem(row: dict[str, Any]) -> tuple[int | None, int | None, str]:
    """The entry a broken row names: (seq, id, problem)."""
    step, seq = row["step"], row["seq"]
    if step > 1:
        missing = f"#{seq - step + 1}" if step == 2 else f"#{seq - step + 1} to #{seq - 1}"
        return seq - step + 1, None, f"deleted: {missing} missing before entry {row['id']}"
    if step < 1:
        return seq, row["id"], "inserted: a second entry with this sequence number"
    if row["edited"]:
        return seq, row["id"], "edited: its content does not match its hash"
    return (
        seq,
        row["id"],
        "inserted, deleted or reordered: its previous hash is not the hash of the entry before it",
    )


def verify_chain(
    conn: Connection, *, start: date | None = None, end: date | None = None
) -> Verification:
    """Walk every chain segment whose day is in ``[start, end)`` (all when None) in sequence
    order; return the first broken entry of each broken segment, oldest first."""
    found: dict[tuple[date, int | None], Break] = {}

    def keep(brk: Break) -> None:
        key = (brk.day, brk.shard)
        held = found.get(key)
        if held is None or (brk.seq or 0) < (held.seq or 0):
            found[key] = brk

    row_range, row_params = _range("", start, end)
    for row in conn.execute(_ROW_BREAKS.format(range=row_range), row_params):
        seq, event_id, problem = _row_problem(row)
        keep(Break(row["day"], row["shard"], seq, event_id, problem))

    head_range, head_params = _range("", start, end)
    query = _HEAD_BREAKS.format(range=row_range, head_range=head_range)
    for row in conn.execute(query, [*row_params, *head_params]):
        if row["headless"]:
            brk = Break(
                row["day"],
                row["shard"],
                1,
                None,
                "inserted: entries of a segment the writer never started (no head)",
            )
        elif row["last_seq"] is None:
            brk = Break(
                row["day"],
                row["shard"],
                1,
                None,
                f"deleted: all {row['head_seq']} entries of the segment are missing",
            )
        elif row["head_seq"] > row["last_seq"]:
            brk = Break(
                row["day"],
                row["shard"],
                row["last_seq"] + 1,
                None,
                f"deleted: the newest entries #{row['last_seq'] + 1} to #{row['head_seq']} "
                "are missing",
            )
        elif row["head_seq"] < row["last_seq"]:
            brk = Break(
                row["day"],
                row["shard"],
                row["head_seq"] + 1,
                None,
                "inserted: entries after the segment's head",
            )
        else:
            brk = Break(
                row["day"],
                row["shard"],
                row["last_seq"],
                row["last_id"],
                "edited or replaced: the newest entry is not the one the head recorded",
            )
        keep(brk)

    # Entries without a chain position, written after the chain began: inserted around it.
    unchained_range, unchained_params = [], []
    if start is not None:
        unchained_range.append("(at at time zone 'UTC')::date >= %s")
        unchained_params.append(start)
    if end is not None:
        unchained_range.append("(at at time zone 'UTC')::date < %s")
        unchained_params.append(end)
    extra = "".join(f" and {c}" for c in unchained_range)
    query = f"{_UNCHAINED}{extra} order by id"
    unchained = [
        Break(row["day"], None, None, row["id"], "inserted: an entry outside the hash chain")
        for row in conn.execute(query, unchained_params)
    ]

    counted = conn.execute(f"{_COUNTED}{row_range}", row_params).fetchone()
    breaks = sorted(
        [*found.values(), *unchained],
        key=lambda b: (b.day, b.shard if b.shard is not None else -1, b.seq or 0),
    )
    return Verification(
        int(counted["entries"]) if counted else 0,
        int(counted["segments"]) if counted else 0,
        breaks,
    )
