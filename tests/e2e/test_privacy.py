"""Deleting a person through the admin API and the CLI, against the real binary.

A person is deleted while sealing and compaction run all the time: their lookups answer 404
at once, the job reaches `done`, later events with their ids are acknowledged (HTTP 200) but
not stored, the export and every file of the data folder lack them, everyone else's
acknowledged events are there exactly once, and the audit trail names no id. A server
killed with SIGKILL at random moments after deletion requests finishes the jobs after a
restart. The CLI deletes with `--wait` and lists jobs and the audit trail.
"""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

from harness import AGGRESSIVE_STORE, Server, assert_exactly_once
from wire import expect_ok, iso, now

OTHERS = 12


def batch_for(user: str, anon: str, n: int, tag: str) -> list[dict[str, Any]]:
    """An identify tying `anon` to `user`, then `n` purchases, with unique messageIds."""
    t = now()
    calls = [
        {"type": "identify", "userId": user, "anonymousId": anon, "messageId": f"{tag}-{user}-id",
         "traits": {"email": f"{user}@example.com"}, "timestamp": iso(t)},
    ]
    for i in range(n):
        calls.append({"type": "track", "userId": user, "event": "Order Completed", "messageId": f"{tag}-{user}-{i}",
                      "properties": {"revenue": 10 + i, "buyer": user}, "timestamp": iso(t)})
    return calls


def send(srv: Server, calls: list[dict[str, Any]], acked: list[str]) -> dict[str, Any]:
    body = expect_ok(srv.post("batch", {"batch": calls}))
    acked.extend(c["messageId"] for c in calls)
    return body


def admin(srv: Server, method: str, path: str, **kwargs: Any):
    return srv.session.request(method, f"{srv.url}/api/projects/{srv.project}{path}", timeout=30, **kwargs)


def delete(srv: Server, **who: Any) -> dict[str, Any]:
    r = admin(srv, "POST", "/deletions", json={**who, "actor": "e2e"})
    assert r.status_code == 202, f"{r.status_code}: {r.text[:300]}"
    job = r.json()["deletion"]
    assert job["status"] in ("pending", "running", "done"), job
    return job


def wait_done(srv: Server, job_id: int, timeout: float = 60.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        r = admin(srv, "GET", f"/deletions/{job_id}")
        assert r.status_code == 200, r.text[:300]
        job = r.json()["deletion"]
        if job["status"] == "done":
            return job
        assert job["status"] != "failed", job
        assert time.monotonic() < deadline, f"deletion {job_id} not done: {job}"
        time.sleep(0.1)


def files_containing(root: Path, needle: bytes) -> list[str]:
    return [str(p) for p in root.rglob("*") if p.is_file() and needle in p.read_bytes()]


def assert_absent(srv: Server, users: list[str], acked_others: list[str]) -> None:
    """With the server stopped: the export lacks `users`, holds the others exactly once, and
    no file of the data folder holds the users' ids."""
    events = srv.ws.export_events(srv.project)
    for e in events:
        assert e.get("userId") not in users and e.get("anonymousId") not in {f"dev-{u}" for u in users}, e
    kept = [e for e in events if e["messageId"] in set(acked_others)]
    assert_exactly_once(acked_others, kept, "acknowledged for other persons")
    projects = srv.ws.data_dir / "projects"
    for u in users:
        assert files_containing(projects, f'"{u}"'.encode()) == [], u
        assert files_containing(projects, f'"dev-{u}"'.encode()) == [], u


def test_deleted_person_is_gone_suppressed_and_audited(make_server) -> None:
    srv = make_server(store=AGGRESSIVE_STORE)
    acked_others: list[str] = []
    for round_ in range(3):
        for i in range(OTHERS):
            send(srv, batch_for(f"user{i}", f"dev-user{i}", 20, f"r{round_}"), acked_others)
        send(srv, batch_for("alice", "dev-alice", 20, f"r{round_}"), [])
    r = admin(srv, "GET", "/persons", params={"user_id": "alice"})
    assert r.status_code == 200, r.text[:300]

    job = delete(srv, anonymous_id="dev-alice")
    for params in ({"user_id": "alice"}, {"anonymous_id": "dev-alice"}):
        r = admin(srv, "GET", "/persons", params=params)
        assert r.status_code == 404 and r.json()["code"] == "unknown_person", r.text[:300]
    done = wait_done(srv, job["id"])
    assert done["events"] == 63 and done["persons"] == 1 and done["identities"] == 2, done

    # Suppressed: acknowledged with HTTP 200, not stored.
    body = send(srv, batch_for("alice", "dev-alice", 5, "late"), [])
    assert body["stored"] == 0, body
    body = send(srv, [{"type": "track", "anonymousId": "dev-alice", "event": "Page Viewed", "messageId": "late-anon"}], [])
    assert body["stored"] == 0, body
    assert srv.metrics()["lodestar_events_suppressed_total"] == 7
    send(srv, batch_for("user0", "dev-user0", 3, "late"), acked_others)
    r = admin(srv, "GET", "/persons", params={"user_id": "alice"})
    assert r.status_code == 404

    r = admin(srv, "GET", "/audit")
    assert r.status_code == 200
    actions = [a["action"] for a in r.json()["audit"]]
    assert actions == ["deletion_done", "deletion_requested", "suppressed"], actions
    assert "alice" not in r.text
    r = admin(srv, "GET", "/deletions")
    assert [d["status"] for d in r.json()["deletions"]] == ["done"]
    r = admin(srv, "POST", "/deletions", json={"user_id": "alice"})
    assert r.status_code == 404 and r.json()["code"] == "unknown_person"

    srv.stop()
    assert_absent(srv, ["alice"], acked_others)

    # The CLI: delete another person and wait; list the jobs and the trail.
    out = srv.ws.cli("persons", "delete", "--project", srv.project, "--user-id", "user1", "--wait", "--actor", "cli-test").stdout
    assert '"status": "done"' in out, out
    listing = srv.ws.cli("deletions", "list", "--project", srv.project).stdout
    assert listing.count("done") == 2, listing
    trail = srv.ws.cli("audit", "--project", srv.project).stdout
    assert "cli-test" in trail and "user1" not in trail, trail
    others = [m for m in acked_others if "-user1-" not in m]
    assert_absent(srv, ["alice", "user1"], others)


def test_jobs_interrupted_by_sigkill_finish_after_restart(make_server) -> None:
    srv = make_server(store=AGGRESSIVE_STORE)
    rng = random.Random(7)
    acked_others: list[str] = []
    victims = [f"victim{v}" for v in range(4)]
    for round_ in range(4):
        for i in range(OTHERS):
            send(srv, batch_for(f"user{i}", f"dev-user{i}", 15, f"r{round_}"), acked_others)
        for v in victims:
            send(srv, batch_for(v, f"dev-{v}", 15, f"r{round_}"), [])
    jobs = []
    for v in victims:
        jobs.append(delete(srv, user_id=v)["id"])
        # Sometimes at once, sometimes while the job seals and rewrites parts.
        time.sleep(rng.uniform(0.0, 0.4))
        srv.kill()
        srv.start()
        # Acknowledged before the deletion was: lookups stay 404 after the crash.
        r = admin(srv, "GET", "/persons", params={"user_id": v})
        assert r.status_code == 404, r.text[:300]
        send(srv, batch_for("user0", "dev-user0", 2, f"after-{v}"), acked_others)
    for job_id in jobs:
        done = wait_done(srv, job_id)
        assert done["events"] == 64, done
    srv.stop()
    assert_absent(srv, victims, acked_others)
