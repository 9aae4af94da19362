-- The audit trail becomes append-only and tamper-evident (等保三级): every entry carries the
-- hash of the entry before it in its chain segment. A segment is one UTC day and one of 8
-- shards chosen by the writer's backend pid, so concurrent writers do not wait on one row.
-- audit_chain_head holds each segment's last sequence number and hash: it is the row a writer
-- locks, and it lets `hie audit verify` notice that the newest entries of a segment were removed.

alter table audit_event
    add column role text,
    add column institution text,   -- the actor's institution (submitters), not the data's
    add column address text,       -- the client's network address
    add column outcome smallint not null default 0,  -- FHIR AuditEvent.outcome: 0, 4, 8, 12
    add column day date,
    add column shard smallint,
    add column seq bigint,
    add column prev_hash bytea,
    add column hash bytea;

create unique index audit_event_chain_idx on audit_event (day, shard, seq);
create index audit_event_actor_idx on audit_event (actor, at);

-- Entries written before this migration have no chain; any later entry without one was
-- inserted around the chain and is reported by verify.
create table audit_chain_start (last_unchained_id bigint not null);
insert into audit_chain_start select coalesce(max(id), 0) from audit_event;

create table audit_chain_head (
    day date not null,
    shard smallint not null,
    seq bigint not null,
    prev_hash bytea not null,
    hash bytea not null,
    last_at timestamptz not null,
    primary key (day, shard)
);

-- The hash of one entry: SHA-256 of the previous entry's hash followed by a canonical text of
-- the entry's fields. jsonb's text form is canonical (keys ordered, fixed spacing); times are
-- written in UTC with microseconds so the session's time zone and DateStyle do not matter.
create function audit_entry_hash(
    prev bytea, day date, shard smallint, seq bigint, at timestamptz, actor text, role text,
    institution text, action text, target text, outcome smallint, address text, detail jsonb
) returns bytea language sql immutable parallel safe as $$
    select sha256(prev || convert_to(jsonb_build_array(
        to_char(day, 'YYYY-MM-DD'), shard, seq,
        to_char(at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US'),
        actor, role, institution, action, target, outcome, address, detail
    )::text, 'UTF8'))
$$;
