"""Hostile HTTP clients, run as a child process so their CPU use is not the measuring test's.

``python _flood_client.py HOST PORT SPEC_JSON`` opens ``slow`` connections that send request headers
one byte per ``tick_s`` (never finishing), then sends one prompt of ``big_mb`` MiB and one of
``mid_kib`` KiB of text. Prints one JSON line: the status line and seconds of each prompt's answer,
and how many slow connections the server closed and when. Everything is bounded by ``limit_s``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from typing import Any

_HEAD = b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nX-Pad: "


async def _prompt(host: str, port: int, n_bytes: int, limit_s: float) -> dict[str, Any]:
    """POST a text prompt of n_bytes; the status line as soon as it arrives, even mid-upload."""
    body = b'{"prompt": "' + b"lorem ipsum " * (n_bytes // 12) + b'", "max_tokens": 4}'
    head = _HEAD[: _HEAD.index(b"X-Pad")] + f"Content-Length: {len(body)}\r\n\r\n".encode()
    t0 = time.monotonic()
    reader, writer = await asyncio.open_connection(host, port)

    async def send() -> None:
        try:
            writer.write(head + body)
            await writer.drain()
        except (ConnectionError, OSError):
            pass  # refused before the upload finished: what a size limit is for

    sender = asyncio.ensure_future(send())
    try:
        line = await asyncio.wait_for(reader.readline(), limit_s)
        return {"status": line.decode(errors="replace").strip(), "seconds": time.monotonic() - t0}
    except TimeoutError:
        return {"status": "timeout", "seconds": time.monotonic() - t0}
    finally:
        sender.cancel()
        writer.close()


async def _slow(host: str, port: int, n: int, tick_s: float, limit_s: float) -> dict[str, Any]:
    text = _HEAD + b"p" * 8000 + b"\r\n\r\n"  # 8 KB of headers at one byte a tick: never complete in time
    conns = []
    for _ in range(n):
        try:
            conns.append(await asyncio.open_connection(host, port))
        except OSError:
            break
    t0 = time.monotonic()
    closed: dict[int, float] = {}

    async def watch(i: int, reader: asyncio.StreamReader) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            await reader.read(65536)
        closed[i] = time.monotonic() - t0

    watchers = [asyncio.ensure_future(watch(i, r)) for i, (r, _) in enumerate(conns)]
    pos = 0
    while len(closed) < len(conns) and time.monotonic() - t0 < limit_s and pos < len(text):
        for i, (_, writer) in enumerate(conns):
            if i not in closed:
                with contextlib.suppress(ConnectionError, OSError, RuntimeError):
                    writer.write(text[pos : pos + 1])
        pos += 1
        await asyncio.sleep(tick_s)
    for w in watchers:
        w.cancel()
    for _, writer in conns:
        writer.close()
    return {"opened": len(conns), "closed": len(closed), "max_close_s": max(closed.values(), default=None)}


async def main(host: str, port: int, spec: dict[str, Any]) -> dict[str, Any]:
    limit_s = float(spec["limit_s"])
    slow = asyncio.ensure_future(_slow(host, port, int(spec["slow"]), float(spec["tick_s"]), limit_s))
    await asyncio.sleep(0.2)  # the slow ones are in place before the prompts arrive
    big = await _prompt(host, port, int(spec["big_mb"]) * 1024 * 1024, limit_s)
    mid = await _prompt(host, port, int(spec["mid_kib"]) * 1024, limit_s)
    return {"big": big, "mid": mid, "slow": await slow}


if __name__ == "__main__":
    out = asyncio.run(main(sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3])))
    print(json.dumps(out), flush=True)
