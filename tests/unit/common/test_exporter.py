"""The metrics exporter: plain HTTP by default; HTTPS verified against the test CA; basic and bearer auth
answered 401 without or with wrong credentials; a failed handshake is counted and the server keeps serving."""

from __future__ import annotations

import base64
import socket
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Counter

from common import ExporterSecurity, MetricsHttpServer, UsageError, serve_registry
from tests.tls_pki import Pki, make_pki

TOKEN = "scrape-token-5b1e0c7a"
USER, PASSWORD = "prom", "pa55-Word-19f2"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def secrets(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("secrets")
    (d / "token").write_text(TOKEN + "\n", encoding="utf-8")
    (d / "basic").write_text(f"{USER}:{PASSWORD}\n", encoding="utf-8")
    return d / "token", d / "basic"


def _registry() -> CollectorRegistry:
    r = CollectorRegistry()
    Counter("lpuperf_test_scrapes", "a test counter", registry=r).inc(3)
    return r


def _get(url: str, ca: Path | None = None, auth: str | None = None) -> tuple[int, str]:
    ctx = ssl.create_default_context(cafile=str(ca)) if ca is not None else None
    req = urllib.request.Request(url, headers={"Authorization": auth} if auth else {})
    try:
        with urllib.request.urlopen(req, timeout=10, context=ctx) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode() + " " + str(exc.headers.get("WWW-Authenticate"))


@pytest.fixture()
def serve() -> Iterator[list[MetricsHttpServer]]:
    started: list[MetricsHttpServer] = []
    yield started
    for s in started:
        s.close()


def test_default_is_plain_http_without_auth(serve: list[MetricsHttpServer]) -> None:
    s = serve_registry(_registry(), 0)
    serve.append(s)
    status, body = _get(f"http://127.0.0.1:{s.port}/metrics")
    assert status == 200 and "lpuperf_test_scrapes_total 3.0" in body and s.scheme == "http"


def test_https_with_bearer_and_basic_auth(serve: list[MetricsHttpServer], pki: Pki, secrets: tuple[Path, Path]) -> None:
    token_file, basic_file = secrets
    refused: list[str] = []
    sec = ExporterSecurity(
        tls_cert=pki.server.cert, tls_key=pki.server.key, token_file=token_file, basic_auth_file=basic_file
    )
    s = serve_registry(_registry(), 0, security=sec, on_refused=refused.append)
    serve.append(s)
    url = f"https://127.0.0.1:{s.port}/metrics"
    basic = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    assert _get(url, pki.ca, f"Bearer {TOKEN}")[0] == 200
    assert _get(url, pki.ca, basic)[0] == 200
    status, body = _get(url, pki.ca)
    assert status == 401 and 'Bearer realm="metrics"' in body and "lpuperf_test" not in body
    wrong_basic = "Basic " + base64.b64encode(f"{USER}:wrong".encode()).decode()
    assert _get(url, pki.ca, wrong_basic)[0] == 401
    assert _get(url, pki.ca, f"Bearer {TOKEN}x")[0] == 401
    assert refused == ["missing", "invalid", "invalid"]
    # Plain HTTP to the HTTPS port gets nothing back.
    with pytest.raises((urllib.error.URLError, ConnectionError, OSError)):
        _get(f"http://127.0.0.1:{s.port}/metrics", auth=f"Bearer {TOKEN}")


def test_a_failed_handshake_is_counted_and_serving_goes_on(serve: list[MetricsHttpServer], pki: Pki) -> None:
    failures: list[int] = []
    sec = ExporterSecurity(tls_cert=pki.server.cert, tls_key=pki.server.key)
    s = serve_registry(_registry(), 0, security=sec, on_tls_failure=lambda: failures.append(1))
    serve.append(s)
    url = f"https://127.0.0.1:{s.port}/metrics"
    with pytest.raises(urllib.error.URLError, match="CERTIFICATE_VERIFY_FAILED"):
        _get(url, pki.other_ca)
    # A client that connects and says nothing must not stall the accept loop (handshakes run per connection).
    with socket.create_connection(("127.0.0.1", s.port), timeout=5):
        assert _get(url, pki.ca)[0] == 200
    for _ in range(50):
        if failures:
            break
        time.sleep(0.05)
    assert failures


def test_bad_files_are_one_line_before_binding(tmp_path: Path, pki: Pki) -> None:
    empty = tmp_path / "empty"
    empty.write_text("", encoding="utf-8")
    nocolon = tmp_path / "basic"
    nocolon.write_text("justauser\n", encoding="utf-8")
    cases = [
        (ExporterSecurity(token_file=empty), "the file is empty"),
        (ExporterSecurity(basic_auth_file=nocolon), "expected one line 'user:password'"),
        (ExporterSecurity(tls_cert=pki.server.cert, tls_key=pki.client.key), "not a PEM certificate and its key"),
    ]
    for sec, expected in cases:
        with pytest.raises(UsageError) as err:
            serve_registry(_registry(), 0, security=sec, what="--metrics-port")
        assert expected in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(ValueError, match="tls_cert and tls_key"):
        ExporterSecurity(tls_cert=pki.server.cert)
