"""The clients' connections to a relay when the caller gives no transport of its own.

One httpx pool shared by many requests in flight does not scale. httpcore scans every connection of
the pool (with a ``poll()`` for each idle one, and for the async pool a ``getpeername()`` too) each
time a request needs one or gives one back, and the sync pool does it under one lock all threads
share. With a campaign's 30 to 64 requests in flight the client spends more CPU there than on the
requests. Here each request gets a pool of its own holding one connection, so finding a connection
never looks at the others:

* :class:`ConnectionsPerThread` (the sync client, shared by threads): each thread that sends keeps
  its own pool, and reuses its own keep-alive connection.
* :class:`ConnectionsPerRequest` (the async client, where one event loop runs every request): each
  request borrows an idle single-connection pool, or opens one, and gives it back when its response
  is closed; at most ``limits.max_connections`` are out at once, as with httpx's own pool.

Measured in-process on 2 cores, a smsgate campaign through a 20 ms round trip: the sync campaign
1.1-1.5 against 1.9-2.3 ms of client CPU a message (590-780 against 390-470 messages/s), the async
one 1.3-1.4 against 3.0-3.1 ms (645-696 against 324-346 messages/s).
"""

from __future__ import annotations

import ssl
import threading
from collections.abc import AsyncIterator, Callable

import anyio
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


class _GivenBackOnClose(httpx.AsyncByteStream):
    """A response body that calls ``done`` once, when the response is closed."""

    def __init__(self, stream: httpx.AsyncByteStream, done: Callable[[], None]) -> None:
        self._stream = stream
        self._done: Callable[[], None] | None = done

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._stream:
            yield chunk

    async def aclose(self) -> None:
        try:
            await self._stream.aclose()
        finally:
            done, self._done = self._done, None
            if done is not None:
                done()


class ConnectionsPerRequest(httpx.AsyncBaseTransport):
    """An async transport that lends each request a single-connection pool of its own.

    A request takes an idle pool (its keep-alive connection reused) or opens a new one, and gives it
    back when its response is closed. At most ``limits.max_connections`` are lent at once; a request
    beyond that waits for one to come back. ``limits.keepalive_expiry`` applies to each connection.
    """

    def __init__(self, *, verify: ssl.SSLContext | bool, limits: httpx.Limits) -> None:
        self._verify = verify
        self._one = httpx.Limits(max_connections=1, max_keepalive_connections=1,
                                 keepalive_expiry=limits.keepalive_expiry)
        self._lendable = anyio.Semaphore(limits.max_connections) if limits.max_connections else None
        self._idle: list[httpx.AsyncHTTPTransport] = []
        self._opened: list[httpx.AsyncHTTPTransport] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self._lendable is not None:
            await self._lendable.acquire()
        pool = self._idle.pop() if self._idle else self._new_pool()
        try:
            response = await pool.handle_async_request(request)
        except BaseException:
            self._give_back(pool)  # httpcore has closed a connection that failed
            raise
        assert isinstance(response.stream, httpx.AsyncByteStream)
        response.stream = _GivenBackOnClose(response.stream, lambda: self._give_back(pool))
        return response

    def _new_pool(self) -> httpx.AsyncHTTPTransport:
        pool = httpx.AsyncHTTPTransport(verify=self._verify, limits=self._one)
        self._opened.append(pool)
        return pool

    def _give_back(self, pool: httpx.AsyncHTTPTransport) -> None:
        self._idle.append(pool)
        if self._lendable is not None:
            self._lendable.release()

    async def aclose(self) -> None:
        pools, self._opened, self._idle = self._opened, [], []
        for pool in pools:
            await pool.aclose()

    @property
    def pools(self) -> int:
        """Single-connection pools open now (lent out or idle)."""
        return len(self._opened)


def default_transport(verify: ssl.SSLContext | bool, limits: httpx.Limits) -> httpx.BaseTransport:
    """The sync client's connections: a pool per sending thread."""
    return ConnectionsPerThread(verify=verify, limits=limits)


def default_async_transport(verify: ssl.SSLContext | bool, limits: httpx.Limits) -> httpx.AsyncBaseTransport:
    """The async client's connections: a single-connection pool lent to each request in flight."""
    return ConnectionsPerRequest(verify=verify, limits=limits)
