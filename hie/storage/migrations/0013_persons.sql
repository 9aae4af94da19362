-- The person index: one row per resident; each stored Patient or CDA document (a record of an
-- institution) linked to one person, with the identifiers and demographics it was linked by.
-- Links, merges and unmerges are kept in person_history, so each can be undone.
create table person (
    id bigserial primary key,
    created_at timestamptz not null default now(),
    merged_into bigint references person (id)  -- set while merged into another person
);
create index person_merged_into_idx on person (merged_into) where merged_into is not null;

create table person_link (
    institution_code text not null references institution (code),
    record_id text not null,  -- the record's logical id: "Patient/<id>", CDA "<root>^<extension>"
    person_id bigint not null references person (id),
    rule text not null,  -- what linked it: a key's system, "score", "new", "merge"
    score real,
    name text,
    birth_date date,
    gender text,
    address text,
    linked_at timestamptz not null default now(),
    primary key (institution_code, record_id)
);
create index person_link_person_idx on person_link (person_id);
-- Blocking for the probabilistic match: candidates share the birth date.
create index person_link_birth_idx on person_link (birth_date) where birth_date is not null;

-- The identifiers of each linked record; institution is '' for regional keys (resident ID,
-- health card, health-record number) and the record's institution for medical-record numbers.
create table person_identifier (
    institution_code text not null,
    record_id text not null,
    system text not null,
    value text not null,
    key_institution text not null default '',
    primary key (institution_code, record_id, system, value),
    foreign key (institution_code, record_id)
        references person_link (institution_code, record_id) on delete cascade
);
create index person_identifier_key_idx on person_identifier (system, value, key_institution);

-- Uncertain matches for a person to decide: merge the record's person into the candidate, or
-- dismiss.
create table person_review (
    id bigserial primary key,
    institution_code text not null,
    record_id text not null,
    person_id bigint not null references person (id),  -- the record's own (new) person
    candidate_id bigint not null references person (id),
    score real not null,
    parts jsonb not null default '{}',
    status text not null default 'open' check (status in ('open', 'merged', 'dismissed')),
    created_at timestamptz not null default now(),
    decided_at timestamptz,
    decided_by text
);
create index person_review_open_idx on person_review (created_at) where status = 'open';

-- Every link, relink, unlink, merge and unmerge; a merge's detail lists the records it moved,
-- which an unmerge moves back.
create table person_history (
    id bigserial primary key,
    at timestamptz not null default now(),
    action text not null check (action in ('link', 'relink', 'unlink', 'merge', 'unmerge')),
    person_id bigint not null references person (id),
    other_person_id bigint references person (id),
    institution_code text,
    record_id text,
    actor text not null,
    detail jsonb not null default '{}',
    undone_by bigint references person_history (id)
);
create index person_history_person_idx on person_history (person_id, id);

-- The clinician role: bound to an institution like a submitter; reads its own institution and
-- looks residents up in the person index, writes nothing.
alter table access_token drop constraint access_token_role_check;
alter table access_token add constraint access_token_role_check
    check (role in ('submitter', 'regulator', 'admin', 'clinician'));
alter table access_token add constraint access_token_clinician_institution_check
    check (role <> 'clinician' or institution_code is not null);
