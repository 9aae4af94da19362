-- The dashboard's table page asks which institutions uploaded one table in a month; without this
-- index it reads every row of the month. records is left out so that the ingest counters' updates
-- still qualify for PostgreSQL's cheaper heap-only (HOT) updates.
create index daily_table_count_table_day_idx on daily_table_count (table_code, day, institution_code);
