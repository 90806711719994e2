"""The few primitives whose sync and async forms differ by more than ``await``.

The async client names the async form (``async_sleep``, ``AsyncLock``...); scripts/generate_sync.py
renames each to its sync form here when it writes the sync client.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Awaitable, Callable

import anyio

#: A pause of the given seconds.
Sleep = Callable[[float], None]
AsyncSleep = Callable[[float], Awaitable[None]]
sleep: Sleep = time.sleep
async_sleep: AsyncSleep = anyio.sleep

#: A mutual-exclusion lock (``with lock`` / ``async with lock``).
Lock = threading.Lock
AsyncLock = anyio.Lock
