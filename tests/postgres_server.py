"""A throwaway PostgreSQL server for tests: Debian's ``postgresql`` package, a temporary data directory,
a free loopback port, stopped (and its files removed) when the context exits.

The server refuses to run as root, so as root the cluster belongs to the ``postgres`` system user the
package creates and every server command runs through ``runuser``.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

START_TIMEOUT_S = 60.0


def postgres_bin() -> Path | None:
    """The newest installed server's bin directory (``/usr/lib/postgresql/<v>/bin``), if any."""
    root = Path("/usr/lib/postgresql")
    if not root.is_dir():
        return None
    versions = sorted((p for p in root.iterdir() if (p / "bin" / "pg_ctl").is_file()), key=lambda p: p.name)
    return versions[-1] / "bin" if versions else None


def skip_reason() -> str | None:
    """Why a test needing a real PostgreSQL cannot run here, or None when it can."""
    if postgres_bin() is None:
        return "no PostgreSQL server (Debian package 'postgresql'; .ci/run installs it)"
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "psycopg not installed (pip install 'lpuperf[postgres]')"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root without a 'postgres' user to own the cluster"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_owner(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


@contextlib.contextmanager
def running_postgres() -> Iterator[str]:
    """Start a server; yield a URL (``postgresql://postgres@127.0.0.1:PORT/lpuperf``) to a fresh database."""
    bin_dir = postgres_bin()
    assert bin_dir is not None, skip_reason()
    tmp = Path(tempfile.mkdtemp(prefix="lpuperf-pg-"))
    data, sock = tmp / "data", tmp / "sock"
    sock.mkdir()
    if os.geteuid() == 0:
        owner = pwd.getpwnam("postgres")
        for p in (tmp, sock):
            os.chown(p, owner.pw_uid, owner.pw_gid)
    port = _free_port()
    env = {**os.environ, "LC_ALL": "C.UTF-8", "LANG": "C.UTF-8"}
    run = {"capture_output": True, "text": True, "timeout": 120, "check": True, "env": env}
    started = False
    try:
        subprocess.run(
            _as_owner([str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust", "-E", "UTF8"]),
            **run,  # type: ignore[call-overload]
        )
        opts = f"-p {port} -k {sock} -c listen_addresses=127.0.0.1 -c fsync=off"
        subprocess.run(
            _as_owner(
                [str(bin_dir / "pg_ctl"), "-D", str(data), "-o", opts, "-l", str(tmp / "server.log"), "-w", "start"]
            ),
            **run,  # type: ignore[call-overload]
        )
        started = True
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            ok = subprocess.run(
                [str(bin_dir / "pg_isready"), "-h", "127.0.0.1", "-p", str(port)], capture_output=True, timeout=30
            )
            if ok.returncode == 0:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"PostgreSQL on port {port} not ready after {START_TIMEOUT_S:.0f} s")
            time.sleep(0.2)
        subprocess.run(
            [str(bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "lpuperf"],
            **run,  # type: ignore[call-overload]
        )
        yield f"postgresql://postgres@127.0.0.1:{port}/lpuperf"
    finally:
        if started:
            subprocess.run(
                _as_owner([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"]),
                capture_output=True,
                timeout=60,
            )
        shutil.rmtree(tmp, ignore_errors=True)


def fresh_database(admin_url: str, name: str) -> str:
    """Create database ``name`` on the server of ``admin_url``; its URL."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(admin_url, autocommit=True, connect_timeout=10) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return admin_url.rsplit("/", 1)[0] + "/" + name
