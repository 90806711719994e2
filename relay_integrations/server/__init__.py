"""The reference relay server: all four documented relay APIs on one local process.

``relay serve`` runs it; :func:`create_app` builds the ASGI app for in-process use. FastAPI and
uvicorn are imported only when the app is built, so ``relay --help`` stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from relay_integrations.server.app import create_app
    from relay_integrations.server.config import ServerConfig

__all__ = ["ServerConfig", "create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from relay_integrations.server.app import create_app

        return create_app
    if name == "ServerConfig":
        from relay_integrations.server.config import ServerConfig

        return ServerConfig
    raise AttributeError(name)
