"""The host's RAPL energy counters under ``/sys/class/powercap`` (``--scrape rapl``), read like a scrape target.

Each top-level zone ``intel-rapl:N`` (a CPU package; ``intel-rapl:N:M`` sub-zones such as core or dram
are inside their package's count and are skipped, so nothing is counted twice) has ``energy_uj``, a
microjoule counter that wraps at ``max_energy_range_uj``. The reader turns each into a running total
in joules that never wraps (a read lower than the previous one adds the range), exposed as the sample
``lpuperf_rapl_energy_joules_total{domain=<name>}`` so the rest of the telemetry treats it as any
scraped counter. Reading ``energy_uj`` needs root on most kernels: an unreadable tree is a
RaplUnavailable at the run's start, with the reason.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

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
