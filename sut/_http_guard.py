"""What the HTTP front answers before serving a request: planted faults, and connections over the cap.

Test faults (``lpuperf serve --http-fault``) make the front answer 429 or 503, or stall before answering,
for every generation request, every Nth one (``@N``) or a seeded fraction of them (``@0.25``). A
connection over ``max_connections`` gets a complete 503 without being parsed (:class:`RefusedConnection`).
"""

from __future__ import annotations

import asyncio
import json
import random
from typing import Literal, cast

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["HttpFault", "RefusedConnection", "parse_http_fault"]

# A refused connection's request is read and dropped at most this much (and HttpLimits.refused_linger_s).
_REFUSED_DRAIN_BYTES = 64 * 1024


class HttpFault(BaseModel):
    """A planted front fault: ``429``, ``503`` or ``slow:SECONDS``, optionally ``@N`` or ``@FRACTION``."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["429", "503", "slow"]
    seconds: float = Field(default=0.0, ge=0)
    every: int = Field(default=1, ge=1)  # hit every Nth generation request (1 = all)
    rate: float | None = Field(default=None, gt=0, le=1)  # or a seeded fraction of them
    seed: int = 0

    def applies(self, n: int, rng: random.Random) -> bool:
        """Whether the ``n``-th (1-based) generation request is hit."""
        if self.rate is not None:
            return rng.random() < self.rate
        return n % self.every == 0


def parse_http_fault(spec: str) -> HttpFault:
    """``429`` | ``503`` | ``slow:SECONDS``, each optionally followed by ``@N`` (every Nth) or ``@0.25``."""
    body, _, when = spec.partition("@")
    kind, _, arg = body.partition(":")
    expected = "expected 429|503|slow:SECONDS, optionally @N (every Nth) or @FRACTION"
    if kind not in ("429", "503", "slow") or (kind == "slow") != bool(arg):
        raise ValueError(f"--http-fault '{spec}': {expected}")
    fields: dict[str, str | float] = {"kind": kind}
    try:
        if arg:
            fields["seconds"] = float(arg)
        if when:
            if "." in when:
                fields["rate"] = float(when)
            else:
                fields["every"] = int(when)
        return HttpFault.model_validate(fields)
    except ValueError:
        raise ValueError(f"--http-fault '{spec}': {expected}") from None


class RefusedConnection(asyncio.Protocol):
    """Answers 503 to a connection over the cap without parsing its request, then closes it.

    The client may have sent its request already. Closing a socket with unread input makes the kernel
    answer with a reset, which can destroy the 503 before the client reads it; so the answer is sent, the
    write side shut, and whatever arrives is dropped until the client closes (or a short linger ends).
    """

    def __init__(self, cap: int, linger_s: float, lingering: set[RefusedConnection]) -> None:
        self._cap = cap
        self._linger_s = linger_s
        self._lingering = lingering
        self._transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._dropped = 0
        self._half_closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        msg = f"too many open connections (limit {self._cap}); retry later"
        body = json.dumps({"error": {"message": msg, "type": "server_error", "code": "too_many_connections"}})
        head = (
            "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\n"
            f"Connection: close\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        # uvloop's transports are not asyncio.Transport subclasses (an isinstance check failed there and the
        # client got a reset), though they have the whole interface.
        self._transport = cast(asyncio.Transport, transport)
        self._lingering.add(self)
        self._transport.write(head.encode() + body.encode())
        self._half_closed = self._transport.can_write_eof()
        if self._half_closed:
            self._transport.write_eof()
        self._timer = asyncio.get_running_loop().call_later(self._linger_s, self.close)

    def data_received(self, data: bytes) -> None:
        self._dropped += len(data)
        # TLS cannot half-close, and its client waits for our close_notify: close once its request is in
        # (read off the socket, so no reset); a big upload is not worth reading to the end either.
        if not self._half_closed or self._dropped > _REFUSED_DRAIN_BYTES:
            self.close()

    def eof_received(self) -> bool:
        return False  # the client is done: close

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._lingering.discard(self)

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
