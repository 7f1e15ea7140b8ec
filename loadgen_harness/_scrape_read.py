"""How one scrape target is read: Prometheus text over HTTP(S), or this host's RAPL counters.

**Connection** (:class:`HttpScrape`). A scrape is one GET a second for the whole run, inside the harness's
process; ``http.client`` on a kept-alive connection costs about half of what a general-purpose client costs
per request (measured: 0.7 ms against 1.6 ms for a node exporter's 58 KB page), and the scrape budget is a
few milliseconds a second. TLS verifies against the given CA bundle (or the system's), bearer and basic
credentials go in headers. A failed exchange drops the connection; the next scrape opens a new one.

**Exposition** (:class:`ExpositionReader`). An exporter writes the same series in the same words every
scrape; only the values change. So each sample line is split at its last space into the series part
(``name{labels}``) and the value, and the series part is looked up in a table. A line not seen before is
parsed by ``prometheus_client``'s parser, with the ``# TYPE`` line of its family before it (a counter's
sample gets its ``_total`` name as the parser gives it), and its series id remembered. A scrape of known
series therefore costs a split, a dictionary lookup and a ``float`` per line instead of a full parse: at a
node exporter's 500 series this is what keeps scraping each second well under the harness's CPU budget.

A line the table cannot hold (one with a timestamp: its series part would change each scrape) is parsed each
time; the table is bounded and starts over when full.

**RAPL** (:class:`RaplReader`, ``--scrape rapl``). Each top-level zone ``intel-rapl:N`` (a CPU package;
``intel-rapl:N:M`` sub-zones such as core or dram are inside their package's count and are skipped, so
nothing is counted twice) has ``energy_uj``, a microjoule counter that wraps at ``max_energy_range_uj``. The
reader turns each into a running total in joules that never wraps (a read lower than the previous one adds
the range), exposed as the sample ``lpuperf_rapl_energy_joules_total{domain=<name>}`` so the rest of the
telemetry treats it as any scraped counter. Reading ``energy_uj`` needs root on most kernels: an unreadable
tree is a RaplUnavailable at the run's start, with the reason.
"""

from __future__ import annotations

import base64
import http.client
import re
import ssl
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from prometheus_client.parser import text_string_to_metric_families

from loadgen_harness._telemetry_sources import known_maps

# Histogram buckets and created timestamps are many series that no panel reads; their _sum/_count stay.
SKIPPED_SUFFIXES = ("_bucket", "_created")
_SKIP = -1
_MAX_LINES = 200_000


class SeriesTable:
    """Series ids of one target: (sample name, sorted labels) -> id, and whether a known source names it."""

    def __init__(self) -> None:
        self.ids: dict[tuple[str, tuple[tuple[str, str], ...]], int] = {}
        self.known: list[bool] = []

    def id_of(self, name: str, labels: dict[str, str]) -> int:
        key = (name, tuple(sorted(labels.items())))
        sid = self.ids.get(key)
        if sid is None:
            sid = self.ids[key] = len(self.known)
            self.known.append(bool(known_maps(name)))
        return sid

    def items(self) -> list[tuple[str, dict[str, str]]]:
        """(name, labels) of every series, in id order."""
        return [(name, dict(labels)) for (name, labels), _ in sorted(self.ids.items(), key=lambda kv: kv[1])]


class ExpositionReader:
    """Turns exposition text into (series ids, values), parsing each distinct series line once."""

    def __init__(self, table: SeriesTable) -> None:
        self.table = table
        self._lines: dict[str, int] = {}  # series part of a line -> id, or _SKIP

    def read(self, text: str) -> tuple[list[int], list[float]]:
        ids: list[int] = []
        values: list[float] = []
        lines = self._lines
        type_line = ""
        for line in text.splitlines():
            if not line or line[0] == "#":
                if line.startswith("# TYPE "):
                    type_line = line
                continue
            head, _, value = line.rpartition(" ")
            sid = lines.get(head)
            if sid is None:
                self._parse_line(type_line, line, ids, values)
                continue
            if sid != _SKIP:
                ids.append(sid)
                values.append(float(value))
        return ids, values

    def _parse_line(self, type_line: str, line: str, ids: list[int], values: list[float]) -> None:
        """A line not seen before: the library parses it (with its family's TYPE); its series part is remembered."""
        samples = [s for f in text_string_to_metric_families(f"{type_line}\n{line}\n") for s in f.samples]
        if len(samples) != 1:
            raise ValueError(f"unreadable exposition line {line[:120]!r}")
        s = samples[0]
        sid = _SKIP if s.name.endswith(SKIPPED_SUFFIXES) else self.table.id_of(s.name, s.labels)
        if s.timestamp is None:
            if len(self._lines) >= _MAX_LINES:
                self._lines.clear()
            self._lines[line.rpartition(" ")[0]] = sid
        if sid != _SKIP:
            ids.append(sid)
            values.append(float(s.value))


class HttpScrape:
    """GETs one URL on a persistent connection; ``get()`` returns the body text or raises."""

    def __init__(
        self,
        url: str,
        headers: dict[str, str],
        basic: tuple[str, str] | None,
        ca_file: Path | None,
        timeout_s: float,
    ) -> None:
        parts = urlsplit(url)
        self._https = parts.scheme == "https"
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port or (443 if self._https else 80)
        self._path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self._headers = dict(headers)
        if basic is not None:
            pair = f"{basic[0]}:{basic[1]}".encode()
            self._headers["Authorization"] = "Basic " + base64.b64encode(pair).decode("ascii")
        self._timeout_s = timeout_s
        self._ssl = ssl.create_default_context(cafile=str(ca_file) if ca_file is not None else None)
        self._conn: http.client.HTTPConnection | None = None

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            if self._https:
                self._conn = http.client.HTTPSConnection(
                    self._host, self._port, timeout=self._timeout_s, context=self._ssl
                )
            else:
                self._conn = http.client.HTTPConnection(self._host, self._port, timeout=self._timeout_s)
        return self._conn

    def get(self) -> str:
        conn = self._connection()
        try:
            conn.request("GET", self._path, headers=self._headers)
            resp = conn.getresponse()
            body = resp.read()
        except Exception:
            self.close()
            raise
        if resp.status != 200:
            raise RuntimeError(f"HTTP {resp.status}")
        charset = resp.headers.get_content_charset() or "utf-8"
        return body.decode(charset, errors="replace")

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


RAPL_ROOT = "/sys/class/powercap"
RAPL_SAMPLE = "lpuperf_rapl_energy_joules_total"
_TOP_ZONE = re.compile(r"^intel-rapl:\d+$")


class RaplUnavailable(OSError):
    """No readable RAPL package zone under the root (absent, or not readable by this user)."""


@dataclass
class _Zone:
    path: Path
    name: str
    range_uj: int
    last_uj: int
    total_j: float = 0.0


class RaplReader:
    """Running energy totals of the package zones under ``root``."""

    def __init__(self, root: Path = Path(RAPL_ROOT)) -> None:
        self.root = root
        self.zones = [self._zone(p) for p in self._zone_dirs()]

    def _zone_dirs(self) -> list[Path]:
        try:
            dirs = sorted(p for p in self.root.iterdir() if _TOP_ZONE.match(p.name))
        except OSError as exc:
            raise RaplUnavailable(f"rapl: {self.root}: {exc.strerror or exc}") from None
        if not dirs:
            raise RaplUnavailable(f"rapl: {self.root}: no intel-rapl:N package zone")
        return dirs

    @staticmethod
    def _zone(path: Path) -> _Zone:
        try:
            name = (path / "name").read_text().strip() or path.name
            range_uj = int((path / "max_energy_range_uj").read_text())
            now = int((path / "energy_uj").read_text())
        except (OSError, ValueError) as exc:
            why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise RaplUnavailable(f"rapl: {path}: cannot read its energy counter ({why})") from None
        return _Zone(path=path, name=f"{name}@{path.name}", range_uj=range_uj, last_uj=now)

    def samples(self) -> list[tuple[str, dict[str, str], float]]:
        """One reading: (sample name, labels, joules since the reader was made) per zone."""
        out = []
        for z in self.zones:
            now = int((z.path / "energy_uj").read_text())
            step = now - z.last_uj
            if step < 0:  # the counter wrapped once since the last read
                step += z.range_uj
            z.total_j += step / 1e6
            z.last_uj = now
            out.append((RAPL_SAMPLE, {"domain": z.name}, z.total_j))
        return out
