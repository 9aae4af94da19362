-- Dashboard sessions kept on the server: the cookie holds a random id, this table its SHA-256, so
-- neither knowing the signing key nor a token's number opens a session, and signing out or
-- revoking the token ends it at once.
create table dashboard_session (
    id_hash bytea primary key,
    token_id bigint not null references access_token (id),
    csrf text not null,
    created_at timestamptz not null default now(),
    last_seen_at timestamptz not null default now(),
    expires_at timestamptz not null,
    ended_at timestamptz
);
create index dashboard_session_token_idx on dashboard_session (token_id) where ended_at is null;
-- For the purge of old sessions.
create index dashboard_session_expires_idx on dashboard_session (expires_at);
create index dashboard_session_ended_idx on dashboard_session (ended_at) where ended_at is not null;

-- Failed dashboard sign-ins, counted per client address and per token id (when the pasted value
-- names one) over a sliding window; in the database so that a lock holds across web processes.
create table dashboard_signin_failure (
    id bigserial primary key,
    failed_at timestamptz not null default now(),
    address text not null,
    token_id bigint references access_token (id)
);
create index dashboard_signin_failure_address_idx on dashboard_signin_failure (address, failed_at);
create index dashboard_signin_failure_time_idx on dashboard_signin_failure (failed_at);
create index dashboard_signin_failure_token_idx on dashboard_signin_failure (token_id, failed_at)
    where token_id is not null;
