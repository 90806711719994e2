"""What every route of one relay instance shares: configuration, store, credentials, webhook targets."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request

from relay_integrations.server.common import ApiError
from relay_integrations.server.config import ServerConfig
from relay_integrations.server.store import Store, dumps

RELAYSMS_KEY_SETTING = "relaysms_api_key"
REVOKED_JWT_PREFIX = "smsgate_revoked_jwt:"
DEFAULT_ACCESS_TTL = 3600
REFRESH_TTL = 30 * 86400
ALL_SCOPES = "all:any"


@dataclass(frozen=True)
class IssuedToken:
    id: str
    access_token: str
    refresh_token: str
    expires_at: float


def has_scope(claims: dict[str, Any], scope: str | tuple[str, ...]) -> bool:
    """Whether a token's scopes allow ``scope`` (any of a tuple; ``all:any`` allows everything)."""
    wanted = (scope,) if isinstance(scope, str) else scope
    scopes = claims.get("scopes") or []
    return isinstance(scopes, list) and (ALL_SCOPES in scopes or any(s in scopes for s in wanted))
JWT_SECRET_SETTING = "smsgate_jwt_secret"
BALANCE_SETTING = "relaysms_balance_micros"


@dataclass
class WebhookTarget:
    id: str
    dialect: str
    url: str
    event: str | None = None
    number: str | None = None
    config: dict[str, Any] = field(default_factory=dict)
    created_at: float = 0.0


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class RelayContext:
    """Shared state of one relay. Created by :func:`relay_integrations.server.create_app`."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.started_at = time.time()
        self.store = Store(config.db_path, synchronous=config.synchronous)
        self._targets_lock = threading.Lock()
        self._targets: list[WebhookTarget] = []
        # A regenerated relaysms key survives restarts, like the real account's key.
        self.relaysms_key = self.store.get_setting(RELAYSMS_KEY_SETTING) or config.api_key
        jwt_secret = self.store.get_setting(JWT_SECRET_SETTING)
        if jwt_secret is None:
            jwt_secret = secrets.token_hex(32)
            self.store.set_setting(JWT_SECRET_SETTING, jwt_secret)
        self._jwt_secret = jwt_secret.encode()
        if self.store.get_setting(BALANCE_SETTING) is None:
            micros = round(config.balance * 1_000_000)
            now = time.time()

            def _seed(conn: Any) -> None:
                conn.execute("INSERT INTO settings(key, value) VALUES (?, ?)", (BALANCE_SETTING, str(micros)))
                conn.execute(
                    "INSERT INTO transactions(ts, type, amount_micros, description, balance_after_micros) "
                    "VALUES (?, 'credit', ?, 'Initial balance', ?)", (now, micros, micros))

            self.store.write(_seed)
        self._install_configured_webhooks()
        self.reload_targets()

    # --- credentials ------------------------------------------------------------------------
    @staticmethod
    def _same(given: str, expected: str) -> bool:
        return hmac.compare_digest(given.encode(), expected.encode())

    @staticmethod
    def bearer(request: Request) -> str | None:
        header = request.headers.get("authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
        return None

    def require_bearer(self, request: Request, expected: str | None = None) -> None:
        token = self.bearer(request)
        if token is None:
            raise ApiError(401, "Missing API key: send Authorization: Bearer <key>")
        if not self._same(token, expected or self.config.api_key):
            raise ApiError(401, "Invalid API key")

    def require_relaysms(self, request: Request) -> None:
        token = request.headers.get("x-api-key") or self.bearer(request)
        if not token:
            raise ApiError(401, "Missing API key: send X-API-Key or Authorization: Bearer")
        if not self._same(token, self.relaysms_key):
            raise ApiError(401, "Invalid or missing API key")

    def require_smsgate(self, request: Request, *, basic_only: bool = False,
                        scope: str | tuple[str, ...] | None = None) -> None:
        """Basic ``login:key`` (may do everything) or an access JWT that carries ``scope`` (or ``all:any``).

        :raises ApiError: 401 without valid credentials, 403 when the token lacks the scope.
        """
        header = request.headers.get("authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "basic":
            try:
                login, _, password = base64.b64decode(value.strip(), validate=True).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                raise ApiError(401, "Malformed Basic credentials") from None
            # Evaluate both comparisons so timing does not reveal which part was wrong.
            ok_login = self._same(login, self.config.login)
            ok_password = self._same(password, self.config.api_key)
            if ok_login and ok_password:
                return
            raise ApiError(401, "Invalid login or password")
        if scheme.lower() == "bearer" and value.strip() and not basic_only:
            claims = self.verify_jwt(value.strip())
            if claims is None:
                raise ApiError(401, "Invalid or expired token")
            if scope is not None and not has_scope(claims, scope):
                raise ApiError(403, f"token lacks the scope {scope if isinstance(scope, str) else ' or '.join(scope)}")
            return
        raise ApiError(401, "Authorization required: Basic LOGIN:PASSWORD or Bearer JWT")

    def authenticate(self, dialect: str | None, request: Request) -> None:
        """Check credentials as ``dialect`` does (``None``: the /_sim hooks); raises a 401 ApiError."""
        if dialect == "relaysms":
            self.require_relaysms(request)
        elif dialect == "smsgate":
            self.require_smsgate(request)
        else:
            self.require_bearer(request)

    # --- smsgate JWT (HS256, minimal and self-contained) ---------------------------------------
    def _sign(self, claims: dict[str, Any]) -> str:
        header = _b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
        payload = _b64url(json.dumps(claims).encode())
        sig = _b64url(hmac.new(self._jwt_secret, f"{header}.{payload}".encode(), hashlib.sha256).digest())
        return f"{header}.{payload}.{sig}"

    def issue_jwt(self, ttl: int, scopes: list[str]) -> IssuedToken:
        """An access token and its refresh token (``ptype`` access/refresh; the refresh names its access ``ajti``)."""
        now = int(time.time())
        token_id = secrets.token_hex(8)
        access = self._sign({"sub": self.config.login, "iat": now, "exp": now + ttl, "jti": token_id,
                             "scopes": scopes, "ptype": "access"})
        refresh = self._sign({"sub": self.config.login, "iat": now, "exp": now + REFRESH_TTL,
                              "jti": secrets.token_hex(8), "ajti": token_id, "scopes": scopes, "ptype": "refresh"})
        return IssuedToken(id=token_id, access_token=access, refresh_token=refresh, expires_at=float(now + ttl))

    def _claims(self, token: str) -> dict[str, Any] | None:
        parts = token.split(".")
        if len(parts) != 3:
            return None
        expected = _b64url(hmac.new(self._jwt_secret, f"{parts[0]}.{parts[1]}".encode(), hashlib.sha256).digest())
        if not hmac.compare_digest(expected.encode(), parts[2].encode()):
            return None
        try:
            claims = json.loads(_b64url_decode(parts[1]))
        except ValueError:
            return None
        if not isinstance(claims, dict) or float(claims.get("exp", 0)) <= time.time():
            return None
        for jti in (claims.get("jti"), claims.get("ajti")):
            if jti and self.store.get_setting(REVOKED_JWT_PREFIX + str(jti)) is not None:
                return None
        return claims

    def verify_jwt(self, token: str) -> dict[str, Any] | None:
        """The claims of a valid, unexpired, unrevoked access token, else None."""
        claims = self._claims(token)
        if claims is None or claims.get("ptype", "access") != "access":
            return None
        return claims

    def refresh_jwt(self, refresh_token: str) -> IssuedToken:
        """New tokens for a valid refresh token, which is used up (revoked) in the exchange."""
        claims = self._claims(refresh_token)
        if claims is None or claims.get("ptype") != "refresh":
            raise ApiError(401, "Invalid or expired refresh token")
        self.revoke_jwt(str(claims["jti"]))
        scopes = [str(s) for s in claims.get("scopes") or []]
        return self.issue_jwt(DEFAULT_ACCESS_TTL, scopes)

    def revoke_jwt(self, jti: str) -> None:
        self.store.set_setting(REVOKED_JWT_PREFIX + jti, str(time.time()))

    def rotate_relaysms_key(self) -> str:
        new_key = "rk_" + secrets.token_urlsafe(24)
        self.store.set_setting(RELAYSMS_KEY_SETTING, new_key)
        self.relaysms_key = new_key
        return new_key

    # --- webhook targets ----------------------------------------------------------------------
    def _install_configured_webhooks(self) -> None:
        now = time.time()
        rows = []
        for dialect, url in self.config.webhook_urls.items():
            config: dict[str, Any] = {}
            if dialect == "phonerelay":
                # The operator's configured URL gets phonerelay's own secret (explicit, or derived).
                config = {"callback_url": url, "active": True,
                          "callback_token": self.config.webhook_secret_for("phonerelay")}
            rows.append((f"cfg-{dialect}", dialect, url, None, None, dumps(config), now))
        if rows:
            self.store.write(lambda c: c.executemany(
                "INSERT INTO webhooks(id, dialect, url, event, number, config, created_at) VALUES (?,?,?,?,?,?,?) "
                "ON CONFLICT(id) DO UPDATE SET url = excluded.url, config = excluded.config", rows))

    def reload_targets(self) -> None:
        rows = self.store.query("SELECT * FROM webhooks ORDER BY created_at, id")
        targets = [
            WebhookTarget(id=r["id"], dialect=r["dialect"], url=r["url"], event=r["event"], number=r["number"],
                          config=json.loads(r["config"] or "{}"), created_at=r["created_at"])
            for r in rows
        ]
        with self._targets_lock:
            self._targets = targets

    def targets(self, dialect: str) -> list[WebhookTarget]:
        with self._targets_lock:
            return [t for t in self._targets if t.dialect == dialect]

    def status_webhook_dialects(self) -> frozenset[str]:
        """Dialects where every status change produces a webhook (relaysms only with a global status URL)."""
        with self._targets_lock:
            found = set()
            for t in self._targets:
                if t.dialect in ("coop", "smsgate"):
                    found.add(t.dialect)
                elif t.dialect == "relaysms" and t.number is None and t.event in ("status", None):
                    found.add("relaysms")
            return frozenset(found)

    def has_targets(self, dialect: str) -> bool:
        with self._targets_lock:
            return any(t.dialect == dialect for t in self._targets)
