"""The peers' side of bench/analytics.sh: the same questions Lodestar's `analyses` program
answers, asked of DuckDB (an in-memory table) and chDB (a MergeTree ordered by person and
time), each limited to the same number of threads, on the CSV `export_hot` wrote.

usage: python3 bench/analytics_peers.py HOT.csv [THREADS=2] [RUNS=3]
Prints one line per (engine, query): median seconds and the answer, for comparison.
"""

from __future__ import annotations

import statistics
import sys
import time

FROM, TO, TZ = "2025-01-01", "2025-12-31", "Asia/Shanghai"
# The range as UTC instants, so the peers filter on the raw column (their fastest setup).
_zone = __import__("zoneinfo").ZoneInfo(TZ)
_dt = __import__("datetime")
FROM_MS = int(_dt.datetime.fromisoformat(FROM).replace(tzinfo=_zone).timestamp() * 1000)
TO_MS = int((_dt.datetime.fromisoformat(TO).replace(tzinfo=_zone) + _dt.timedelta(days=1)).timestamp() * 1000)
WINDOW_MS = 7 * 86_400_000
STEPS = ("Product Viewed", "Checkout Started", "Order Completed")


def timed(runs: int, f):
    times, result = [], None
    for _ in range(runs):
        t = time.perf_counter()
        result = f()
        times.append(time.perf_counter() - t)
    return statistics.median(times), result


# A self-join per step: on these data faster in DuckDB than a window-function formulation
# (0.95 s against 1.36 s at 10 M events), so it is the one measured.
DUCK_FUNNEL = f"""
WITH e AS (SELECT person, ts, ord, event FROM ev WHERE event IN {STEPS} AND ts >= {FROM_MS} AND ts < {TO_MS}),
a AS (SELECT person, ts AS t1, ord AS o1 FROM e WHERE event = '{STEPS[0]}'),
ab AS (SELECT a.person, a.t1, b.ts AS t2, b.ord AS o2 FROM a JOIN e b
       ON b.person = a.person AND b.event = '{STEPS[1]}'
      AND (b.ts > a.t1 OR (b.ts = a.t1 AND b.ord > a.o1)) AND b.ts - a.t1 <= {WINDOW_MS}),
abc AS (SELECT DISTINCT ab.person FROM ab JOIN e c
       ON c.person = ab.person AND c.event = '{STEPS[2]}'
      AND (c.ts > ab.t2 OR (c.ts = ab.t2 AND c.ord > ab.o2)) AND c.ts - ab.t1 <= {WINDOW_MS})
SELECT (SELECT count(DISTINCT person) FROM a), (SELECT count(DISTINCT person) FROM ab), (SELECT count(*) FROM abc)
"""

DUCK_RETENTION = f"""
WITH loc AS (
  SELECT person, event, date_trunc('week', timezone('{TZ}', to_timestamp(ts / 1000.0)))::DATE AS p
  FROM ev WHERE event IN ('Signed Up', 'Order Completed')),
coh AS (
  SELECT person, c FROM (SELECT person, min(p) AS c FROM loc WHERE event = 'Signed Up' GROUP BY person)
  WHERE c BETWEEN date_trunc('week', DATE '{FROM}')::DATE AND date_trunc('week', DATE '{TO}')::DATE),
r AS (SELECT DISTINCT person, p FROM loc WHERE event = 'Order Completed'),
d AS (SELECT coh.person, coh.c, date_diff('week', coh.c, r.p) AS k FROM coh JOIN r USING (person))
SELECT c, k, count(DISTINCT person) FROM (
  SELECT person, c, 0 AS k FROM coh
  UNION ALL SELECT person, c, k FROM d WHERE k BETWEEN 1 AND 12)
GROUP BY c, k ORDER BY c, k
"""

CH_FUNNEL = f"""
SELECT countIf(level >= 1), countIf(level >= 2), countIf(level >= 3) FROM (
  SELECT person, windowFunnel({WINDOW_MS})(toUInt64(ts), event = '{STEPS[0]}', event = '{STEPS[1]}', event = '{STEPS[2]}') AS level
  FROM bench.ev
  WHERE event IN {STEPS} AND ts >= {FROM_MS} AND ts < {TO_MS}
  GROUP BY person)
SETTINGS max_threads = {{threads}}
"""

CH_RETENTION = f"""
WITH loc AS (
  SELECT person, event, toMonday(toDateTime(intDiv(ts, 1000), '{TZ}')) AS p
  FROM bench.ev WHERE event IN ('Signed Up', 'Order Completed')),
coh AS (
  SELECT person, c FROM (SELECT person, min(p) AS c FROM loc WHERE event = 'Signed Up' GROUP BY person)
  WHERE c BETWEEN toMonday(toDate('{FROM}')) AND toMonday(toDate('{TO}'))),
r AS (SELECT DISTINCT person, p FROM loc WHERE event = 'Order Completed')
SELECT c, k, uniqExact(person) FROM (
  SELECT person, c, 0 AS k FROM coh
  UNION ALL
  SELECT coh.person AS person, coh.c AS c, dateDiff('week', coh.c, r.p) AS k FROM coh INNER JOIN r ON r.person = coh.person
  WHERE k BETWEEN 1 AND 12)
GROUP BY c, k ORDER BY c, k
SETTINGS max_threads = {{threads}}
"""


# The five-stage lifecycle at one instant: the end of TO in TZ, e-commerce preset (activity:
# any event; conversion: Order Completed; dormant after 30 days, churned after 90, mature at 3
# orders, resurrected for 30 days after a return from a gap of more than 30 days).
DAY = 86_400_000
STAGES_AT = TO_MS
DUCK_STAGES = f"""
WITH g AS (
  SELECT person, ts, event, ts - lag(ts) OVER (PARTITION BY person ORDER BY ts, ord) AS gap
  FROM ev WHERE ts < {STAGES_AT}),
p AS (
  SELECT person, max(ts) AS last_active, count(*) FILTER (WHERE event = 'Order Completed') AS conv,
         max(ts) FILTER (WHERE gap > {30 * DAY}) AS last_return
  FROM g GROUP BY person)
SELECT CASE WHEN {STAGES_AT} - last_active > {90 * DAY} THEN 'churned'
            WHEN {STAGES_AT} - last_active > {30 * DAY} THEN 'dormant'
            WHEN last_return IS NOT NULL AND {STAGES_AT} - last_return <= {30 * DAY} THEN 'resurrected'
            WHEN conv = 0 THEN 'onboarding' WHEN conv >= 3 THEN 'maturity' ELSE 'growth' END AS stage,
       count(*)
FROM p GROUP BY stage ORDER BY stage
"""

CH_STAGES = f"""
SELECT multiIf({STAGES_AT} - last_active > {90 * DAY}, 'churned',
               {STAGES_AT} - last_active > {30 * DAY}, 'dormant',
               last_return > 0 AND {STAGES_AT} - last_return <= {30 * DAY}, 'resurrected',
               conv = 0, 'onboarding', conv >= 3, 'maturity', 'growth') AS stage,
       count()
FROM (
  SELECT person, max(ts) AS last_active, countIf(event = 'Order Completed') AS conv,
         arrayMax(arrayMap((t, d) -> if(d > {30 * DAY}, t, 0),
                           arraySort(groupArray(ts)), arrayDifference(arraySort(groupArray(ts))))) AS last_return
  FROM bench.ev WHERE ts < {STAGES_AT} GROUP BY person)
GROUP BY stage ORDER BY stage
SETTINGS max_threads = {{threads}}
"""


# RFM over every buyer of the range (purchases: Order Completed; monetary: the sum of their
# values), quintile scores 1 + floor(5 * (rank - 1) / n) with ties sharing a score, and the
# default eleven layers of the R x F grid.
RFM_LAYER = """CASE WHEN r = 5 AND f >= 4 THEN 'champions'
  WHEN r BETWEEN 3 AND 4 AND f >= 4 THEN 'loyal'
  WHEN r >= 4 AND f BETWEEN 2 AND 3 THEN 'potential_loyalist'
  WHEN r = 5 AND f = 1 THEN 'new'
  WHEN r = 4 AND f = 1 THEN 'promising'
  WHEN r = 3 AND f = 3 THEN 'need_attention'
  WHEN r = 3 THEN 'about_to_sleep'
  WHEN r <= 2 AND f = 5 THEN 'cant_lose'
  WHEN r <= 2 AND f >= 3 THEN 'at_risk'
  WHEN r = 2 THEN 'hibernating'
  ELSE 'lost' END"""

DUCK_RFM = f"""
WITH b AS (
  SELECT person, max(ts) AS last, count(*) AS freq, sum(coalesce(value, 0)) AS money
  FROM ev WHERE event = 'Order Completed' AND ts >= {FROM_MS} AND ts < {TO_MS} GROUP BY person),
s AS (
  SELECT money, 1 + (5 * (rank() OVER (ORDER BY last) - 1)) // count(*) OVER () AS r,
         1 + (5 * (rank() OVER (ORDER BY freq) - 1)) // count(*) OVER () AS f
  FROM b)
SELECT {RFM_LAYER} AS layer, count(*), round(sum(money), 2) FROM s GROUP BY layer ORDER BY layer
"""

CH_RFM = f"""
SELECT {RFM_LAYER} AS layer, count(), round(sum(money), 2) FROM (
  SELECT money, 1 + intDiv(5 * (rank() OVER (ORDER BY last) - 1), count() OVER ()) AS r,
         1 + intDiv(5 * (rank() OVER (ORDER BY freq) - 1), count() OVER ()) AS f
  FROM (
    SELECT person, max(ts) AS last, count() AS freq, sum(ifNull(value, 0)) AS money
    FROM bench.ev WHERE event = 'Order Completed' AND ts >= {FROM_MS} AND ts < {TO_MS} GROUP BY person))
GROUP BY layer ORDER BY layer
SETTINGS max_threads = {{threads}}
"""


def first_cohort(rows) -> list[int]:
    rows = [tuple(r) for r in rows]
    if not rows:
        return []
    c0 = rows[0][0]
    out = [0] * 13
    for c, k, n in rows:
        if c == c0:
            out[int(k)] = int(n)
    return out


def rfm_line(rows) -> str:
    """Buyers, monetary and per-layer counts, printed as Lodestar's `analyses` prints them."""
    rows = [(k, int(n), float(m)) for k, n, m in rows]
    buyers = sum(n for _, n, _ in rows)
    money = sum(m for _, _, m in rows)
    return f"{buyers} buyers, monetary {money:.2f}; " + ", ".join(f"{k} {n}" for k, n, _ in sorted(rows))


def duck(csv: str, threads: int, runs: int) -> None:
    import duckdb

    db = duckdb.connect()
    db.execute(f"SET threads = {threads}")
    db.execute("SET enable_progress_bar = false")
    t = time.perf_counter()
    db.execute(f"CREATE TABLE ev AS SELECT * FROM read_csv('{csv}', header = true) ORDER BY person, ts, ord")
    load = time.perf_counter() - t
    n = db.execute("SELECT count(*) FROM ev").fetchone()[0]
    print(f"duckdb {duckdb.__version__}: loaded {n} events in {load:.1f} s ({threads} threads)")
    secs, res = timed(runs, lambda: db.execute(DUCK_FUNNEL).fetchone())
    print(f"duckdb funnel: median {secs:.3f} s; persons per step {list(res)}")
    secs, res = timed(runs, lambda: db.execute(DUCK_RETENTION).fetchall())
    print(f"duckdb retention: median {secs:.3f} s; first cohort {first_cohort(res)}")
    secs, res = timed(runs, lambda: db.execute(DUCK_STAGES).fetchall())
    print(f"duckdb stages at the end of {TO}: median {secs:.3f} s; {dict(res)}")
    secs, res = timed(runs, lambda: db.execute(DUCK_RFM).fetchall())
    print(f"duckdb rfm: median {secs:.3f} s; {rfm_line(res)}")


def ch(csv: str, threads: int, runs: int) -> None:
    import chdb
    from chdb import session

    s = session.Session()
    s.query("CREATE DATABASE IF NOT EXISTS bench")
    s.query("CREATE TABLE bench.ev (person UInt64, ts Int64, event LowCardinality(String), ord UInt32, "
            "value Nullable(Float64)) "
            "ENGINE = MergeTree ORDER BY (person, ts, ord)")
    t = time.perf_counter()
    s.query(f"INSERT INTO bench.ev SELECT * FROM file('{csv}', CSVWithNames, "
            f"'person UInt64, ts Int64, event String, ord UInt32, value Nullable(Float64)')")
    s.query("OPTIMIZE TABLE bench.ev FINAL")
    load = time.perf_counter() - t
    n = s.query("SELECT count() FROM bench.ev", "CSV").bytes().decode().strip()
    print(f"chdb {chdb.__version__}: loaded {n} events in {load:.1f} s (MergeTree, {threads} threads)")

    def rows(sql: str):
        text = s.query(sql.format(threads=threads), "TabSeparated").bytes().decode()
        return [line.split("\t") for line in text.splitlines() if line]

    secs, res = timed(runs, lambda: rows(CH_FUNNEL))
    print(f"chdb funnel (windowFunnel): median {secs:.3f} s; persons per step {[int(x) for x in res[0]]}")
    secs, res = timed(runs, lambda: rows(CH_RETENTION))
    print(f"chdb retention: median {secs:.3f} s; first cohort {first_cohort(res)}")
    secs, res = timed(runs, lambda: rows(CH_STAGES))
    print(f"chdb stages at the end of {TO}: median {secs:.3f} s; {dict((k, int(v)) for k, v in res)}")
    secs, res = timed(runs, lambda: rows(CH_RFM))
    print(f"chdb rfm: median {secs:.3f} s; {rfm_line(res)}")


if __name__ == "__main__":
    csv = sys.argv[1]
    threads = int(sys.argv[2]) if len(sys.argv) > 2 else 2
    runs = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    duck(csv, threads, runs)
    ch(csv, threads, runs)
