-- FHIR REST: referential integrity on delete and system-level history (hie/storage/references.py,
-- hie/storage/fhir.py).

-- Referential integrity on delete (HAPI FHIR's default): "does any live resource of this
-- institution still refer to Patient/123?" must not scan the institution's index rows. Only
-- reference values ("<Type>/<id>") are indexed, so token and date rows cost nothing here; the
-- queries repeat the predicate (hie/storage/references.py) so the planner uses it.
create index fhir_search_reference_idx
    on fhir_search_index (institution_code, value)
    include (resource_type, resource_id, param)
    where value ~ '^[A-Z][A-Za-z]+/';

-- GET /fhir/_history: every FHIR version of one institution, newest first, across the monthly
-- partitions (the type-level index of 0003 leads with the type). CDA documents stay out.
create index record_version_fhir_history_idx
    on record_version (institution_code, received_at, id)
    where raw_xml is null;
