"""A run's telemetry from start to results.json: which targets, when the sampler starts and stops, what is kept.

The targets are the ones ``--scrape`` named plus, unless told otherwise, the SUT's own exporters: each
embedded replica's (spawned with one on loopback) and, with ``replica_metrics_port``, each fleet
replica's host at that port. The sampler starts once the client's clock exists (so its times are the
records' times) and stops after the last query completed; then ``telemetry.npz`` is written beside
``queries.npz``, the targets' warnings join results.json's, and the energy over the measured window
fills ``energy`` when any target had a power source.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from loadgen_harness._energy import energy_over_window
from loadgen_harness._launcher import RunningSut
from loadgen_harness._results import RunResult
from loadgen_harness._run_config import RunConfig, RunError
from loadgen_harness._telemetry import ScrapeTarget, TelemetrySampler

_RECORD_FIELDS = ("issue_ns", "done_ns", "status", "n_tokens")


def wants_sut_metrics(cfg: RunConfig) -> bool:
    """Whether a spawned SUT should serve its metrics for the run to scrape."""
    return cfg.telemetry is not None and cfg.telemetry.scrape_sut


def scrape_targets(cfg: RunConfig, running: RunningSut) -> list[ScrapeTarget]:
    """Every target of the run, the SUT's own last."""
    tel = cfg.telemetry
    if tel is None:
        return []
    targets = list(tel.targets)
    replicas = running.fleet.replicas if running.fleet is not None else []
    if tel.scrape_sut:
        for i, addr in enumerate(running.metrics_addresses):
            rid = replicas[i].replica_id if i < len(replicas) else ""
            targets.append(ScrapeTarget(url=f"http://{addr}/metrics", replica_id=rid))
    if tel.replica_metrics_port is not None and not running.embedded:
        scheme = "https" if tel.replica_metrics_https else "http"
        for r in replicas:
            host = r.address.rpartition(":")[0]
            targets.append(
                ScrapeTarget(
                    url=f"{scheme}://{host}:{tel.replica_metrics_port}/metrics",
                    replica_id=r.replica_id,
                    token_file=tel.replica_token_file,
                    basic_auth_file=tel.replica_basic_auth_file,
                    ca_file=tel.replica_ca_file,
                )
            )
    return targets


def check_telemetry(cfg: RunConfig) -> None:
    """Before anything starts: every named target's credentials readable, RAPL readable; RunError otherwise."""
    if cfg.telemetry is None:
        return
    tel = cfg.telemetry
    # The replicas' targets are known only once the fleet answered: their credentials are checked here.
    template = ScrapeTarget(
        url="http://replica/metrics",
        token_file=tel.replica_token_file,
        basic_auth_file=tel.replica_basic_auth_file,
        ca_file=tel.replica_ca_file,
    )
    for target in [*tel.targets, template]:
        try:
            target.check()
        except OSError as exc:  # RAPL absent or unreadable
            raise RunError(str(exc)) from None


def start_telemetry(cfg: RunConfig, running: RunningSut, t0_ns: int) -> TelemetrySampler | None:
    """The run's sampler, started (None without ``telemetry``); a target that cannot be set up is a RunError."""
    if cfg.telemetry is None:
        return None
    targets = scrape_targets(cfg, running)
    if not targets:
        return None
    sampler = TelemetrySampler(targets, cfg.telemetry, t0_ns)
    try:
        return sampler.start()
    except OSError as exc:  # RAPL absent or unreadable
        raise RunError(str(exc)) from None


def finish_telemetry(sampler: TelemetrySampler | None, res: RunResult, client: Any, log_dir: Path) -> None:
    """Stop sampling, write telemetry.npz, add its warnings and the energy over the measured window to ``res``."""
    if sampler is None:
        return
    res.warnings += sampler.stop()
    telemetry = sampler.telemetry()
    telemetry.save(log_dir)
    res.energy = energy_over_window(telemetry, client.records.columns(_RECORD_FIELDS))
    if res.energy is not None:
        res.warnings += res.energy.warnings
