"""Multi-turn and agentic sessions: the JSONL file parsed and checked line by line, the synthetic generator,
and the deterministic tokens a scheduler builds each turn's history from."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from common import UsageError
from scenarios import (
    SessionError,
    SessionSpec,
    SyntheticSessions,
    TurnSpec,
    check_sessions,
    iter_sessions,
    parse_synthetic_sessions,
    resolve_dataset,
    synthetic_sessions,
    system_prompt_tokens,
    tool_result_tokens,
    turn_tokens,
)


def _write(path: Path, sessions: list[object]) -> Path:
    path.write_text("".join((s if isinstance(s, str) else json.dumps(s)) + "\n" for s in sessions), encoding="utf-8")
    return path


CHAT = {
    "session_id": "chat-1",
    "turns": [
        {"input_tokens": 200, "output_tokens": 100, "think_time_s": 2.0},
        {"input_tokens": 50, "output_tokens": 80, "think_time_s": 1},
    ],
}
AGENT = {
    "session_id": "agent-1",
    "turns": [{"input_tokens": 30, "output_tokens": 40}],
    "agentic": True,
    "tool_latency_s": 0.25,
    "tool_result_tokens": 100,
    "max_tool_calls": 3,
    "system_tokens": 500,
}


def test_session_file_parsed_with_defaults_and_lines(tmp_path: Path) -> None:
    path = _write(tmp_path / "s.jsonl", [CHAT, "", AGENT])
    chat, agent = iter_sessions(path)
    assert chat == SessionSpec(
        session_id="chat-1",
        turns=(TurnSpec(200, 100, 2.0), TurnSpec(50, 80, 1.0)),
        agentic=False,
        tool_latency_s=0.5,
        tool_result_tokens=64,
        max_tool_calls=2,
        line=1,
        system_tokens=0,
        seed=0,
    )
    assert agent.line == 3 and agent.agentic and agent.max_tool_calls == 3 and agent.system_tokens == 500
    assert agent.turns == (TurnSpec(30, 40, 0.0),)
    assert isinstance(chat.turns[1].think_time_s, float)


def test_check_sessions_sums_up_the_file(tmp_path: Path) -> None:
    summary = check_sessions(_write(tmp_path / "s.jsonl", [CHAT, AGENT]))
    assert (summary.n_sessions, summary.n_turns, summary.agentic_sessions, summary.max_turns) == (2, 3, 1, 2)
    assert (summary.input_tokens_total, summary.output_tokens_total) == (280, 220)
    # agent: 500 system + 30 input + 40 x (1 answer + 3 tool-call answers) + 3 x 100 tool results
    assert summary.max_context_tokens == 500 + 30 + 40 * 4 + 300
    assert summary.think_time_s_total == 3.0


@pytest.mark.parametrize(
    ("line", "field", "detail"),
    [
        ("{not json", "line", "expected a JSON object, got invalid JSON"),
        ("[1]", "line", "expected a JSON object, got [1]"),
        ({"turns": [{"input_tokens": 1, "output_tokens": 1}]}, "session_id", "got nothing (field missing)"),
        ({"session_id": "", "turns": [{"input_tokens": 1, "output_tokens": 1}]}, "session_id", "printable"),
        ({"session_id": "a\nb", "turns": [{"input_tokens": 1, "output_tokens": 1}]}, "session_id", "printable"),
        ({"session_id": 7, "turns": [{"input_tokens": 1, "output_tokens": 1}]}, "session_id", "got 7"),
        ({"session_id": "x", "turns": []}, "turns", "expected at least 1 items, got 0"),
        (
            {"session_id": "x", "turns": [{"input_tokens": 1, "output_tokens": 1}, {"output_tokens": 1}]},
            "turns[1].input_tokens",
            "got nothing (field missing)",
        ),
        (
            {"session_id": "x", "turns": [{"input_tokens": 0, "output_tokens": 1}]},
            "turns[0].input_tokens",
            ">= 1, got 0",
        ),
        ({"session_id": "x", "turns": [{"input_tokens": "5", "output_tokens": 1}]}, "turns[0].input_tokens", "got '5'"),
        (
            {"session_id": "x", "turns": [{"input_tokens": 5, "output_tokens": True}]},
            "turns[0].output_tokens",
            "got True",
        ),
        (
            {"session_id": "x", "turns": [{"input_tokens": 5, "output_tokens": 1, "think_time_s": -1}]},
            "turns[0].think_time_s",
            ">= 0, got -1",
        ),
        (
            {"session_id": "x", "turns": [{"input_tokens": 5, "output_tokens": 1, "think": 1}]},
            "turns[0].think",
            "expected a known field, got an unknown one",
        ),
        (
            {"session_id": "x", "turns": [{"input_tokens": 5, "output_tokens": 1}], "agentic": "yes"},
            "agentic",
            "got 'yes'",
        ),
        (
            {"session_id": "x", "turns": [{"input_tokens": 5, "output_tokens": 1}], "max_tool_calls": -1},
            "max_tool_calls",
            ">= 0, got -1",
        ),
        (
            {"session_id": "chat-1", "turns": [{"input_tokens": 5, "output_tokens": 1}]},
            "session_id",
            "an id not used before, got 'chat-1' (also on line 1)",
        ),
    ],
)
def test_bad_session_lines_name_file_line_and_field(tmp_path: Path, line: object, field: str, detail: str) -> None:
    path = _write(tmp_path / "s.jsonl", [CHAT, line, AGENT])
    for read in (check_sessions, lambda p: list(iter_sessions(p))):
        with pytest.raises(SessionError, match=rf"^{re.escape(f'{path}:2: {field}: ')}.*{re.escape(detail)}") as err:
            read(path)
        assert "\n" not in str(err.value)
        assert isinstance(err.value, UsageError)


def test_empty_and_missing_session_files(tmp_path: Path) -> None:
    empty = tmp_path / "e.jsonl"
    empty.write_text("\n")
    with pytest.raises(SessionError, match=r"e.jsonl:1: file: expected at least one session"):
        check_sessions(empty)
    with pytest.raises(SessionError, match=r"none.jsonl: file: expected a session file"):
        check_sessions(tmp_path / "none.jsonl")


def test_synthetic_sessions_are_what_the_config_says() -> None:
    cfg = SyntheticSessions(
        sessions=3,
        turns=2,
        input_tokens=10,
        output_tokens=5,
        think_time_s=0.5,
        system_tokens=64,
        agentic=True,
        max_tool_calls=1,
        seed=7,
    )
    made = list(synthetic_sessions(cfg))
    assert [s.session_id for s in made] == ["s0", "s1", "s2"]
    assert [s.line for s in made] == [1, 2, 3]
    assert all(s.turns == (TurnSpec(10, 5, 0.5),) * 2 for s in made)
    assert all(s.agentic and s.max_tool_calls == 1 and s.system_tokens == 64 and s.seed == 7 for s in made)
    assert made == list(synthetic_sessions(cfg))


def test_synthetic_config_is_validated_and_parsed_from_key_values() -> None:
    for bad in (
        {"sessions": 0},
        {"turns": 0},
        {"input_tokens": 0},
        {"think_time_s": -1.0},
        {"max_tool_calls": -1},
        {"tool_latency_s": float("nan")},
        {"system_tokens": -1},
        {"session": 3},
    ):
        with pytest.raises(ValidationError):
            SyntheticSessions(**bad)  # type: ignore[arg-type]
    cfg = parse_synthetic_sessions("sessions=5, turns=3,agentic=true,think_time_s=0.25,system_tokens=128")
    assert cfg == SyntheticSessions(sessions=5, turns=3, agentic=True, think_time_s=0.25, system_tokens=128)
    assert parse_synthetic_sessions("") == SyntheticSessions()
    for text, message in [
        ("turns=0", "synthetic sessions: turns: expected >= 1, got 0"),
        ("turn=3", "synthetic sessions: turn: expected one of sessions, turns,"),
        ("turns", "synthetic sessions: turns: expected one of"),
        ("agentic=maybe", "synthetic sessions: agentic: expected true or false, got 'maybe'"),
        ("sessions=many", "synthetic sessions: sessions: expected an integer, got 'many'"),
        ("turns=2,turns=3", "synthetic sessions: turns: expected once"),
    ]:
        with pytest.raises(SessionError, match=re.escape(message)):
            parse_synthetic_sessions(text)


def test_turn_tool_and_system_tokens_are_deterministic_distinct_and_prefix_stable() -> None:
    a = turn_tokens("s1", 0, 700)
    assert a.dtype == np.int32 and a.size == 700 and a.min() >= 4 and a.max() < 4 + 2048
    assert np.array_equal(a, turn_tokens("s1", 0, 700))
    assert np.array_equal(turn_tokens("s1", 0, 300), a[:300])  # a longer turn extends a shorter one
    others = [
        turn_tokens("s1", 1, 700),
        turn_tokens("s2", 0, 700),
        turn_tokens("s1", 0, 700, seed=1),
        tool_result_tokens("s1", 0, 0, 700),
        system_prompt_tokens(700),
    ]
    assert all(not np.array_equal(a[:32], o[:32]) for o in others)
    assert not np.array_equal(tool_result_tokens("s1", 0, 0, 64), tool_result_tokens("s1", 0, 1, 64))
    assert np.array_equal(system_prompt_tokens(100, seed=3)[:50], system_prompt_tokens(50, seed=3))
    assert turn_tokens("s1", 0, 0).size == 0
    with pytest.raises(ValueError):
        turn_tokens("s1", -1, 5)


def test_system_prompt_is_system_zero_of_the_shared_prefix_dataset() -> None:
    ds = resolve_dataset("shared-prefix:systems=2,users=1,system_tokens=40,user_tokens=4,output_tokens=3,seed=5")
    assert np.array_equal(ds.input_ids[0][:40], system_prompt_tokens(40, seed=5))
