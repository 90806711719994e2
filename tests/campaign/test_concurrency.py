"""The adaptive concurrency limit, driven against simulated relays in virtual time.

Each simulation is a closed loop: the client keeps ``limiter.limit`` requests in flight against a
relay with a FIFO queue and a number of workers. Time is virtual (an event heap), so results do not
depend on the machine's speed and every run is the same.
"""

from __future__ import annotations

import heapq
import itertools
import random
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relay_integrations.concurrency import AdaptiveConcurrency, FixedConcurrency, concurrency_limiter


@dataclass
class SimulatedRelay:
    """``workers`` serve a FIFO queue; each request costs ``service`` seconds plus ``contention`` per
    request waiting beside it (a relay sharing our CPU gets slower with every extra connection).
    ``one_way`` is the network delay each way. Past ``queue_limit`` waiting requests it answers 429.
    """

    service: float
    one_way: float = 0.0
    workers: int = 1
    contention: float = 0.0
    queue_limit: int | None = None
    jitter: float = 0.0  # each service time is multiplied by a seeded draw from [1, 1 + jitter]


@dataclass
class Outcome:
    throughput: float
    final_limit: int
    peak_limit: int
    overloads: int
    finished_at: float


def simulate(relay: SimulatedRelay, limiter: AdaptiveConcurrency | FixedConcurrency, requests: int = 6000,
             start_at: float = 0.0) -> Outcome:
    now = start_at
    events: list[tuple[float, int, str, object]] = []
    order = itertools.count()
    queue: list[tuple[float, int]] = []  # (sent_at, in_flight_at_send)
    busy = 0
    in_flight = 0
    issued = finished = overloads = 0
    peak = limiter.limit
    first_done_at: float | None = None
    counted_from = requests // 3  # throughput once the limit has settled

    def issue() -> None:
        nonlocal in_flight, issued
        while in_flight < limiter.limit and issued < requests:
            in_flight += 1
            issued += 1
            heapq.heappush(events, (now + relay.one_way, next(order), "arrive", (now, in_flight)))

    def start_service() -> None:
        nonlocal busy
        while busy < relay.workers and queue:
            sent_at, at_send = queue.pop(0)
            busy += 1
            cost = (relay.service + relay.contention * len(queue)) * (1 + relay.jitter * rng.random())
            heapq.heappush(events, (now + cost, next(order), "served", (sent_at, at_send)))

    rng = random.Random(7)
    issue()
    while events:
        now, _, kind, payload = heapq.heappop(events)
        sent_at, at_send = payload  # type: ignore[misc]
        if kind == "arrive":
            if relay.queue_limit is not None and len(queue) >= relay.queue_limit:
                heapq.heappush(events, (now + relay.one_way, next(order), "rejected", payload))
            else:
                queue.append((sent_at, at_send))
                start_service()
        elif kind == "served":
            busy -= 1
            start_service()
            heapq.heappush(events, (now + relay.one_way, next(order), "answer", payload))
        else:
            in_flight -= 1
            overloaded = kind == "rejected"
            if overloaded:
                overloads += 1
                issued -= 1  # the message still has to go
            else:
                finished += 1
                if finished == counted_from:
                    first_done_at = now
            limiter.record(now - sent_at, at_send, overloaded=overloaded, now=now)
            peak = max(peak, limiter.limit)
            issue()
    assert finished == requests and first_done_at is not None
    return Outcome((requests - counted_from) / (now - first_done_at), limiter.limit, peak, overloads, now)


def test_reaches_the_relays_capacity_across_a_network() -> None:
    # 20 ms round trip, 2 ms of work: one at a time gets ~45/s, the relay can take 500/s.
    relay = SimulatedRelay(service=0.002, one_way=0.010)
    sequential = simulate(relay, FixedConcurrency(1)).throughput
    fixed8 = simulate(relay, FixedConcurrency(8)).throughput
    adaptive = simulate(relay, AdaptiveConcurrency())
    assert sequential < 50
    assert fixed8 < 8 * 50  # a fixed 8 caps at 8x whatever the latency
    assert adaptive.throughput >= 0.9 * 500
    assert adaptive.final_limit <= 32  # found the knee, not the ceiling


def test_reaches_capacity_of_a_parallel_relay_at_higher_latency() -> None:
    # 100 ms round trip, 4 workers of 5 ms: capacity 800/s needs about 84 requests in flight; the
    # ceiling of 64 allows ~600/s.
    relay = SimulatedRelay(service=0.005, one_way=0.050, workers=4)
    adaptive = simulate(relay, AdaptiveConcurrency(), requests=12000)
    assert adaptive.throughput >= 0.9 * 64 / 0.105
    assert adaptive.peak_limit <= 64


def test_never_slower_than_one_at_a_time_when_the_relay_shares_our_cpu() -> None:
    # Loopback relay on our cores: no network delay, and every extra waiting request slows service.
    relay = SimulatedRelay(service=0.002, one_way=0.00005, contention=0.0006)
    sequential = simulate(relay, FixedConcurrency(1)).throughput
    fixed8 = simulate(relay, FixedConcurrency(8)).throughput
    adaptive = simulate(relay, AdaptiveConcurrency())
    assert fixed8 < 0.8 * sequential  # the trap a fixed 8 falls into
    assert adaptive.throughput >= 0.95 * sequential
    assert adaptive.final_limit <= 3


def test_holds_capacity_through_jitter() -> None:
    # Service times vary 1x-3x: the window median keeps one slow answer from shrinking the limit.
    relay = SimulatedRelay(service=0.001, one_way=0.010, jitter=2.0)
    capacity = 1 / (0.001 * 2)  # the mean service time is 2 ms
    adaptive = simulate(relay, AdaptiveConcurrency())
    assert adaptive.throughput >= 0.85 * capacity


def test_grows_only_while_throughput_grows() -> None:
    # Service times vary 1x-3x, so round trips are noisy: latency alone keeps finding windows
    # "within tolerance" and ratchets the limit up to the maximum, long after the relay's capacity
    # (500/s, about 11 requests over a 22 ms round trip) was reached. Measuring throughput stops it
    # near twice that product, with the same throughput.
    relay = SimulatedRelay(service=0.001, one_way=0.010, jitter=2.0)
    capacity = 1 / (0.001 * 2)
    in_flight_needed = capacity * (2 * 0.010 + 0.002)

    class LatencyOnly(AdaptiveConcurrency):
        def record(self, rtt: float, in_flight: int, *, overloaded: bool = False, now: float | None = None) -> None:
            super().record(rtt, in_flight, overloaded=overloaded)  # no time: no throughput

    latency_only = simulate(relay, LatencyOnly())
    measured = simulate(relay, AdaptiveConcurrency())
    cap = 2 * in_flight_needed + 2
    assert latency_only.peak_limit > cap  # the overshoot the throughput measurement prevents
    assert measured.peak_limit <= cap
    assert measured.throughput >= 0.98 * latency_only.throughput


def test_idle_time_between_rounds_is_not_read_as_low_throughput() -> None:
    # A status waiter polls in rounds a minute apart. The pause must not count as a window with
    # almost no throughput, which would cap the next round at one request in flight.
    # Small rounds are the hard case: most windows then span a pause.
    relay = SimulatedRelay(service=0.002, one_way=0.010)
    limiter = AdaptiveConcurrency()
    rounds = [simulate(relay, limiter, requests=12)]
    for _ in range(29):
        rounds.append(simulate(relay, limiter, requests=12, start_at=rounds[-1].finished_at + 60))
    for later in rounds[-10:]:
        assert later.peak_limit >= 8
        assert later.throughput >= 0.9 * 500  # the relay's capacity


def test_learns_a_relay_that_got_slower_for_good() -> None:
    limiter = AdaptiveConcurrency()
    simulate(SimulatedRelay(service=0.002, one_way=0.001), limiter)
    # Same limiter, now 50 ms away: it must climb back to the new knee, not stay pinned low.
    after = simulate(SimulatedRelay(service=0.002, one_way=0.025), limiter, requests=9000)
    assert after.throughput >= 0.85 * 500


def test_backs_off_when_the_relay_answers_429() -> None:
    # The relay queues at most 6; more in flight is answered 429 (Retry-After ignored here).
    relay = SimulatedRelay(service=0.002, one_way=0.010, queue_limit=6)
    adaptive = simulate(relay, AdaptiveConcurrency())
    assert adaptive.overloads > 0  # it did probe past the relay's limit
    assert adaptive.overloads < 0.05 * 6000  # ...and backed off instead of hammering it
    assert adaptive.throughput >= 0.8 * 500


def test_an_explicit_number_wins() -> None:
    limiter = concurrency_limiter(5)
    for _ in range(1000):
        limiter.record(0.5, 5, overloaded=True)
    assert limiter.limit == 5
    assert isinstance(concurrency_limiter("auto"), AdaptiveConcurrency)
    for bad in ("8", 0, -1, 2.5, True):
        with pytest.raises(ValueError):
            concurrency_limiter(bad)  # type: ignore[arg-type]


@settings(deadline=None, max_examples=200)
@given(
    st.lists(
        st.tuples(
            st.floats(min_value=0, max_value=30, allow_nan=False),
            st.integers(min_value=0, max_value=200),
            st.booleans(),
        ),
        max_size=400,
    ),
    st.integers(min_value=1, max_value=8),
    st.integers(min_value=8, max_value=128),
)
def test_limit_stays_within_its_bounds(samples: list[tuple[float, int, bool]], minimum: int, maximum: int) -> None:
    timed = AdaptiveConcurrency(minimum=minimum, maximum=maximum)
    untimed = AdaptiveConcurrency(minimum=minimum, maximum=maximum)
    now = 0.0
    for rtt, in_flight, overloaded in samples:
        now += rtt / max(1, in_flight)  # answers arrive no faster than one per rtt / in_flight
        timed.record(rtt, in_flight, overloaded=overloaded, now=now)
        untimed.record(rtt, in_flight, overloaded=overloaded)
        assert minimum <= timed.limit <= maximum
        assert minimum <= untimed.limit <= maximum
