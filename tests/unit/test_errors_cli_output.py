"""What reaches the user's terminal when a command fails: one line of ours, never a traceback, never grpc's log.

Every case runs the real CLI in a subprocess (``python -m cli``, ``python -m sut``) with the user's grpc
log settings removed from its environment, and reads its whole stderr:

* ``--sut`` values the resolver refused with a 38-line traceback ending in UnicodeError;
* output to a reader that has gone (``| head``): no BrokenPipeError traceback, and no "Exception ignored"
  from Python's flush at exit; exit 141 (128 + SIGPIPE), as a shell reports such a writer;
* the failures grpc's C core used to log before our line (a host not on this machine, a CA bundle that is
  no CA bundle, a client key that does not match its certificate, a token gRPC metadata cannot carry);
* grpc's own log comes back when the user asks for it (``GRPC_VERBOSITY`` set).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.tls_pki import Pki, make_pki

ROOT = Path(__file__).resolve().parents[2]
DATASET = "synthetic:16:1"
NOT_HERE = "203.0.113.5"  # TEST-NET-3: an address no machine here has
EXIT_BROKEN_PIPE = 141


def _env(**extra: str) -> dict[str, str]:
    drop = ("GRPC_VERBOSITY", "GRPC_TRACE", "LPUPERF_TOKEN", "LPUPERF_AUTH_TOKEN", "LPUPERF_DB")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return {**env, **extra}


def _cli(args: list[str], cwd: Path, module: str = "cli", **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", module, *args], capture_output=True, text=True, timeout=120, cwd=cwd, env=_env(**env)
    )


def _one_error_line(proc: subprocess.CompletedProcess[str], *needles: str) -> str:
    lines = proc.stderr.splitlines()
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert len(lines) == 1, f"expected exactly one line on stderr, got:\n{proc.stderr}"
    assert ": error: " in lines[0] and "Traceback" not in proc.stderr
    for needle in needles:
        assert needle in lines[0], f"{needle!r} not in {lines[0]!r}"
    return lines[0]


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


# --- --sut values that raised UnicodeError ----------------------------------------------------------


@pytest.mark.parametrize(
    ("sut", "needle"),
    [
        ("dns:///bad..name:50051", "host 'bad..name' in 'bad..name:50051': not a valid host name; expected"),
        ("bad..name:50051,127.0.0.1:5", "not a valid host name; expected"),
        ("dns:///" + "x" * 70 + ".example:50051", "not a valid host name; expected"),
        ("ipv4:127.0.0.1:50051,garbage", "ipv4 target: expected host:port, got 'garbage'"),
        ("dns:///name:0", "expected host:port with a port 1..65535"),
    ],
)
def test_a_sut_target_that_cannot_resolve_is_one_line_naming_sut(sut: str, needle: str, tmp_path: Path) -> None:
    proc = _cli(["run", "--sut", sut, "--duration", "1", "--out", str(tmp_path / "out")], tmp_path)
    line = _one_error_line(proc, needle)
    assert line.startswith("lpuperf run: error: ") and "'sut'" in line


# --- a reader that has gone -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def recorded_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A short Offline run recorded under its own --out (a few hundred exported rows)."""
    out = tmp_path_factory.mktemp("runs") / "out"
    argv = ["run", "--artifact", "sim-instant", "--scenario", "Offline", "--dataset", DATASET, "--duration", "1"]
    proc = _cli([*argv, "--out", str(out), "--run-id", "piped"], out.parent)
    assert proc.returncode in (0, 1) and list(out.glob("piped/*/*/queries.npz")), proc.stderr  # 1: not VALID
    return out


def _to_closed_pipe(args: list[str], cwd: Path) -> subprocess.CompletedProcess[bytes]:
    """Run with stdout a pipe whose reader closed before the command wrote anything: every write fails."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        return subprocess.run(
            [sys.executable, "-m", "cli", *args],
            stdout=write_end,
            stderr=subprocess.PIPE,
            timeout=120,
            cwd=cwd,
            env=_env(),
        )
    finally:
        os.close(write_end)


def _pipe_cases(out: Path) -> Iterator[tuple[str, list[str]]]:
    run_dir = next(out.glob("piped/*/*"))
    yield "export", ["export", str(run_dir), "-o", "-"]
    yield "history show", ["history", "show", "1", "--out", str(out)]
    yield "history list", ["history", "list", "--out", str(out)]
    yield "--help", ["--help"]


def test_a_closed_reader_ends_the_command_quietly(recorded_run: Path) -> None:
    for name, args in _pipe_cases(recorded_run):
        proc = _to_closed_pipe(args, recorded_run.parent)
        assert proc.stderr.decode() == "", f"{name}: {proc.stderr.decode()}"
        assert proc.returncode == EXIT_BROKEN_PIPE, (name, proc.returncode)


def test_an_open_reader_still_gets_everything(recorded_run: Path) -> None:
    run_dir = next(recorded_run.glob("piped/*/*"))
    proc = _cli(["export", str(run_dir), "-o", "-"], recorded_run.parent)
    assert proc.returncode == 0 and proc.stderr == ""
    assert len(proc.stdout.splitlines()) > 16  # header + one row per query


# --- grpc's log ---------------------------------------------------------------------------------------

_BIND_ELSEWHERE = (
    "import concurrent.futures as f, grpc\n"
    "server = grpc.server(f.ThreadPoolExecutor(1))\n"
    "try:\n"
    f"    server.add_insecure_port('{NOT_HERE}:0')\n"
    "except RuntimeError:\n"
    "    pass\n"
)


def test_grpc_logs_nothing_after_quiet_grpc_logs_unless_the_user_set_its_verbosity(tmp_path: Path) -> None:
    quiet = "from common import quiet_grpc_logs\nassert quiet_grpc_logs()\n" + _BIND_ELSEWHERE
    run = [sys.executable, "-c", quiet]
    assert subprocess.run(run, capture_output=True, text=True, timeout=60, env=_env(), cwd=tmp_path).stderr == ""
    run[2] = quiet.replace("assert quiet", "assert not quiet")
    asked = subprocess.run(
        run, capture_output=True, text=True, timeout=60, env=_env(GRPC_VERBOSITY="ERROR"), cwd=tmp_path
    )
    assert "add_port" in asked.stderr  # the user's setting stands: grpc's own line is back


def test_quiet_grpc_logs_leaves_a_users_trace_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    from common import quiet_grpc_logs

    monkeypatch.delenv("GRPC_VERBOSITY", raising=False)
    monkeypatch.setenv("GRPC_TRACE", "http")
    assert not quiet_grpc_logs() and "GRPC_VERBOSITY" not in os.environ


def test_python_m_sut_serve_quiets_grpc_before_importing_it(tmp_path: Path) -> None:
    """``python -m sut serve`` (what a spawned SUT runs) sets it itself, without the lpuperf entry point."""
    script = (
        "import os, sys\n"
        "from sut.__main__ import main\n"
        "rc = main(['serve', '--port', '0', '--grace', '-1'])\n"  # refused before anything starts
        "print(rc, os.environ.get('GRPC_VERBOSITY'), 'grpc' in sys.modules)\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, env=_env())
    assert proc.stdout.split() == ["2", "NONE", "False"], proc.stdout + proc.stderr


@pytest.mark.parametrize("module", ["cli", "sut"])
def test_serving_on_an_address_not_on_this_machine_is_one_line(module: str, tmp_path: Path) -> None:
    for port in ("0", "50999"):
        proc = _cli(["serve", "--host", NOT_HERE, "--port", port], tmp_path, module=module)
        _one_error_line(proc, f"--host: cannot listen on {NOT_HERE}:{port}")


def test_a_ca_bundle_that_is_no_ca_bundle_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "ca.pem"
    bad.write_text("-----BEGIN CERTIFICATE-----\nZ2FyYmFnZQ==\n-----END CERTIFICATE-----\n")
    proc = _cli(["run", "--sut", "127.0.0.1:9", "--tls-ca", str(bad), "--out", str(tmp_path / "o")], tmp_path)
    _one_error_line(proc, f"--tls-ca: {bad}: not a PEM CA bundle")


def test_a_client_key_that_does_not_match_its_certificate_is_one_line(tmp_path: Path, pki: Pki) -> None:
    tls = ["--tls-ca", str(pki.ca), "--tls-cert", str(pki.client.cert), "--tls-key", str(pki.other_client.key)]
    proc = _cli(["run", "--sut", "127.0.0.1:9", *tls, "--out", str(tmp_path / "o")], tmp_path)
    _one_error_line(proc, "--tls-cert/--tls-key", "the key does not match the certificate")


@pytest.mark.parametrize(
    ("token", "kind"),
    [("t\u00f6ken-123", "a non-ASCII character"), ("tok\x01en", "a control character"), ("tok en", "whitespace")],
)
def test_a_token_grpc_cannot_carry_is_refused_when_read(token: str, kind: str, tmp_path: Path) -> None:
    f = tmp_path / "token"
    f.write_text(token + "\n", encoding="utf-8")
    f.chmod(0o600)
    run = ["run", "--sut", "127.0.0.1:9", "--out", str(tmp_path / "o")]
    by_file = _one_error_line(
        _cli([*run, "--token-file", str(f)], tmp_path), f"--token-file: {f}: the token holds {kind}"
    )
    by_env = _one_error_line(_cli(run, tmp_path, LPUPERF_TOKEN=token), "environment variable LPUPERF_TOKEN", kind)
    served = _one_error_line(_cli(["serve", "--port", "0", "--auth-token-file", str(f)], tmp_path), "--auth-token-file")
    served_env = _one_error_line(
        _cli(["serve", "--port", "0"], tmp_path, LPUPERF_AUTH_TOKEN=token), "LPUPERF_AUTH_TOKEN"
    )
    for line in (by_file, by_env, served, served_env):
        assert "printable ASCII" in line and token not in line and "Illegal metadata" not in line
