-- Monthly rollup of record counts (cumulative figures read a few rows per institution and month
-- instead of every day since the start), and the computed monthly reports.

create table monthly_table_count (
    institution_code text not null references institution (code),
    month date not null,
    table_code text not null,
    shard smallint not null default 0,
    records bigint not null default 0 check (records >= 0),
    primary key (institution_code, month, table_code, shard)
);
create index monthly_table_count_month_idx on monthly_table_count (month);

insert into monthly_table_count (institution_code, month, table_code, records)
select institution_code, date_trunc('month', day)::date, table_code, sum(records)
from daily_table_count group by 1, 2, 3;

-- One row per month: the whole report as served, replaced atomically by each computation.
create table monthly_report (
    month date primary key,
    generated_at timestamptz not null,
    final boolean not null default false,
    body jsonb not null
);

-- Timeliness (及时性): receipt time minus clinical time of each written version, as a histogram per
-- institution and month; bucket b holds delays below LATENCY_BOUNDS_HOURS[b] (hie/metrics/timeliness.py).
create table monthly_latency (
    institution_code text not null references institution (code),
    month date not null,
    bucket smallint not null,
    shard smallint not null default 0,
    versions bigint not null default 0 check (versions >= 0),
    primary key (institution_code, month, bucket, shard)
);
