"""Multi-turn and agentic sessions: a JSONL file of conversations, or a seeded synthetic set.

A session is a conversation of turns. Turn ``t``'s request carries the whole history: the shared
system prompt (``system_tokens``), then every earlier turn's new user tokens, answer and tool
results, then its own new user tokens (:func:`turn_tokens`). In an agentic session the model may
answer a turn with a tool call; after ``tool_latency_s`` the client sends the history plus
``tool_result_tokens`` result tokens (:func:`tool_result_tokens`), until the model answers without a
tool call or ``max_tool_calls`` calls were made in that turn. Building and sending those requests is the
scheduler's; this module says what the sessions are. The file format is in docs/traces-and-sessions.md.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, ValidationError

from common import UsageError
from scenarios._trace_formats import MAX_TOKENS, show

MAX_TURNS = 10_000
MAX_TOOL_CALLS = 1_000
_SESSION_ID = r"^[^\x00-\x1f\x7f]{1,128}$"  # printable, one line: it names the session in records

Count = Annotated[int, Field(strict=True, ge=1, le=MAX_TOKENS)]
Seconds = Annotated[float, Field(strict=True, ge=0, le=86_400, allow_inf_nan=False)]


class SessionError(UsageError):
    """A session file or generator config is unusable; one line ``FILE:LINE: field: expected ..., got ...``."""


@dataclass(frozen=True, slots=True)
class TurnSpec:
    """One user turn: ``input_tokens`` new user tokens, answered with at most ``output_tokens``, sent
    ``think_time_s`` after the previous answer (the first turn: after the session starts)."""

    input_tokens: int
    output_tokens: int
    think_time_s: float


@dataclass(frozen=True, slots=True)
class SessionSpec:
    """One conversation. ``line`` is its 1-based line in the file (a synthetic session's 1-based number).

    ``system_tokens`` (the shared system prompt, :func:`system_prompt_tokens`) and ``seed`` (for the
    token functions) come last, with defaults, so a session can be built without them.
    """

    session_id: str
    turns: tuple[TurnSpec, ...]
    agentic: bool
    tool_latency_s: float
    tool_result_tokens: int
    max_tool_calls: int  # per turn
    line: int
    system_tokens: int = 0
    seed: int = 0

    def max_context_tokens(self) -> int:
        """The longest prompt plus max_new_tokens any request of this session can reach: every answer at
        its full ``output_tokens``, every agentic turn using all its tool calls."""
        calls = self.max_tool_calls if self.agentic else 0
        return self.system_tokens + sum(
            t.input_tokens + t.output_tokens * (1 + calls) + self.tool_result_tokens * calls for t in self.turns
        )


class SessionSummary(BaseModel):
    """What a session file holds."""

    model_config = ConfigDict(extra="forbid")
    path: Path
    n_sessions: int
    n_turns: int
    agentic_sessions: int
    max_turns: int = Field(description="turns of the longest session")
    input_tokens_total: int = Field(description="new user tokens over all turns (history not counted)")
    output_tokens_total: int = Field(description="max_new_tokens over all turns (tool-call answers not counted)")
    max_context_tokens: int = Field(description="the longest prompt + max_new_tokens of any request, at worst")
    think_time_s_total: float


class _TurnRow(BaseModel):
    model_config = ConfigDict(extra="forbid")
    input_tokens: Count
    output_tokens: Count
    think_time_s: Seconds = 0.0


class _SessionRow(BaseModel):
    model_config = ConfigDict(extra="forbid")
    session_id: Annotated[str, Field(strict=True, pattern=_SESSION_ID)]
    turns: Annotated[list[_TurnRow], Field(min_length=1, max_length=MAX_TURNS)]
    agentic: StrictBool = False
    tool_latency_s: Seconds = 0.5
    tool_result_tokens: Count = 64
    max_tool_calls: Annotated[StrictInt, Field(ge=0, le=MAX_TOOL_CALLS)] = 2
    system_tokens: Annotated[StrictInt, Field(ge=0, le=MAX_TOKENS)] = 0


_SIGNS = (
    ("greater than or equal to ", ">= "),
    ("less than or equal to ", "<= "),
    ("greater than ", "> "),
    ("less than ", "< "),
)


def error_line(exc: ValidationError, where: str) -> str:
    """A pydantic error as ``WHERE: field: expected ..., got ...`` (one line; the first error only)."""
    err = exc.errors()[0]
    loc = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err.get("loc", ())).lstrip(".") or "line"
    kind = err.get("type", "")
    if kind == "missing":
        return f"{where}: {loc}: expected a value, got nothing (field missing)"
    if kind == "extra_forbidden":
        return f"{where}: {loc}: expected a known field, got an unknown one (misspelt?)"
    if kind in ("too_short", "too_long"):
        ctx = err.get("ctx", {})
        bound = f"at least {ctx.get('min_length')}" if kind == "too_short" else f"at most {ctx.get('max_length')}"
        return f"{where}: {loc}: expected {bound} items, got {ctx.get('actual_length')}"
    msg = str(err.get("msg", "a valid value"))
    for lead in ("Input should be ", "Value should be ", "String should ", "List should "):
        if msg.startswith(lead):
            msg = msg[len(lead) :]
    for words, sign in _SIGNS:
        msg = msg.replace(words, sign)
    if kind == "string_pattern_mismatch":
        msg = "a printable one-line string of 1 to 128 characters"
    return f"{where}: {loc}: expected {msg}, got {show(err.get('input'))}"


def _to_spec(row: _SessionRow, line: int) -> SessionSpec:
    turns = tuple(TurnSpec(t.input_tokens, t.output_tokens, float(t.think_time_s)) for t in row.turns)
    return SessionSpec(
        session_id=row.session_id,
        turns=turns,
        agentic=row.agentic,
        tool_latency_s=float(row.tool_latency_s),
        tool_result_tokens=row.tool_result_tokens,
        max_tool_calls=row.max_tool_calls,
        line=line,
        system_tokens=row.system_tokens,
    )


def iter_sessions(path: Path) -> Iterator[SessionSpec]:
    """The sessions of a JSONL file in order, streamed; a bad line raises :class:`SessionError` when reached.

    Session ids must be unique: the set of ids seen is the only state kept (one string per session).
    """
    p = Path(path)
    if not p.is_file():
        raise SessionError(f"{p}: file: expected a session file (JSONL), got nothing at that path")
    seen: dict[str, int] = {}
    lineno = 0
    try:
        with open(p, encoding="utf-8-sig") as fh:
            for lineno, text in enumerate(fh, start=1):
                if text.strip():
                    spec = _parse_line(text, f"{p}:{lineno}", lineno)
                    if spec.session_id in seen:
                        raise SessionError(
                            f"{p}:{lineno}: session_id: expected an id not used before, got "
                            f"{show(spec.session_id)} (also on line {seen[spec.session_id]})"
                        )
                    seen[spec.session_id] = lineno
                    yield spec
    except (OSError, UnicodeDecodeError) as exc:
        raise SessionError(f"{p}: file: cannot read after line {lineno} ({exc.__class__.__name__}: {exc})") from None
    if not seen:
        raise SessionError(f"{p}:1: file: expected at least one session line, got an empty file")


def _parse_line(text: str, where: str, lineno: int) -> SessionSpec:
    try:
        raw: Any = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SessionError(f"{where}: line: expected a JSON object, got invalid JSON ({exc.msg})") from None
    if not isinstance(raw, dict):
        raise SessionError(f"{where}: line: expected a JSON object, got {show(raw)}")
    try:
        return _to_spec(_SessionRow.model_validate(raw), lineno)
    except ValidationError as exc:
        raise SessionError(error_line(exc, where)) from None


def check_sessions(path: Path) -> SessionSummary:
    """Read a session file once, check every line and sum it up; the first bad line raises :class:`SessionError`."""
    n = turns = agentic = longest = inputs = outputs = context = 0
    think = 0.0
    for spec in iter_sessions(path):
        n += 1
        turns += len(spec.turns)
        agentic += spec.agentic
        longest = max(longest, len(spec.turns))
        inputs += sum(t.input_tokens for t in spec.turns)
        outputs += sum(t.output_tokens for t in spec.turns)
        context = max(context, spec.max_context_tokens())
        think += sum(t.think_time_s for t in spec.turns)
    return SessionSummary(
        path=Path(path),
        n_sessions=n,
        n_turns=turns,
        agentic_sessions=agentic,
        max_turns=longest,
        input_tokens_total=inputs,
        output_tokens_total=outputs,
        max_context_tokens=context,
        think_time_s_total=think,
    )


class SyntheticSessions(BaseModel):
    """A seeded synthetic set: ``sessions`` conversations of ``turns`` turns, each the same shape.

    Every session starts with the same ``system_tokens`` system prompt (what a prefix cache reuses);
    each turn brings ``input_tokens`` new user tokens, asks for ``output_tokens`` and follows the previous
    answer by ``think_time_s``. ``seed`` picks the tokens (:func:`turn_tokens`).
    """

    model_config = ConfigDict(extra="forbid")
    sessions: StrictInt = Field(default=100, ge=1, le=10_000_000)
    turns: StrictInt = Field(default=4, ge=1, le=MAX_TURNS)
    input_tokens: Count = 128
    output_tokens: Count = 64
    think_time_s: Seconds = 1.0
    system_tokens: Annotated[StrictInt, Field(ge=0, le=MAX_TOKENS)] = 0
    agentic: StrictBool = False
    tool_latency_s: Seconds = 0.5
    tool_result_tokens: Count = 64
    max_tool_calls: Annotated[StrictInt, Field(ge=0, le=MAX_TOOL_CALLS)] = 2
    seed: StrictInt = Field(default=0, ge=0, lt=1 << 63)


def synthetic_sessions(cfg: SyntheticSessions) -> Iterator[SessionSpec]:
    """The sessions of ``cfg`` in order (ids ``s0``, ``s1``, ...), made one at a time."""
    turn = TurnSpec(cfg.input_tokens, cfg.output_tokens, float(cfg.think_time_s))
    turns = (turn,) * cfg.turns
    for i in range(cfg.sessions):
        yield SessionSpec(
            session_id=f"s{i}",
            turns=turns,
            agentic=cfg.agentic,
            tool_latency_s=float(cfg.tool_latency_s),
            tool_result_tokens=cfg.tool_result_tokens,
            max_tool_calls=cfg.max_tool_calls,
            line=i + 1,
            system_tokens=cfg.system_tokens,
            seed=cfg.seed,
        )


_BOOLS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


def parse_synthetic_sessions(text: str) -> SyntheticSessions:
    """``key=value,...`` (the CLI's spelling, e.g. ``sessions=50,turns=3,agentic=true``) -> a config.

    Raises :class:`SessionError` with one line naming the key.
    """
    fields = SyntheticSessions.model_fields
    raw: dict[str, object] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, eq, value = item.partition("=")
        key = key.strip()
        if not eq or key not in fields:
            raise SessionError(
                f"synthetic sessions: {key or item}: expected one of {', '.join(fields)} as key=value, got {item!r}"
            )
        if key in raw:
            raise SessionError(f"synthetic sessions: {key}: expected once, got it twice")
        raw[key] = _option_value(key, value.strip())
    try:
        return SyntheticSessions.model_validate(raw)
    except ValidationError as exc:
        raise SessionError(error_line(exc, "synthetic sessions")) from None


def _option_value(key: str, value: str) -> object:
    if key == "agentic":
        if value.lower() not in _BOOLS:
            raise SessionError(f"synthetic sessions: {key}: expected true or false, got {value!r}")
        return _BOOLS[value.lower()]
    try:
        return float(value) if key.endswith("_s") else int(value)
    except ValueError:
        kind = "a number" if key.endswith("_s") else "an integer"
        raise SessionError(f"synthetic sessions: {key}: expected {kind}, got {value!r}") from None
