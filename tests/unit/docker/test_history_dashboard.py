"""The "builds over time" dashboard: Grafana's PostgreSQL data source points at compose's run store with the
credentials the harness records with, and every panel's SQL runs on a store lpuperf made (real PostgreSQL
from Debian's package; skipped with the reason when it is absent)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml

from tests.postgres_server import fresh_database, running_postgres, skip_reason

DOCKER = Path(__file__).resolve().parents[3] / "docker"
COMPOSE = DOCKER / "compose.yaml"
DASHBOARD = DOCKER / "grafana" / "dashboards" / "lpuperf-history.json"
DATASOURCE = DOCKER / "grafana" / "provisioning" / "datasources" / "postgres.yaml"
_SECRET = re.compile(r"^(?:\$__file\{)?/run/secrets/([a-z_]+)\}?$")


def _yaml(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict), path
    return data


def _queries(dashboard: dict[str, Any]) -> dict[str, str]:
    """Every SQL the dashboard sends: each panel target's rawSql and each query variable's query."""
    out = {f"{p['title']}/{t['refId']}": t["rawSql"] for p in dashboard["panels"] for t in p["targets"]}
    out |= {f"${v['name']}": v["query"] for v in dashboard["templating"]["list"] if v["type"] == "query"}
    return out


def grafana_sql(sql: str, artifacts: list[str]) -> str:
    """The SQL Grafana would run: its macros expanded over all time, ``$artifact`` as the chosen names."""
    sql = re.sub(r"\$__timeFilter\(([^)]+)\)", r"\1 BETWEEN '1970-01-01T00:00:00Z' AND '2100-01-01T00:00:00Z'", sql)
    sql = sql.replace("$artifact", ", ".join("'" + a.replace("'", "''") + "'" for a in artifacts))
    unknown = re.findall(r"\$\w+", sql)
    assert not unknown, f"macros this check does not know: {unknown}"
    return sql


def test_the_data_source_is_compose_s_run_store_with_the_harness_s_credentials() -> None:
    dash, ds, compose = json.loads(DASHBOARD.read_text()), _yaml(DATASOURCE)["datasources"][0], _yaml(COMPOSE)
    services = compose["services"]
    assert ds["type"] == "grafana-postgresql-datasource"
    for panel in dash["panels"]:
        assert panel["datasource"]["uid"] == ds["uid"], panel["title"]
        assert all(t["datasource"]["uid"] == ds["uid"] for t in panel["targets"]), panel["title"]
    host, _, port = ds["url"].partition(":")
    pg = services[host]
    assert port == "5432" and pg["image"].startswith("postgres:")
    env = pg["environment"]
    assert (ds["user"], ds["jsonData"]["database"]) == (env["POSTGRES_USER"], env["POSTGRES_DB"])
    # One password, from one compose secret, for the server, Grafana and the harness.
    server_secret = _SECRET.match(env["POSTGRES_PASSWORD_FILE"])
    grafana_secret = _SECRET.match(ds["secureJsonData"]["password"])
    harness_env = services["harness"]["environment"]
    harness_secret = _SECRET.match(harness_env["LPUPERF_DB_PASSWORD_FILE"])
    assert server_secret and grafana_secret and harness_secret
    secret = server_secret[1]
    assert grafana_secret[1] == harness_secret[1] == secret
    for name in ("postgres", "grafana", "harness"):
        assert secret in services[name]["secrets"], name
    assert "postgres" in services["grafana"]["depends_on"] and "postgres" in services["harness"]["depends_on"]
    url = sa.engine.make_url(harness_env["LPUPERF_DB"])
    assert (url.host, url.port, url.database, url.username, url.password) == (
        host,
        int(port),
        env["POSTGRES_DB"],
        env["POSTGRES_USER"],
        None,  # never in the environment: it comes from the secret file
    )


@pytest.fixture(scope="module")
def store() -> Iterator[str]:
    """A PostgreSQL store lpuperf created, holding two builds' runs with accuracy, fidelity and verdicts."""
    reason = skip_reason()
    if reason is not None:
        pytest.skip(reason)
    from history import ArtifactBuild, MetricValue, RunRecord, Verdict, open_store, store_url

    with running_postgres() as admin:
        url = store_url(fresh_database(admin, "grafana"), None)
        t0 = datetime.now(UTC) - timedelta(days=1)
        with open_store(url) as s:
            for i, build in enumerate(("b1", "b2")):
                rec = RunRecord(
                    command="run",
                    run_id=f"run-{build}",
                    run_at=t0 + timedelta(hours=i),
                    scenario="Server",
                    mode="performance",
                    benchmark="embedded",
                    artifact=ArtifactBuild(name="lpu-llm", manifest_sha256=f"{i}" * 64, build_id=build),
                    metrics=[
                        MetricValue(name=n, value=v)
                        for n, v in (
                            ("ttft_ms.p99", 80.0 + i),
                            ("tpot_ms.p99", 12.0),
                            ("tokens_per_second", 600.0),
                            ("accuracy.rougeL", 44.0),
                            ("fidelity.exact_match[all]", 0.9),
                            ("fidelity.exact_match[math]", 0.8),
                        )
                    ],
                    verdicts=[Verdict(kind="gate", name="embedded", passed=bool(i), message="ttft_p99 over")],
                )
                rid = s.record(rec)
                if i == 0:
                    s.mark_good(rid)
        yield url


def _run(url: str, sql: str) -> list[Any]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return list(conn.execute(sa.text(sql.replace(":", r"\:"))).all())
    finally:
        engine.dispose()


def test_every_panel_query_runs_on_a_store_lpuperf_made(store: str) -> None:
    rows = {
        name: _run(store, grafana_sql(sql, ["lpu-llm"]))
        for name, sql in _queries(json.loads(DASHBOARD.read_text())).items()
    }
    assert rows["$artifact"] == [("lpu-llm",)]
    for panel in ("TTFT p99 per build", "TPOT p99 per build", "Tokens per second", "ROUGE-L"):
        assert [r[2] for r in rows[f"{panel}/A"]] == ["lpu-llm", "lpu-llm"], panel  # (time, value, series)
    assert sorted({r[2] for r in rows["Exact match vs FP32, per category/A"]}) == ["lpu-llm all", "lpu-llm math"]
    assert [(r[1], r[4], r[5]) for r in rows["Builds/A"]] == [("b2", 1, False), ("b1", 1, True)]
    assert [(r[3], r[4], r[5]) for r in rows["Failed verdicts/A"]] == [("run-b1", "gate", "embedded")]


def test_a_query_on_a_column_the_store_lacks_is_caught(store: str) -> None:
    sql = _queries(json.loads(DASHBOARD.read_text()))["TTFT p99 per build/A"].replace("m.value", "m.val")
    with pytest.raises(sa.exc.ProgrammingError, match=r"column m\.val does not exist"):
        _run(store, grafana_sql(sql, ["lpu-llm"]))
