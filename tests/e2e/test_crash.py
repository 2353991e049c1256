"""The crash test: SIGKILL the server at random moments while it ingests, seals and compacts.

Several sender threads post batches (20–100 events, unique messageIds, some gzipped) and
record every messageId whose request was answered HTTP 200. The server runs with tiny
sealing and compaction thresholds so that parts are written and merged all the time, and is
killed with SIGKILL 0.3–2 s into each cycle, then restarted on the same folder. Senders
retry a batch that got no answer, as SDKs do, or sometimes give it up.

At the end every acknowledged messageId must be in the export exactly once, no messageId
twice, and the identities tied by acknowledged identify calls must still be tied.

`LODESTAR_CRASH_CYCLES` sets the number of kills (default 20; `scripts/crash-test.sh --long`
runs 100). `LODESTAR_CRASH_SEED` reuses the kill times and batch contents of an earlier run.
"""

from __future__ import annotations

import gzip
import json
import os
import random
import threading
import time
from collections import defaultdict
from typing import Any

import requests

from harness import AGGRESSIVE_STORE, assert_exactly_once

CYCLES = int(os.environ.get("LODESTAR_CRASH_CYCLES", "20"))
SEED = int(os.environ.get("LODESTAR_CRASH_SEED", str(random.randrange(1 << 30))))
SENDERS = 4
USERS = 40
# Chance that a sender gives a batch up after a failed attempt instead of retrying it.
GIVE_UP = 0.2


class Ledger:
    """What the senders know: every batch they sent, and which ones were acknowledged."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.acked: set[str] = set()
        self.sent: set[str] = set()
        # Identify calls in acknowledged batches: anonymousId -> userId.
        self.ties: dict[str, str] = {}
        self.problems: list[str] = []
        self.requests = defaultdict(int)

    def count(self, what: str) -> None:
        with self.lock:
            self.requests[what] += 1


class Target:
    """The URL of the running server, or None while it is down."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.url: str | None = None

    def set(self, url: str | None) -> None:
        with self.lock:
            self.url = url

    def get(self) -> str | None:
        with self.lock:
            return self.url


class Sender(threading.Thread):
    def __init__(self, number: int, write_key: str, target: Target, ledger: Ledger, stop: threading.Event):
        super().__init__(name=f"sender-{number}", daemon=True)
        self.number = number
        self.write_key = write_key
        self.target = target
        self.ledger = ledger
        self.stop_event = stop
        self.rng = random.Random(SEED * 100 + number)
        self.batches = 0
        self.anons = 0

    def make_batch(self) -> tuple[bytes, bool, list[dict[str, Any]]]:
        self.batches += 1
        items = []
        for i in range(self.rng.randint(20, 100)):
            mid = f"s{self.number}-b{self.batches}-{i}"
            user = f"user-{self.rng.randrange(USERS)}"
            roll = self.rng.random()
            if roll < 0.08:
                # A new device of a known user: identify ties them.
                self.anons += 1
                anon = f"anon-{self.number}-{self.anons}"
                items.append({"type": "identify", "messageId": mid, "userId": user, "anonymousId": anon,
                              "traits": {"plan": self.rng.choice(["free", "pro", "企业版"])}})
            elif roll < 0.15 and self.anons:
                anon = f"anon-{self.number}-{self.rng.randint(1, self.anons)}"
                items.append({"type": "page", "messageId": mid, "anonymousId": anon, "name": "首页"})
            else:
                items.append({"type": "track", "messageId": mid, "userId": user,
                              "event": self.rng.choice(["Viewed", "Added", "Order Completed", "支付成功"]),
                              "properties": {"amount": round(self.rng.uniform(1, 500), 2), "seq": i,
                                             "note": "x" * self.rng.randrange(0, 400)}})
        body = json.dumps({"batch": items, "sentAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())},
                          ensure_ascii=False).encode()
        compressed = self.rng.random() < 0.35
        return (gzip.compress(body) if compressed else body), compressed, items

    def run(self) -> None:
        session = requests.Session()
        pending = None
        while not self.stop_event.is_set():
            if pending is None:
                pending = self.make_batch()
                with self.ledger.lock:
                    self.ledger.sent.update(item["messageId"] for item in pending[2])
            url = self.target.get()
            if url is None:
                time.sleep(0.01)
                continue
            body, compressed, items = pending
            headers = {"Content-Type": "application/json"}
            if compressed:
                headers["Content-Encoding"] = "gzip"
            try:
                r = session.post(url + "/v1/batch", data=body, headers=headers, auth=(self.write_key, ""), timeout=20)
            except requests.RequestException:
                self.ledger.count("no answer")
                session.close()
                session = requests.Session()
                if self.rng.random() < GIVE_UP:
                    pending = None
                time.sleep(0.01)
                continue
            self.ledger.count(str(r.status_code))
            if r.status_code == 200:
                self.acknowledge(r, items)
                pending = None
            elif r.status_code == 503:
                if self.rng.random() < GIVE_UP:
                    pending = None
            else:
                with self.ledger.lock:
                    self.ledger.problems.append(f"HTTP {r.status_code}: {r.text[:300]}")
                pending = None
        session.close()

    def acknowledge(self, r: requests.Response, items: list[dict[str, Any]]) -> None:
        body = r.json()
        with self.ledger.lock:
            if body.get("stored", 0) + body.get("duplicates", 0) != len(items) or body.get("rejected"):
                self.ledger.problems.append(f"200 with odd counts for {len(items)} items: {body}")
            self.ledger.acked.update(item["messageId"] for item in items)
            for item in items:
                if item["type"] == "identify":
                    self.ledger.ties[item["anonymousId"]] = item["userId"]


def test_sigkill_loses_no_acknowledged_event(make_server):
    print(f"crash test: {CYCLES} cycles, seed {SEED} (LODESTAR_CRASH_SEED={SEED} reuses the kill times)")
    rng = random.Random(SEED)
    server = make_server(store=AGGRESSIVE_STORE, start=False)
    ledger, target, stop = Ledger(), Target(), threading.Event()
    senders = [Sender(n, server.write_key, target, ledger, stop) for n in range(SENDERS)]
    sealed = compactions = 0
    startup_times = []
    try:
        for sender in senders:
            sender.start()
        for cycle in range(CYCLES):
            startup_times.append(server.start())
            target.set(server.url)
            time.sleep(rng.uniform(0.3, 2.0))
            try:
                m = server.metrics()
                sealed += int(m.get("lodestar_parts_sealed_total", 0))
                compactions += int(m.get("lodestar_compactions_total", 0))
            except (requests.RequestException, AssertionError):
                pass
            assert server.running(), f"server exited by itself in cycle {cycle}:\n{server.log_tail()}"
            target.set(None)
            server.kill()
        # One more start on the crashed folder, with the senders still running, so that
        # the last batches are acknowledged on a recovered store.
        startup_times.append(server.start())
        target.set(server.url)
        time.sleep(0.5)
    finally:
        stop.set()
        for sender in senders:
            sender.join(timeout=30)
    target.set(None)
    assert server.stop() == 0 and not server.forced_stop, "server did not exit cleanly on SIGTERM"

    print(f"requests: {dict(ledger.requests)}; acknowledged {len(ledger.acked)} of {len(ledger.sent)} events; "
          f"parts sealed {sealed}, compactions {compactions} (sampled before kills); "
          f"slowest restart {max(startup_times):.2f} s")
    assert not ledger.problems, f"unexpected answers: {ledger.problems[:10]}"
    assert len(ledger.acked) > 1000, f"too little was acknowledged to test anything: {len(ledger.acked)}"
    assert sealed > 0 and compactions > 0, "sealing and compaction never ran; the test did not exercise them"

    events = server.ws.export_events(server.project)
    assert_exactly_once(ledger.acked, events)
    unknown = {e["messageId"] for e in events} - ledger.sent
    assert not unknown, f"export holds messageIds nobody sent: {sorted(unknown)[:5]}"
    check_identities(events, ledger.ties)
    check_no_leftover_parts(server.ws.data_dir)


def check_identities(events: list[dict[str, Any]], ties: dict[str, str]) -> None:
    """Each user, with the devices its acknowledged identify calls tied to it, is one person;
    different users are different persons (nothing ever merges two users)."""
    person_of_user: dict[str, set] = defaultdict(set)
    for e in events:
        user = e.get("userId") or ties.get(e.get("anonymousId") or "")
        if user:
            person_of_user[user].add(e.get("personId"))
    split = {u: p for u, p in person_of_user.items() if len(p) != 1}
    assert not split, f"users split over several persons after crashes: {dict(list(split.items())[:5])}"
    owners: dict[Any, list[str]] = defaultdict(list)
    for user, persons in person_of_user.items():
        owners[next(iter(persons))].append(user)
    shared = {p: users for p, users in owners.items() if len(users) > 1}
    assert not shared, f"different users share a person: {dict(list(shared.items())[:5])}"


def check_no_leftover_parts(data_dir) -> None:
    """After a clean open and close, the parts folders hold exactly the manifest's parts."""
    for manifest_path in data_dir.glob("projects/*/manifest.json"):
        manifest = json.loads(manifest_path.read_text())
        live = {f"part-{p['id']:010}.lsp" for p in manifest["parts"]}
        on_disk = {p.name for p in (manifest_path.parent / "parts").iterdir()}
        assert live <= on_disk, f"manifest names missing parts: {sorted(live - on_disk)}"
        assert on_disk == live, f"leftover files in {manifest_path.parent / 'parts'}: {sorted(on_disk - live)[:10]}"
