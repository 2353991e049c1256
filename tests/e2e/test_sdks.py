"""The real Segment and RudderStack Python SDKs against the real server.

Each SDK sends every call type, with gzip on and off, with Chinese text in names, properties
and traits. What the SDK enqueued (the message each call returns) must come back from the
export unchanged: same messageIds exactly once, same types, names, ids, properties and traits,
and one person for the anonymous visitor, the aliased device and the identified user.
"""

from __future__ import annotations

import threading
import uuid
from datetime import timedelta
from typing import Any, Callable

import pytest
import requests

import rudderstack.analytics as rudder_analytics
import rudderstack.analytics.request as rudder_request
import segment.analytics as segment_analytics
import segment.analytics.request as segment_request

from harness import assert_exactly_once
from wire import now, parse_time


class RecordingSession(requests.Session):
    """A requests session that remembers every request the SDK made and the status it got."""

    def __init__(self) -> None:
        super().__init__()
        self.lock = threading.Lock()
        self.calls: list[tuple[str, dict[str, str], int]] = []

    def request(self, method, url, *args, **kwargs):
        response = super().request(method, url, *args, **kwargs)
        with self.lock:
            self.calls.append((url, dict(kwargs.get("headers") or {}), response.status_code))
        return response


def segment_client(write_key: str, host: str, gzip: bool, on_error: Callable) -> Any:
    return segment_analytics.Client(
        write_key, host=host, gzip=gzip, max_retries=1, on_error=on_error, upload_interval=0.1
    )


def rudder_client(write_key: str, host: str, gzip: bool, on_error: Callable) -> Any:
    # The data plane URL must be explicit: the default comes from the environment.
    return rudder_analytics.Client(
        write_key, host=host, gzip=gzip, max_retries=1, on_error=on_error, upload_interval=0.1
    )


SDKS = {
    "segment": (segment_client, segment_request),
    "rudder": (rudder_client, rudder_request),
}


def send_scenario(client: Any, tag: str) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """A visitor browses anonymously, signs up on another device, identifies, and buys.

    Returns the messages as the SDK enqueued them, and the ids used."""
    ids = {
        "anon": f"anon-{tag}",
        "device": f"device-{tag}",
        "user": f"用户-{tag}",
        "group": f"group-{tag}",
    }
    sent: list[dict[str, Any]] = []

    def enqueue(result: tuple[bool, dict[str, Any]], message_id: str) -> None:
        ok, msg = result
        assert ok, f"the SDK refused to enqueue {msg}"
        assert msg["messageId"] == message_id, msg
        sent.append(msg)

    def mid() -> str:
        return str(uuid.uuid4())

    # Phase 1, before identify: an anonymous visitor, and an anonymous second device.
    m = mid()
    enqueue(client.track(anonymous_id=ids["anon"], event="浏览商品", message_id=m,
                         properties={"商品": "西湖龙井", "价格": 88.5, "数量": 2, "标签": ["绿茶", "春茶"],
                                     "产地": {"省": "浙江", "市": "杭州"}, "有货": True}), m)
    m = mid()
    enqueue(client.page(anonymous_id=ids["anon"], category="商城", name="首页", message_id=m,
                        properties={"url": "https://shop.example.cn/首页", "来源": "微信"}), m)
    m = mid()
    enqueue(client.track(anonymous_id=ids["device"], event="打开应用", message_id=m,
                         properties={"平台": "iOS"}), m)
    client.flush()

    # Phase 2: the visitor signs up; later calls use the user id.
    m = mid()
    enqueue(client.identify(user_id=ids["user"], anonymous_id=ids["anon"], message_id=m,
                            traits={"姓名": "张三", "email": f"zhang.{tag}@example.cn", "会员等级": "金卡",
                                    "积分": 1200}), m)
    m = mid()
    enqueue(client.alias(previous_id=ids["device"], user_id=ids["user"], message_id=m), m)
    client.flush()

    m = mid()
    enqueue(client.track(user_id=ids["user"], event="Order Completed", message_id=m,
                         properties={"revenue": 176.0, "currency": "CNY", "备注": "请尽快发货 🚚",
                                     "products": [{"sku": "LJ-01", "名称": "龙井", "qty": 2}]}), m)
    m = mid()
    enqueue(client.screen(user_id=ids["user"], category="App", name="订单详情", message_id=m,
                          properties={"订单号": "DD-0001"}), m)
    m = mid()
    enqueue(client.group(user_id=ids["user"], group_id=ids["group"], message_id=m,
                         traits={"name": "杭州茶庄", "员工数": 12, "行业": "零售"}), m)
    # After identify, the anonymous id still points at the same person.
    m = mid()
    enqueue(client.track(anonymous_id=ids["anon"], event="加入购物车", message_id=m,
                         properties={"商品": "碧螺春"}), m)
    client.flush()
    return sent, ids


def expected_traits(msg: dict[str, Any]) -> dict[str, Any] | None:
    """Where each SDK puts traits: top-level `traits` (Segment, and groups), or `context.traits`
    for a RudderStack identify."""
    if msg["type"] == "identify":
        return msg.get("traits") or msg.get("context", {}).get("traits") or None
    if msg["type"] == "group":
        return msg.get("traits") or None
    return None


def check_event(sent: dict[str, Any], got: dict[str, Any]) -> None:
    where = f"{sent['type']} {sent['messageId']}"
    assert got["type"] == sent["type"], where
    assert got.get("userId") == sent.get("userId"), (where, got)
    assert got.get("anonymousId") == sent.get("anonymousId"), (where, got)
    if sent["type"] == "track":
        assert got.get("event") == sent["event"], (where, got)
    if sent["type"] in ("page", "screen"):
        assert got.get("name") == sent.get("name"), (where, got)
        assert got.get("category") == sent.get("category"), (where, got)
    if sent["type"] == "alias":
        assert got.get("previousId") == sent["previousId"], (where, got)
    if sent["type"] == "group":
        assert got.get("groupId") == sent["groupId"], (where, got)
    assert (got.get("properties") or {}) == (sent.get("properties") or {}), (where, got)
    traits = expected_traits(sent)
    if traits is not None:
        assert got.get("traits") == traits, (where, got)
    assert got.get("context", {}).get("library") == sent["context"]["library"], (where, got)
    if sent.get("integrations"):
        assert got.get("integrations") == sent["integrations"], (where, got)
    if sent.get("channel"):
        assert got.get("channel") == sent["channel"], (where, got)
    # The SDK sets `timestamp`, so it is kept (to the millisecond the server stores).
    assert abs(parse_time(got["timestamp"]) - parse_time(sent["timestamp"])) < timedelta(milliseconds=1), (where, got)
    assert got.get("personId") not in (None, ""), (where, got)


@pytest.mark.parametrize("gzip", [False, True], ids=["plain", "gzip"])
@pytest.mark.parametrize("sdk", sorted(SDKS))
def test_sdk_round_trip(lodestar, monkeypatch, sdk, gzip):
    make_client, request_module = SDKS[sdk]
    session = RecordingSession()
    monkeypatch.setattr(request_module, "_session", session)
    errors: list[tuple[Exception, Any]] = []
    started = now()

    client = make_client(lodestar.write_key, lodestar.url, gzip, lambda e, batch: errors.append((e, batch)))
    try:
        sent, ids = send_scenario(client, uuid.uuid4().hex[:8])
    finally:
        client.shutdown()
    finished = now()

    assert not errors, f"the SDK reported errors: {errors}"
    assert session.calls, "the SDK made no request"
    for url, headers, status in session.calls:
        assert url == lodestar.url + "/v1/batch", url
        assert status == 200, f"{sdk} got HTTP {status}"
        assert (headers.get("Content-Encoding") == "gzip") == gzip, headers
    assert len(session.calls) >= 3, "the scenario flushes three times; expected at least three requests"

    lodestar.stop()
    events = lodestar.ws.export_events(lodestar.project)
    assert_exactly_once([m["messageId"] for m in sent], events, what=f"{sdk}-sent")
    assert len(events) == len(sent), f"export holds {len(events)} events for {len(sent)} sent"

    by_id = {e["messageId"]: e for e in events}
    for msg in sent:
        got = by_id[msg["messageId"]]
        check_event(msg, got)
        received = parse_time(got["receivedAt"])
        assert started - timedelta(seconds=1) <= received <= finished + timedelta(seconds=1), got
        assert "sentAt" in got, f"the SDK's batch sentAt was not kept: {got}"

    # Identity resolution: the anonymous visitor (before identify), the aliased device and
    # the user are one person.
    persons = {
        (e.get("userId"), e.get("anonymousId"), e.get("previousId")): e["personId"] for e in events
    }
    assert len(set(persons.values())) == 1, f"expected one person, got {persons}"
    anon_first = by_id[sent[0]["messageId"]]
    assert anon_first.get("anonymousId") == ids["anon"] and "userId" not in anon_first
