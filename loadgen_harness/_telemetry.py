"""Server-side telemetry during a run: Prometheus endpoints (and the host's RAPL counters) sampled on the run's clock.

One daemon thread per target scrapes it every ``interval_s`` (first at start, last at stop, so the
series bracket the measured window), reads the exposition (``_scrape_read``: ``prometheus_client``'s
parser, each distinct series line parsed once) and appends ``(t_s, series, value)`` to columnar
arrays, one chunk per scrape. Nothing here touches the query path: the threads share nothing with the
bridge but the GIL (bench/telemetry_overhead.py measures their CPU time).

Times are seconds from the run's ``t0_ns`` (the clock of queries.npz): each sample is stamped with the
midpoint of its HTTP exchange. Memory is bounded: each target keeps at most its share of ``max_points``
of every series; past that only canonical series (telemetry_sources) are kept, past twice that nothing
more, and a warning says so. A target that stops answering is a warning with the run time it stopped
(and when it came back), never a failed run. ``save`` writes ``telemetry.npz`` atomically.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from common import UsageError, atomic_path, read_secret_file, scrub_url
from loadgen_harness._scrape_read import RAPL_ROOT, ExpositionReader, HttpScrape, RaplReader, SeriesTable
from loadgen_harness._telemetry_sources import CanonicalSeries, known_maps

TELEMETRY_FILE = "telemetry.npz"
RAPL_TARGET = "rapl"


class ScrapeTarget(BaseModel):
    """One endpoint to sample: a Prometheus ``http(s)://`` URL, or ``rapl`` (this host's powercap counters)."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(min_length=1)
    replica_id: str = Field(default="", description="the SUT replica the endpoint belongs to, when it is one")
    token_file: Path | None = Field(default=None, description="file holding a bearer token")
    basic_auth_file: Path | None = Field(default=None, description="file holding user:password")
    ca_file: Path | None = Field(default=None, description="CA bundle to verify an https target with")

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        if v == RAPL_TARGET or v.startswith(f"{RAPL_TARGET}:"):
            return v  # rapl, or rapl:/other/powercap/root
        if not v.startswith(("http://", "https://")):
            raise ValueError(f"expected an http:// or https:// URL (or '{RAPL_TARGET}'), got '{scrub_url(v)}'")
        return v

    @property
    def name(self) -> str:
        """The target as results and reports show it (no credentials)."""
        return scrub_url(self.url)

    @property
    def is_rapl(self) -> bool:
        return self.url == RAPL_TARGET or self.url.startswith(f"{RAPL_TARGET}:")

    def rapl_root(self) -> Path:
        return Path(self.url.split(":", 1)[1]) if ":" in self.url else Path(RAPL_ROOT)

    def headers_and_auth(self) -> tuple[dict[str, str], tuple[str, str] | None]:
        """(request headers, basic-auth pair) from the secret files; UsageError naming the flag and file."""
        headers = {"Accept": "text/plain"}
        if self.token_file is not None:
            token = read_secret_file(self.token_file, "--scrape-token-file", bearer_token=True)
            headers["Authorization"] = f"Bearer {token}"
        if self.basic_auth_file is None:
            return headers, None
        user, sep, password = read_secret_file(self.basic_auth_file, "--scrape-basic-auth-file").partition(":")
        if not sep or not user:
            raise UsageError(f"--scrape-basic-auth-file: {self.basic_auth_file}: expected user:password")
        return headers, (user, password)

    def check(self) -> None:
        """Readable credentials, CA file and RAPL counters; UsageError or RaplUnavailable (an OSError) otherwise."""
        if self.is_rapl:
            RaplReader(self.rapl_root())
            return
        self.headers_and_auth()
        if self.ca_file is not None and not self.ca_file.is_file():
            raise UsageError(f"--scrape-ca-file: {self.ca_file}: expected a CA bundle file")


class TelemetryConfig(BaseModel):
    """What a run scrapes (``lpuperf run --scrape``)."""

    model_config = ConfigDict(extra="forbid")

    targets: list[ScrapeTarget] = Field(default_factory=list)
    interval_s: float = Field(default=1.0, ge=0.05, le=60)
    timeout_s: float = Field(default=2.0, gt=0, le=60)
    # The SUT's own exporters: an embedded SUT's (started with one), or each fleet replica's host at this port.
    scrape_sut: bool = True
    replica_metrics_port: int | None = Field(default=None, ge=1, le=65535)
    replica_metrics_https: bool = False
    # Credentials of the replicas' exporters (lpuperf serve --metrics-token-file, --metrics-tls-cert, ...).
    replica_token_file: Path | None = None
    replica_basic_auth_file: Path | None = None
    replica_ca_file: Path | None = None
    max_points: int = Field(default=4_000_000, ge=100, description="samples kept in memory over all targets")


@dataclass
class _Store:
    """One target's columns: per scrape a chunk; the series table maps (sample, labels) to an index."""

    table: SeriesTable = field(default_factory=SeriesTable)
    t_chunks: list[np.ndarray] = field(default_factory=list)
    id_chunks: list[np.ndarray] = field(default_factory=list)
    v_chunks: list[np.ndarray] = field(default_factory=list)
    n_points: int = 0
    scrapes: list[tuple[float, bool]] = field(default_factory=list)  # (t_s, answered)
    capped: bool = False  # past its share: only canonical series are kept
    full: bool = False  # past twice its share: nothing more is kept


class _TargetSampler:
    """Scrapes one target on its own thread until stopped; keeps what it read in a ``_Store``."""

    def __init__(self, target: ScrapeTarget, cfg: TelemetryConfig, t0_ns: int, max_points: int) -> None:
        self.target = target
        self.cfg = cfg
        self.t0_ns = t0_ns
        self.max_points = max_points
        self.store = _Store()
        self.warnings: list[str] = []
        self._stop = threading.Event()
        self._down_since: float | None = None
        self.cpu_s = 0.0  # this thread's CPU time spent scraping, parsing and storing (the harness's cost)
        self._client: HttpScrape | None = None
        self._rapl: RaplReader | None = None
        self._reader = ExpositionReader(self.store.table)
        self._thread = threading.Thread(target=self._loop, name=f"lpuperf-scrape-{target.name}", daemon=True)

    def open(self) -> None:
        """Credentials and connections are set up before the run: a bad token file is one line, not a warning."""
        t = self.target
        if t.is_rapl:
            self._rapl = RaplReader(t.rapl_root())
            return
        headers, basic = t.headers_and_auth()
        self._client = HttpScrape(t.url, headers, basic, t.ca_file, self.cfg.timeout_s)

    def start(self) -> None:
        self._thread.start()

    def signal_stop(self) -> None:
        """Ask for the last scrape without waiting for it (``stop`` waits)."""
        self._stop.set()

    def stop(self) -> None:
        """Ends after one last scrape (bounded by the scrape timeout)."""
        self._stop.set()
        self._thread.join(timeout=self.cfg.timeout_s + 5.0)
        if self._client is not None:
            self._client.close()
        if self._down_since is not None:
            self.warnings.append(
                f"telemetry: {self.target.name} stopped answering at {self._down_since:.1f} s into the run "
                "and did not answer again; its series end there"
            )
        if self.store.capped:
            self.warnings.append(
                f"telemetry: {self.target.name}: more than {self.max_points} samples; later scrapes kept only "
                "the known (canonical) series"
                + (f", and none after {2 * self.max_points} samples" if self.store.full else "")
            )

    def _now_s(self) -> float:
        return (time.monotonic_ns() - self.t0_ns) / 1e9

    def _loop(self) -> None:
        interval = self.cfg.interval_s
        start = time.monotonic()
        k = 0
        while True:
            c0 = time.thread_time()
            self._scrape_once()
            self.cpu_s += time.thread_time() - c0
            if self._stop.is_set():
                return
            k += 1
            # Scrape times stay on the grid of the first: a slow scrape does not shift the next one.
            delay = start + k * interval - time.monotonic()
            if delay < 0:
                k += int(-delay // interval) + 1
                delay = start + k * interval - time.monotonic()
            if self._stop.wait(max(delay, 0.0)) and self._down_since is not None:
                return  # the last scrape brackets the window; a target that is down cannot, and may hang

    def _scrape_once(self) -> None:
        t_a = self._now_s()
        try:
            ids, values = self._rapl_samples() if self._rapl is not None else self._http_samples()
        except Exception as exc:  # a dead, slow or garbled target: a warning, never the run's failure
            self._note_down(t_a, exc)
            return
        t_s = (t_a + self._now_s()) / 2
        if self._down_since is not None:
            self.warnings.append(
                f"telemetry: {self.target.name} did not answer from {self._down_since:.1f} s to {t_s:.1f} s into the run"
            )
            self._down_since = None
        self.store.scrapes.append((round(t_s, 6), True))
        self._keep(t_s, ids, values)

    def _http_samples(self) -> tuple[list[int], list[float]]:
        assert self._client is not None  # opened before the thread started
        return self._reader.read(self._client.get())

    def _rapl_samples(self) -> tuple[list[int], list[float]]:
        assert self._rapl is not None
        table = self.store.table
        pairs = [(table.id_of(name, labels), value) for name, labels, value in self._rapl.samples()]
        return [sid for sid, _ in pairs], [v for _, v in pairs]

    def _note_down(self, t_s: float, exc: BaseException) -> None:
        self.store.scrapes.append((round(t_s, 6), False))
        if self._down_since is None:
            self._down_since = round(t_s, 3)
            why = f"{type(exc).__name__}: {exc}".splitlines()[0][:200]
            self.warnings.append(f"telemetry: {self.target.name} failed a scrape at {t_s:.1f} s into the run ({why})")

    def _keep(self, t_s: float, ids: list[int], values: list[float]) -> None:
        st = self.store
        if not st.capped and st.n_points + len(ids) > self.max_points:
            st.capped = True
        if st.n_points + len(ids) > 2 * self.max_points:
            st.full = True
            return
        if st.capped:  # past its share: the series a known source names, nothing raw
            known = st.table.known
            kept = [i for i, sid in enumerate(ids) if known[sid]]
            ids, values = [ids[i] for i in kept], [values[i] for i in kept]
        if ids:
            st.t_chunks.append(np.full(len(ids), t_s, dtype=np.float64))
            st.id_chunks.append(np.asarray(ids, dtype=np.uint32))
            st.v_chunks.append(np.asarray(values, dtype=np.float64))
            st.n_points += len(ids)


class TelemetrySampler:
    """Samples every target of a run; ``stop()`` returns the warnings, ``save(dir)`` writes telemetry.npz."""

    def __init__(self, targets: Sequence[ScrapeTarget], cfg: TelemetryConfig, t0_ns: int) -> None:
        share = max(100, cfg.max_points // max(len(targets), 1))
        self.samplers = [_TargetSampler(t, cfg, t0_ns, share) for t in targets]
        self.cfg = cfg

    def start(self) -> TelemetrySampler:
        for s in self.samplers:
            s.open()
        for s in self.samplers:
            s.start()
        return self

    def stop(self) -> list[str]:
        for s in self.samplers:
            s.signal_stop()  # all end together, then each is waited for
        warnings: list[str] = []
        for s in self.samplers:
            s.stop()
            warnings += s.warnings
        return warnings

    def telemetry(self) -> Telemetry:
        return Telemetry.from_samplers(self.samplers, self.cfg.interval_s)

    def save(self, directory: str | Path) -> Path:
        return self.telemetry().save(directory)


@dataclass
class Telemetry:
    """What a run scraped: flat columns plus the series and target tables (the content of telemetry.npz)."""

    t_s: np.ndarray
    series: np.ndarray  # index into the series table
    value: np.ndarray
    series_target: np.ndarray  # index into targets
    series_name: list[str]
    series_labels: list[dict[str, str]]
    targets: list[str]
    replica_ids: list[str]
    interval_s: float
    scrape_t_s: np.ndarray = field(default_factory=lambda: np.zeros(0))
    scrape_target: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.uint16))
    scrape_ok: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    sampler_cpu_s: float = 0.0  # CPU time the sampler threads took from the harness's process

    @classmethod
    def from_samplers(cls, samplers: Sequence[_TargetSampler], interval_s: float) -> Telemetry:
        t_parts: list[np.ndarray] = []
        id_parts: list[np.ndarray] = []
        v_parts: list[np.ndarray] = []
        names: list[str] = []
        labels: list[dict[str, str]] = []
        owners: list[int] = []
        st_t: list[float] = []
        st_i: list[int] = []
        st_ok: list[bool] = []
        for i, s in enumerate(samplers):
            st = s.store
            base = len(names)
            for name, lab in st.table.items():
                names.append(name)
                labels.append(lab)
                owners.append(i)
            t_parts += st.t_chunks
            id_parts += [c.astype(np.uint32) + base for c in st.id_chunks]
            v_parts += st.v_chunks
            st_t += [t for t, _ in st.scrapes]
            st_ok += [ok for _, ok in st.scrapes]
            st_i += [i] * len(st.scrapes)

        def cat(parts: list[np.ndarray], dtype: Any) -> np.ndarray:
            return np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype=dtype)

        return cls(
            t_s=cat(t_parts, np.float64),
            series=cat(id_parts, np.uint32),
            value=cat(v_parts, np.float64),
            series_target=np.asarray(owners, dtype=np.uint16),
            series_name=names,
            series_labels=labels,
            targets=[s.target.name for s in samplers],
            replica_ids=[s.target.replica_id for s in samplers],
            interval_s=interval_s,
            scrape_t_s=np.asarray(st_t, dtype=np.float64),
            scrape_target=np.asarray(st_i, dtype=np.uint16),
            scrape_ok=np.asarray(st_ok, dtype=bool),
            sampler_cpu_s=sum(s.cpu_s for s in samplers),
        )

    def save(self, directory: str | Path) -> Path:
        path = Path(directory) / TELEMETRY_FILE
        meta = {
            "series_name": self.series_name,
            "series_labels": self.series_labels,
            "targets": self.targets,
            "replica_ids": self.replica_ids,
            "interval_s": self.interval_s,
            "sampler_cpu_s": self.sampler_cpu_s,
        }
        with atomic_path(path, suffix=".tmp.npz") as tmp, open(tmp, "wb") as fh:
            np.savez_compressed(
                fh,
                t_s=self.t_s,
                series=self.series,
                value=self.value,
                series_target=self.series_target,
                scrape_t_s=self.scrape_t_s,
                scrape_target=self.scrape_target,
                scrape_ok=self.scrape_ok,
                meta=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8),
            )
        return path

    @classmethod
    def load(cls, directory: str | Path) -> Telemetry:
        """Read ``telemetry.npz``; OSError/ValueError when it is missing or not one."""
        with np.load(Path(directory) / TELEMETRY_FILE, allow_pickle=False) as z:
            meta = json.loads(z["meta"].tobytes().decode())
            return cls(
                t_s=z["t_s"],
                series=z["series"],
                value=z["value"],
                series_target=z["series_target"],
                series_name=list(meta["series_name"]),
                series_labels=[dict(d) for d in meta["series_labels"]],
                targets=list(meta["targets"]),
                replica_ids=list(meta["replica_ids"]),
                interval_s=float(meta["interval_s"]),
                scrape_t_s=z["scrape_t_s"],
                scrape_target=z["scrape_target"],
                scrape_ok=z["scrape_ok"],
                sampler_cpu_s=float(meta.get("sampler_cpu_s", 0.0)),
            )

    def canonical(self) -> list[CanonicalSeries]:
        """Every known series of every target, summed per scrape (see telemetry_sources)."""
        out: list[CanonicalSeries] = []
        groups: dict[tuple[int, str, str], list[tuple[int, float]]] = {}
        for sid, name in enumerate(self.series_name):
            for source, m in known_maps(name):
                if m.matches(self.series_labels[sid]):
                    groups.setdefault((int(self.series_target[sid]), source, m.canonical), []).append((sid, m.scale))
        order = np.argsort(self.series, kind="stable")
        sorted_ids = self.series[order]
        for (target, source, canonical), members in sorted(groups.items()):
            sums: dict[float, float] = {}
            for sid, scale in members:
                lo, hi = np.searchsorted(sorted_ids, [sid, sid + 1])
                rows = order[lo:hi]
                for t, v in zip(self.t_s[rows].tolist(), self.value[rows].tolist(), strict=True):
                    sums[t] = sums.get(t, 0.0) + v * scale
            ts = np.asarray(sorted(sums), dtype=np.float64)
            out.append(
                CanonicalSeries(
                    target=self.targets[target],
                    source=source,
                    canonical=canonical,
                    t_s=ts,
                    values=np.asarray([sums[t] for t in ts.tolist()], dtype=np.float64),
                    replica_id=self.replica_ids[target],
                )
            )
        return out
