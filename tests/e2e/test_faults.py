"""Fault injection with libfiu (`fiu-run -x`, Debian package fiu-utils).

The server runs under libfiu's POSIX preload, and `fiu-ctrl` turns failure points on and off
while it runs. The points match how the server writes (seen with strace on a commit):

- SQLite (WAL, synchronous=FULL) appends WAL frames with `pwrite64` and makes them durable
  with `fsync` on COMMIT; the part and manifest files use `write` + `fsync`.
- `posix/io/sync/fsync` and `posix/io/sync/fdatasync` fail every sync: a failed fsync.
- `posix/io/rw/pwrite` with `failinfo=28` fails SQLite's writes with ENOSPC: a full disk.
  (libfiu sets errno to `failinfo`; `failnum` is only the value the point returns.)
- `posix/io/rw/write` is not used: the async runtime wakes its threads by writing to an
  eventfd, and failing that write tests libfiu rather than the server.

While a fault is on, no request may be answered 200; afterwards requests succeed again
without a restart, and what was acknowledged is exported exactly once.
"""

from __future__ import annotations

import errno
import os
import random
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass, field

import pytest
import requests

from harness import AGGRESSIVE_STORE, Server, assert_exactly_once
from wire import expect_ok, new_id

FSYNC = ("posix/io/sync/fsync", "posix/io/sync/fdatasync")
PWRITE = "posix/io/rw/pwrite"


def fiu_tools() -> tuple[str, str]:
    run, ctrl = shutil.which("fiu-run"), shutil.which("fiu-ctrl")
    if run and ctrl:
        return run, ctrl
    if os.environ.get("LODESTAR_SKIP_FIU") == "1":
        pytest.skip("fiu-run is not installed and LODESTAR_SKIP_FIU=1")
    pytest.fail("fiu-run / fiu-ctrl not found: run scripts/install-test-deps.sh (installs fiu-utils), "
                "or set LODESTAR_SKIP_FIU=1 to skip the fault-injection tests")


class Faults:
    """Remote control of libfiu's failure points in one server process."""

    def __init__(self, server: Server, ctrl: str, prefix: str):
        self.server, self.ctrl, self.prefix = server, ctrl, prefix
        # libfiu refuses to disable a point that is not enabled, so remember which are.
        self.enabled: set[str] = set()

    def _send(self, command: str) -> None:
        fifo = f"{self.prefix}-{self.server.pid}.in"
        assert os.path.exists(fifo), f"libfiu's control FIFO {fifo} is missing: was the server started by fiu-run?"
        proc = subprocess.run([self.ctrl, "-f", self.prefix, "-c", command, str(self.server.pid)],
                              capture_output=True, text=True, timeout=30)
        output = proc.stdout + proc.stderr
        assert proc.returncode == 0 and "error" not in output.lower(), f"fiu-ctrl -c {command!r}: {output}"

    def _enable(self, name: str, params: str = "") -> None:
        self._send(f"enable name={name}{params}")
        self.enabled.add(name)

    def fail_sync(self) -> None:
        for name in FSYNC:
            self._enable(name)

    def fail_writes_disk_full(self) -> None:
        self._enable(PWRITE, f",failinfo={errno.ENOSPC}")

    def inject(self, fault: str) -> None:
        if fault == "fsync":
            self.fail_sync()
        elif fault == "disk-full":
            self.fail_writes_disk_full()
        else:
            raise ValueError(fault)

    def clear(self) -> None:
        for name in sorted(self.enabled):
            self._send(f"disable name={name}")
        self.enabled.clear()


def start_under_fiu(make_server, tmp_path, store=None) -> tuple[Server, Faults]:
    run, ctrl = fiu_tools()
    prefix = str(tmp_path / "fiu-ctrl")
    server = make_server(store=store, wrapper=[run, "-x", "-f", prefix])
    return server, Faults(server, ctrl, prefix)


def batch(size: int = 25, user: str = "u-fault") -> list[dict]:
    return [{"type": "track", "userId": user, "event": "Faulty", "messageId": new_id("f"),
             "properties": {"i": i, "文本": "磁盘"}} for i in range(size)]


def expect_unavailable(r: requests.Response, when: str) -> None:
    assert r.status_code != 200, f"{when}: answered 200 although the events could not be made durable: {r.text}"
    assert r.status_code == 503, f"{when}: expected 503, got {r.status_code}: {r.text[:300]}"
    assert r.json().get("code") == "storage_unavailable", r.text
    assert r.headers.get("Retry-After"), f"{when}: 503 without Retry-After"


def test_storage_faults_answer_503_and_recover_without_restart(make_server, tmp_path):
    server, faults = start_under_fiu(make_server, tmp_path)
    pid = server.pid
    acked: list[str] = []
    refused: list[list[dict]] = []

    def send_ok(items):
        body = expect_ok(server.post("batch", {"batch": items}))
        assert body["stored"] + body["duplicates"] == len(items), body
        acked.extend(m["messageId"] for m in items)
        return body

    for _ in range(5):
        send_ok(batch())

    errors_before = server.metrics()["lodestar_storage_errors_total"]
    faults.fail_sync()
    for i in range(5):
        items = batch()
        expect_unavailable(server.post("batch", {"batch": items}), f"fsync failing, batch {i}")
        refused.append(items)
    faults.clear()
    assert server.metrics()["lodestar_storage_errors_total"] > errors_before

    faults.fail_writes_disk_full()
    for i in range(5):
        items = batch()
        expect_unavailable(server.post("batch", {"batch": items}), f"disk full, batch {i}")
        refused.append(items)
    faults.clear()

    # Healthy again, same process: new batches, then the refused ones retried as SDKs do.
    for _ in range(5):
        send_ok(batch())
    for items in refused:
        send_ok(items)
    assert server.running() and server.pid == pid and server.starts == 1

    assert server.stop() == 0, "server did not exit cleanly after the faults"
    events = server.ws.export_events(server.project)
    assert_exactly_once(acked, events)
    assert len(events) == len(acked) == 20 * 25


@pytest.mark.parametrize("fault", ["fsync", "disk-full"])
def test_a_batch_answered_503_is_acknowledged_only_once_durable(make_server, tmp_path, fault):
    """A 503 means "not acknowledged": the batch may or may not have reached the write-ahead
    log (a failed fsync can leave its frames readable). What must never happen is a 200 for
    data whose durability was not confirmed: while the fault lasts, a retry of the refused
    batch must not be answered "duplicate"; once it clears, the retry is acknowledged and the
    events are in the store exactly once."""
    server, faults = start_under_fiu(make_server, tmp_path)
    before = batch(5)
    expect_ok(server.post("batch", {"batch": before}))
    faults.inject(fault)
    refused = batch(5, user="u-refused")
    expect_unavailable(server.post("batch", {"batch": refused}), fault)
    expect_unavailable(server.post("batch", {"batch": refused}), f"{fault}, retry during the fault")
    faults.clear()

    retry = expect_ok(server.post("batch", {"batch": refused}))
    assert retry["stored"] + retry["duplicates"] == 5, retry
    server.stop()
    assert_exactly_once([m["messageId"] for m in before + refused], server.ws.export_events(server.project))


@dataclass
class Outcome:
    started: float
    finished: float
    status: int | None
    ids: list[str] = field(default_factory=list)


def test_faults_during_sealing_and_compaction(make_server, tmp_path):
    """Senders keep posting while faults come and go under constant sealing and compaction.
    A request that started after a fault was switched on and ended before it was switched off
    must not be answered 200; every batch is retried until acknowledged."""
    server, faults = start_under_fiu(make_server, tmp_path, store=AGGRESSIVE_STORE)
    rng = random.Random(os.environ.get("LODESTAR_FAULT_SEED", "7"))
    outcomes: list[Outcome] = []
    lock = threading.Lock()
    stop = threading.Event()

    def sender(number: int) -> None:
        session = requests.Session()
        pending = None
        deadline = None
        while True:
            if stop.is_set():
                if pending is None:
                    break
                deadline = deadline or time.monotonic() + 20
                if time.monotonic() > deadline:
                    break
            if pending is None:
                pending = batch(rng.randint(20, 60), user=f"u{number}")
            started = time.monotonic()
            try:
                r = session.post(server.url + "/v1/batch", json={"batch": pending},
                                 auth=(server.write_key, ""), timeout=20)
                status = r.status_code
            except requests.RequestException:
                status = None
            o = Outcome(started, time.monotonic(), status, [m["messageId"] for m in pending])
            with lock:
                outcomes.append(o)
            if status == 200:
                pending = None
            else:
                time.sleep(0.02)
        session.close()

    threads = [threading.Thread(target=sender, args=(n,), daemon=True) for n in range(3)]
    windows: list[tuple[str, float, float]] = []
    for t in threads:
        t.start()
    try:
        for cycle in range(6):
            time.sleep(rng.uniform(0.3, 0.8))
            kind = "fsync" if cycle % 2 == 0 else "disk-full"
            faults.inject(kind)
            on = time.monotonic()
            time.sleep(rng.uniform(0.3, 0.8))
            off = time.monotonic()
            faults.clear()
            windows.append((kind, on, off))
            assert server.running(), f"server died during a {kind} fault"
        time.sleep(1.0)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=60)

    statuses = {o.status for o in outcomes}
    assert statuses <= {200, 503}, f"unexpected answers: {statuses}"
    for kind, on, off in windows:
        inside = [o for o in outcomes if o.started > on and o.finished < off]
        wrongly_ok = [o for o in inside if o.status == 200]
        assert not wrongly_ok, f"{len(wrongly_ok)} requests answered 200 while {kind} was failing"
        assert any(o.status == 503 for o in inside), f"no request fell inside the {kind} window; widen it"
    last = max(off for _k, _on, off in windows)
    assert any(o.status == 200 and o.started > last for o in outcomes), "no success after the faults ended"

    acked = [mid for o in outcomes if o.status == 200 for mid in o.ids]
    sent = {mid for o in outcomes for mid in o.ids}
    assert set(acked) == sent, f"{len(sent - set(acked))} events were never acknowledged after recovery"
    assert server.running() and server.starts == 1
    assert server.stop() == 0
    assert_exactly_once(acked, server.ws.export_events(server.project))
