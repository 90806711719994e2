"""Fixtures for the reference relay tests (helpers live in relay_server_helpers.py)."""

from __future__ import annotations

from relay_server_helpers import clients, webhook_sink  # noqa: F401  (fixtures)
