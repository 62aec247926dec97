"""Queries a Parquet export (and its --events table) with DuckDB (tests/parquet.rs): prints one JSON object with the
row count, per-stage count/p50/p99 (quantile_disc: exact values of the column), per-flow
counts, and checks of the per-file and timestamp columns."""
import json
import sys

import duckdb

STAGES = ["irq", "softirq_wait", "poll", "stack", "wakeup", "runqueue", "syscall", "total"]

path = sys.argv[1]
db = duckdb.connect()
db.execute(f"CREATE VIEW j AS SELECT * FROM read_parquet('{path}')")
out = {"rows": db.sql("SELECT count(*) FROM j").fetchone()[0], "stages": {}}
for stage in STAGES:
    count, p50, p99 = db.sql(
        f"SELECT count({stage}_ns), quantile_disc({stage}_ns, 0.5), "
        f"quantile_disc({stage}_ns, 0.99) FROM j"
    ).fetchone()
    out["stages"][stage] = {"count": count, "p50": p50, "p99": p99}
out["flows"] = {
    f"{proto}|{saddr}|{sport}|{daddr}|{dport}".replace("None", "null"): n
    for proto, saddr, sport, daddr, dport, n in db.sql(
        "SELECT proto, saddr, sport, daddr, dport, count(*) FROM j GROUP BY ALL"
    ).fetchall()
}
out["types"] = dict(db.sql("SELECT column_name, column_type FROM (DESCRIBE j)").fetchall())
offset = int(
    db.sql(
        f"SELECT decode(value) FROM parquet_kv_metadata('{path}') "
        "WHERE decode(key) = 'tracer.realtime_offset_ns'"
    ).fetchone()[0]
)
# DuckDB reads a UTC timestamp in microseconds: the wall time must be the monotonic stamp
# plus the recording's offset, to the microsecond.
out["stamps_off"] = db.sql(
    f"SELECT count(*) FROM j WHERE mono_recv_return IS NOT NULL AND "
    f"epoch_us(ts_recv_return) != (mono_recv_return::HUGEINT + {offset}) // 1000"
).fetchone()[0]
out["files"] = db.sql(
    "SELECT count(DISTINCT host), count(DISTINCT kernel), count(DISTINCT capture_id), "
    "min(schema_version), count(*) FILTER (WHERE host IS NULL OR capture_id IS NULL) FROM j"
).fetchone()
# The events table (export --events): its rows, and the captures it names (must be one, the
# journeys' own).
if len(sys.argv) > 2:
    out["events"] = db.sql(
        f"SELECT count(*), count(DISTINCT e.capture_id) FROM read_parquet('{sys.argv[2]}') e "
        "WHERE e.capture_id IN (SELECT capture_id FROM j)"
    ).fetchone()
print(json.dumps(out))
