"""Webhook signatures, both ways: the reference relay signs with these, the receiver verifies with them.

Schemes, per relay (see ANCHORS.md):

* ``smsgate``: ``X-Signature`` = hex HMAC-SHA256 of (raw body + ``X-Timestamp``), unix seconds.
* ``coop``: ``X-Webhook-Signature`` = hex HMAC-SHA256 of the raw body (no timestamp).
* ``callback-token`` (phonerelay): the subscription's ``callback_token`` in ``X-Callback-Token``.
* ``standard-webhooks`` (relaysms, whose doc names no scheme): ``webhook-id``,
  ``webhook-timestamp`` and ``webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">``.

Verification works on the raw bytes, compares in constant time, accepts any of several secrets
(rotation) and fails closed by raising :class:`SignatureError`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Mapping, Sequence

DEFAULT_TOLERANCE_SECONDS = 300


class SignatureError(Exception):
    """A webhook delivery failed verification. The message never contains a secret."""


def _key(secret: str) -> bytes:
    # Standard Webhooks secrets are base64 behind a "whsec_" prefix; other secrets are used as text.
    if secret.startswith("whsec_"):
        return base64.b64decode(secret[len("whsec_") :])
    return secret.encode()


def _hmac_hex(secret: str, data: bytes) -> str:
    # smsgate and coop key the HMAC with the secret's own bytes, whatever it looks like: the
    # "whsec_" decoding is Standard Webhooks only, and applying it here would reject real senders.
    return hmac.new(secret.encode(), data, hashlib.sha256).hexdigest()


def _lower(headers: Mapping[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


def _check_timestamp(raw: str | None, tolerance: int, now: float | None) -> int:
    if not raw:
        raise SignatureError("missing timestamp header")
    try:
        ts = int(raw)
    except ValueError:
        raise SignatureError("timestamp header is not unix seconds") from None
    current = time.time() if now is None else now
    if abs(current - ts) > tolerance:
        raise SignatureError("timestamp outside the tolerance window")
    return ts


def _any_match(expected: Sequence[str], given: Sequence[str]) -> bool:
    found = False
    # Compare every pair so timing does not reveal which secret matched.
    for e in expected:
        for g in given:
            found |= hmac.compare_digest(e.encode(), g.encode())
    return found


def _require_secrets(secrets: Sequence[str]) -> None:
    if not secrets:
        raise SignatureError("no secret configured; refusing unverifiable webhook")


# --- smsgate ------------------------------------------------------------------------------------
def sign_smsgate(body: bytes, secret: str, timestamp: int | None = None) -> dict[str, str]:
    ts = str(int(time.time()) if timestamp is None else timestamp)
    return {"X-Signature": _hmac_hex(secret, body + ts.encode()), "X-Timestamp": ts}


def verify_smsgate(
    body: bytes,
    headers: Mapping[str, str],
    secrets: Sequence[str],
    *,
    tolerance: int = DEFAULT_TOLERANCE_SECONDS,
    now: float | None = None,
) -> None:
    _require_secrets(secrets)
    h = _lower(headers)
    signature = h.get("x-signature")
    if not signature:
        raise SignatureError("missing X-Signature header")
    ts = h.get("x-timestamp")
    _check_timestamp(ts, tolerance, now)
    assert ts is not None
    expected = [_hmac_hex(s, body + ts.encode()) for s in secrets]
    if not _any_match(expected, [signature.lower()]):
        raise SignatureError("X-Signature does not match")


# --- coop ---------------------------------------------------------------------------------------
def sign_coop(body: bytes, secret: str) -> dict[str, str]:
    return {"X-Webhook-Signature": _hmac_hex(secret, body)}


def verify_coop(body: bytes, headers: Mapping[str, str], secrets: Sequence[str]) -> None:
    _require_secrets(secrets)
    signature = _lower(headers).get("x-webhook-signature")
    if not signature:
        raise SignatureError("missing X-Webhook-Signature header")
    signature = signature.removeprefix("sha256=").lower()
    if not _any_match([_hmac_hex(s, body) for s in secrets], [signature]):
        raise SignatureError("X-Webhook-Signature does not match")


# --- phonerelay callback token -----------------------------------------------------------------
def sign_callback_token(token: str) -> dict[str, str]:
    return {"X-Callback-Token": token}


def verify_callback_token(headers: Mapping[str, str], secrets: Sequence[str]) -> None:
    _require_secrets(secrets)
    token = _lower(headers).get("x-callback-token")
    if not token:
        raise SignatureError("missing X-Callback-Token header")
    if not _any_match(list(secrets), [token]):
        raise SignatureError("X-Callback-Token does not match")


# --- Standard Webhooks --------------------------------------------------------------------------
def _standard_signature(secret: str, msg_id: str, timestamp: str, body: bytes) -> str:
    signed = msg_id.encode() + b"." + timestamp.encode() + b"." + body
    return base64.b64encode(hmac.new(_key(secret), signed, hashlib.sha256).digest()).decode()


def sign_standard(
    body: bytes, secrets: str | Sequence[str], msg_id: str, timestamp: int | None = None
) -> dict[str, str]:
    """Standard Webhooks headers; several secrets give several space-separated signatures."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    keys = [secrets] if isinstance(secrets, str) else list(secrets)
    sigs = " ".join(f"v1,{_standard_signature(s, msg_id, ts, body)}" for s in keys)
    return {"webhook-id": msg_id, "webhook-timestamp": ts, "webhook-signature": sigs}


def verify_standard(
    body: bytes,
    headers: Mapping[str, str],
    secrets: Sequence[str],
    *,
    tolerance: int = DEFAULT_TOLERANCE_SECONDS,
    now: float | None = None,
) -> str:
    """Verify and return the ``webhook-id`` (the delivery's stable id, for de-duplication)."""
    _require_secrets(secrets)
    h = _lower(headers)
    msg_id = h.get("webhook-id")
    if not msg_id:
        raise SignatureError("missing webhook-id header")
    ts = h.get("webhook-timestamp")
    _check_timestamp(ts, tolerance, now)
    assert ts is not None
    given = [part.split(",", 1)[1] for part in h.get("webhook-signature", "").split() if part.startswith("v1,")]
    if not given:
        raise SignatureError("missing webhook-signature header")
    expected = [_standard_signature(s, msg_id, ts, body) for s in secrets]
    if not _any_match(expected, given):
        raise SignatureError("webhook-signature does not match")
    return msg_id


# --- by dialect ---------------------------------------------------------------------------------
SCHEME_BY_DIALECT = {
    "smsgate": "smsgate",
    "coop": "coop",
    "phonerelay": "callback-token",
    "relaysms": "standard-webhooks",
}


def sign_for(dialect: str, body: bytes, secret: str, event_id: str, timestamp: int | None = None) -> dict[str, str]:
    """Headers the reference relay puts on a webhook of ``dialect``."""
    scheme = SCHEME_BY_DIALECT[dialect]
    if scheme == "smsgate":
        return sign_smsgate(body, secret, timestamp)
    if scheme == "coop":
        return sign_coop(body, secret)
    if scheme == "callback-token":
        return sign_callback_token(secret)
    return sign_standard(body, secret, event_id, timestamp)


def verify_for(
    dialect: str,
    body: bytes,
    headers: Mapping[str, str],
    secrets: Sequence[str],
    *,
    tolerance: int = DEFAULT_TOLERANCE_SECONDS,
    now: float | None = None,
) -> str | None:
    """Verify a delivery for ``dialect``; returns the delivery id the headers carry, if any."""
    scheme = SCHEME_BY_DIALECT.get(dialect)
    if scheme == "smsgate":
        verify_smsgate(body, headers, secrets, tolerance=tolerance, now=now)
        return None
    if scheme == "coop":
        verify_coop(body, headers, secrets)
        return None
    if scheme == "callback-token":
        verify_callback_token(headers, secrets)
        return None
    if scheme == "standard-webhooks":
        return verify_standard(body, headers, secrets, tolerance=tolerance, now=now)
    raise SignatureError(f"no verification scheme for dialect {dialect!r}")
