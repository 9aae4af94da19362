-- The MHD document registry: one DocumentReference per stored document, whether generated from a
-- stored CDA document (in the document's own transaction) or submitted in an ITI-65 Provide
-- Document Bundle. Searched across institutions (ITI-67) through the person index, so it is a
-- table of its own rather than rows of fhir_search_index, which is always read one institution
-- at a time and whose resources are record versions counted in the monthly figures.
create table document_reference (
    id text primary key,  -- the DocumentReference id (a UUID)
    institution_code text not null references institution (code),
    document_record text,  -- the stored CDA document's logical id ("<root>^<extension>")
    subject_record text,  -- the resident's record at the institution, as person_link names it
    status text not null check (status in ('current', 'superseded', 'entered-in-error')),
    master_identifier text not null,  -- "system|value"
    -- Search tokens: "system|code" and the bare code of each coding ("|code" without a system).
    identifiers text[] not null default '{}',
    types text[] not null default '{}',
    categories text[] not null default '{}',
    formats text[] not null default '{}',
    facilities text[] not null default '{}',
    settings text[] not null default '{}',
    authors text[] not null default '{}',  -- references, identifiers and names of the authors
    related text[] not null default '{}',
    date timestamptz,  -- DocumentReference.date
    period_low timestamptz,  -- context.period (null ends are open)
    period_high timestamptz,
    content_type text not null,
    size bigint not null,
    hash text not null,  -- SHA-1 of the original bytes, base64 (as MHD's attachment.hash)
    -- The id of the entry it replaces; no foreign key: a backfill may meet a replacement before
    -- the document it replaces (ids are worked out from the CDA id, so they still meet).
    replaces text,
    resource jsonb not null,
    created_at timestamptz not null default now(),
    unique (institution_code, document_record),
    unique (institution_code, master_identifier)
);
create index document_reference_subject_idx
    on document_reference (institution_code, subject_record);
create index document_reference_replaces_idx
    on document_reference (replaces) where replaces is not null;

-- The bytes of documents submitted through ITI-65 that are not CDA records (a CDA Binary is
-- stored as a CDA record, counted like any upload, and read from there).
create table document_content (
    id text primary key references document_reference (id),
    data bytea not null
);
