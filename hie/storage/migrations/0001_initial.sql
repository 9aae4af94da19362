-- The platform's first schema: registry, catalog, declarations, tokens, uploads, records,
-- aggregates and the audit log. Append-only: change it with a new numbered migration.

create table institution (
    code text primary key check (code ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$'),
    name text not null check (length(name) between 1 and 200),
    kind text not null check (kind in ('hospital', 'district')),
    -- The district a hospital belongs to (a district belongs to none).
    district_code text references institution (code),
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    check (district_code is null or kind = 'hospital')
);
create index institution_district_idx on institution (district_code) where district_code is not null;

-- The catalog of upload tables, replaced as a whole by `hie catalog load`.
create table catalog_table (
    code text primary key,
    position integer not null,
    name_zh text not null,
    name_en text not null,
    standard text not null,
    cda_template_id text unique,
    template_id_confirmed boolean not null default false,
    cda_code text unique,
    fhir_resource_type text unique,
    required_for text[] not null default '{}',
    feeds text[] not null default '{}'
);

create table catalog_source (
    singleton boolean primary key default true check (singleton),
    source text not null,
    sha256 text not null,
    loaded_at timestamptz not null default now()
);

-- Declarations (声明上传表) are kept as a history: a report for a past month uses the declaration
-- in force at the end of that month. tables is null when a declaration was cleared
-- ("no declaration", printed 未反馈), which differs from an empty declaration ('{}').
create table declaration (
    id bigserial primary key,
    institution_code text not null references institution (code) on delete cascade,
    tables text[],
    declared_at timestamptz not null default now(),
    declared_by text not null
);
create index declaration_current_idx on declaration (institution_code, declared_at desc, id desc);

-- Bearer tokens: only a SHA-256 of the token is stored; the token itself is shown once.
create table access_token (
    id bigserial primary key,
    token_hash bytea not null unique,
    hint text not null,
    role text not null check (role in ('submitter', 'regulator', 'admin')),
    institution_code text references institution (code),
    label text not null default '',
    created_at timestamptz not null default now(),
    last_used_at timestamptz,
    revoked_at timestamptz,
    check (role <> 'submitter' or institution_code is not null)
);
create index access_token_institution_idx on access_token (institution_code);

-- Every upload attempt with the receipt returned for it, accepted or not. Partitioned by month of
-- receipt (partitions are made on demand, see hie/storage/partitions.py).
create table upload (
    id uuid not null,
    received_at timestamptz not null,
    institution_code text not null references institution (code),
    channel text not null check (channel in ('cda', 'fhir', 'ingest')),
    content_type text,
    byte_size integer not null check (byte_size >= 0),
    content_sha256 bytea,
    outcome text not null check (outcome in ('accepted', 'unchanged', 'rejected', 'partial')),
    http_status smallint,
    records_written integer not null default 0,
    rejected_count integer not null default 0,
    receipt jsonb not null,
    token_id bigint references access_token (id),
    primary key (received_at, id)
) partition by range (received_at);
create index upload_institution_idx on upload (institution_code, received_at);
create index upload_id_idx on upload (id);

-- Every version of every stored record. Raw CDA is kept byte-exact in raw_xml; FHIR resources in
-- resource. normalized holds what hie/normalize extracted. Partitioned by month of receipt.
create sequence record_version_id_seq as bigint;
create table record_version (
    id bigint not null default nextval('record_version_id_seq'),
    received_at timestamptz not null,
    institution_code text not null,
    table_code text not null,
    -- "Patient/123" for FHIR, "<root>^<extension>" of ClinicalDocument/id for CDA.
    logical_id text not null,
    version integer not null check (version > 0),
    upload_id uuid not null,
    content_sha256 bytea not null,
    raw_xml bytea,
    resource jsonb,
    normalized jsonb not null default '{}',
    deleted boolean not null default false,
    primary key (received_at, id),
    check (deleted or num_nonnulls(raw_xml, resource) = 1)
) partition by range (received_at);
create index record_version_logical_idx on record_version (institution_code, logical_id, version);
create index record_version_upload_idx on record_version (upload_id);

-- The current version of each logical record: the point look-up for idempotent re-uploads,
-- conflicts and reads, without touching the partitioned history.
create table record_head (
    institution_code text not null references institution (code),
    logical_id text not null,
    table_code text not null,
    version integer not null,
    content_sha256 bytea not null,
    received_at timestamptz not null,
    record_id bigint not null,
    deleted boolean not null default false,
    primary key (institution_code, logical_id)
);
create index record_head_table_idx on record_head (institution_code, table_code);

-- Aggregates kept in the same transaction that stores a record: the monthly figures are sums of
-- these, never scans of record_version. day is the receipt day in the platform's time zone.
-- Counters are split into a few shards (by database session) so that parallel uploads of one
-- institution's table do not queue on one row until each other commits; readers sum the shards.
create table daily_table_count (
    institution_code text not null references institution (code),
    day date not null,
    table_code text not null,
    shard smallint not null default 0,
    records bigint not null default 0 check (records >= 0),
    primary key (institution_code, day, table_code, shard)
);
create index daily_table_count_day_idx on daily_table_count (day);

-- Rejected documents and resources per day (the report's `rejected`), and how often each rule
-- fired in them (top rejection reasons): one rejected document may break several rules.
create table daily_rejection (
    institution_code text not null references institution (code),
    day date not null,
    shard smallint not null default 0,
    rejected bigint not null default 0 check (rejected >= 0),
    primary key (institution_code, day, shard)
);
create index daily_rejection_day_idx on daily_rejection (day);

create table daily_rejection_reason (
    institution_code text not null references institution (code),
    day date not null,
    rule_id text not null,
    shard smallint not null default 0,
    occurrences bigint not null default 0 check (occurrences >= 0),
    primary key (institution_code, day, rule_id, shard)
);
create index daily_rejection_reason_day_idx on daily_rejection_reason (day);

-- Who changed what: registry, declarations, tokens, catalog. Never holds secrets or ID numbers.
create table audit_event (
    id bigserial primary key,
    at timestamptz not null default now(),
    actor text not null,
    action text not null,
    target text,
    detail jsonb not null default '{}'
);
create index audit_event_at_idx on audit_event (at);
create index audit_event_target_idx on audit_event (target, at);
