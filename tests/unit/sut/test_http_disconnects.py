"""Connections the HTTP front refuses or loses, on uvloop as `serve` and the embedded SUT run it.

A connection over the cap gets a complete 503 with a JSON body (not a reset), and a client that hangs up
while its body is being read is counted as a client disconnect (499), never as a server error (500).
"""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
import uvloop

import sut
from scenarios import resolve_dataset
from sut._http import HttpFront, HttpLimits, start_http_front
from tests.tls_pki import Pki, make_pki

DATASET = "synthetic:12:5"
LOOPS = {"uvloop": uvloop.new_event_loop, "asyncio": None}


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def _run(
    body: Callable[[HttpFront, httpx.AsyncClient], Awaitable[None]],
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None,
    artifact: str = "sim-instant",
    ssl_context: ssl.SSLContext | None = None,
    **limits: Any,
) -> None:
    async def main() -> None:
        sim: Any = sut.backends.create({"kind": "sim", "artifact": artifact, "dataset": DATASET})
        await sim.start()
        front = await start_http_front(sim, "127.0.0.1", 0, limits=HttpLimits(**limits), ssl_context=ssl_context)
        try:
            async with httpx.AsyncClient(base_url=f"{front.scheme}://{front.address}", timeout=20.0) as client:
                await asyncio.wait_for(body(front, client), timeout=60.0)
        finally:
            await front.stop()
            await sim.stop()

    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(main())


async def _ask(front: HttpFront, request: bytes, tls: ssl.SSLContext | None = None) -> bytes:
    """Send a whole request at once on a fresh connection and read until the server closes it."""
    reader, writer = await asyncio.open_connection(front.host, front.port, ssl=tls)
    try:
        writer.write(request)
        return await asyncio.wait_for(reader.read(), 10.0)  # a reset raises ConnectionResetError
    finally:
        writer.close()


async def _wait_for(check: Callable[[], bool], seconds: float = 10.0) -> None:
    for _ in range(int(seconds / 0.01)):  # bounded poll
        if check():
            return
        await asyncio.sleep(0.01)


@pytest.mark.parametrize("loop", LOOPS)
def test_connections_over_the_cap_get_a_whole_503_not_a_reset(loop: str) -> None:
    async def body(front: HttpFront, client: httpx.AsyncClient) -> None:
        idle = [await asyncio.open_connection(front.host, front.port) for _ in range(2)]
        await _wait_for(lambda: front.connections_open == 2)
        # Many at once, each with its request already sent: the unread request must not turn the close
        # into a reset that destroys the 503 before the client reads it.
        request = b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}"
        answers = await asyncio.gather(*(_ask(front, request) for _ in range(40)))
        for raw in answers:
            head, _, payload = raw.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 503"), raw[:200]
            assert b"Retry-After: 1" in head
            assert "limit 2" in json.loads(payload)["error"]["message"]
        assert front.connections_refused == 40
        for _, writer in idle:
            writer.close()
        await _wait_for(lambda: front.connections_open == 0)
        assert (await client.get("/health")).status_code == 200

    _run(body, LOOPS[loop], max_connections=2)


@pytest.mark.parametrize("loop", LOOPS)
def test_a_client_gone_mid_body_is_a_disconnect_not_a_500(loop: str, caplog: pytest.LogCaptureFixture) -> None:
    async def body(front: HttpFront, client: httpx.AsyncClient) -> None:
        head = b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        head += b"Content-Length: 1000\r\n\r\n"
        for _ in range(3):
            _, writer = await asyncio.open_connection(front.host, front.port)
            writer.write(head + b'{"prompt": "abc')  # 15 of the 1000 bytes, then the client is gone
            await writer.drain()
            await asyncio.sleep(0.05)
            writer.close()
            await writer.wait_closed()
        await _wait_for(lambda: sum(front.responses_by_status.values()) == 3)
        health = (await client.get("/health")).json()
        assert health["responses_by_status"] == {"499": 3}
        assert health["client_disconnects"] == 3

    _run(body, LOOPS[loop])
    assert not [r for r in caplog.records if r.levelname == "ERROR"]  # no traceback for a client's choice


@pytest.mark.parametrize("loop", LOOPS)
def test_a_client_gone_before_its_whole_answer_is_a_disconnect_not_a_200(loop: str) -> None:
    async def body(front: HttpFront, client: httpx.AsyncClient) -> None:
        # Sample 9 has the longest reference (239 tokens, ~2.4 s of 10 ms decode steps); one JSON body.
        ds = resolve_dataset(DATASET)
        payload = json.dumps({"prompt": ds.prompts[9], "max_tokens": 1000}).encode()
        head = b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        head += f"Content-Length: {len(payload)}\r\n\r\n".encode()
        _, writer = await asyncio.open_connection(front.host, front.port)
        writer.write(head + payload)
        await _wait_for(lambda: front.inflight == 1)
        writer.close()  # gone long before the answer
        await writer.wait_closed()
        await _wait_for(lambda: front.inflight == 0, seconds=30.0)
        assert front.responses_by_status == {499: 1}

    _run(body, LOOPS[loop], artifact="sim-fp32")


@pytest.mark.parametrize("loop", LOOPS)
def test_tls_connections_over_the_cap_get_a_whole_503_at_once(loop: str, pki: Pki) -> None:
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(pki.server.cert, pki.server.key)
    client_tls = ssl.create_default_context(cafile=str(pki.ca))

    async def body(front: HttpFront, client: httpx.AsyncClient) -> None:
        idle = await asyncio.open_connection(front.host, front.port, ssl=client_tls)
        await _wait_for(lambda: front.connections_open == 1)
        request = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
        t0 = time.monotonic()
        answers = await asyncio.gather(*(_ask(front, request, client_tls) for _ in range(10)))
        took = time.monotonic() - t0
        for raw in answers:
            assert raw.startswith(b"HTTP/1.1 503"), raw[:200]
            assert "limit 1" in json.loads(raw.partition(b"\r\n\r\n")[2])["error"]["message"]
        # TLS cannot half-close: the front closes as soon as the request is in, not after its linger.
        assert took < 20.0, took
        idle[1].close()

    _run(body, LOOPS[loop], ssl_context=server, max_connections=1, refused_linger_s=60.0)
