"""Run a SUT next to the caller: in-process on its own uvloop thread, or as a child process."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any

from pydantic import BaseModel

from sut._artifact import ArtifactManifest
from sut._backend import Backend
from sut._plugins import backends

if TYPE_CHECKING:
    import grpc

    from common import BackendSpec
    from sut._security import ServerSecurity

_DEFAULT_BACKEND: BackendSpec = {"kind": "sim"}


class SutStartError(RuntimeError):
    """The SUT did not come up; the message says why (with the child's stderr tail)."""


def create_backend(config: BaseModel | Mapping[str, Any] | None) -> Backend:
    """Instantiate a backend from its config (None: the default sim)."""
    raw: BaseModel | Mapping[str, Any] = _DEFAULT_BACKEND if config is None else config
    if isinstance(raw, Mapping) and "kind" not in raw:
        raw = {"kind": "sim", **raw}
    return backends.create(raw, where="backend")


class EmbeddedServer:
    """A gRPC SUT served from a daemon thread running its own uvloop event loop."""

    def __init__(
        self,
        backend: Backend,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        chunk_size: int | None = None,
        metrics_port: int | None = None,
        security: ServerSecurity | None = None,
        replica_id: str | None = None,
    ) -> None:
        import uvloop

        from sut._server import SutServer

        self.backend = backend
        self.metrics = None
        if metrics_port is not None:
            from sut._metrics import SutMetrics

            self.metrics = SutMetrics(backend.manifest)
        self.server = SutServer(
            backend, host, port, chunk_size=chunk_size, metrics=self.metrics, security=security, replica_id=replica_id
        )
        self.loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="lpuperf-sut", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout=60):
            raise SutStartError("embedded SUT did not start within 60 s")
        if self._error is not None:
            raise SutStartError(f"embedded SUT failed to start: {self._error}") from self._error
        if self.metrics is not None and metrics_port is not None:
            self.metrics.serve(metrics_port)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self.server.start())
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        try:
            self.loop.run_until_complete(self.server.wait_stopped())
        finally:
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            self.loop.close()

    @property
    def address(self) -> str:
        return self.server.address

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def manifest(self) -> ArtifactManifest:
        return self.backend.manifest

    def _schedule_drain(self, grace_s: float) -> concurrent.futures.Future[None] | None:
        """The drain on the server's loop; None when that loop has already closed (a drain that finished
        ends it, so a later stop finds nothing left to stop: checking first would race with the close)."""
        if not self._thread.is_alive():
            return None
        coro = self.server.drain(grace_s)
        try:
            return asyncio.run_coroutine_threadsafe(coro, self.loop)
        except RuntimeError:  # "Event loop is closed"
            coro.close()
            return None

    def drain(self, grace_s: float = 5.0) -> None:
        """Start a graceful drain without waiting for it (what SIGTERM does to a served SUT)."""
        self._schedule_drain(grace_s)

    def stop(self, grace_s: float = 2.0) -> None:
        fut = self._schedule_drain(grace_s)
        deadline = time.monotonic() + grace_s + 10
        # The loop may close right after taking the drain (another drain finished): then the future never
        # completes, but the thread ends, which is what this waits for.
        while fut is not None and not fut.done() and self._thread.is_alive() and time.monotonic() < deadline:
            self._thread.join(0.05)
        self._thread.join(timeout=10)
        if self.metrics is not None:
            self.metrics.close()

    def __enter__(self) -> EmbeddedServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_embedded(
    backend_config: BaseModel | Mapping[str, Any] | None = None,
    *,
    chunk_size: int | None = None,
    metrics_port: int | None = None,
    port: int = 0,
    security: ServerSecurity | None = None,
    replica_id: str | None = None,
) -> EmbeddedServer:
    """Start a SUT in this process on 127.0.0.1 (port 0: a free one); returns once it is SERVING.

    ``security`` serves TLS/mTLS and requires a token, as ``lpuperf serve --tls-cert ...`` does.
    """
    return EmbeddedServer(
        create_backend(backend_config),
        port=port,
        chunk_size=chunk_size,
        metrics_port=metrics_port,
        security=security,
        replica_id=replica_id,
    )


class ServerProcess:
    """``python -m sut serve`` as a child process; ``address`` is valid once SERVING.

    The child's stderr goes to an unlinked temporary file (read back for error messages), so nothing
    of a SUT is left on disk whatever way the parent ends.
    """

    def __init__(self, proc: subprocess.Popen[bytes], address: str, stderr: IO[bytes]) -> None:
        self.proc = proc
        self.address = address
        self.metrics_address = ""  # host:port of its Prometheus exporter when spawned with metrics=True
        self._stderr = stderr
        # Reaps the child and closes the file if the caller never stops it (e.g. the interpreter exits).
        self._finalizer = weakref.finalize(self, _reap, proc, stderr)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stderr_tail(self, n_chars: int = 2000) -> str:
        try:
            fd = self._stderr.fileno()
            size = os.fstat(fd).st_size
            start = max(0, size - 4 * n_chars)
            return os.pread(fd, size - start, start).decode(errors="replace")[-n_chars:]
        except (OSError, ValueError):
            return ""

    def terminate(self, timeout_s: float = 15.0) -> int | None:
        """SIGTERM (graceful drain) and wait; SIGKILL if it overstays. Returns the exit code."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._finalizer()
        return self.proc.returncode

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self._finalizer()

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.terminate()


def _reap(proc: subprocess.Popen[bytes], stderr: IO[bytes]) -> None:
    if proc.poll() is None:
        proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)
    stderr.close()


# The parent's pid, for a spawned SUT to arm its own death signal (see die_with_parent).
_PARENT_PID_ENV = "LPUPERF_SUT_PARENT_PID"
_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """In a spawned SUT, first thing: get SIGTERM when the spawning process dies (Linux only).

    Armed by the child rather than by a ``preexec_fn`` in the parent: a ``preexec_fn`` makes Python
    fork() (not vfork), which runs grpc's fork handlers in a parent whose grpc threads are busy (a fleet
    spawns its next replica while it health-checks the last); under load that aborted the child before
    exec (SIGABRT, "wakeup_fd_->Wakeup()"). PR_SET_PDEATHSIG fires when the thread that spawned the child
    exits, so spawn from a thread that outlives the SUT (the main thread, as the launcher does).
    """
    parent = os.environ.pop(_PARENT_PID_ENV, "")
    if not parent.isdigit() or not sys.platform.startswith("linux"):  # unset, or not ours to read
        return
    import ctypes

    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return
    prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != int(parent):  # the parent died before prctl took effect
        os.kill(os.getpid(), signal.SIGTERM)


def spawn_server(
    extra_args: list[str] | None = None,
    *,
    timeout_s: float = 60.0,
    credentials: grpc.ChannelCredentials | None = None,
    metrics: bool = False,
) -> ServerProcess:
    """Start ``python -m sut serve --port 0 --port-file F [extra_args]``; wait until it is SERVING.

    ``metrics``: the child also serves its Prometheus metrics on a free loopback port (``metrics_address``).

    ``credentials`` reach a child serving TLS (``--tls-cert``) for the readiness probe.
    The child dies with this process (Linux), and the private temp dir that holds the port file is
    removed as soon as the port is known or the start failed.
    """
    # Owned by the returned handle (closed when the SUT stops), hence no ``with``.
    stderr = tempfile.TemporaryFile(prefix="lpuperf-sut-stderr-")  # noqa: SIM115
    tmpdir = Path(tempfile.mkdtemp(prefix="lpuperf-sut-"))
    handle: ServerProcess | None = None
    try:
        port_file = tmpdir / "port"
        cmd = [sys.executable, "-m", "sut", "serve", "--port", "0", "--port-file", str(port_file), *(extra_args or [])]
        metrics_file = tmpdir / "metrics-port"
        if metrics:
            cmd += ["--metrics-port", "0", "--metrics-port-file", str(metrics_file)]
        env = dict(os.environ)
        # A spawned SUT is plaintext on loopback for its parent: an ambient serve token must not lock it.
        env.pop("LPUPERF_AUTH_TOKEN", None)
        root = str(Path(__file__).resolve().parent.parent)
        env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        env[_PARENT_PID_ENV] = str(os.getpid())
        # No preexec_fn: Python then spawns with vfork, and no fork handler runs in this process. Its own
        # session: a terminal's Ctrl-C goes to the run, which stops its SUT itself (a SUT draining on the same
        # SIGINT would look like a replica outage mid-run); it still dies with this process (die_with_parent).
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=stderr, env=env, start_new_session=True)
        handle = ServerProcess(proc, "", stderr)
        deadline = time.monotonic() + timeout_s
        while True:
            if proc.poll() is not None:
                raise SutStartError(
                    f"SUT process exited with status {proc.returncode} before serving: {handle.stderr_tail().strip()}"
                )
            if port_file.is_file():
                text = port_file.read_text().strip()
                if text:
                    handle.address = f"127.0.0.1:{int(text)}"
                    if metrics:  # written before the port file
                        handle.metrics_address = f"127.0.0.1:{int(metrics_file.read_text().strip())}"
                    break
            if time.monotonic() > deadline:
                raise SutStartError(
                    f"SUT process did not bind within {timeout_s:.0f} s: {handle.stderr_tail().strip()}"
                )
            time.sleep(0.02)
        shutil.rmtree(tmpdir, ignore_errors=True)
        remaining = max(1.0, deadline - time.monotonic())
        if not wait_serving(handle.address, remaining, credentials):
            raise SutStartError(
                f"SUT at {handle.address} not SERVING within {timeout_s:.0f} s: {handle.stderr_tail().strip()}"
            )
    except BaseException:
        if handle is not None:
            handle.kill()
        else:
            stderr.close()
        raise
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
    return handle


def wait_serving(
    address: str,
    timeout_s: float = 30.0,
    credentials: grpc.ChannelCredentials | None = None,
    options: Sequence[tuple[str, Any]] = (),
) -> bool:
    """Poll grpc.health.v1 until the server reports SERVING (bounded by ``timeout_s``).

    ``credentials``/``options`` reach a TLS SUT (the harness builds them: ``loadgen_harness`` transport).
    """
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    deadline = time.monotonic() + timeout_s
    channel = (
        grpc.insecure_channel(address, options=list(options))
        if credentials is None
        else grpc.secure_channel(address, credentials, options=list(options))
    )
    with channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            try:
                resp = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=1.0)
                if resp.status == health_pb2.HealthCheckResponse.SERVING:
                    return True
            except grpc.RpcError:
                pass
            time.sleep(0.05)
    return False
