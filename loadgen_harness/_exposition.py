"""Prometheus text exposition read scrape after scrape, each series parsed once.

An exporter writes the same series in the same words every scrape; only the values change. So each
sample line is split at its last space into the series part (``name{labels}``) and the value, and the
series part is looked up in a table. A line not seen before is parsed by ``prometheus_client``'s
parser, with the ``# TYPE`` line of its family before it (a counter's sample gets its ``_total`` name
as the parser gives it), and its series id remembered. A scrape of known series therefore costs a
split, a dictionary lookup and a ``float`` per line instead of a full parse: at a node exporter's 500
series this is what keeps scraping each second well under the harness's CPU budget.

A line the table cannot hold (one with a timestamp: its series part would change each scrape) is
parsed each time; the table is bounded and starts over when full.
"""

from __future__ import annotations

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
