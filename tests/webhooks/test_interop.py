"""Deliveries signed the way the real senders sign them, computed here without relay_integrations.signing.

* SMS Gateway for Android: ``X-Signature`` = hex HMAC-SHA256 keyed with the signing key as typed,
  over raw body + ``X-Timestamp``.
* coop: ``X-Webhook-Signature`` = hex HMAC-SHA256 of the raw body, keyed with the secret as typed.
* Standard Webhooks: key = base64-decoded part after ``whsec_``; ``v1,`` + base64 HMAC of ``id.timestamp.body``.

A real relay is configured with the key as typed, so each receiver here gets it as ``DIALECT=KEY``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Callable

import pytest
from webhook_payloads import SECRET, ServedReceiver, coop_event, encode, relaysms_status, smsgate_status


@pytest.mark.parametrize("key", [SECRET, "plain-signing-key-from-the-app"])
def test_smsgate_app_signature(start_receiver: Callable[..., ServedReceiver], key: str) -> None:
    receiver = start_receiver(secrets={"smsgate": [key]})
    raw = encode(smsgate_status("sg-interop-" + key[:5], "+15550000001"))
    ts = str(int(time.time()))
    signature = hmac.new(key.encode(), raw + ts.encode(), hashlib.sha256).hexdigest()
    headers = {"Content-Type": "application/json", "X-Signature": signature, "X-Timestamp": ts}
    assert receiver.post("smsgate", raw, headers=headers).status_code == 200


@pytest.mark.parametrize("key", [SECRET, "coop-secret"])
def test_coop_signature(start_receiver: Callable[..., ServedReceiver], key: str) -> None:
    receiver = start_receiver(secrets={"coop": [key]})
    raw = encode(coop_event("co-interop-" + key[:5]))
    signature = hmac.new(key.encode(), raw, hashlib.sha256).hexdigest()
    headers = {"Content-Type": "application/json", "X-Webhook-Signature": signature}
    assert receiver.post("coop", raw, headers=headers).status_code == 200


def test_standard_webhooks_signature(start_receiver: Callable[..., ServedReceiver]) -> None:
    shared_receiver = start_receiver(secrets={"relaysms": [SECRET]})
    raw = encode(relaysms_status("rs-interop"))
    msg_id, ts = "msg_p5jXN8AQM9LWM0D4loKWxJek", str(int(time.time()))
    key = base64.b64decode(SECRET.removeprefix("whsec_"))
    digest = hmac.new(key, f"{msg_id}.{ts}.".encode() + raw, hashlib.sha256).digest()
    headers = {"Content-Type": "application/json", "webhook-id": msg_id, "webhook-timestamp": ts,
               "webhook-signature": "v1," + base64.b64encode(digest).decode()}
    assert shared_receiver.post("relaysms", raw, headers=headers).status_code == 200
