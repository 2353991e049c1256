"""Funnels, retention and interval lifecycle from the real server, checked against the same
questions asked of DuckDB (PyPI `duckdb`) over the project's own export.

The data are generated here with the edge cases that break analytics: events with equal
times (the write order decides), events exactly one conversion window after the first step,
anonymous visitors who identify later (their earlier events must count for the person),
periods in UTC, Asia/Shanghai and America/New_York across the US daylight-saving change of
2026-03-08. DuckDB sees only the export (canonical person, time, event) plus the order the
events were sent in, and derives periods with its own time-zone functions.
"""

from __future__ import annotations

import random
from datetime import datetime, timezone

import duckdb
import pytest

from wire import parse_time

BASE = datetime(2026, 2, 26, tzinfo=timezone.utc)
HOUR_MS = 3_600_000
ZONES = ["UTC", "Asia/Shanghai", "America/New_York"]
WINDOW_MS = 3 * 24 * HOUR_MS


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def generate(seed: int = 7, persons: int = 240) -> list[dict]:
    """Messages in the order they will be sent."""
    rng = random.Random(seed)
    base_ms = int(BASE.timestamp() * 1000)
    out: list[dict] = []
    n = 0
    for i in range(persons):
        anon, user = f"anon-{i}", f"user-{i}"
        identifies = rng.random() < 0.6
        t = base_ms + rng.randrange(0, 30 * 24) * HOUR_MS + rng.randrange(0, 60) * 60_000
        first_a = None
        identified = False
        for _ in range(rng.randrange(1, 14)):
            r = rng.random()
            if r < 0.15:
                pass  # same time as the previous event: a tie
            elif r < 0.25 and first_a is not None:
                t = first_a + WINDOW_MS  # exactly at the window's edge
            else:
                t += rng.choice([1, 2, 5, 20, 26, 50, 170, 200]) * HOUR_MS // rng.choice([1, 2, 4])
            name = rng.choice("AABBCD")
            if name == "A" and first_a is None:
                first_a = t
            if identifies and not identified and rng.random() < 0.3:
                out.append({"type": "identify", "userId": user, "anonymousId": anon,
                            "traits": {"plan": "pro"}, "timestamp": iso(t), "messageId": f"m{n}"})
                n += 1
                identified = True
            msg = {"type": "track", "event": name, "timestamp": iso(t), "messageId": f"m{n}"}
            if identified:
                msg["userId"] = user
            else:
                msg["anonymousId"] = anon
            out.append(msg)
            n += 1
    return out


@pytest.fixture(scope="module")
def analysed(tmp_path_factory):
    """Sends the data, asks the server every question, stops it, exports; returns the
    answers and a DuckDB connection holding the export."""
    from conftest import PROJECT
    from harness import Server, Workspace

    ws = Workspace(tmp_path_factory.mktemp("duckdb"))
    key = ws.create_project(PROJECT)
    srv = Server(ws, PROJECT, key)
    srv.start()
    try:
        messages = generate()
        for i in range(0, len(messages), 50):
            r = srv.post("batch", {"batch": messages[i:i + 50]})
            assert r.status_code == 200, r.text
        answers = {}
        for q in questions():
            r = srv.session.post(f"{srv.url}/api/projects/{PROJECT}/analyses/{q['kind']}", json=q["body"], timeout=60)
            assert r.status_code == 200, f"{q['kind']} {q['body']}: {r.status_code} {r.text[:300]}"
            answers[q["name"]] = r.json()
    finally:
        srv.stop()
    events = ws.export_events(PROJECT)
    order = {m["messageId"]: i for i, m in enumerate(messages)}
    db = duckdb.connect()
    db.execute("SET TimeZone = 'UTC'")
    db.execute("CREATE TABLE ev (person BIGINT, ts BIGINT, ord BIGINT, event VARCHAR)")
    rows = []
    for e in events:
        ms = int(parse_time(e["timestamp"]).timestamp() * 1000)
        name = e.get("event") or e["type"]
        rows.append((e["personId"], ms, order[e["messageId"]], name))
    assert len(rows) == len(messages)
    db.executemany("INSERT INTO ev VALUES (?, ?, ?, ?)", rows)
    return answers, db


def questions() -> list[dict]:
    qs = []
    for tz in ZONES:
        qs.append({"name": f"funnel-{tz}", "kind": "funnel", "body": {
            "steps": ["A", "B", "C"], "window": "3d", "date_from": "2026-02-27", "date_to": "2026-03-20", "timezone": tz}})
        for kind, interval, n, start, ret, cumulative in [
            ("first_time", "week", 3, "A", "B", False),
            ("first_time", "week", 3, "A", "B", True),
            ("recurring", "day", 5, "A", "A", False),
            ("recurring", "day", 4, "B", "C", True),
        ]:
            qs.append({"name": f"retention-{tz}-{kind}-{interval}-{start}{ret}-{cumulative}", "kind": "retention", "body": {
                "start_event": start, "return_event": ret, "kind": kind, "interval": interval, "periods": n,
                "cumulative": cumulative, "date_from": "2026-03-01", "date_to": "2026-03-15", "timezone": tz}})
        for interval, event in [("week", None), ("day", "A"), ("month", None)]:
            body = {"interval": interval, "date_from": "2026-03-02", "date_to": "2026-03-22", "timezone": tz}
            if event:
                body["event"] = event
            qs.append({"name": f"lifecycle-{tz}-{interval}-{event}", "kind": "lifecycle", "body": body})
    return qs


def local(tz: str, col: str = "ts") -> str:
    # DuckDB's own zone conversion (ICU): UTC instant -> wall-clock time in `tz`.
    return f"timezone('{tz}', to_timestamp({col} / 1000.0))"


@pytest.mark.parametrize("tz", ZONES)
def test_funnel_matches_duckdb(analysed, tz):
    answers, db = analysed
    got = [s["persons"] for s in answers[f"funnel-{tz}"]["steps"]]
    want = db.execute(f"""
        WITH e AS (SELECT person, ts, ord, event FROM ev
                   WHERE CAST({local(tz)} AS DATE) BETWEEN DATE '2026-02-27' AND DATE '2026-03-20'),
        a AS (SELECT person, ts AS t1, ord AS o1 FROM e WHERE event = 'A'),
        ab AS (SELECT a.person, a.t1, b.ts AS t2, b.ord AS o2 FROM a JOIN e b
               ON b.person = a.person AND b.event = 'B'
              AND (b.ts > a.t1 OR (b.ts = a.t1 AND b.ord > a.o1)) AND b.ts - a.t1 <= {WINDOW_MS}),
        abc AS (SELECT ab.person FROM ab JOIN e c
               ON c.person = ab.person AND c.event = 'C'
              AND (c.ts > ab.t2 OR (c.ts = ab.t2 AND c.ord > ab.o2)) AND c.ts - ab.t1 <= {WINDOW_MS})
        SELECT (SELECT count(DISTINCT person) FROM a), (SELECT count(DISTINCT person) FROM ab),
               (SELECT count(DISTINCT person) FROM abc)""").fetchone()
    assert got == list(want)
    assert got[2] > 0 and got[0] > got[2], f"the data should convert some, not all: {got}"


def test_retention_matches_duckdb(analysed):
    answers, db = analysed
    checked = 0
    for tz in ZONES:
        for kind, interval, n, start, ret, cumulative in [
            ("first_time", "week", 3, "A", "B", False),
            ("first_time", "week", 3, "A", "B", True),
            ("recurring", "day", 5, "A", "A", False),
            ("recurring", "day", 4, "B", "C", True),
        ]:
            got = answers[f"retention-{tz}-{kind}-{interval}-{start}{ret}-{cumulative}"]["cohorts"]
            p = f"date_trunc('{interval}', {local(tz)})::DATE"
            first, last = f"date_trunc('{interval}', DATE '2026-03-01')::DATE", f"date_trunc('{interval}', DATE '2026-03-15')::DATE"
            if kind == "first_time":
                cohorts = f"""SELECT person, c FROM (SELECT person, min({p}) AS c FROM ev WHERE event = '{start}' GROUP BY person)
                              WHERE c BETWEEN {first} AND {last}"""
            else:
                cohorts = f"SELECT DISTINCT person, {p} AS c FROM ev WHERE event = '{start}' AND {p} BETWEEN {first} AND {last}"
            horizon = f"({last} + INTERVAL {n} {interval})::DATE"
            cols = []
            for k in range(1, n + 1):
                if cumulative:
                    cond = f"date_diff('{interval}', coh.c, r.p) >= {k} AND r.p <= {horizon}"
                else:
                    cond = f"date_diff('{interval}', coh.c, r.p) = {k}"
                cols.append(f"count(DISTINCT CASE WHEN {cond} THEN coh.person END)")
            rows = db.execute(f"""
                WITH coh AS ({cohorts}),
                r AS (SELECT DISTINCT person, {p} AS p FROM ev WHERE event = '{ret}')
                SELECT CAST(coh.c AS VARCHAR), count(DISTINCT coh.person), {', '.join(cols)}
                FROM coh LEFT JOIN r ON r.person = coh.person GROUP BY coh.c ORDER BY coh.c""").fetchall()
            want = {r[0]: list(r[1:]) for r in rows}
            for cohort in got:
                assert cohort["values"] == want.get(cohort["date"], [0] * (n + 1)), (tz, kind, interval, cumulative, cohort["date"])
            assert set(want) <= {c["date"] for c in got}
            checked += sum(c["values"][0] for c in got)
    assert checked > 0


def test_lifecycle_matches_duckdb(analysed):
    answers, db = analysed
    for tz in ZONES:
        for interval, event in [("week", None), ("day", "A"), ("month", None)]:
            got = answers[f"lifecycle-{tz}-{interval}-{event}"]["periods"]
            lt = local(tz)
            one = f"INTERVAL 1 {interval}"
            first = f"date_trunc('{interval}', DATE '2026-03-02')::DATE"
            last = f"date_trunc('{interval}', DATE '2026-03-22')::DATE"
            filt = f"event = '{event}'" if event else "TRUE"
            rows = db.execute(f"""
                WITH created AS (SELECT person, date_trunc('{interval}', min({lt}))::DATE AS cp FROM ev GROUP BY person),
                act AS (SELECT DISTINCT person, date_trunc('{interval}', {lt})::DATE AS p FROM ev
                        WHERE {filt} AND date_trunc('{interval}', {lt})::DATE
                              BETWEEN ({first} - {one})::DATE AND ({last} + {one})::DATE),
                s AS (SELECT a.person, a.p, c.cp,
                             row_number() OVER w AS i, lag(a.p) OVER w AS prev, lead(a.p) OVER w AS nxt
                      FROM act a JOIN created c USING (person)
                      WINDOW w AS (PARTITION BY a.person ORDER BY a.p)),
                st AS (
                  SELECT p, CASE WHEN coalesce(prev, cp) = p THEN 'new'
                                 WHEN i > 1 AND prev = (p - {one})::DATE THEN 'returning'
                                 ELSE 'resurrecting' END AS status FROM s
                  UNION ALL
                  SELECT (p + {one})::DATE, 'dormant' FROM s WHERE nxt IS NULL OR nxt <> (p + {one})::DATE)
                SELECT CAST(p AS VARCHAR), status, count(*) FROM st
                WHERE p BETWEEN {first} AND {last} GROUP BY ALL""").fetchall()
            want: dict[str, dict[str, int]] = {}
            for p, status, count in rows:
                want.setdefault(p, {})[status] = count
            assert got, (tz, interval)
            for period in got:
                w = want.get(period["date"], {})
                assert [period["new"], period["returning"], period["resurrecting"], -period["dormant"]] == \
                    [w.get("new", 0), w.get("returning", 0), w.get("resurrecting", 0), w.get("dormant", 0)], \
                    (tz, interval, event, period["date"])
            assert set(want) <= {p["date"] for p in got}
