"""The HTTP front over HTTPS with a bearer token (``lpuperf serve --tls-cert --tls-key --auth-token-file
--http PORT``), driven by a plain HTTP client and by the openai relay backend, both verifying the
front's certificate against the test CA; 401 with an OpenAI-style error without the token; the relay
never talks to an HTTPS upstream it cannot verify, and keeps the key out of every error it raises."""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from scenarios import resolve_dataset
from sut import GenerateRequest, GenerationEnd
from sut._openai import OpenAIBackend, OpenAIConfig
from sut._openai_probe import EndpointProbeError
from tests.tls_pki import Pki, make_pki

pytestmark = pytest.mark.integration

DATASET = "synthetic:16:3"
TOKEN = "sk-lpuperf-front-4e8a1b6c2d9f7035"
KEY_ENV = "LPUPERF_TEST_FRONT_KEY"
ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def front(tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> Iterator[tuple[int, Path]]:
    """(HTTPS port, log) of a token-protected ``lpuperf serve`` with the HTTP front."""
    tmp = tmp_path_factory.mktemp("front")
    (tmp / "token").write_text(TOKEN + "\n", encoding="utf-8")
    port_file, log, http_port = tmp / "port", tmp / "serve.log", _free_port()
    argv = [sys.executable, "-m", "cli", "serve", "--port", "0", "--port-file", str(port_file)]
    argv += ["--artifact", "sim-instant", "--dataset", DATASET, "--http", str(http_port)]
    argv += ["--tls-cert", str(pki.server.cert), "--tls-key", str(pki.server.key)]
    argv += ["--auth-token-file", str(tmp / "token")]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    with open(log, "wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + 90
        while not (port_file.is_file() and port_file.read_text().strip()):
            assert proc.poll() is None, log.read_text(errors="replace")
            assert time.monotonic() < deadline, "lpuperf serve did not start"
            time.sleep(0.05)
        yield http_port, log
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _client(pki: Pki) -> httpx.Client:
    return httpx.Client(verify=ssl.create_default_context(cafile=str(pki.ca)), timeout=30)


def test_plain_client_over_https_needs_the_token(front: tuple[int, Path], pki: Pki) -> None:
    port, log = front
    url = f"https://127.0.0.1:{port}"
    body = {"prompt": [1, 2, 3], "max_tokens": 4, "return_token_ids": True}
    with _client(pki) as c:
        ok = c.post(f"{url}/v1/completions", json=body, headers={"Authorization": f"Bearer {TOKEN}"})
        assert ok.status_code == 200 and ok.json()["choices"][0]["token_ids"], ok.text
        for headers in ({}, {"Authorization": "Bearer not-the-token"}, {"Authorization": TOKEN}):
            refused = c.post(f"{url}/v1/completions", json=body, headers=headers)
            assert refused.status_code == 401, refused.text
            err = refused.json()["error"]
            assert err["type"] == "invalid_request_error" and err["code"] == "invalid_api_key"
            assert refused.headers["WWW-Authenticate"].startswith("Bearer") and TOKEN not in refused.text
        assert c.get(f"{url}/v1/models").status_code == 401
        health = c.get(f"{url}/health")
        assert health.status_code == 200 and health.json()["requests_unauthorized"] >= 4
    # Plain HTTP to the HTTPS port, and HTTPS that does not trust the front's CA, get nothing.
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{port}/health", timeout=5)
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(f"{url}/health", verify=ssl.create_default_context(cafile=str(pki.other_ca)), timeout=5)
    assert TOKEN not in log.read_text(errors="replace")


async def _generate(relay: OpenAIBackend, i: int) -> list[int]:
    ds = resolve_dataset(DATASET)
    req = GenerateRequest(request_id=f"q{i}", input_ids=ds.input_ids[i], max_new_tokens=1000, prompt_text=ds.prompts[i])
    ids: list[int] = []
    async for item in relay.generate(req):
        if not isinstance(item, GenerationEnd):
            ids.extend(item)
    return ids


def _relay(port: int, key: str, **fields: object) -> OpenAIBackend:
    cfg = OpenAIConfig.model_validate(
        {
            "kind": "openai",
            "base_url": f"https://127.0.0.1:{port}/v1",
            "dataset": DATASET,
            "model": "sim-instant",
            "api_key_env": KEY_ENV,
            **fields,
        }
    )
    return OpenAIBackend(cfg, env={KEY_ENV: key})


def test_relay_backend_over_https_verifies_the_front_and_sends_the_token(front: tuple[int, Path], pki: Pki) -> None:
    port, _ = front
    ds = resolve_dataset(DATASET)

    async def scenario() -> None:
        relay = _relay(port, TOKEN, ca_bundle=str(pki.ca))
        await relay.start()
        try:
            assert await _generate(relay, 0) == ds.reference_ids[0].tolist()
        finally:
            await relay.stop()
        # The front refuses a wrong key: refused when the relay starts (its probe), the key in no part of the error.
        with pytest.raises(EndpointProbeError) as err:
            await _relay(port, TOKEN.upper(), ca_bundle=str(pki.ca)).start()
        assert "refused the API key" in str(err.value) and TOKEN.lower() not in str(err.value).lower()
        # Without the CA bundle the front's certificate cannot be verified: the relay refuses to start, it never
        # skips checks.
        with pytest.raises(EndpointProbeError) as err2:
            await _relay(port, TOKEN).start()
        assert "certificate does not verify against the system trust store" in str(err2.value)
        assert TOKEN not in str(err2.value)

    asyncio.run(scenario())


def test_relay_scrubs_an_upper_cased_key_from_upstream_text() -> None:
    relay = _relay(9, TOKEN)
    echoed = f'{{"error": {{"message": "invalid key {TOKEN.upper()} (was {TOKEN})"}}}}'
    out = relay._scrub(echoed)
    assert TOKEN.lower() not in out.lower() and "***" in out
    assert relay.manifest.extra["base_url"] == "https://127.0.0.1:9/v1"
    keyed = OpenAIBackend(
        OpenAIConfig.model_validate(
            {"kind": "openai", "base_url": "https://user:pw@127.0.0.1:8443/v1", "model": "m", "dataset": DATASET}
        ),
        env={},
    )
    assert keyed.manifest.extra["base_url"] == "https://127.0.0.1:8443/v1"  # userinfo gone, port kept
