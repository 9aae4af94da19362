-- Every R4 search-parameter type in fhir_search_index (hie/fhir/parameters.py generates the rows
-- from R4's SearchParameter expressions): number and quantity values in number (a quantity's
-- code in value, its system in system, its unit in text); string values as written in value
-- (:exact) and normalized (accents stripped, case folded) in text, for the default prefix
-- match and :contains; a token's display text (Coding.display, CodeableConcept.text) in text,
-- for :text; the component rows of one composite value (code and value of one
-- Observation.component) share grp. Every query still starts with institution_code.
--
-- Rows of resources stored before this migration have only the old parameters until they are
-- indexed again: `hie db reindex` rewrites the index of every live FHIR resource.
alter table fhir_search_index
    add column number numeric,
    add column text text,
    add column grp integer;
alter table fhir_search_index drop constraint if exists fhir_search_index_check;
alter table fhir_search_index
    add constraint fhir_search_index_value_check
    check (num_nonnulls(value, low, number, text) > 0 and (low is null) = (high is null));

-- name=smi, family:contains=mit, code:text=glucose: a prefix match on the normalized text
-- (text_pattern_ops, so LIKE 'abc%' is an index range whatever the database's collation).
create index fhir_search_text_idx
    on fhir_search_index (institution_code, resource_type, param, text text_pattern_ops)
    include (resource_id) where text is not null;
-- value-quantity=gt5.4, probability=le0.5: a range on the number.
create index fhir_search_number_idx
    on fhir_search_index (institution_code, resource_type, param, number)
    include (resource_id, system, value) where number is not null;
