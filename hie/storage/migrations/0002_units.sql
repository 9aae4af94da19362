-- Counting units of the monthly figures (report-spec.md, "Counting rules"): each visit, discharge
-- and person counts once, in the month its first qualifying record was accepted. metric_unit
-- remembers which units were seen; monthly_unit_count holds the per-month counts, kept in the same
-- transaction as the record, so a report reads a few rows per institution and never scans.

create table metric_unit (
    institution_code text not null references institution (code),
    figure text not null,
    unit_key text not null,
    first_month date not null,
    first_received_at timestamptz not null,
    primary key (institution_code, figure, unit_key)
);

create table monthly_unit_count (
    institution_code text not null references institution (code),
    figure text not null,
    month date not null,
    shard smallint not null default 0,
    units bigint not null default 0 check (units >= 0),
    primary key (institution_code, figure, month, shard)
);
create index monthly_unit_count_month_idx on monthly_unit_count (month);

-- A document chain (a CDA document and its RPLC replacements, or a FHIR document Bundle's
-- identifier) is one visit or discharge: each stored document remembers the chain it belongs to.
alter table record_head add column chain_key text;
-- The person a stored Patient stands for, so a later Condition can be counted for that person.
alter table record_head add column person_key text;
