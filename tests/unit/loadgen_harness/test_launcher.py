"""launch_sut: an embedded SUT answers, is always stopped, and a bad config never starts a process."""

from __future__ import annotations

import pytest

from loadgen_harness import RunError, SutTarget, launch_sut

DATASET = "synthetic:8:2"


def test_embedded_sut_is_stopped_even_when_the_block_fails() -> None:
    with (
        pytest.raises(ZeroDivisionError),
        launch_sut(SutTarget(backend={"artifact": "sim-instant"}, dataset=DATASET)) as running,
    ):
        assert running.embedded and running.artifact["artifact_id"] == "sim-instant"
        proc = running.process.proc
        assert proc.poll() is None
        1 / 0  # noqa: B018
    assert proc.poll() is not None


def test_bad_backend_config_fails_before_spawning(monkeypatch: pytest.MonkeyPatch) -> None:
    import sut

    def no_spawn(*a: object, **k: object) -> None:
        raise AssertionError("spawned")

    monkeypatch.setattr(sut, "spawn_server", no_spawn, raising=False)
    with pytest.raises(RunError, match="field 'decode_step_s'"), launch_sut(SutTarget(backend={"decode_step_s": -1})):
        pass


def test_child_error_is_one_line() -> None:
    with pytest.raises(RunError) as exc, launch_sut(SutTarget(backend={"artifact": "/nonexistent/m.json"})):
        pass
    assert str(exc.value).startswith("embedded SUT: ") and "\n" not in str(exc.value)
    assert "/nonexistent/m.json" in str(exc.value)
