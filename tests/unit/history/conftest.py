"""Run stores for the history tests: SQLite in a temp dir, and PostgreSQL from Debian's package when it is
installed (one server per session, a fresh database per test; skipped with the reason otherwise)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.history_runs import write_run
from tests.postgres_server import fresh_database, running_postgres, skip_reason

__all__ = ["write_run"]
_DB_NUMBERS = itertools.count(1)


@pytest.fixture(scope="session")
def postgres_admin_url() -> Iterator[str]:
    reason = skip_reason()
    if reason is not None:
        pytest.skip(reason)
    with running_postgres() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A URL (as --db takes it) to an empty store of each kind."""
    if request.param == "sqlite":
        return str(tmp_path / "store" / "lpuperf.db")
    admin: str = request.getfixturevalue("postgres_admin_url")
    return fresh_database(admin, f"t{next(_DB_NUMBERS)}")
