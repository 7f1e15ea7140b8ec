"""Reading the three trace formats row by row: Mooncake-style JSONL, Azure's LLM inference CSV, BurstGPT's CSV.

Each reader yields one :class:`Row` per data line with its timestamp as exact nanoseconds (an int, or a
:class:`~decimal.Decimal` when the source has sub-nanosecond digits): timestamps are parsed as the
decimals they are written as, never through a float, so due times are exact. Any bad field is a
:class:`TraceError` naming file, line and field, raised at the first bad line.
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Context, Decimal, Inexact, InvalidOperation, Overflow
from pathlib import Path
from typing import IO, Literal

from common import UsageError

TraceFormat = Literal["mooncake", "azure", "burstgpt"]
MAX_TOKENS = 1 << 24  # a length beyond this is a broken row, not a prompt
_MAX_DIGITS = 40  # significant digits of a decimal timestamp
_MAX_MAGNITUDE = 30  # |adjusted exponent|: 1e30 ms is far past any real clock
# Exact arithmetic: with the bounds above every product and difference fits, and a trap catches any
# rounding, so a bug can never round a due time silently.
EXACT = Context(prec=120, traps=[Inexact, InvalidOperation, Overflow])
_NS_PER_MS = 1_000_000
_NS_PER_S = 1_000_000_000

AZURE_HEADER = ("TIMESTAMP", "ContextTokens", "GeneratedTokens")
BURSTGPT_HEADER = ("Timestamp", "Model", "Request tokens", "Response tokens", "Total tokens", "Log Type")
TIMESTAMP_FIELD: dict[TraceFormat, str] = {"mooncake": "timestamp", "azure": "TIMESTAMP", "burstgpt": "Timestamp"}
_MISSING = object()
_ID_LIMIT = 1 << 64
_AZURE_TS = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:?\d{2})?", re.ASCII
)
_EPOCH_ORDINAL = dt.date(1970, 1, 1).toordinal()


class TraceError(UsageError):
    """A trace file is unusable; the message is one line ``FILE:LINE: field: expected ..., got ...``."""


@dataclass(slots=True)
class Row:
    """One data line: exact ns timestamp, token counts, Mooncake hash ids (None: a unique prompt)."""

    line: int
    ts_ns: int | Decimal
    ts_raw: object  # as read (int, Decimal or text), for error messages
    input_tokens: int
    output_tokens: int
    hash_ids: list[int] | None


def show(value: object) -> str:
    """A value as an error line shows it: short, one line."""
    if value is _MISSING:
        return "nothing (field missing)"
    text = str(value) if isinstance(value, Decimal) else repr(value)
    return text if len(text) <= 48 else text[:45] + "..."


def _fail(where: str, field: str, expected: str, got: object) -> TraceError:
    return TraceError(f"{where}: {field}: expected {expected}, got {show(got)}")


# ---- opening and detecting ------------------------------------------------------------------------
def open_trace(path: Path) -> IO[str]:
    """Open a trace as text (``.gz`` decompressed); a BOM, as spreadsheet exports write, is dropped."""
    if not path.is_file():
        raise TraceError(f"{path}: file: expected a trace file, got nothing at that path")
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8-sig", newline="")
    return open(path, encoding="utf-8-sig", newline="")


def detect_format(path: Path, requested: str) -> TraceFormat:
    """``auto``: ``.jsonl`` / ``.json`` -> mooncake, ``.csv`` -> by its header (``.gz`` looks one suffix back)."""
    if requested != "auto":
        return requested  # type: ignore[return-value]  # TraceSpec's Literal already checked it
    suffixes = path.suffixes[-2:] if path.suffix == ".gz" else path.suffixes[-1:]
    ext = suffixes[0].lower() if suffixes else ""
    if ext in (".jsonl", ".json"):
        return "mooncake"
    if ext == ".csv":
        with open_trace(path) as fh:
            header = next(csv.reader(fh), None)
        if header is None:
            raise TraceError(f"{path}:1: header: expected a CSV header line, got an empty file")
        cells = tuple(c.strip() for c in header)
        if cells == AZURE_HEADER:
            return "azure"
        if cells == BURSTGPT_HEADER:
            return "burstgpt"
        raise _bad_header(path, cells)
    raise TraceError(
        f"{path}: format: expected a .jsonl/.json (Mooncake) or .csv (Azure, BurstGPT) file, or format "
        f"mooncake|azure|burstgpt, got {ext or 'no extension'!r}"
    )


def _bad_header(path: Path, cells: tuple[str, ...]) -> TraceError:
    return TraceError(
        f"{path}:1: header: expected '{','.join(AZURE_HEADER)}' (Azure) or '{','.join(BURSTGPT_HEADER)}' "
        f"(BurstGPT), got {show(','.join(cells))}"
    )


def read_rows(path: Path, fmt: TraceFormat, fh: IO[str], block_tokens: int) -> Iterator[Row]:
    """Every data row of an open trace, checked, with non-decreasing timestamps."""
    rows = _read_mooncake(path, fh, block_tokens) if fmt == "mooncake" else _read_csv(path, fh, fmt)
    field = TIMESTAMP_FIELD[fmt]
    prev: Row | None = None
    try:
        for row in rows:
            if prev is not None and row.ts_ns < prev.ts_ns:
                raise TraceError(
                    f"{path}:{row.line}: {field}: expected non-decreasing timestamps (>= {show(prev.ts_raw)} on "
                    f"line {prev.line}), got {show(row.ts_raw)}"
                )
            prev = row
            yield row
    except (OSError, EOFError, UnicodeDecodeError, csv.Error) as exc:
        after = f" after line {prev.line}" if prev is not None else ""
        raise TraceError(f"{path}: file: cannot read{after} ({exc.__class__.__name__}: {exc})") from None
    if prev is None:
        raise TraceError(f"{path}:1: file: expected at least one request row, got none (empty trace)")


# ---- Mooncake-style JSONL -------------------------------------------------------------------------
def _no_constant(name: str) -> str:
    # NaN / Infinity are not JSON; returned as text they fail the number checks with a clear message.
    return name


_DECODER = json.JSONDecoder(parse_float=Decimal, parse_constant=_no_constant)


def _read_mooncake(path: Path, fh: IO[str], block_tokens: int) -> Iterator[Row]:
    for lineno, text in enumerate(fh, start=1):
        try:
            obj = _DECODER.decode(text)
        except ValueError as exc:
            if not text.strip():
                continue
            msg = f"{exc.msg} at column {exc.colno}" if isinstance(exc, json.JSONDecodeError) else str(exc)
            raise TraceError(f"{path}:{lineno}: line: expected a JSON object, got invalid JSON ({msg})") from None
        # The common row (integer ms, sound lengths) is checked inline; anything else takes the slow,
        # complete path, which also builds the error line.
        if type(obj) is dict:
            ts, inp, out, ids = (
                obj.get("timestamp"),
                obj.get("input_length"),
                obj.get("output_length"),
                obj.get("hash_ids"),
            )
            if (
                type(ts) is int
                and type(inp) is int
                and type(out) is int
                and 0 < inp <= MAX_TOKENS
                and 0 <= out <= MAX_TOKENS
                and (ids is None or _sound_ids(ids, -(-inp // block_tokens)))
            ):
                yield Row(lineno, ts * _NS_PER_MS, ts, inp, out, ids)
                continue
        yield _mooncake_row(obj, f"{path}:{lineno}", lineno, block_tokens)


def _sound_ids(ids: object, blocks: int) -> bool:
    return type(ids) is list and len(ids) == blocks and all(type(h) is int and 0 <= h < _ID_LIMIT for h in ids)


def _mooncake_row(obj: object, where: str, lineno: int, block_tokens: int) -> Row:
    if type(obj) is not dict:
        raise _fail(where, "line", "a JSON object", obj)
    raw_ts = obj.get("timestamp", _MISSING)
    ts_ns = _number_ns(raw_ts, _NS_PER_MS, where, "timestamp", "a number of milliseconds")
    inp = _json_count(obj, "input_length", where, 1)
    out = _json_count(obj, "output_length", where, 0)
    ids = _hash_ids(obj.get("hash_ids"), inp, block_tokens, where)
    return Row(lineno, ts_ns, raw_ts, inp, out, ids)


def _number_ns(raw: object, unit_ns: int, where: str, field: str, what: str) -> int | Decimal:
    """A JSON/CSV number of ``unit_ns`` units -> exact ns (int, or Decimal when it has a fraction of a ns)."""
    if type(raw) is int:
        return raw * unit_ns
    if type(raw) is str:
        if raw.isascii() and raw.isdigit():
            return int(raw) * unit_ns
        raw = _decimal(raw)
    if type(raw) is not Decimal or not raw.is_finite():
        raise _fail(where, field, what, raw)
    digits = len(raw.as_tuple().digits)
    if digits > _MAX_DIGITS or abs(raw.adjusted()) > _MAX_MAGNITUDE:
        raise _fail(where, field, f"{what} with at most {_MAX_DIGITS} digits below 1e{_MAX_MAGNITUDE}", raw)
    ns = EXACT.multiply(raw, unit_ns)
    return int(ns) if ns == ns.to_integral_value() else ns


def _decimal(text: str) -> Decimal | str:
    try:
        return Decimal(text)
    except InvalidOperation:
        return text


def _json_count(obj: dict[str, object], field: str, where: str, minimum: int) -> int:
    raw = obj.get(field, _MISSING)
    # type() is int: JSON true/false are bools, and a token count written 6.0 is a Decimal here.
    if type(raw) is not int or not minimum <= raw <= MAX_TOKENS:
        raise _fail(where, field, f"an integer {minimum}..{MAX_TOKENS}", raw)
    return raw


def _hash_ids(raw: object, input_tokens: int, block_tokens: int, where: str) -> list[int] | None:
    if raw is None:
        return None
    blocks = -(-input_tokens // block_tokens)
    if type(raw) is not list:
        raise _fail(where, "hash_ids", "a list of integer block ids", raw)
    for i, h in enumerate(raw):
        if type(h) is not int or not 0 <= h < _ID_LIMIT:
            raise _fail(where, f"hash_ids[{i}]", "an integer block id 0..2**64-1", h)
    if len(raw) != blocks:
        raise TraceError(
            f"{where}: hash_ids: expected {blocks} ids (input_length {input_tokens} in blocks of {block_tokens} "
            f"tokens; is block_tokens right?), got {len(raw)}"
        )
    return raw


# ---- CSV: Azure and BurstGPT ----------------------------------------------------------------------
def _read_csv(path: Path, fh: IO[str], fmt: TraceFormat) -> Iterator[Row]:
    reader = csv.reader(fh)
    header = next(reader, None)
    if header is None:
        raise TraceError(f"{path}:1: header: expected a CSV header line, got an empty file")
    expected = AZURE_HEADER if fmt == "azure" else BURSTGPT_HEADER
    if tuple(c.strip() for c in header) != expected:
        raise _bad_header(path, tuple(c.strip() for c in header))
    parse: Callable[[list[str], str, int], Row] = _azure_row if fmt == "azure" else _burstgpt_row
    for cells in reader:
        if not cells or (len(cells) == 1 and not cells[0].strip()):
            continue
        where = f"{path}:{reader.line_num}"
        if len(cells) != len(expected):
            raise _fail(where, "row", f"{len(expected)} columns ({','.join(expected)})", f"{len(cells)} columns")
        yield parse(cells, where, reader.line_num)


def _csv_count(text: str, field: str, where: str, minimum: int, maximum: int = MAX_TOKENS) -> int:
    t = text.strip()
    if not (t.isascii() and t.isdigit()) or not minimum <= int(t) <= maximum:
        raise _fail(where, field, f"an integer {minimum}..{maximum}", text)
    return int(t)


def _azure_row(cells: list[str], where: str, line: int) -> Row:
    ts_text = cells[0].strip()
    ts_ns = azure_timestamp_ns(ts_text)
    if ts_ns is None:
        raise _fail(where, "TIMESTAMP", "a date-time like '2023-11-16 18:15:46.6805900'", cells[0])
    inp = _csv_count(cells[1], "ContextTokens", where, 1)
    out = _csv_count(cells[2], "GeneratedTokens", where, 0)
    return Row(line, ts_ns, ts_text, inp, out, None)


def azure_timestamp_ns(text: str) -> int | None:
    """``YYYY-MM-DD HH:MM:SS[.fffffffff][Z|+HH:MM]`` -> exact ns since the Unix epoch (None: not that)."""
    m = _AZURE_TS.fullmatch(text)
    if m is None:
        return None
    year, month, day, hour, minute, sec, frac, zone = m.groups()
    if int(hour) > 23 or int(minute) > 59 or int(sec) > 59:
        return None
    try:
        days = _ordinal(year, month, day) - _EPOCH_ORDINAL
    except ValueError:
        return None
    offset_s = 0
    if zone and zone != "Z":
        digits = zone[1:].replace(":", "")
        offset_s = (int(digits[:2]) * 3600 + int(digits[2:]) * 60) * (1 if zone[0] == "+" else -1)
    seconds = days * 86_400 + int(hour) * 3600 + int(minute) * 60 + int(sec) - offset_s
    return seconds * _NS_PER_S + (int(frac.ljust(9, "0")) if frac else 0)


_ORDINALS: dict[tuple[str, str, str], int] = {}


def _ordinal(year: str, month: str, day: str) -> int:
    # A trace spans a few days: the date part repeats on every row, so its ordinal is cached.
    key = (year, month, day)
    found = _ORDINALS.get(key)
    if found is None:
        if len(_ORDINALS) > 4096:
            _ORDINALS.clear()
        found = _ORDINALS[key] = dt.date(int(year), int(month), int(day)).toordinal()
    return found


def _burstgpt_row(cells: list[str], where: str, line: int) -> Row:
    ts_text = cells[0].strip()
    ts_ns = _number_ns(ts_text, _NS_PER_S, where, "Timestamp", "a number of seconds")
    if not cells[1].strip():
        raise _fail(where, "Model", "a model name", cells[1])
    out = _csv_count(cells[3], "Response tokens", where, 0)
    # A failed request (no response) is skipped, whatever it asked for: only its timestamp must be sound.
    inp = _csv_count(cells[2], "Request tokens", where, 0 if out == 0 else 1)
    _csv_count(cells[4], "Total tokens", where, 0, 2 * MAX_TOKENS)
    return Row(line, ts_ns, ts_text, inp, out, None)
