"""A scripted HTTP/1.1 server on a real loopback socket, for the failures respx cannot fake honestly.

Each request received takes the next action of the script:
``("respond", status, json_body, headers)`` answers; ``("drop",)`` reads the request and closes the
connection without a word (the relay may have taken it); ``("hang",)`` reads it and never answers
(the client's read timeout fires). Every request body received is recorded, in order.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

Action = tuple[Any, ...]


@dataclass
class ScriptedServer:
    port: int
    script: list[Action]
    received: list[tuple[str, str, Any]] = field(default_factory=list)  # (method, path, json body)
    headers: list[dict[str, str]] = field(default_factory=list)  # each request's headers, names lower-case
    stop: threading.Event = field(default_factory=threading.Event)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def bodies(self) -> list[Any]:
        return [body for _m, _p, body in self.received]


def _read_request(conn: socket.socket, buffer: bytes) -> tuple[str, str, Any, bytes, dict[str, str]] | None:
    while b"\r\n\r\n" not in buffer:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        buffer += chunk
    head, rest = buffer.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    method, path, _version = lines[0].split(" ", 2)
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    while len(rest) < length:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        rest += chunk
    body_bytes, remaining = rest[:length], rest[length:]
    body = json.loads(body_bytes) if body_bytes else None
    return method, path, body, remaining, headers


def _serve_connection(server: ScriptedServer, conn: socket.socket, lock: threading.Lock) -> None:
    buffer = b""
    with conn:
        while not server.stop.is_set():
            parsed = _read_request(conn, buffer)
            if parsed is None:
                return
            method, path, body, buffer, headers_in = parsed
            with lock:
                server.received.append((method, path, body))
                server.headers.append(headers_in)
                action = server.script.pop(0) if server.script else ("respond", 500, {"message": "script empty"}, {})
            if action[0] == "drop":
                return
            if action[0] == "hang":
                server.stop.wait(5)
                return
            _, status, payload, headers = action
            data = json.dumps(payload).encode() if payload is not None else b""
            extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
            conn.sendall(
                f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {len(data)}\r\n"
                f"{extra}\r\n".encode() + data
            )


@contextmanager
def scripted_server(script: list[Action]) -> Iterator[ScriptedServer]:
    """Serve ``script`` on a free loopback port until the block ends."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    listener.settimeout(0.1)
    server = ScriptedServer(port=listener.getsockname()[1], script=list(script))
    lock = threading.Lock()
    threads: list[threading.Thread] = []

    def accept_loop() -> None:
        while not server.stop.is_set():
            try:
                conn, _ = listener.accept()
            except (TimeoutError, OSError):
                continue
            conn.settimeout(None)
            thread = threading.Thread(target=_serve_connection, args=(server, conn, lock), daemon=True)
            thread.start()
            threads.append(thread)

    acceptor = threading.Thread(target=accept_loop, daemon=True)
    acceptor.start()
    try:
        yield server
    finally:
        server.stop.set()
        acceptor.join(2)
        listener.close()
        for thread in threads:
            thread.join(2)


def closed_port() -> int:
    """A loopback port nothing listens on (connecting to it is refused)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


@contextmanager
def lossy_proxy(upstream: str, *, lose_answers: int = 1) -> Iterator[ScriptedServer]:
    """A proxy that forwards every request to ``upstream`` but hangs up instead of passing on the
    first ``lose_answers`` answers: the relay took the request, the client never heard back."""
    import httpx

    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    listener.settimeout(0.1)
    proxy = ScriptedServer(port=listener.getsockname()[1], script=[])
    lock = threading.Lock()
    remaining = [lose_answers]

    def handle(conn: socket.socket) -> None:
        buffer = b""
        with conn, httpx.Client(base_url=upstream) as forward:
            while not proxy.stop.is_set():
                head_end = buffer.find(b"\r\n\r\n")
                while head_end < 0:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    buffer += chunk
                    head_end = buffer.find(b"\r\n\r\n")
                lines = buffer[:head_end].decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                headers = dict(line.split(":", 1) for line in lines[1:] if ":" in line)
                headers = {k.strip(): v.strip() for k, v in headers.items()}
                length = int(next((v for k, v in headers.items() if k.lower() == "content-length"), "0"))
                rest = buffer[head_end + 4:]
                while len(rest) < length:
                    rest += conn.recv(65536)
                body, buffer = rest[:length], rest[length:]
                keep = {k: v for k, v in headers.items() if k.lower() not in ("host", "content-length", "connection")}
                answer = forward.request(method, path, content=body, headers=keep)
                with lock:
                    proxy.received.append((method, path, json.loads(body) if body else None))
                    lose = remaining[0] > 0
                    if lose:
                        remaining[0] -= 1
                if lose:
                    return
                extra = "".join(f"{k}: {v}\r\n" for k, v in answer.headers.items()
                                if k.lower() not in ("content-length", "transfer-encoding", "connection",
                                                     "content-encoding"))
                conn.sendall(f"HTTP/1.1 {answer.status_code} X\r\n{extra}Content-Length: {len(answer.content)}"
                             f"\r\n\r\n".encode() + answer.content)

    def accept_loop() -> None:
        while not proxy.stop.is_set():
            try:
                conn, _ = listener.accept()
            except (TimeoutError, OSError):
                continue
            conn.settimeout(None)
            threading.Thread(target=handle, args=(conn,), daemon=True).start()

    acceptor = threading.Thread(target=accept_loop, daemon=True)
    acceptor.start()
    try:
        yield proxy
    finally:
        proxy.stop.set()
        acceptor.join(2)
        listener.close()
