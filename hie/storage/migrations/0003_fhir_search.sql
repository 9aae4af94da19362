-- FHIR REST: which resources are live, their search-parameter index, and type-level history.
-- Every row is written in the transaction that writes the record version (hie/storage/fhir.py),
-- and every query filters on institution_code first: a submitter's search can only ever reach
-- its own institution's rows.

-- The live (not deleted) FHIR resources, one row per current version. record_head answers "what is
-- the current version of this logical id"; this table answers "which <Type> resources exist, in
-- _lastUpdated order" without touching record_head's CDA rows or the partitioned history.
-- last_updated is the receipt time of the current version (record_version.received_at), so
-- (last_updated, record_id) finds the stored resource with partition pruning.
create table fhir_resource (
    institution_code text not null references institution (code),
    resource_type text not null,
    resource_id text not null,
    version integer not null,
    last_updated timestamptz not null,
    record_id bigint not null,
    primary key (institution_code, resource_type, resource_id)
);
create index fhir_resource_updated_idx
    on fhir_resource (institution_code, resource_type, last_updated, resource_id);

-- Search-parameter values of the live resources: one row per value (a resource with three codes
-- has three 'code' rows). Token and reference parameters fill system/value (references as
-- "<Type>/<id>"); date parameters fill the half-open range [low, high) that the value stands for
-- ('2019' is all of 2019; an open Period end is 'infinity'). Rows are replaced when a resource
-- changes and removed when it is deleted. No primary key: rows are only ever found by the
-- indexes below, and a serial key would cost a write per row for nothing.
create table fhir_search_index (
    institution_code text not null,
    resource_type text not null,
    resource_id text not null,
    param text not null,
    system text,
    value text,
    low timestamptz,
    high timestamptz,
    check ((value is null) <> (low is null))
);
-- code=, identifier=, status=, subject= ...: equality on the value (and system), the resource id
-- in the index so the search is an index-only scan; also what _revinclude looks up.
create index fhir_search_token_idx
    on fhir_search_index (institution_code, resource_type, param, value, system)
    include (resource_id) where value is not null;
-- date=ge..., date=lt...: one index per bound, since a prefix compares either end of the range.
create index fhir_search_date_low_idx
    on fhir_search_index (institution_code, resource_type, param, low)
    include (high, resource_id) where low is not null;
create index fhir_search_date_high_idx
    on fhir_search_index (institution_code, resource_type, param, high)
    include (low, resource_id) where low is not null;
-- Replacing one resource's rows, and _include (the references of the page's resources).
create index fhir_search_owner_idx
    on fhir_search_index (institution_code, resource_type, resource_id);

-- GET /fhir/<Type>/_history: the versions of one type, newest first, across the monthly
-- partitions (a merge of per-partition index scans). Partial: CDA documents (raw_xml) never
-- appear in FHIR history, so they do not pay for this index.
create index record_version_fhir_type_idx
    on record_version (institution_code, (split_part(logical_id, '/', 1)), received_at, id)
    where raw_xml is null;
