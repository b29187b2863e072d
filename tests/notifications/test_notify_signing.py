"""Standard Webhooks signing and the merchants' verify helper (no database); and the retry
schedule's parsing."""

from __future__ import annotations

import base64
import json

import pytest

from paycell.config import Settings
from paycell.notifications import signing
from paycell.notifications.schedule import format_schedule, next_delay, parse_schedule

SECRET = b"0123456789abcdef0123456789abcdef"
BODY = json.dumps({"id": "ntf_1", "event": "payment.succeeded",
                   "created_at": "2026-01-01T00:00:00Z", "data": {}}).encode()
NOW = 1_767_225_600


def headers(secrets: list[bytes] | None = None, ts: int = NOW,
            msg_id: str = "ntf_1") -> dict[str, str]:
    return {"Webhook-Id": msg_id, "Webhook-Timestamp": str(ts),
            "Webhook-Signature": signing.signature_header(secrets or [SECRET], msg_id, ts,
                                                          BODY)}


def test_reference_vector() -> None:
    # The example of the Standard Webhooks specification's reference libraries.
    assert signing.sign("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
                        "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330,
                        '{"test": 2432232314}') == (
        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")


def test_verify_accepts_and_returns_the_body() -> None:
    assert signing.verify(SECRET, headers(), BODY, NOW)["id"] == "ntf_1"
    # whsec_ form of the same secret, str body, lower-case headers, edge of the window.
    whsec = "whsec_" + base64.b64encode(SECRET).decode()
    h = {k.lower(): v for k, v in headers(ts=NOW - 300).items()}
    assert signing.verify(whsec, h, BODY.decode(), NOW)["event"] == "payment.succeeded"


def test_rotation_any_signature_any_secret() -> None:
    old, new = b"old-secret", b"new-secret"
    h = headers([new, old])
    assert len(h["Webhook-Signature"].split()) == 2
    signing.verify(old, h, BODY, NOW)  # a merchant not yet switched
    signing.verify(new, h, BODY, NOW)
    signing.verify([b"other", new], headers([new]), BODY, NOW)


@pytest.mark.parametrize(("change", "error"), [
    ({"Webhook-Id": None}, signing.WebhookHeaderMissingError),
    ({"Webhook-Timestamp": None}, signing.WebhookHeaderMissingError),
    ({"Webhook-Signature": None}, signing.WebhookHeaderMissingError),
    ({"Webhook-Timestamp": "yesterday"}, signing.WebhookTimestampInvalidError),
    ({"Webhook-Timestamp": str(NOW - 301)}, signing.WebhookTimestampOutOfRangeError),
    ({"Webhook-Timestamp": str(NOW + 301)}, signing.WebhookTimestampOutOfRangeError),
    ({"Webhook-Id": "ntf_2"}, signing.WebhookSignatureMismatchError),
    ({"Webhook-Signature": "v1,AAAA"}, signing.WebhookSignatureMismatchError),
])
def test_verify_refusals(change: dict[str, str | None], error: type[Exception]) -> None:
    h = headers()
    for key, value in change.items():
        if value is None:
            del h[key]
        else:
            h[key] = value
    with pytest.raises(error) as info:
        signing.verify(SECRET, h, BODY, NOW)
    assert isinstance(info.value, signing.WebhookVerificationError)
    assert info.value.code.startswith("webhook_")


def test_verify_refuses_a_changed_body_or_wrong_secret() -> None:
    with pytest.raises(signing.WebhookSignatureMismatchError):
        signing.verify(SECRET, headers(), BODY.replace(b"payment", b"pAyment"), NOW)
    with pytest.raises(signing.WebhookSignatureMismatchError):
        signing.verify(b"another secret", headers(), BODY, NOW)
    other = json.dumps({"id": "ntf_9"}).encode()
    h = {"webhook-id": "ntf_1", "webhook-timestamp": str(NOW),
         "webhook-signature": signing.sign(SECRET, "ntf_1", NOW, other)}
    with pytest.raises(signing.WebhookPayloadInvalidError):
        signing.verify(SECRET, h, other, NOW)  # signed, but the body's id is another


def test_schedule_parsing() -> None:
    assert parse_schedule("15s,3m,1h") == (15, 180, 3600)
    assert parse_schedule(" 15S , 2d ,90") == (15, 172_800, 90)
    default = parse_schedule(Settings(_env_file=None).notify_schedule)
    assert len(default) == 15 and sum(default) == 24 * 3600 + 4 * 60  # WeChat Pay: ~24 h
    assert format_schedule(default).startswith("15s, 15s, 30s, 3m, 10m")
    for bad in ("", "15s,,3m", "3x", "1.5m", "-5s", "0s", "ten"):
        with pytest.raises(ValueError, match="PAYCELL_NOTIFY_SCHEDULE"):
            parse_schedule(bad)
    with pytest.raises(ValueError, match="PAYCELL_NOTIFY_SCHEDULE: '3x' is not a delay"):
        Settings(_env_file=None, notify_schedule="15s,3x")


def test_next_delay() -> None:
    s = (15, 180)
    assert [next_delay(s, k) for k in (1, 2, 3)] == [15, 180, None]


def test_the_docs_example_runs() -> None:
    """docs/notifications.md: its stand-alone verify() accepts its example, and so does
    ours; a tampered body is refused by both."""
    import re
    from pathlib import Path

    doc = (Path(__file__).parents[2] / "docs" / "notifications.md").read_text()
    code = re.search(r"```python\n(.*?)```", doc, re.S)
    assert code is not None
    space: dict[str, object] = {}
    exec(code.group(1), space)  # raises if the example does not verify
    verify = space["verify"]
    assert callable(verify)
    whsec = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    nid = "ntf_5f0c3e8a9b1d2c4e6f7a8b9c"
    body = (b'{"id":"ntf_5f0c3e8a9b1d2c4e6f7a8b9c","event":"payment.succeeded",'
            b'"created_at":"2026-01-01T08:00:00Z","data":{"out_trade_no":"ORD-1",'
            b'"amount_fen":4990}}')
    h = {"webhook-id": nid, "webhook-timestamp": "1767254415",
         "webhook-signature": signing.sign(whsec, nid, 1767254415, body)}
    assert h["webhook-signature"] in doc
    assert signing.verify(whsec, h, body, 1767254415)["data"]["amount_fen"] == 4990
    with pytest.raises(ValueError, match="signature mismatch"):
        verify(whsec, h, body.replace(b"4990", b"9990"), now=1767254415)
