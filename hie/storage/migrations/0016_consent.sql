-- Residents' consents to share their records across institutions: each stored FHIR Consent
-- (kept in the FHIR store as posted) projected into one row, read by the access decision.
-- The resident is the recording institution's own record (patient_record), so the consent
-- follows that record through the person index: a merge brings it to the surviving person, an
-- unmerge takes it back.
create table consent (
    institution_code text not null references institution (code),  -- who recorded it
    resource_id text not null,  -- "Consent/<id>" at that institution
    patient_record text not null,  -- "Patient/<id>" (or a CDA document id) at that institution
    status text not null,  -- active, inactive, ...: only active ones permit
    actors text[],  -- institutions granted; null: every institution
    classes text[],  -- document classes or resource types; null: every class
    period_start timestamptz,
    period_end timestamptz,
    recorded_at timestamptz not null default now(),
    primary key (institution_code, resource_id)
);
create index consent_patient_idx on consent (institution_code, patient_record);

-- Accesses by break-glass (no consent, a stated reason): flagged until someone reviews them.
create table break_glass (
    id bigserial primary key,
    at timestamptz not null default now(),
    actor text not null,
    institution_code text,  -- the clinician's institution
    person_id bigint not null references person (id),
    source_institution text not null,  -- whose records were opened
    target text,
    reason text not null,
    reviewed_at timestamptz,
    reviewed_by text
);
create index break_glass_open_idx on break_glass (at) where reviewed_at is null;

-- A resident's access history: the audit entries naming the person.
create index audit_event_persons_idx on audit_event using gin ((detail -> 'persons'));
