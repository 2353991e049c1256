"""Bad input against the real server: each case answers the documented status and code, stores
nothing it should not, and leaves the server healthy.

The contract: success is exactly HTTP 200 with `{"success": true, …}`; errors are JSON
`{"code", "message", "field"}` with 400 (malformed), 401 (write key), 413 (too large).
"""

from __future__ import annotations

import gzip
import json
import io
import time
import zlib
from datetime import timedelta

import pytest
import requests

from harness import assert_exactly_once
from wire import close, expect_error, expect_ok, iso, new_id, now, parse_time, track

KB = 1024


def stored_total(server) -> float:
    return server.metrics()["lodestar_events_stored_total"]


def warning_rows(server, code: str) -> list[dict]:
    return [w for w in server.warnings() if w.get("code") == code]


# --- success ---------------------------------------------------------------------------

ONE_OF_EACH = {
    "track": {"userId": "u1", "event": "Signed Up", "properties": {"plan": "pro"}},
    "identify": {"userId": "u1", "anonymousId": "a1", "traits": {"email": "u1@example.com"}},
    "page": {"anonymousId": "a1", "name": "Home", "category": "Docs", "properties": {"url": "http://x/"}},
    "screen": {"userId": "u1", "name": "Main", "category": "App"},
    "group": {"userId": "u1", "groupId": "g1", "traits": {"name": "Acme"}},
    "alias": {"previousId": "a2", "userId": "u1"},
    "batch": {"batch": [{"type": "track", "userId": "u1", "event": "Batched"}]},
}


@pytest.mark.parametrize("call", sorted(ONE_OF_EACH))
def test_success_is_exactly_200_with_counts(lodestar, call):
    r = lodestar.post(call, ONE_OF_EACH[call])
    body = expect_ok(r)
    assert r.headers.get("content-type", "").startswith("application/json")
    assert (body["stored"], body["duplicates"], body["rejected"], body["warnings"]) == (1, 0, 0, 0), body


def test_write_key_in_body_is_accepted(lodestar):
    # analytics-python sends the key both ways; a client may send it in the body only.
    body = {"batch": [track()], "writeKey": lodestar.write_key}
    expect_ok(lodestar.post("batch", body, key=None))


# --- malformed bodies --------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw, code",
    [
        (b'{"userId": "u1", "event": ', "invalid_json"),
        (b"not json at all", "invalid_json"),
        (b'{"userId": "u1", "event": "A",}', "invalid_json"),
        (b'{"userId": "\xff\xfe", "event": "A"}', "invalid_json"),
        (b"[1, 2, 3]", "invalid_body"),
    ],
    ids=["truncated", "text", "trailing-comma", "bad-utf8", "array"],
)
def test_malformed_body_is_400(lodestar, raw, code):
    before = stored_total(lodestar)
    expect_error(lodestar.post("track", raw), 400, code)
    assert stored_total(lodestar) == before
    # The refused request is kept in the quarantine so the user can see it.
    assert warning_rows(lodestar, code), f"no {code} row in the warnings: {lodestar.warnings()}"


def test_batch_that_is_not_an_array_is_400(lodestar):
    expect_error(lodestar.post("batch", {"batch": {"type": "track"}}), 400, "invalid_batch")


@pytest.mark.parametrize(
    "call, body, code, field",
    [
        ("track", {"userId": {"id": 1}, "event": "A"}, "invalid_type", "userId"),
        ("track", {"anonymousId": ["a"], "event": "A"}, "invalid_type", "anonymousId"),
        ("track", {"userId": "u1", "event": "A", "properties": "cheap"}, "invalid_type", "properties"),
        ("track", {"userId": "u1", "event": 42}, "invalid_type", "event"),
        ("track", {"userId": "u1", "event": "A", "context": "web"}, "invalid_type", "context"),
        ("identify", {"userId": "u1", "traits": ["vip"]}, "invalid_type", "traits"),
        ("track", {"userId": "u1", "event": "A", "timestamp": "yesterday"}, "invalid_timestamp", "timestamp"),
        ("track", {"userId": "u1", "event": "A", "timestamp": 1700000000}, "invalid_timestamp", "timestamp"),
    ],
    ids=["userId-object", "anonymousId-array", "properties-string", "event-number", "context-string",
         "traits-array", "timestamp-text", "timestamp-number"],
)
def test_wrong_type_is_400_with_field(lodestar, call, body, code, field):
    before = stored_total(lodestar)
    expect_error(lodestar.post(call, body), 400, code, field)
    assert stored_total(lodestar) == before


@pytest.mark.parametrize(
    "call, body, code, field",
    [
        ("track", {"event": "A"}, "missing_id", "userId"),
        ("track", {"userId": "   ", "anonymousId": "", "event": "A"}, "missing_id", "userId"),
        ("track", {"userId": None, "anonymousId": None, "event": "A"}, "missing_id", "userId"),
        ("identify", {"traits": {"email": "x@example.com"}}, "missing_id", "userId"),
        ("track", {"userId": "u1"}, "missing_field", "event"),
        ("alias", {"userId": "u1"}, "missing_field", "previousId"),
        ("group", {"userId": "u1", "traits": {}}, "missing_field", "groupId"),
    ],
    ids=["no-ids", "blank-ids", "null-ids", "identify-no-ids", "track-no-event", "alias-no-previousId",
         "group-no-groupId"],
)
def test_missing_required_field_is_400(lodestar, call, body, code, field):
    before = stored_total(lodestar)
    expect_error(lodestar.post(call, body), 400, code, field)
    assert stored_total(lodestar) == before


# --- write keys --------------------------------------------------------------------------


def test_unknown_write_key_is_401(lodestar):
    expect_error(lodestar.post("track", track(), key="lsk_not_a_real_key"), 401, "invalid_write_key")
    body = {"batch": [track()], "writeKey": "lsk_not_a_real_key"}
    expect_error(lodestar.post("batch", body, key=None), 401, "invalid_write_key")


def test_missing_write_key_is_401(lodestar):
    before = stored_total(lodestar)
    expect_error(lodestar.post("track", track(), key=None), 401, "missing_write_key")
    expect_error(lodestar.post("batch", {"batch": [track()]}, key=None), 401, "missing_write_key")
    assert stored_total(lodestar) == before


def test_a_key_rotated_from_the_command_line_is_refused_by_the_running_server(lodestar):
    old = lodestar.write_key
    assert lodestar.post("track", track(), key=old).status_code == 200
    out = lodestar.ws.cli("projects", "rotate-key", lodestar.project).stdout
    lines = [line for line in out.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("lsk_"), out
    new = lines[0].strip()
    # The server never restarted: the very next request with the old key is refused.
    expect_error(lodestar.post("track", track(), key=old), 401, "invalid_write_key")
    assert lodestar.post("track", track(), key=new).status_code == 200
    # An unknown project is told as such.
    proc = lodestar.ws.cli("projects", "rotate-key", "no-such-project", check=False)
    assert proc.returncode != 0 and "no-such-project" in proc.stderr


# --- sizes -------------------------------------------------------------------------------


def padded_event(size: int, **fields) -> dict:
    """A track call whose compact JSON is about `size` bytes."""
    msg = track(**fields)
    msg["properties"] = {"pad": ""}
    base = len(json.dumps(msg, separators=(",", ":")).encode())
    msg["properties"]["pad"] = "x" * max(0, size - base)
    return msg


def test_request_over_500_kb_is_413(lodestar):
    batch = [padded_event(20 * KB) for _ in range(30)]  # ~600 KB, every item within 32 KB
    before = stored_total(lodestar)
    expect_error(lodestar.post("batch", {"batch": batch}), 413, "payload_too_large")
    assert stored_total(lodestar) == before
    # Just under the limit is fine.
    expect_ok(lodestar.post("batch", {"batch": batch[:20]}))


def test_request_over_500_kb_without_content_length_is_413(lodestar):
    raw = json.dumps({"batch": [padded_event(20 * KB) for _ in range(30)]}).encode()
    chunks = (raw[i:i + 8192] for i in range(0, len(raw), 8192))  # sent chunked
    r = lodestar.session.post(lodestar.url + "/v1/batch", data=chunks, auth=(lodestar.write_key, ""),
                              headers={"Content-Type": "application/json"}, timeout=30)
    expect_error(r, 413, "payload_too_large")


def test_event_over_32_kb_is_413(lodestar):
    before = stored_total(lodestar)
    expect_error(lodestar.post("track", padded_event(40 * KB)), 413, "event_too_large")
    assert stored_total(lodestar) == before
    body = expect_ok(lodestar.post("track", padded_event(30 * KB)))
    assert body["stored"] == 1


def test_event_over_32_kb_in_a_batch_is_quarantined_and_neighbours_stored(lodestar):
    good = [track(), track()]
    big = padded_event(40 * KB)
    body = expect_ok(lodestar.post("batch", {"batch": [good[0], big, good[1]]}))
    assert (body["stored"], body["rejected"]) == (2, 1), body
    rows = warning_rows(lodestar, "event_too_large")
    assert any(w["field"].startswith("batch[1]") for w in rows), rows


def gzip_of_zeros(total: int) -> bytes:
    out = io.BytesIO()
    chunk = bytes(1 << 20)
    with gzip.GzipFile(fileobj=out, mode="wb", compresslevel=9) as f:
        for _ in range(total // len(chunk)):
            f.write(chunk)
    return out.getvalue()


@pytest.fixture(scope="module")
def gzip_bomb() -> bytes:
    bomb = gzip_of_zeros(100 * 1024 * KB)
    assert len(bomb) < 200 * KB, len(bomb)
    return bomb


@pytest.mark.parametrize("declared", [True, False], ids=["content-encoding", "sniffed"])
def test_gzip_bomb_is_413_and_server_stays_healthy(lodestar, gzip_bomb, declared):
    headers = {"Content-Encoding": "gzip"} if declared else {}
    rss_before = lodestar.rss_kib()
    started = time.monotonic()
    r = lodestar.post("batch", gzip_bomb, headers=headers)
    elapsed = time.monotonic() - started
    expect_error(r, 413, "payload_too_large")
    assert elapsed < 5, f"the bomb took {elapsed:.1f} s to refuse"
    assert lodestar.running(), "server died on a gzip bomb"
    grown = lodestar.rss_kib() - rss_before
    assert grown < 64 * KB, f"server memory grew by {grown} KiB on a gzip bomb"
    assert requests.get(lodestar.url + "/healthz", timeout=5).status_code == 200
    expect_ok(lodestar.post("track", track()))


def test_gzip_over_limit_after_decompression_is_413(lodestar):
    batch = [padded_event(20 * KB) for _ in range(30)]  # ~600 KB of JSON, small once gzipped
    raw = json.dumps({"batch": batch}).encode()
    assert len(zlib.compress(raw)) < 100 * KB
    expect_error(lodestar.post("batch", {"batch": batch}, gzip=True), 413, "payload_too_large")


def test_body_declared_gzip_but_plain_is_400(lodestar):
    expect_error(lodestar.post("track", track(), headers={"Content-Encoding": "gzip"}), 400, "invalid_gzip")


def nested(depth: int) -> str:
    """A properties object `depth` levels deep, as JSON text."""
    return '{"a":' * depth + "1" + "}" * depth


@pytest.mark.parametrize("depth", [200, 50_000])
def test_deeply_nested_json_is_400_and_server_stays_healthy(lodestar, depth):
    raw = ('{"userId":"u1","event":"Deep","properties":' + nested(depth) + "}").encode()
    expect_error(lodestar.post("track", raw), 400, "invalid_json")
    assert lodestar.running()
    expect_ok(lodestar.post("track", track()))


def test_the_deepest_accepted_event_survives_sealing_and_export(make_server):
    """Whatever nesting the API accepts, the store must give back: through the tail, a sealed
    part and the export."""
    server = make_server(store={"seal_rows": 1, "seal_interval_ms": 50, "maintenance_interval_ms": 20})
    accepted = {}
    for depth in range(140, 0, -1):
        msg_id = new_id("deep")
        raw = ('{"userId":"u-deep","event":"Deep","messageId":"%s","properties":%s}' % (msg_id, nested(depth)))
        r = server.post("track", raw.encode())
        if r.status_code == 200:
            accepted[msg_id] = depth
            if len(accepted) == 3:
                break
        else:
            expect_error(r, 400, "invalid_json")
    assert accepted, "no nesting depth was accepted"
    deadline = time.monotonic() + 20
    while server.metrics().get("lodestar_parts_sealed_total", 0) < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.metrics().get("lodestar_parts_sealed_total", 0) >= 1, "nothing was sealed"
    server.stop()
    by_id = {e["messageId"]: e for e in server.ws.export_events(server.project)}
    for msg_id, depth in accepted.items():
        assert msg_id in by_id, f"an event nested {depth} deep was accepted (200) but is not in the export"
        assert by_id[msg_id]["properties"] == json.loads(nested(depth)), f"depth {depth} changed on the way"


# --- mixed batches -----------------------------------------------------------------------


def test_mixed_batch_stores_good_items_and_quarantines_bad_ones(lodestar):
    good = {
        0: track("u-mixed", "Good One"),
        2: {"type": "identify", "userId": "u-mixed", "traits": {"plan": "pro"}, "messageId": new_id()},
        6: {"type": "page", "anonymousId": "a-mixed", "name": "Home", "messageId": new_id()},
    }
    bad = {
        1: ({"type": "track", "event": "No Ids", "messageId": new_id("bad")}, "missing_id", "batch[1].userId"),
        3: ({"type": "track", "userId": {"x": 1}, "event": "E", "messageId": new_id("bad")}, "invalid_type",
            "batch[3].userId"),
        4: ({"type": "bogus", "userId": "u", "messageId": new_id("bad")}, "unknown_type", "batch[4].type"),
        5: ({"type": "track", "userId": "u", "event": "E", "properties": "s", "messageId": new_id("bad")},
            "invalid_type", "batch[5].properties"),
        7: (42, "invalid_type", "batch[7]"),
    }
    items = [good[i] if i in good else bad[i][0] for i in range(8)]
    body = expect_ok(lodestar.post("batch", {"batch": items}))
    assert (body["stored"], body["rejected"]) == (3, 5), body

    rows = lodestar.warnings()
    for index, (_item, code, field) in bad.items():
        matching = [w for w in rows if w.get("code") == code and w.get("field") == field]
        assert matching, f"no warning with code {code} and field {field} in {rows}"
        assert matching[0].get("message"), matching[0]

    lodestar.stop()
    events = lodestar.ws.export_events(lodestar.project)
    assert_exactly_once([m["messageId"] for m in good.values()], events)
    exported = {e["messageId"] for e in events}
    leaked = {item["messageId"] for item, _c, _f in bad.values() if isinstance(item, dict)} & exported
    assert not leaked, f"rejected items were stored: {leaked}"
    assert len(events) == 3, [e["messageId"] for e in events]


# --- deduplication -----------------------------------------------------------------------


def test_duplicate_message_ids_are_stored_once_across_requests_and_restart(lodestar):
    first = [track("u-dup", f"E{i}") for i in range(5)]
    assert expect_ok(lodestar.post("batch", {"batch": first}))["stored"] == 5

    again = expect_ok(lodestar.post("batch", {"batch": first}))
    assert (again["stored"], again["duplicates"]) == (0, 5), again

    one_new = track("u-dup", "New")
    mixed = expect_ok(lodestar.post("batch", {"batch": [first[0], one_new]}))
    assert (mixed["stored"], mixed["duplicates"]) == (1, 1), mixed

    twin = track("u-dup", "Twin")
    within = expect_ok(lodestar.post("batch", {"batch": [twin, dict(twin)]}))
    assert (within["stored"], within["duplicates"]) == (1, 1), within

    single = expect_ok(lodestar.post("track", first[1]))
    assert (single["stored"], single["duplicates"]) == (0, 1), single

    assert lodestar.stop() == 0 and not lodestar.forced_stop, "server did not exit cleanly on SIGTERM"
    lodestar.start()
    after_restart = expect_ok(lodestar.post("batch", {"batch": first + [one_new, twin]}))
    assert (after_restart["stored"], after_restart["duplicates"]) == (0, 7), after_restart

    lodestar.stop()
    events = lodestar.ws.export_events(lodestar.project)
    ids = [m["messageId"] for m in first + [one_new, twin]]
    assert_exactly_once(ids, events)
    assert len(events) == 7


# --- time --------------------------------------------------------------------------------

MS = timedelta(milliseconds=1)


def test_time_correction_and_clamping(lodestar):
    skewed_original = parse_time("2001-02-03T04:05:06.000Z")  # the client's clock is years off
    skew = timedelta(seconds=3, milliseconds=500)
    historical = "2019-05-01T12:34:56.789Z"
    sent = {
        # originalTimestamp + sentAt, no timestamp: corrected for the client's clock.
        "skew-single": track("u-time", "Skew Single", originalTimestamp=iso(skewed_original),
                             sentAt=iso(skewed_original + skew)),
        "skew-batch": track("u-time", "Skew Batch", originalTimestamp=iso(skewed_original)),
        # An explicit timestamp is kept as sent (historical import), whatever else is there.
        "historical": track("u-time", "Historical", timestamp=historical,
                            originalTimestamp=iso(skewed_original), sentAt=iso(skewed_original + skew)),
        "near-future": track("u-time", "Near Future", timestamp=iso(now() + timedelta(hours=1))),
        "far-future": track("u-time", "Far Future", timestamp=iso(now() + timedelta(days=10))),
    }
    before = now()
    expect_ok(lodestar.post("track", sent["skew-single"]))
    expect_ok(lodestar.post("batch", {"batch": [sent["skew-batch"]], "sentAt": iso(skewed_original + skew)}))
    expect_ok(lodestar.post("track", sent["historical"]))
    expect_ok(lodestar.post("track", sent["near-future"]))
    clamped = expect_ok(lodestar.post("track", sent["far-future"]))
    after = now()
    assert clamped["warnings"] >= 1, clamped
    assert warning_rows(lodestar, "timestamp_clamped"), lodestar.warnings()

    lodestar.stop()
    by_id = {e["messageId"]: e for e in lodestar.ws.export_events(lodestar.project)}
    got = {name: by_id[msg["messageId"]] for name, msg in sent.items()}
    for name, e in got.items():
        received = parse_time(e["receivedAt"])
        assert before - timedelta(seconds=1) <= received <= after + timedelta(seconds=1), (name, e)

    for name in ("skew-single", "skew-batch"):
        e = got[name]
        expected = parse_time(e["receivedAt"]) - skew
        assert close(parse_time(e["timestamp"]), expected, 2 * MS), (
            f"{name}: timestamp {e['timestamp']} should be receivedAt − (sentAt − originalTimestamp) = {iso(expected)}")
        assert close(parse_time(e["originalTimestamp"]), skewed_original, MS), e

    assert parse_time(got["historical"]["timestamp"]) == parse_time(historical), got["historical"]
    near = sent["near-future"]["timestamp"]
    assert close(parse_time(got["near-future"]["timestamp"]), parse_time(near), MS), got["near-future"]
    far = got["far-future"]
    assert close(parse_time(far["timestamp"]), parse_time(far["receivedAt"]), timedelta(seconds=1)), (
        f"far-future timestamp should be clamped to receivedAt: {far}")


# --- metrics -----------------------------------------------------------------------------


def test_metrics_counters_move(lodestar):
    m0 = lodestar.metrics()
    for name in ("lodestar_events_received_total", "lodestar_events_stored_total",
                 "lodestar_events_rejected_total", "lodestar_http_request_duration_seconds_count"):
        assert name in m0, f"/metrics lacks {name}"

    batch = [track("u-m", "A"), track("u-m", "B"), track("u-m", "C"), {"type": "track", "event": "no ids"}]
    expect_ok(lodestar.post("batch", {"batch": batch}))
    expect_ok(lodestar.post("batch", {"batch": batch[:1]}))  # a duplicate
    expect_error(lodestar.post("track", b"{oops"), 400, "invalid_json")

    m1 = lodestar.metrics()

    def delta(name):
        return m1.get(name, 0) - m0.get(name, 0)

    assert delta("lodestar_events_stored_total") == 3, delta("lodestar_events_stored_total")
    assert delta("lodestar_events_duplicate_total") == 1
    assert delta("lodestar_events_received_total") == 5
    assert delta("lodestar_events_rejected_total") == 2
    assert delta("lodestar_http_request_duration_seconds_count") == 3
    assert delta('lodestar_http_requests_total{route="batch",status="200"}') == 2
    assert delta('lodestar_http_requests_total{route="track",status="400"}') == 1
