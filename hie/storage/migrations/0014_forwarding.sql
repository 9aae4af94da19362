-- Forwarding accepted records to upstream FHIR servers (the provincial platform): the configured
-- destinations, and what became of each event at each of them. The bearer token is never stored:
-- only the name of the environment variable the forwarder reads it from at send time.
create table forward_destination (
    name text primary key check (name ~ '^[a-z0-9][a-z0-9_-]{0,62}$'),
    base_url text not null,
    token_env text not null,
    -- The catalog tables forwarded; null: every table.
    tables text[],
    -- How CDA documents go: 'mhd' (DocumentReference + Binary) or 'inline' (the bytes inside
    -- DocumentReference.content.attachment.data, as hie's own MHD endpoint stores them).
    documents text not null default 'mhd' check (documents in ('mhd', 'inline')),
    created_at timestamptz not null default now()
);

-- One row per (destination, event): the event id makes a redelivered message the same row, so a
-- record already sent is acknowledged without being sent again, and the status is a query.
create table forward_delivery (
    destination text not null references forward_destination (name) on delete cascade,
    event_id uuid not null,
    institution_code text not null,
    table_code text,
    -- "Type/id" or the CDA document's "root^extension", and its version.
    logical_id text not null,
    version integer,
    state text not null check (state in ('pending', 'sent', 'failed')),
    attempts integer not null default 0,
    last_error text,
    upstream_status smallint,
    upstream_location text,
    first_seen_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    primary key (destination, event_id)
);
create index forward_delivery_state_idx on forward_delivery (destination, state);
