-- Statistics of the FHIR tables kept current under bulk loads. A conditional lookup
-- (ifNoneExist, conditional update, conditional reference) is served by fhir_search_token_idx
-- (institution, type, param, value, system) of migration 0003 and the primary key of
-- fhir_resource; what made it slow was a planner without statistics on tables that had just
-- grown by thousands of rows. Autoanalyse these busy tables after 2 % of change instead of the
-- default 10 % (hie/storage/statistics.py also analyses them after a large write).
alter table fhir_search_index set (
    autovacuum_analyze_scale_factor = 0.02,
    autovacuum_analyze_threshold = 1000,
    autovacuum_vacuum_scale_factor = 0.05
);
alter table fhir_resource set (
    autovacuum_analyze_scale_factor = 0.02,
    autovacuum_analyze_threshold = 1000,
    autovacuum_vacuum_scale_factor = 0.05
);
alter table record_head set (
    autovacuum_analyze_scale_factor = 0.02,
    autovacuum_analyze_threshold = 1000
);
