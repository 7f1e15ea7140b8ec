"""TLS, mTLS and bearer tokens end to end: ``lpuperf serve`` secured, ``lpuperf run`` and the other
workflows reaching it, real handshakes on loopback, certificates made in the test run.

* A VALID short Server run over TLS (IP-addressed SUT, ``--tls-server-name``) and over mTLS (token from
  ``LPUPERF_TOKEN``).
* Each failure before a run is one ``lpuperf run: error:`` line naming the cause, exit 2, and no run
  directory: wrong CA, wrong server name, expired server certificate, missing client certificate,
  client certificate from another CA, missing token, wrong token, plaintext client to a TLS SUT.
* Every workflow that talks to a SUT takes the flags (each refused the same way without the token),
  and the context probe, which opens its own channel, passes over TLS.
* The token never appears: not in any file a run wrote, its stdout/stderr, the SUT's output, the
  metrics text, or ``/proc/<pid>/cmdline`` of any process while the run went on.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.tls_pki import Pki, make_pki

pytestmark = pytest.mark.integration

TOKEN = "lpuperf-IT-token-9d2f61c0b7e34a58"
DATASET = "synthetic:64:7"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def secrets_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("secrets")
    (d / "token").write_text(TOKEN + "\n", encoding="utf-8")
    (d / "wrong-token").write_text("not-" + TOKEN + "\n", encoding="utf-8")
    (d / "metrics-token").write_text("metrics-" + TOKEN + "\n", encoding="utf-8")
    return d


@pytest.fixture(scope="module")
def manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from sut import ArtifactManifest, TimingModel

    m = ArtifactManifest(
        artifact_id="timed-tls",
        backend="sim",
        model="embedded-sim",
        precision="fp32",
        max_context_tokens=4096,
        max_batch=256,
        timing=TimingModel(prefill_base_s=0.001, prefill_per_token_s=0.0, decode_step_s=0.001),
        target="sim-lpu",
    )
    p = tmp_path_factory.mktemp("manifest") / "timed.json"
    p.write_text(m.model_dump_json(), encoding="utf-8")
    return p


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("LPUPERF_TOKEN", "LPUPERF_AUTH_TOKEN")}
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return {**env, **extra}


class Served:
    def __init__(self, proc: subprocess.Popen[bytes], port: int, log: Path, metrics_port: int | None) -> None:
        self.proc, self.port, self.log, self.metrics_port = proc, port, log, metrics_port

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"


@contextlib.contextmanager
def serve(tmp: Path, name: str, args: list[str], metrics: bool = False, **env: str) -> Iterator[Served]:
    """``lpuperf serve`` as a child process, secured by ``args``; yields once it listens."""
    port_file = tmp / f"{name}.port"
    log = tmp / f"{name}.log"
    extra = ["--metrics-port", "0"] if metrics else []
    argv = [sys.executable, "-m", "cli", "serve", "--port", "0", "--port-file", str(port_file), *args, *extra]
    with open(log, "wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=_env(**env))
    try:
        deadline = time.monotonic() + 90
        while not (port_file.is_file() and port_file.read_text().strip()):
            assert proc.poll() is None, log.read_text(errors="replace")
            assert time.monotonic() < deadline, "lpuperf serve did not start"
            time.sleep(0.05)
        metrics_port = None
        if metrics:
            text = log.read_text()
            metrics_port = int(text.split("metrics on https://127.0.0.1:")[1].split(",")[0].split()[0])
        yield Served(proc, int(port_file.read_text().strip()), log, metrics_port)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def lpuperf(args: list[str], timeout_s: float = 240, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli", *args], capture_output=True, text=True, timeout=timeout_s, env=_env(**env)
    )


class CmdlineWatch:
    """Reads /proc/<pid>/cmdline of every process every 0.1 s while a run goes on; collects any holding the token."""

    def __init__(self, secret: str) -> None:
        self.secret = secret.encode()
        self.hits: list[str] = []
        self.scans = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        while not self._stop.is_set():
            for entry in Path("/proc").iterdir():
                if entry.name.isdigit():
                    with contextlib.suppress(OSError):
                        raw = (entry / "cmdline").read_bytes()
                        if self.secret in raw or self.secret.upper() in raw.upper():
                            self.hits.append(f"{entry.name}: {raw[:200]!r}")
            self.scans += 1
            self._stop.wait(0.1)

    def __enter__(self) -> CmdlineWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def _assert_secret_absent(secret: str, texts: dict[str, str], files_under: list[Path]) -> None:
    low = secret.lower().encode()
    for what, text in texts.items():
        assert secret.lower() not in text.lower(), f"the token appears in {what}"
    n_files = 0
    for root in files_under:
        for path in root.rglob("*"):
            if path.is_file():
                n_files += 1
                assert low not in path.read_bytes().lower(), f"the token appears in {path}"
    assert n_files > 0


def _run_argv(address: str, out: Path, run_id: str) -> list[str]:
    return [
        "run",
        "--scenario",
        "Server",
        "--sut",
        address,
        "--qps",
        "60",  # 600 queries, enough for LoadGen's early stopping, at a rate a loaded 2-core box keeps over TLS
        "--duration",
        "10",
        "--dataset",
        DATASET,
        "--max-new-tokens",
        "16",
        "--out",
        str(out),
        "--run-id",
        run_id,
        "--metrics-port",
        "0",
    ]


def test_valid_server_runs_over_tls_and_mtls_and_the_token_never_shows(
    tmp_path: Path, pki: Pki, secrets_dir: Path, manifest: Path
) -> None:
    from loadgen_harness import load_results

    sut_args = ["--artifact", str(manifest), "--dataset", DATASET, "--auth-token-file", str(secrets_dir / "token")]
    # TLS to an IP-addressed SUT whose certificate names only sut.example: --tls-server-name makes it verify.
    tls_args = ["--tls-cert", str(pki.name_server.cert), "--tls-key", str(pki.name_server.key)]
    mtls_args = ["--tls-cert", str(pki.server.cert), "--tls-key", str(pki.server.key), "--tls-client-ca", str(pki.ca)]
    metrics_auth = ["--metrics-token-file", str(secrets_dir / "metrics-token")]
    out = tmp_path / "out"
    outputs: dict[str, str] = {}
    with (
        serve(tmp_path, "tls", sut_args + tls_args) as tls_sut,
        serve(tmp_path, "mtls", sut_args + mtls_args + metrics_auth, metrics=True) as mtls_sut,
        CmdlineWatch(TOKEN) as watch,
    ):
        tls = lpuperf(
            [
                *_run_argv(tls_sut.address, out, "tls"),
                "--tls-ca",
                str(pki.ca),
                "--tls-server-name",
                "sut.example",
                "--token-file",
                str(secrets_dir / "token"),
            ]
        )
        mtls = lpuperf(
            [
                *_run_argv(mtls_sut.address, out, "mtls"),
                "--tls-ca",
                str(pki.ca),
                "--tls-cert",
                str(pki.client.cert),
                "--tls-key",
                str(pki.client.key),
            ],
            LPUPERF_TOKEN=TOKEN,
        )
        # The SUT's metrics over HTTPS with their own bearer token; scraped while the SUT is up.
        req = urllib.request.Request(
            f"https://127.0.0.1:{mtls_sut.metrics_port}/metrics",
            headers={"Authorization": f"Bearer metrics-{TOKEN}"},
        )
        import ssl

        with urllib.request.urlopen(req, timeout=10, context=ssl.create_default_context(cafile=str(pki.ca))) as r:
            outputs["SUT metrics"] = r.read().decode()
    for name, proc in (("tls", tls), ("mtls", mtls)):
        assert proc.returncode == 0, f"{name}: rc {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
        res = load_results(out / name / "Server" / "performance")
        assert res.valid and res.n_errors == 0 and res.n_queries >= 400, res.validity_reasons
        outputs[f"{name} stdout"], outputs[f"{name} stderr"] = proc.stdout, proc.stderr
    serve_logs = {f"{s} SUT output": (tmp_path / f"{s}.log").read_text(errors="replace") for s in ("tls", "mtls")}
    assert "mTLS client" in serve_logs["mtls SUT output"] and "CN=lpuperf-harness" in serve_logs["mtls SUT output"]
    assert "(TLS, bearer token)" in serve_logs["tls SUT output"]
    assert 'lpuperf_sut_requests_total{front="grpc",status="OK"}' in outputs["SUT metrics"]
    assert "lpuperf_sut_tls_sessions_total" in outputs["SUT metrics"]
    assert watch.scans >= 10 and not watch.hits, watch.hits
    _assert_secret_absent(TOKEN, {**outputs, **serve_logs}, [out])


FAILURES = [
    # (case, SUT certificate, SUT mTLS, harness flags, expected words in the one error line)
    ("wrong CA", "server", False, ["--tls-ca", "{other_ca}", "--token-file", "{token}"], "unknown CA"),
    ("wrong server name", "server", False, ["--tls-ca", "{ca}", "--tls-server-name", "wrong.example"], "name mismatch"),
    ("expired server certificate", "expired_server", False, ["--tls-ca", "{ca}", "--token-file", "{token}"], "expired"),
    (
        "missing client certificate",
        "server",
        True,
        ["--tls-ca", "{ca}", "--token-file", "{token}"],
        "requires a client",
    ),
    (
        "client certificate from another CA",
        "server",
        True,
        ["--tls-ca", "{ca}", "--tls-cert", "{other_client_cert}", "--tls-key", "{other_client_key}"],
        "refused the client certificate",
    ),
    ("missing token", "server", False, ["--tls-ca", "{ca}"], "missing token"),
    ("wrong token", "server", False, ["--tls-ca", "{ca}", "--token-file", "{wrong_token}"], "wrong token"),
    ("plaintext client to a TLS SUT", "server", False, ["--token-file", "{token}"], "speaks TLS"),
]


def _fill(flags: list[str], pki: Pki, secrets_dir: Path) -> list[str]:
    values = {
        "ca": pki.ca,
        "other_ca": pki.other_ca,
        "token": secrets_dir / "token",
        "wrong_token": secrets_dir / "wrong-token",
        "other_client_cert": pki.other_client.cert,
        "other_client_key": pki.other_client.key,
    }
    return [str(values[f[1:-1]]) if f.startswith("{") else f for f in flags]


def test_each_tls_and_token_failure_is_one_line_and_no_run_starts(
    tmp_path: Path, pki: Pki, secrets_dir: Path, manifest: Path
) -> None:
    token = ["--auth-token-file", str(secrets_dir / "token")]
    base = ["--artifact", str(manifest), "--dataset", DATASET, *token]

    def cert_args(name: str, mtls: bool) -> list[str]:
        pair = getattr(pki, name)
        return ["--tls-cert", str(pair.cert), "--tls-key", str(pair.key)] + (
            ["--tls-client-ca", str(pki.ca)] if mtls else []
        )

    out = tmp_path / "out"
    seen: list[str] = []
    with (
        serve(tmp_path, "tls", base + cert_args("server", False)) as tls_sut,
        serve(tmp_path, "mtls", base + cert_args("server", True)) as mtls_sut,
        serve(tmp_path, "expired", base + cert_args("expired_server", False)) as expired_sut,
    ):
        suts = {("server", False): tls_sut, ("server", True): mtls_sut, ("expired_server", False): expired_sut}
        for case, cert, mtls, flags, expected in FAILURES:
            sut = suts[(cert, mtls)]
            run_id = case.replace(" ", "-")
            argv = ["run", "--sut", sut.address, "--out", str(out), "--run-id", run_id, "--duration", "1"]
            proc = lpuperf(argv + _fill(flags, pki, secrets_dir), timeout_s=120)
            lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
            assert proc.returncode == 2, f"{case}: rc {proc.returncode}: {proc.stderr}"
            assert len(lines) == 1 and lines[0].startswith("lpuperf run: error: sut "), f"{case}: {lines}"
            assert expected in lines[0], f"{case}: {lines[0]}"
            assert not (out / run_id).exists(), f"{case}: a run directory was made"
            seen.append(lines[0])
    assert len(set(seen)) == len(FAILURES)  # each cause has its own line
    _assert_secret_absent(TOKEN, {"error lines": "\n".join(seen)}, [tmp_path])


def test_every_workflow_takes_the_flags_and_the_context_probe_passes_over_tls(
    tmp_path: Path, pki: Pki, secrets_dir: Path, manifest: Path
) -> None:
    sut_args = ["--artifact", str(manifest), "--dataset", DATASET, "--auth-token-file", str(secrets_dir / "token")]
    sut_args += ["--tls-cert", str(pki.server.cert), "--tls-key", str(pki.server.key)]
    out = tmp_path / "out"
    with serve(tmp_path, "sut", sut_args) as sut:
        addr, ca = sut.address, ["--tls-ca", str(pki.ca)]
        commands: list[list[str]] = [
            ["find-peak", "--sut", addr, *ca],
            ["validate", "--baseline", addr, "--candidate", addr, *ca],
            ["compliance", "test06", "--sut", addr, *ca],
            ["compliance", "context", "--sut", addr, *ca],
            ["submission", "run", "--sut", addr, *ca],
            ["accuracy", "--sut", addr, *ca],
        ]
        for argv in commands:
            proc = lpuperf([*argv, "--out" if argv[0] != "accuracy" else "--results", str(out)], timeout_s=120)
            text = proc.stdout + proc.stderr
            assert proc.returncode == 2 and "missing token" in text, f"{argv[:2]}: rc {proc.returncode}: {text[-800:]}"
        probe = lpuperf(
            [
                "compliance",
                "context",
                "--sut",
                addr,
                *ca,
                "--token-file",
                str(secrets_dir / "token"),
                "--out",
                str(out),
                "--run-id",
                "ctx",
                "--max-new-tokens",
                "4",
            ],
            timeout_s=180,
        )
    assert probe.returncode == 0, probe.stdout + probe.stderr
    assert "context: PASS" in probe.stdout
    _assert_secret_absent(TOKEN, {"probe output": probe.stdout + probe.stderr}, [out])


# ======================================================================================================
# Issue 23, points 9-10 (errors and start-up guards): the metrics endpoint takes the gRPC port's token by
# default, serve warns at start about an expired certificate and secrets others can read, and a token
# gRPC metadata cannot carry fails when it is read, on one line, with nothing from grpc's log.
# ======================================================================================================


def _private_token(tmp: Path, name: str, value: str = TOKEN) -> Path:
    f = tmp / name
    f.write_text(value + "\n", encoding="utf-8")
    f.chmod(0o600)
    return f


def _banner(sut: Served) -> str:
    """The serve log once its start-up line is out (written just after the port file)."""
    deadline = time.monotonic() + 30
    while "listening on" not in (text := sut.log.read_text(errors="replace")):
        assert time.monotonic() < deadline, text
        time.sleep(0.05)
    return text


def _metrics_status(text: str, token: str | None) -> int:
    port = int(text.split("metrics on http://127.0.0.1:")[1].split()[0].rstrip(","))
    req = urllib.request.Request(f"http://127.0.0.1:{port}/metrics")
    if token is not None:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return int(r.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def test_the_grpc_token_guards_the_metrics_unless_opened_on_purpose(tmp_path: Path, manifest: Path) -> None:
    token = ["--auth-token-file", str(_private_token(tmp_path, "token"))]
    base = ["--artifact", str(manifest), "--dataset", DATASET, *token, "--metrics-port", "0"]
    with serve(tmp_path, "guarded", base) as guarded, serve(tmp_path, "opened", [*base, "--metrics-open"]) as opened:
        guarded_log, opened_log = _banner(guarded), _banner(opened)
        assert _metrics_status(guarded_log, None) == 401 and _metrics_status(guarded_log, "wrong") == 401
        assert _metrics_status(guarded_log, TOKEN) == 200
        assert _metrics_status(opened_log, None) == 200
    assert "(the gRPC port's bearer token; --metrics-open drops it)" in guarded_log and "warning" not in guarded_log
    assert "(no auth)" in opened_log
    assert "lpuperf serve: warning: --metrics-open: the metrics endpoint answers anyone" in opened_log
    both = lpuperf(["serve", "--port", "0", *token, "--metrics-port", "0", "--metrics-open", "--metrics-token-file",
                    token[1]], timeout_s=60)  # fmt: skip
    assert both.returncode == 2 and both.stderr.count("\n") == 1 and "--metrics-open: contradicts" in both.stderr


def test_serve_warns_at_start_about_an_expired_certificate_and_secrets_others_can_read(
    tmp_path: Path, pki: Pki, manifest: Path
) -> None:
    token = _private_token(tmp_path, "token")
    key = tmp_path / "expired.key"
    key.write_bytes(pki.expired_server.key.read_bytes())
    token.chmod(0o644)
    key.chmod(0o640)
    tls = ["--tls-cert", str(pki.expired_server.cert), "--tls-key", str(key)]
    with serve(tmp_path, "warned", ["--artifact", str(manifest), "--dataset", DATASET, *tls, "--auth-token-file",
                                    str(token)]) as sut:  # fmt: skip
        text = _banner(sut)
        assert sut.proc.poll() is None  # a warning, not an error: it serves
    warnings = [ln for ln in text.splitlines() if ln.startswith("lpuperf serve: warning: ")]
    assert len(warnings) == 3, text
    assert f"--tls-cert {pki.expired_server.cert}: the certificate expired" in warnings[0]
    assert f"--tls-key {key}: readable by group" in warnings[1] and "--auth-token-file" in warnings[2]
    assert TOKEN not in text


def test_a_token_grpc_cannot_carry_is_one_line_when_read_not_illegal_metadata(
    tmp_path: Path, pki: Pki, manifest: Path
) -> None:
    good = _private_token(tmp_path, "token")
    bad = _private_token(tmp_path, "bad-token", TOKEN + "\u00e9")
    sut_args = ["--artifact", str(manifest), "--dataset", DATASET, "--auth-token-file", str(good)]
    sut_args += ["--tls-cert", str(pki.server.cert), "--tls-key", str(pki.server.key)]
    with serve(tmp_path, "sut", sut_args) as sut:
        run = ["run", "--sut", sut.address, "--tls-ca", str(pki.ca), "--duration", "1", "--out", str(tmp_path / "o")]
        by_file = lpuperf([*run, "--token-file", str(bad)], timeout_s=120)
        by_env = lpuperf(run, timeout_s=120, LPUPERF_TOKEN=TOKEN + "\x01")
    for proc, needle in ((by_file, f"--token-file: {bad}: the token holds a non-ASCII"), (by_env, "LPUPERF_TOKEN")):
        assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr  # nothing from grpc's log
        assert needle in proc.stderr and "Illegal metadata" not in proc.stderr and "GetArtifact" not in proc.stderr
    assert not (tmp_path / "o").exists()
