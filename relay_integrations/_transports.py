"""The clients' connections to a relay when the caller gives no transport of its own.

The async client sends from one event loop: one httpx pool serves it (:func:`default_async_transport`).

The sync client is shared by threads (a campaign keeps up to 64 requests in flight from its
worker threads), and one httpx pool shared by threads does not scale: httpcore guards the pool
with one lock taken twice a request, and under it scans every connection (with a ``poll()`` for
each idle one). With thirty threads sending, they queue on that lock and the process spends
its time switching between them. :class:`ConnectionsPerThread` gives each sending thread its own
small pool instead, so a thread reuses its own keep-alive connection and never waits for another's.
Measured in-process on 2 cores, a smsgate campaign through a 20 ms round trip: about 1.3 against
2.1 ms of client CPU a message, 590-720 against 390-470 messages/s.
"""

from __future__ import annotations

import ssl
import threading

import httpx


class ConnectionsPerThread(httpx.BaseTransport):
    """A sync transport with one connection pool per thread that sends.

    Each thread's pool keeps at most one idle connection (a thread sends one request at a time),
    and may open up to ``limits.max_connections`` while it holds several streamed responses at once.
    The pool of a thread that has ended is closed when a new thread first sends, and every pool
    when the transport is closed.
    """

    def __init__(self, *, verify: ssl.SSLContext | bool, limits: httpx.Limits) -> None:
        keepalive = 1 if limits.max_keepalive_connections is None else min(1, limits.max_keepalive_connections)
        self._limits = httpx.Limits(max_connections=limits.max_connections, max_keepalive_connections=keepalive,
                                    keepalive_expiry=limits.keepalive_expiry)
        self._verify = verify
        self._local = threading.local()
        self._pools: list[tuple[threading.Thread, httpx.HTTPTransport]] = []
        self._lock = threading.Lock()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        pool: httpx.HTTPTransport | None = getattr(self._local, "pool", None)
        if pool is None:
            pool = self._local.pool = self._new_pool()
        return pool.handle_request(request)

    def _new_pool(self) -> httpx.HTTPTransport:
        pool = httpx.HTTPTransport(verify=self._verify, limits=self._limits)
        with self._lock:
            ended = [p for thread, p in self._pools if not thread.is_alive()]
            self._pools = [(t, p) for t, p in self._pools if t.is_alive()]
            self._pools.append((threading.current_thread(), pool))
        for old in ended:  # their threads are gone: nothing else uses these pools
            old.close()
        return pool

    def close(self) -> None:
        with self._lock:
            pools, self._pools = self._pools, []
        for _, pool in pools:
            pool.close()

    @property
    def pools(self) -> int:
        """Pools open now (one per thread that has sent and not yet been cleaned up)."""
        with self._lock:
            return len(self._pools)


def default_transport(verify: ssl.SSLContext | bool, limits: httpx.Limits) -> httpx.BaseTransport:
    """The sync client's connections: a pool per sending thread."""
    return ConnectionsPerThread(verify=verify, limits=limits)


def default_async_transport(verify: ssl.SSLContext | bool, limits: httpx.Limits) -> httpx.AsyncBaseTransport:
    """The async client's connections: one pool, as httpx makes it."""
    return httpx.AsyncHTTPTransport(verify=verify, limits=limits)
