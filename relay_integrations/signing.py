"""Webhook signatures, both ways: the reference relay signs with these, the receiver verifies with them.

Schemes, per relay (see ANCHORS.md):

* ``smsgate``: ``X-Signature`` = hex HMAC-SHA256 of (raw body + ``X-Timestamp``), unix seconds.
* ``coop``: ``X-Webhook-Signature`` = hex HMAC-SHA256 of the raw body (no timestamp).
* ``callback-token`` (phonerelay): the subscription's ``callback_token`` in ``X-Callback-Token``.
* ``standard-webhooks`` (relaysms, whose doc names no scheme): ``webhook-id``,
  ``webhook-timestamp`` and ``webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">``.

Verification works on the raw bytes, compares in constant time, accepts any of several secrets
(rotation) and fails closed by raising :class:`SignatureError`.

Per-dialect secrets: no scheme's secret is ever used as another's. A secret given without a dialect
(``--webhook-secret SECRET``) is a *master* secret from which each dialect's own secret is derived
with :func:`derive_dialect_secret`::

    digest = HMAC-SHA256(key=SECRET (UTF-8), msg="relay-integrations webhook secret v1:" + dialect)
    relaysms (Standard Webhooks): "whsec_" + base64(digest)
    smsgate, coop, phonerelay:    hex(digest)

and the relaysms secret URL token (``/webhooks/relaysms/<token>``) likewise, with the message
``"relay-integrations relaysms url token v1"``, base64url without padding. ``relay webhooks secrets``
prints them, to configure a real relay. ``DIALECT=SECRET`` gives one dialect its secret verbatim.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Mapping, Sequence

DEFAULT_TOLERANCE_SECONDS = 300


class SignatureError(Exception):
    """A webhook delivery failed verification. The message never contains a secret."""


STANDARD_SECRET_PREFIX = "whsec_"
_DERIVATION_LABEL = "relay-integrations webhook secret v1:"
_URL_TOKEN_LABEL = b"relay-integrations relaysms url token v1"
#: Dialects whose deliveries carry a signature or token, so that they have a secret of their own.
SIGNED_DIALECTS = ("smsgate", "coop", "phonerelay", "relaysms")


def standard_key(secret: str) -> bytes:
    """The HMAC key of a Standard Webhooks secret ``whsec_<base64>``, decoded as the official library does.

    :raises ValueError: the secret is not of that form (the message never contains the secret).
    """
    if not secret.startswith(STANDARD_SECRET_PREFIX):
        raise ValueError(
            "a Standard Webhooks (relaysms) secret must look like whsec_<base64>; "
            "derive one with `relay webhooks secrets` or generate one with "
            "python -c \"import base64,os;print('whsec_'+base64.b64encode(os.urandom(32)).decode())\""
        )
    encoded = secret[len(STANDARD_SECRET_PREFIX) :].rstrip("=")
    try:
        # Padding optional, as in the official library (which appends "==" before decoding).
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(
            "a Standard Webhooks (relaysms) secret starts with whsec_ but the rest is not base64"
        ) from None
    if not key:
        raise ValueError("a Standard Webhooks (relaysms) secret is empty after whsec_")
    return key


def check_dialect_secret(dialect: str, secret: str) -> None:
    """Raise :class:`ValueError` unless ``secret`` is usable for ``dialect`` (relaysms: ``whsec_<base64>``)."""
    if not isinstance(secret, str) or not secret:
        raise ValueError(f"the {dialect} webhook secret is empty")
    if SCHEME_BY_DIALECT.get(dialect) == "standard-webhooks":
        standard_key(secret)


def derive_dialect_secret(master: str, dialect: str) -> str:
    """The secret of ``dialect`` derived from a master secret (see the module docstring)."""
    digest = hmac.new(master.encode(), (_DERIVATION_LABEL + dialect).encode(), hashlib.sha256).digest()
    if SCHEME_BY_DIALECT.get(dialect) == "standard-webhooks":
        return STANDARD_SECRET_PREFIX + base64.b64encode(digest).decode()
    return digest.hex()


def derive_relaysms_url_token(master: str) -> str:
    """The path token of the receiver's relaysms secret URL, derived from a master secret."""
    digest = hmac.new(master.encode(), _URL_TOKEN_LABEL, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def parse_secret_values(values: Sequence[str], dialects: Sequence[str] = SIGNED_DIALECTS) -> dict[str, list[str]]:
    """``["s1", "smsgate=s2"]`` -> ``{"*": ["s1"], "smsgate": ["s2"]}`` (``--webhook-secret`` values).

    A prefix counts as a dialect only if it names one, so base64 secrets ending in ``=`` stay whole.
    """
    result: dict[str, list[str]] = {}
    for value in values:
        prefix, sep, rest = value.partition("=")
        if sep and prefix in dialects and rest:
            result.setdefault(prefix, []).append(rest)
        elif value:
            result.setdefault("*", []).append(value)
    return result


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
    return base64.b64encode(hmac.new(standard_key(secret), signed, hashlib.sha256).digest()).decode()


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
    try:
        expected = [_standard_signature(s, msg_id, ts, body) for s in secrets]
    except ValueError:
        raise SignatureError("a configured relaysms secret is not of the form whsec_<base64>") from None
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
