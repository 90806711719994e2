"""A loopback TCP proxy that delays every byte by a fixed time in each direction.

It makes a relay on this machine look like one across a network (10 ms each way = a 20 ms round
trip) without limiting bandwidth: each chunk read is written out ``delay`` seconds later, in order.
Run it as its own process so it does not take CPU time from the client being measured:

    python bench/latency_proxy.py --upstream 127.0.0.1:5110 --delay 0.010 [--port 0]

It prints ``listening on http://127.0.0.1:PORT`` once ready and runs until killed.

A real network costs this machine no CPU, but the proxy does: it shares the 2 cores with the client
and the relay it stands between. So it runs on uvloop where installed (the Airflow environment has it),
which forwards a request and its answer for about 60% of the CPU the default event loop takes
(155 against 270 µs, measured here).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from typing import Any


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float) -> None:
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    async def deliver() -> None:
        while True:
            due, chunk = await queue.get()
            if not chunk:
                break
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            writer.write(chunk)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()

    sender = asyncio.ensure_future(deliver())
    try:
        while True:
            chunk = await reader.read(65536)
            queue.put_nowait((time.monotonic() + delay, chunk))
            if not chunk:
                break
        await sender
    except (ConnectionError, asyncio.IncompleteReadError):
        sender.cancel()
    finally:
        writer.close()


async def serve(upstream_host: str, upstream_port: int, delay: float, port: int) -> None:
    async def handle(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(upstream_host, upstream_port)
        except OSError:
            client_writer.close()
            return
        await asyncio.gather(
            _pump(client_reader, up_writer, delay), _pump(up_reader, client_writer, delay), return_exceptions=True
        )

    server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=1024)
    bound = server.sockets[0].getsockname()[1]
    print(f"listening on http://127.0.0.1:{bound}", flush=True)
    async with server:
        await server.serve_forever()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--upstream", required=True, help="HOST:PORT of the relay (loopback only)")
    parser.add_argument("--delay", type=float, required=True, help="seconds added in each direction")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    host, _, port = args.upstream.rpartition(":")
    if host not in ("127.0.0.1", "localhost", "::1"):
        sys.exit("the latency proxy forwards to loopback addresses only")
    try:
        import uvloop

        run: Any = uvloop.run
    except ImportError:
        run = asyncio.run
    try:
        run(serve(host, int(port), args.delay, args.port))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
