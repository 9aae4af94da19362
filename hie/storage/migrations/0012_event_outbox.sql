-- The transactional outbox of events for downstream systems. A row is written in the same
-- transaction as the record it announces (or the rejection it counts), so an event exists if and
-- only if its record was committed. The relay publishes rows in seq order and sets published_at
-- only after RabbitMQ confirmed the message: at least once, never lost.
create table event_outbox (
    seq bigint generated always as identity primary key,
    event_id uuid not null unique,
    outcome text not null check (outcome in ('accepted', 'rejected')),
    institution_code text not null,
    -- The institution's kind when the event happened (hospital, district): part of the routing key.
    institution_kind text not null,
    -- Null for a rejection whose table could not be told.
    table_code text,
    -- 'cda' or 'fhir'; logical_id is "Type/id" or the document's "root^extension".
    record_kind text,
    logical_id text,
    version integer,
    deleted boolean not null default false,
    replaces text,
    rules jsonb,  -- the rule ids that refused a rejected record
    received_at timestamptz not null,
    upload_id uuid,
    created_at timestamptz not null default now(),
    published_at timestamptz
);
-- What the relay reads: the unpublished rows, oldest first.
create index event_outbox_pending_idx on event_outbox (seq) where published_at is null;
