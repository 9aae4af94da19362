-- Bulk ingestion jobs (POST /fhir/$import, POST /cda/batch). The upload's raw bytes are stored
-- here, in chunks, before the 202 answer: a job acknowledged is a job that survives any crash.
-- Workers split it into items and store each item through the synchronous write path; an
-- item's state changes in the same transaction as its record, so it is stored exactly once.
create table bulk_job (
    id uuid primary key,
    kind text not null check (kind in ('fhir-ndjson', 'cda-zip')),
    -- The institution acted for; null only for an admin's CDA batch (each document's custodian).
    institution_code text references institution (code),
    token_id bigint references access_token (id),
    role text not null,
    actor text not null,
    address text,
    received_at timestamptz not null,
    backfill boolean not null default false,
    content_type text,
    byte_size bigint not null,
    content_sha256 bytea not null,
    state text not null default 'queued'
        check (state in ('queued', 'running', 'done', 'failed')),
    error text,
    item_count integer,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    finished_at timestamptz
);
create index bulk_job_created_idx on bulk_job (created_at desc);
create index bulk_job_open_idx on bulk_job (state, updated_at) where state in ('queued', 'running');

-- The body as received, in chunks of at most 1 MiB (never held whole in memory).
create table bulk_job_chunk (
    job_id uuid not null references bulk_job (id) on delete cascade,
    seq integer not null,
    data bytea not null,
    primary key (job_id, seq)
);

-- One row per NDJSON line or zip entry: its bytes, its state and its outcome.
create table bulk_job_item (
    job_id uuid not null references bulk_job (id) on delete cascade,
    seq integer not null,
    name text not null,            -- the line number, or the zip entry's name
    data bytea,                    -- null when refused before storing (oversized, encrypted)
    state text not null default 'pending'
        check (state in ('pending', 'accepted', 'rejected', 'failed')),
    status integer,                -- the HTTP status the synchronous upload would have had
    error_code text,               -- the first rule that refused it, or why it failed
    outcome jsonb,                 -- the OperationOutcome of a refusal, or where it was stored
    attempts integer not null default 0,
    updated_at timestamptz,
    primary key (job_id, seq)
);
create index bulk_job_item_state_idx on bulk_job_item (job_id, state);
create index bulk_job_item_failed_idx on bulk_job_item (error_code) where state in ('rejected', 'failed');
