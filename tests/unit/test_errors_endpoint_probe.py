"""An OpenAI-compatible endpoint that cannot serve is refused before the run, naming the cause.

``lpuperf run --transport openai-http`` (the harness streams to the endpoint itself) and ``lpuperf run
--backend openai`` (a spawned relay SUT) against real servers on 127.0.0.1: a dead port, a server that
answers 401 to the key, one that lists other models (and answers 404 for the one asked for), and one
whose TLS certificate is signed by a CA the client does not trust. Each is one error line naming the
cause, exit 2, no run directory, and the API key in no output. Before the probe every one of these ran
its whole duration with every query failing UNAVAILABLE.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import ssl
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from tests.tls_pki import Pki, make_pki

ROOT = Path(__file__).resolve().parents[2]
DATASET = "synthetic:8:1"
KEY_ENV = "LPUPERF_TEST_PROBE_KEY"
RIGHT_KEY = "sk-probe-RIGHT-8c2e41f07a9d3b65"
WRONG_KEY = "sk-probe-WRONG-1b7d93e5c0a4f826"
LISTED = ("other-a", "other-b")


class Upstream:
    """An aiohttp OpenAI-style server on its own thread: ``GET /v1/models`` and ``POST /v1/completions``.

    ``key``: every request needs ``Bearer <key>`` (401 otherwise). ``strict_models``: a model not listed
    gets 404, as OpenAI and vLLM answer; otherwise any model name is served (as TGI does).
    """

    def __init__(self, *, key: str | None = None, strict_models: bool = True, tls: ssl.SSLContext | None = None):
        self.key, self.strict_models, self.tls = key, strict_models, tls
        self.requests: list[str] = []
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> Upstream:
        self._thread.start()
        assert self._ready.wait(30), "test upstream did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._runner is not None
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(30)

    @property
    def base_url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}/v1"

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        app.router.add_get("/v1/models", self._models)
        app.router.add_post("/v1/completions", self._complete)
        self._runner = web.AppRunner(app)
        self._loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=self.tls)
        self._loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self._ready.set()
        self._loop.run_forever()

    def _refused(self, request: web.Request) -> web.Response | None:
        self.requests.append(f"{request.method} {request.path}")
        if self.key is not None and request.headers.get("Authorization") != f"Bearer {self.key}":
            body = {"error": {"message": "Incorrect API key provided", "type": "invalid_request_error"}}
            return web.json_response(body, status=401)
        return None

    async def _models(self, request: web.Request) -> web.Response:
        refused = self._refused(request)
        return refused or web.json_response({"object": "list", "data": [{"id": m} for m in LISTED]})

    async def _complete(self, request: web.Request) -> web.Response:
        refused = self._refused(request)
        if refused is not None:
            return refused
        model = (await request.json()).get("model")
        if self.strict_models and model not in LISTED:
            body = {"error": {"message": f"The model `{model}` does not exist.", "code": "model_not_found"}}
            return web.json_response(body, status=404)
        return web.json_response({"choices": [{"index": 0, "text": "x", "finish_reason": "length"}]})


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def _dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again: nothing listens there


def _env() -> dict[str, str]:
    drop = ("OPENAI_API_KEY", "LPUPERF_OPENAI_BASE_URL", "LPUPERF_OPENAI_MODEL", "GRPC_VERBOSITY", "GRPC_TRACE")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env[KEY_ENV] = WRONG_KEY
    return env


def _run(how: str, base_url: str, tmp: Path, *extra: str) -> tuple[int, list[str], Path]:
    out = tmp / "out"
    how_args = ["--transport", "openai-http"] if how == "direct" else ["--backend", "openai"]
    argv = [sys.executable, "-m", "cli", "run", *how_args, "--base-url", base_url, "--api-key-env", KEY_ENV]
    argv += ["--dataset", DATASET, "--duration", "2", "--out", str(out), "--no-record", *extra]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=180, env=_env(), cwd=tmp)
    assert RIGHT_KEY not in proc.stdout + proc.stderr and WRONG_KEY not in proc.stdout + proc.stderr
    return proc.returncode, proc.stderr.splitlines(), out


def _refused_in_one_line(how: str, base_url: str, tmp: Path, cause: str, *extra: str) -> str:
    rc, lines, out = _run(how, base_url, tmp, *extra)
    assert rc == 2 and len(lines) == 1, lines
    assert lines[0].startswith("lpuperf run: error: ") and cause in lines[0], lines[0]
    assert not list(out.glob("**/results.json")), "a run was made against an endpoint that cannot serve"
    return lines[0]


WAYS = ("direct", "relay")


@pytest.mark.parametrize("how", WAYS)
def test_a_dead_port_is_connection_refused(how: str, tmp_path: Path) -> None:
    line = _refused_in_one_line(
        how, f"http://127.0.0.1:{_dead_port()}/v1", tmp_path, "connection refused", "--model", "m"
    )
    assert ("--transport openai-http" in line) == (how == "direct")


@pytest.mark.parametrize("how", WAYS)
def test_a_refused_key_is_named_with_its_variable(how: str, tmp_path: Path) -> None:
    with Upstream(key=RIGHT_KEY) as up:
        line = _refused_in_one_line(how, up.base_url, tmp_path, "refused the API key", "--model", "other-a")
    assert KEY_ENV in line and "HTTP 401" in line and "Incorrect API key" in line


@pytest.mark.parametrize("how", WAYS)
def test_an_unknown_model_names_the_models_on_offer(how: str, tmp_path: Path) -> None:
    with Upstream() as up:
        line = _refused_in_one_line(
            how, up.base_url, tmp_path, "'no-such-model' is not served", "--model", "no-such-model"
        )
    assert "HTTP 404" in line and "other-a, other-b" in line


@pytest.mark.parametrize("how", WAYS)
def test_a_certificate_from_an_untrusted_ca_is_a_tls_failure(how: str, tmp_path: Path, pki: Pki) -> None:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(pki.other_server.cert, pki.other_server.key)
    with Upstream(tls=ctx) as up:
        line = _refused_in_one_line(
            how, up.base_url, tmp_path, "certificate does not verify", "--model", "other-a", "--ca-bundle", str(pki.ca)
        )
    assert f"--ca-bundle {pki.ca}" in line


# --- the probe itself, in process --------------------------------------------------------------------


def _start(base_url: str, **fields: Any) -> Any:
    from sut._openai import OpenAIBackend, OpenAIConfig

    cfg = OpenAIConfig.model_validate({"kind": "openai", "base_url": base_url, "dataset": DATASET, **fields})
    backend = OpenAIBackend(cfg, env={KEY_ENV: RIGHT_KEY})

    async def go() -> Any:
        try:
            await backend.start()
            return backend.manifest
        finally:
            await backend.stop()

    return asyncio.run(go())


def test_a_listed_model_and_a_server_serving_any_name_pass_the_probe() -> None:
    with Upstream(key=RIGHT_KEY) as up:
        assert _start(up.base_url, api_key_env=KEY_ENV, model="other-b").model == "other-b"
        assert _start(up.base_url, api_key_env=KEY_ENV).model == "other-a"  # none given: the first listed
        assert up.requests == ["GET /v1/models", "GET /v1/models"]  # a listed model costs no generation
    with Upstream(strict_models=False) as up:  # lists two names, answers to any (TGI)
        assert _start(up.base_url, model="tgi").model == "tgi"
        assert up.requests == ["GET /v1/models", "POST /v1/completions"]


def test_no_key_at_all_says_which_variable_to_set() -> None:
    from sut._openai_probe import EndpointProbeError

    with Upstream(key=RIGHT_KEY) as up, pytest.raises(EndpointProbeError) as err:
        _start(up.base_url, model="other-a", api_key_env="LPUPERF_TEST_UNSET_KEY", require_key=False)
    assert "requires an API key (HTTP 401" in str(err.value) and "LPUPERF_TEST_UNSET_KEY" in str(err.value)


def test_error_bodies_are_read_as_openai_and_fastapi_shape_them() -> None:
    from sut._openai_probe import error_message

    def same(text: str) -> str:
        return text

    assert error_message(json.dumps({"error": {"message": "bad key"}}), same) == "bad key"
    assert error_message(json.dumps({"detail": "Not Found"}), same) == "Not Found"
    assert error_message("", same) == "(empty body)"


def test_a_refused_start_leaves_no_open_session() -> None:
    """The relay's session is closed when the probe refuses the endpoint (no "Unclosed client session")."""
    from sut._openai import OpenAIBackend, OpenAIConfig
    from sut._openai_probe import EndpointProbeError

    cfg = OpenAIConfig.model_validate({"kind": "openai", "base_url": f"http://127.0.0.1:{_dead_port()}/v1"})
    backend = OpenAIBackend(cfg, env={})
    with pytest.raises(EndpointProbeError, match="connection refused"):
        asyncio.run(backend.start())
    assert backend._client is None


def test_a_server_that_accepts_and_never_answers_is_a_read_timeout_not_a_hang() -> None:
    from sut._openai_probe import EndpointProbeError

    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)  # the kernel accepts; nobody ever reads or answers
        port = silent.getsockname()[1]
        with pytest.raises(EndpointProbeError, match="accepted the connection but sent no HTTP answer in time"):
            _start(f"http://127.0.0.1:{port}/v1", model="m", timeout_s=0.5)
