"""A saved segment's members exported as Parquet and read by DuckDB (PyPI `duckdb`), and posted
to a webhook receiver written here with Python's standard library, through the API and the CLI.

DuckDB reads the Parquet file with its own reader: the column types (UBIGINT ids, VARCHAR[]
id lists, DOUBLE, BOOLEAN and VARCHAR attributes) and every value are checked against the
JSON lines export of the same segment. The receiver checks each batch's HMAC-SHA256 signature
with Python's `hmac` module, independently of the server's implementation.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import duckdb

from harness import Server
from wire import expect_ok

USERS = 11
ATTRIBUTES = ["plan", "score", "vip", "address", "address.city"]
SECRET = "e2e-secret"


def identifies() -> list[dict[str, Any]]:
    calls = []
    for i in range(USERS):
        traits: dict[str, Any] = {"plan": "专业版" if i % 3 == 0 else "free", "score": i * 1.5}
        if i % 2 == 0:
            traits["vip"] = i % 4 == 0
        if i % 5 != 4:
            traits["address"] = {"city": "杭州" if i % 2 else "上海", "zip": str(310000 + i)}
        calls.append({"type": "identify", "userId": f"u{i}", "anonymousId": f"a{i}",
                      "messageId": f"seg-{i}", "traits": traits})
    return calls


class Receiver:
    """An HTTP server on a free loopback port that records every POST and answers 200."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        received = self.requests

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (the standard library's name)
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def members(self) -> list[dict[str, Any]]:
        """Every member of every batch, after checking each batch's signature and headers."""
        out = []
        for headers, body in self.requests:
            assert headers["content-type"] == "application/json"
            mac = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
            assert headers["x-lodestar-signature"] == f"sha256={mac}", headers
            out.extend(json.loads(body)["members"])
        return out


def check_parquet_against_jsonl(path: Path, lines: list[dict[str, Any]]) -> None:
    con = duckdb.connect()
    types = dict(con.execute(f"SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM read_parquet('{path}'))").fetchall())
    assert types == {
        "person_id": "UBIGINT", "user_ids": "VARCHAR[]", "anonymous_ids": "VARCHAR[]",
        "plan": "VARCHAR", "score": "DOUBLE", "vip": "BOOLEAN", "address": "VARCHAR", "address.city": "VARCHAR",
    }, types
    cursor = con.execute(f"SELECT * FROM read_parquet('{path}') ORDER BY person_id")
    names = [d[0] for d in cursor.description]
    rows = [dict(zip(names, r)) for r in cursor.fetchall()]
    lines = sorted(lines, key=lambda l: l["person_id"])
    assert len(rows) == len(lines) == USERS
    for row, line in zip(rows, lines):
        assert row["person_id"] == line["person_id"]
        assert row["user_ids"] == line["user_ids"] and row["anonymous_ids"] == line["anonymous_ids"]
        attrs = line["attributes"]
        assert row["plan"] == attrs["plan"]
        assert row["score"] == attrs["score"]
        assert row["vip"] == attrs["vip"]
        address = None if row["address"] is None else json.loads(row["address"])
        assert address == attrs["address"]
        assert row["address.city"] == attrs["address.city"]
    # DuckDB's own list and JSON functions work on the columns.
    n = con.execute(f"SELECT count(*) FROM read_parquet('{path}') WHERE list_contains(user_ids, 'u3')").fetchone()[0]
    assert n == 1


def test_segment_parquet_and_webhook_through_the_api_and_the_cli(lodestar: Server, tmp_path: Path) -> None:
    srv = lodestar
    expect_ok(srv.post("batch", {"batch": identifies()}))
    r = srv.session.post(f"{srv.url}/api/projects/{srv.project}/segments",
                         json={"name": "all", "user_ids": [f"u{i}" for i in range(USERS)]}, timeout=30)
    assert r.status_code == 201, r.text
    seg = r.json()["id"]
    base = f"{srv.url}/api/projects/{srv.project}/segments/{seg}/export"
    attrs = ",".join(ATTRIBUTES)

    r = srv.session.get(base, params={"format": "jsonl", "attributes": attrs}, timeout=30)
    assert r.status_code == 200, r.text
    lines = [json.loads(line) for line in r.text.splitlines() if line.strip()]
    r = srv.session.get(base, params={"format": "parquet", "attributes": attrs}, timeout=30)
    assert r.status_code == 200, r.text
    api_parquet = tmp_path / "api.parquet"
    api_parquet.write_bytes(r.content)
    check_parquet_against_jsonl(api_parquet, lines)

    receiver = Receiver()
    try:
        r = srv.session.post(f"{base}/webhook", json={"url": receiver.url, "attributes": ATTRIBUTES,
                                                      "batch_size": 3, "secret": SECRET}, timeout=60)
        assert r.status_code == 200, r.text
        report = r.json()
        assert (report["batches"], report["batches_sent"], report["members_sent"]) == (4, 4, USERS), report
        members = receiver.members()
        assert sorted(m["person_id"] for m in members) == sorted(l["person_id"] for l in lines)
        assert {m["person_id"]: m for m in members} == {l["person_id"]: l for l in lines}
    finally:
        receiver.close()

    # The CLI (the server stopped: it owns the data folder): Parquet to a file, then the webhook.
    srv.stop()
    cli_parquet = tmp_path / "cli.parquet"
    srv.ws.cli("export", "segment", "--project", srv.project, "--segment", str(seg), "--attributes", attrs,
               "--format", "parquet", "--out", str(cli_parquet))
    check_parquet_against_jsonl(cli_parquet, lines)
    receiver = Receiver()
    try:
        out = srv.ws.cli("export", "segment", "--project", srv.project, "--segment", str(seg), "--attributes", attrs,
                         "--webhook", receiver.url, "--batch-size", "5", "--secret", SECRET)
        report = json.loads(out.stdout)
        assert (report["batches"], report["members_sent"], report["failed"]) == (3, USERS, None), report
        assert len(receiver.requests) == 3
        assert sorted(m["person_id"] for m in receiver.members()) == sorted(l["person_id"] for l in lines)
    finally:
        receiver.close()
    # An unreachable receiver: the CLI fails and says which batch and why.
    failed = srv.ws.cli("export", "segment", "--project", srv.project, "--segment", str(seg),
                        "--webhook", "https://example.com/hook", check=False)
    assert failed.returncode != 0 and "https:// is not supported yet" in failed.stderr, failed.stderr
