"""Small helpers for building Segment-shaped requests and checking responses."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

import requests


def new_id(prefix: str = "m") -> str:
    return f"{prefix}-{uuid.uuid4()}"


def now() -> datetime:
    return datetime.now(timezone.utc)


def iso(t: datetime) -> str:
    """RFC 3339 in UTC with milliseconds, as the SDKs send it."""
    return t.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def parse_time(text: str) -> datetime:
    t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    assert t.tzinfo is not None, f"timestamp without a zone: {text!r}"
    return t


def close(a: datetime, b: datetime, tolerance: timedelta) -> bool:
    return abs(a - b) <= tolerance


def track(user_id: str | None = "u1", event: str = "Signed Up", **fields: Any) -> dict[str, Any]:
    msg: dict[str, Any] = {"type": "track", "event": event, "messageId": new_id()}
    if user_id is not None:
        msg["userId"] = user_id
    msg.update(fields)
    return msg


def expect_ok(r: requests.Response) -> dict[str, Any]:
    """The success contract: exactly HTTP 200 and `{"success": true, …counts}`."""
    assert r.status_code == 200, f"expected exactly 200, got {r.status_code}: {r.text[:500]}"
    body = r.json()
    assert body.get("success") is True, f"200 without success=true: {body}"
    for key in ("stored", "duplicates", "rejected", "warnings"):
        assert isinstance(body.get(key), int), f"success body lacks integer {key!r}: {body}"
    return body


def expect_error(r: requests.Response, status: int, code: str, field: str | None = None) -> dict[str, Any]:
    """The error contract: the status, and JSON `{"code", "message", "field"?}`."""
    assert r.status_code == status, f"expected {status} {code}, got {r.status_code}: {r.text[:500]}"
    try:
        body = r.json()
    except ValueError:
        raise AssertionError(f"error body is not JSON: {r.text[:300]!r}") from None
    assert body.get("code") == code, f"expected code {code!r}, got {body}"
    assert isinstance(body.get("message"), str) and body["message"], f"error without a message: {body}"
    if field is not None:
        assert body.get("field") == field, f"expected field {field!r}, got {body}"
    return body
