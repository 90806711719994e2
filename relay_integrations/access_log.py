"""An access log that never shows query strings or URL secrets.

uvicorn's access log prints each request's path *with* its query string, so a key passed as a
query parameter ended up in the log. :class:`RedactingAccessFilter` rewrites each access record
before any handler sees it: the query string is dropped (``?…`` stays, to show there was one) and
the token of the relaysms secret URL (``/webhooks/relaysms/<token>``) is replaced by ``***``.
"""

from __future__ import annotations

import logging
import re

ACCESS_LOGGER = "uvicorn.access"
_SECRET_PATHS = re.compile(r"(/webhooks/relaysms/)[^/?#]+")


def redact_path(path: str) -> str:
    """``/events?key=s`` -> ``/events?…``; ``/webhooks/relaysms/tok`` -> ``/webhooks/relaysms/***``."""
    bare, sep, _query = path.partition("?")
    return _SECRET_PATHS.sub(r"\1***", bare) + ("?…" if sep else "")


class RedactingAccessFilter(logging.Filter):
    """Drops query strings and URL secrets from uvicorn access records (args: client, method, path, ...)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            record.args = (*args[:2], redact_path(args[2]), *args[3:])
        return True


def install_access_filter() -> None:
    """Add the filter to uvicorn's access logger (idempotent)."""
    logger = logging.getLogger(ACCESS_LOGGER)
    if not any(isinstance(f, RedactingAccessFilter) for f in logger.filters):
        logger.addFilter(RedactingAccessFilter())
