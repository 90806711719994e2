"""How many requests to keep in flight against one relay: an adaptive limit, sans I/O.

A fixed number is wrong in both places our users run: a relay on the same two cores slows down
with every extra connection, while a relay across a network needs many requests in flight to
reach its capacity (at 20 ms a round trip, one at a time caps at 50 a second). The limit is found
the way TCP and Netflix's concurrency-limits find theirs:

* latency gradient (Gradient2): compare the recent round-trip time with its long-run baseline.
  While the recent one stays within ``tolerance`` times the baseline, the relay is not queueing
  our requests and the limit grows by about its square root per window; once latency rises,
  the limit shrinks in proportion;
* throughput: more in flight pays only while throughput grows. By Little's law, the requests in
  flight that a throughput needs are that throughput times the unloaded round trip (the
  bandwidth-delay product, as BBR counts it); the limit stays within twice that plus one, using
  the best throughput of the last few windows. Across a network throughput grows with every
  step, so the cap doubles along with the limit; a relay that shares our two cores gives no more
  for more in flight, so the limit stays near that product instead of drifting up to where every
  extra request only costs CPU. Callers pass ``now`` to :meth:`record` for this; without it the
  limit follows latency alone;
* multiplicative decrease on overload: a 429 or 503 (the relay saying "not now") halves it;
* bounds: never below ``minimum`` (1: never slower than one request at a time) nor above
  ``maximum``; growth only when the caller really used the limit (a caller that keeps three in
  flight learns nothing about whether eight would be fine).

The caller measures and waits; this class only decides. One instance serves one relay; it is not
thread-safe by itself, callers that record from several threads hold a lock around it
(:class:`LockedConcurrency`).
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field

DEFAULT_MAXIMUM = 64


@dataclass
class AdaptiveConcurrency:
    """An adaptive in-flight limit.

    :param initial: the limit before any sample (1: the first window measures the unloaded round trip).
    :param minimum: the floor (1 keeps a campaign at least as fast as a sequential loop).
    :param maximum: the ceiling.
    :param tolerance: how much slower than the baseline a round trip may get before the limit shrinks.
    :param smoothing: weight of each window's proposal against the current limit (0-1].
    :param backoff: factor applied on an overload answer (429/503).
    :param baseline_window: windows the baseline averages over while the relay is not queueing.
    :param throughput_gain: the limit stays within this many times the requests in flight the best
        recent throughput needs (best throughput times the baseline round trip).
    :param throughput_windows: how many recent windows the best throughput is taken from.
    """

    initial: int = 1
    minimum: int = 1
    maximum: int = DEFAULT_MAXIMUM
    tolerance: float = 1.5
    smoothing: float = 0.25
    backoff: float = 0.5
    baseline_window: int = 40
    throughput_gain: float = 2.0
    throughput_windows: int = 8
    _limit: float = field(init=False)
    _baseline: float | None = field(init=False, default=None)
    _window_rtts: list[float] = field(init=False, default_factory=list)
    _window_peak_in_flight: int = field(init=False, default=0)
    _overloaded: bool = field(init=False, default=False)
    _slow_start: bool = field(init=False, default=True)
    _window_started: float | None = field(init=False, default=None)
    _last_finished: float | None = field(init=False, default=None)
    _throughputs: list[float] = field(init=False, default_factory=list)

    def __post_init__(self) -> None:
        if not 1 <= self.minimum <= self.maximum:
            raise ValueError("concurrency bounds need 1 <= minimum <= maximum")
        if not 0 < self.smoothing <= 1 or not 0 < self.backoff < 1 or self.tolerance < 1:
            raise ValueError("smoothing must be in (0, 1], backoff in (0, 1), tolerance >= 1")
        if self.throughput_gain < 1 or self.throughput_windows < 1:
            raise ValueError("throughput_gain must be >= 1 and throughput_windows >= 1")
        self._limit = float(min(max(self.initial, self.minimum), self.maximum))

    @property
    def limit(self) -> int:
        """Requests that may be in flight now."""
        return int(self._limit)

    def record(self, rtt: float, in_flight: int, *, overloaded: bool = False, now: float | None = None) -> None:
        """One finished request.

        :param rtt: its round-trip time in seconds.
        :param in_flight: requests in flight when it started (itself included).
        :param overloaded: the relay answered 429 or 503 (or the request timed out).
        :param now: when it finished, on a monotonic clock in seconds: lets the limit measure
            throughput (see the module's docstring).
        """
        if overloaded:
            # Back off at once and start a fresh window: the samples taken so far were measured
            # at a load the relay has just said it cannot take.
            if not self._overloaded:
                self._limit = max(float(self.minimum), self._limit * self.backoff)
            self._slow_start = False
            self._overloaded = True
            self._window_rtts.clear()
            self._window_peak_in_flight = 0
            self._window_started = now
            self._throughputs.clear()
            return
        if rtt < 0 or math.isnan(rtt):
            return
        if now is not None:
            self._clock(now, now - rtt, in_flight)
        self._window_rtts.append(rtt)
        self._window_peak_in_flight = max(self._window_peak_in_flight, in_flight)
        # A window is about one limit's worth of requests (at least 4): one "round" at this limit.
        if len(self._window_rtts) >= max(4, self.limit):
            self._measure_throughput(now)
            self._end_window()

    def _clock(self, now: float, sent: float, in_flight: int) -> None:
        """Keep the window's start; time the caller had nothing in flight is left out of it."""
        if self._window_started is None:
            self._window_started = sent
        elif in_flight <= 1 and self._last_finished is not None and sent > self._last_finished:
            # Nothing was in flight from the last answer until this request went out: the caller
            # was idle (a status waiter between rounds), and that is not the relay's throughput.
            self._window_started += sent - self._last_finished
        self._last_finished = now if self._last_finished is None else max(self._last_finished, now)

    def _measure_throughput(self, now: float | None) -> None:
        """Requests per second over the window that just ended (when the caller gives the time)."""
        started, self._window_started = self._window_started, now
        if now is None or started is None or now <= started:
            return
        self._throughputs.append(len(self._window_rtts) / (now - started))
        del self._throughputs[:-self.throughput_windows]

    def _throughput_cap(self) -> float:
        """The most in flight the best recent throughput justifies (no cap before any measurement)."""
        if not self._throughputs or self._baseline is None:
            return float(self.maximum)
        # One more than the product: a caller that does its own work between requests (ledger
        # writes, building the next one) overlaps that work with one more request in flight.
        return max(float(self.minimum), self.throughput_gain * max(self._throughputs) * self._baseline + 1)

    def _end_window(self) -> None:
        rtts = sorted(self._window_rtts)
        recent = rtts[len(rtts) // 2]  # the median: one slow request is not a trend
        used = self._window_peak_in_flight
        self._window_rtts.clear()
        self._window_peak_in_flight = 0
        self._overloaded = False
        # The baseline is the round trip without queueing. It follows a faster window at once and
        # drifts with windows that show no queueing (jitter); a slower window is our own load and
        # must not raise it, or the limit would ratchet up. At the floor no load is ours, so a relay
        # or route that really got slower is learned there.
        if self._baseline is None or recent < self._baseline or self._limit <= self.minimum:
            self._baseline = recent
        elif recent <= self.tolerance * self._baseline:
            self._baseline += 2 / (self.baseline_window + 1) * (recent - self._baseline)
        gradient = max(0.5, min(1.0, self.tolerance * self._baseline / recent)) if recent > 0 else 1.0
        if used < self._limit / 2 and gradient >= 1.0:
            return  # the caller did not use the limit: no evidence that more would be fine
        if self._slow_start:
            # Start at one request (which measures the true baseline) and double per window, as
            # TCP's slow start does, until the first sign of queueing: across a network the knee
            # is reached in a handful of windows instead of dozens.
            cap = self._throughput_cap()
            if gradient >= 1.0 and self._limit < cap:
                self._limit = min(float(self.maximum), self._limit * 2, cap)
                return
            self._slow_start = False
        # Gradient2 adds a queue allowance of sqrt(limit); scaling it by how close the gradient is to 1
        # lets a relay whose latency doubles with load (one sharing our CPU) pull the limit down to
        # the minimum instead of a floor of 4.
        proposal = self._limit * gradient + math.sqrt(self._limit) * (2 * gradient - 1)
        limit = min((1 - self.smoothing) * self._limit + self.smoothing * proposal, self._throughput_cap())
        self._limit = min(float(self.maximum), max(float(self.minimum), limit))


class FixedConcurrency:
    """The same interface for an explicit number: the user's choice always wins."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("concurrency must be at least 1")
        self.limit = limit
        self.maximum = limit

    def record(self, rtt: float, in_flight: int, *, overloaded: bool = False, now: float | None = None) -> None:
        """Nothing to learn."""


class LockedConcurrency:
    """A limiter shared by worker threads (the sync campaign records from its pool)."""

    def __init__(self, inner: AdaptiveConcurrency | FixedConcurrency) -> None:
        self._inner = inner
        self._lock = threading.Lock()

    @property
    def inner(self) -> AdaptiveConcurrency | FixedConcurrency:
        return self._inner

    @property
    def limit(self) -> int:
        return self._inner.limit

    @property
    def maximum(self) -> int:
        return self._inner.maximum

    def record(self, rtt: float, in_flight: int, *, overloaded: bool = False, now: float | None = None) -> None:
        with self._lock:
            self._inner.record(rtt, in_flight, overloaded=overloaded, now=now)


def concurrency_limiter(
    concurrency: int | str, *, maximum: int = DEFAULT_MAXIMUM
) -> AdaptiveConcurrency | FixedConcurrency:
    """``"auto"`` gives an adaptive limit bounded by ``maximum``; a number gives exactly that number."""
    if concurrency == "auto":
        return AdaptiveConcurrency(maximum=maximum)
    if isinstance(concurrency, bool) or not isinstance(concurrency, int):
        raise ValueError(f"concurrency must be 'auto' or a whole number >= 1, not {concurrency!r}")
    return FixedConcurrency(concurrency)
