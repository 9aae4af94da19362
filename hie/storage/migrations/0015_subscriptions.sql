-- FHIR R4 Subscriptions (rest-hook) and their deliveries. A subscription is kept as the resource
-- its owner wrote plus the columns the matcher reads (criteria split into the searched type and
-- its query, endpoint, payload, headers): the active rows of one resource type are the
-- projection the deliverer matches each event against. Its owner token decides what it may see.
create table subscription (
    id text primary key,
    version integer not null default 1,
    owner_token_id bigint not null references access_token (id),
    -- The resource as written by its owner, without status and error (the server's to set).
    resource jsonb not null,
    status text not null check (status in ('requested', 'active', 'error', 'off')),
    error text,
    resource_type text not null,
    criteria text not null,
    endpoint text not null,
    -- Null: notification only (an empty POST); else the media type of the resource sent.
    payload text,
    -- "Name: value" strings sent with every delivery (e.g. the subscriber's Authorization).
    headers jsonb not null default '[]',
    last_updated timestamptz not null default now()
);
create index subscription_active_idx on subscription (resource_type) where status = 'active';
create index subscription_requested_idx on subscription (id) where status = 'requested';
create index subscription_owner_idx on subscription (owner_token_id);

-- One row per (subscription, event) that matched: an event delivered again by RabbitMQ finds its
-- row and is not sent twice. Pending rows are sent when due; a failed attempt moves
-- next_attempt_at later (backoff), a claim moves it by a lease so two deliverers never send the
-- same row at once.
create table subscription_delivery (
    subscription_id text not null references subscription (id) on delete cascade,
    event_id uuid not null,
    institution_code text not null,
    logical_id text not null,
    version integer not null,
    state text not null default 'pending' check (state in ('pending', 'sent', 'failed')),
    attempts integer not null default 0,
    next_attempt_at timestamptz not null default now(),
    last_error text,
    created_at timestamptz not null default now(),
    sent_at timestamptz,
    primary key (subscription_id, event_id)
);
create index subscription_delivery_due_idx on subscription_delivery (next_attempt_at)
    where state = 'pending';
