"""Bounds on the JSON the relay accepts, checked on the raw body before anything is parsed or stored.

Python's JSON parser and encoder recurse once per nesting level: a document nested about a
thousand levels deep cannot be parsed, and one a little shallower parses, is stored, and then
fails every read that serialises it again. So the relay refuses deep documents at the edge
with a 400 that names the field, and caps the size of free-form JSON fields (relaysms
``metadata``) so whatever is stored can always be read back.
"""

from __future__ import annotations

import json
import re
from typing import Any

from relay_integrations.server.common import invalid

MAX_JSON_DEPTH = 32
"""Deepest nesting of a request body (the body's own object is level 1)."""
MAX_FIELD_DEPTH = 16
"""Deepest nesting inside one free-form JSON field such as ``metadata``."""
MAX_FIELD_BYTES = 16 * 1024
"""Largest free-form JSON field, as compact UTF-8 JSON."""

# Strings (with an optional following colon: then they are keys), brackets and commas. The regex
# engine skips string contents in C, so the Python loop only sees structural tokens.
_TOKENS = re.compile(rb'"(?:[^"\\]|\\.)*"\s*(:)?|[\[\]{},]')
# The fast pre-check (see _nests_within): strings, the bytes that are not brackets, empty pairs.
_STRINGS = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')  # the same strings as _TOKENS, unrolled
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_EMPTY_PAIRS = re.compile(rb"\{\}|\[\]")


def _path(stack: list[list[Any]]) -> str:
    out = ""
    for kind, key in stack:
        if key is None:
            continue
        if kind == "[":
            out += f"[{key}]"
        else:
            out += f".{key}" if out else str(key)
    return out


def _field_of(stack: list[list[Any]]) -> str:
    """The path down to the first named field that is not a list (``metadata``, ``messages[3].metadata``)."""
    keep, names = 0, 0
    while keep < len(stack):
        kind, key = stack[keep]
        keep += 1
        if kind == "{" and key is not None:
            names += 1
            if names == 2 or not (keep < len(stack) and stack[keep][0] == "["):
                break
    if names == 0:
        return "body"
    # Indices below the last named key say nothing useful: stop at that key.
    while stack[keep - 1][0] == "[":
        keep -= 1
    return _path(stack[:keep])


def depth_violation(body: bytes, limit: int = MAX_JSON_DEPTH) -> str | None:
    """The field at which ``body`` nests deeper than ``limit``, or None (also None for non-JSON bodies).

    The field is the path down to the first named field that is not a list (``metadata``,
    ``messages[3].metadata``), enough to find it without echoing a thousand levels of path.
    """
    if body.count(b"{") + body.count(b"[") <= limit or _nests_within(body, limit):
        return None
    return _walk(body, limit)


def _walk(body: bytes, limit: int) -> str | None:
    """The exact scan behind :func:`depth_violation`, token by token."""
    stack: list[list[Any]] = []  # [container kind, current key or index]
    for match in _TOKENS.finditer(body):
        token = match.group(0)
        first = token[:1]
        if first == b'"':
            if match.group(1) and stack and stack[-1][0] == "{":
                try:
                    stack[-1][1] = json.loads(token[: token.rindex(b'"') + 1])
                except ValueError:
                    stack[-1][1] = "?"
        elif first in (b"{", b"["):
            if len(stack) >= limit:
                return _field_of(stack)
            stack.append(["{" if first == b"{" else "[", None if first == b"{" else 0])
        elif first in (b"}", b"]"):
            if stack:
                stack.pop()
        elif first == b"," and stack and stack[-1][0] == "[":
            stack[-1][1] += 1
    return None


def _nests_within(body: bytes, limit: int) -> bool:
    """True when the brackets outside strings pair up and nest at most ``limit`` deep.

    All in C (regex and ``bytes.translate``): a batch of a thousand objects is two levels deep,
    and walking its tokens in Python cost as much as parsing it. Each pass removes the innermost
    empty pairs, so a body ``d`` levels deep is empty after ``d`` passes. False (the exact token
    walk decides) for anything else: deeper bodies, unbalanced brackets, an unterminated string.
    """
    if b"\\" not in body:  # no escapes: every other quote closes a string
        parts = body.split(b'"')
        if len(parts) % 2 == 0:
            return False
        brackets = b"".join(parts[0::2])
    else:
        brackets = _STRINGS.sub(b"", body)
        if b'"' in brackets:
            return False
    brackets = brackets.translate(None, _NOT_BRACKETS)
    for _ in range(limit):
        if not brackets:
            return True
        brackets = _EMPTY_PAIRS.sub(b"", brackets)
    return not brackets


def _depth(value: Any) -> int:
    depth, level = 0, [value]
    while level:
        depth += 1
        nxt: list[Any] = []
        for item in level:
            if isinstance(item, dict):
                nxt.extend(v for v in item.values() if isinstance(v, (dict, list)))
            elif isinstance(item, list):
                nxt.extend(v for v in item if isinstance(v, (dict, list)))
        if not nxt:
            return depth
        level = nxt
    return depth


def require_bounded_json(field: str, value: Any, *, max_depth: int = MAX_FIELD_DEPTH,
                         max_bytes: int = MAX_FIELD_BYTES) -> Any:
    """``value`` if it is finite JSON within the depth and size caps; else a 400 naming ``field``."""
    if value is None:
        return value
    if isinstance(value, (dict, list)) and _depth(value) > max_depth:
        raise invalid(field, f"nested deeper than {max_depth} levels")
    try:
        size = len(json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode())
    except ValueError:
        raise invalid(field, "numbers must be finite (no NaN or Infinity)") from None
    if size > max_bytes:
        raise invalid(field, f"at most {max_bytes} bytes as JSON, got {size}")
    return value
