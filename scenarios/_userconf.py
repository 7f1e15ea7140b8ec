"""user.conf handling: loaded through LoadGen's ``FromConfig`` exactly once per process.

LoadGen counts ``FromConfig`` calls in a process-wide static and writes "Multiple conf files are
used" into the next run's log, which makes it non-submittable. A process that runs several
benchmarks (find-peak, validate) would trip that. So the first load snapshots every TestSettings
field it produced; a later run with the same (file, model, scenario) replays the snapshot instead of
calling LoadGen again, and a different combination is refused with one clear line.
"""

from __future__ import annotations

import difflib
import functools
import math
import re
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from common import first_error_line

# conf-file key -> TestSettings attributes it can set (which one depends on the scenario).
CONF_KEY_FIELDS: dict[str, tuple[str, ...]] = {
    "target_qps": ("server_target_qps", "offline_expected_qps"),
    "target_latency": ("server_target_latency_ns", "single_stream_expected_latency_ns"),
    "target_latency_percentile": ("server_target_latency_percentile",),
    "min_duration": ("min_duration_ms",),
    "max_duration": ("max_duration_ms",),
    "min_query_count": ("min_query_count",),
    "max_query_count": ("max_query_count",),
    "ttft_latency": ("ttft_latency",),
    "tpot_latency": ("tpot_latency",),
    "use_token_latencies": ("use_token_latencies",),
    "samples_per_query": ("multi_stream_samples_per_query",),
    "performance_sample_count_override": ("performance_sample_count_override",),
    "accuracy_sample_count_override": ("accuracy_sample_count_override",),
    "sample_concatenate_permutation": ("sample_concatenate_permutation",),
}

# LoadGen splits a line on whitespace into key, '=', value: 'key=5' is one word it silently ignores,
# and a word after the value is read as another value, so both are refused here.
_LINE = re.compile(r"^\s*([^.\s=#]+)\.([^.\s=#]+)\.([A-Za-z0-9_]+)\s+=\s+(\S+)\s*$")
_SCENARIOS = ("*", "SingleStream", "MultiStream", "Server", "Offline")
# LoadGen reads integer keys with strtoull: '1e30' is 1, '2.5' is 2, '-5' wraps around, '010' is octal.
_INT_TEXT = re.compile(r"0|[1-9][0-9]*")
_FLOAT_TEXT = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")
_INT64_MAX = 2**63 - 1
_MS_MAX = _INT64_MAX // 1_000_000  # LoadGen turns milliseconds into int64 nanoseconds


class _Key(NamedTuple):
    kind: str  # "int" | "float" | "bool"
    lo: float
    hi: float
    what: str  # how the expectation reads in an error
    lo_open: bool = False


_MS = _Key("int", 0, _MS_MAX, f"a whole number of milliseconds from 0 to {_MS_MAX}")
_COUNT = _Key("int", 0, _INT64_MAX, f"a whole number from 0 to {_INT64_MAX}")
_SEED = _Key("int", 0, 2**64 - 1, f"a whole number from 0 to {2**64 - 1}")
_BOOL = _Key("bool", 0, 1, "0 or 1")
_PERCENT = _Key("float", 0, 100, "a percentage in (0, 100]", lo_open=True)

# The keys LoadGen's TestSettings.FromConfig understands; any other key would be ignored silently.
LOADGEN_CONF_KEYS: dict[str, _Key] = {
    "mode": _Key("int", 0, 3, "a LoadGen test mode 0..3"),
    "min_duration": _MS,
    "max_duration": _MS,
    "target_duration": _MS,
    "min_query_count": _COUNT,
    "max_query_count": _COUNT,
    "performance_sample_count_override": _COUNT,
    "accuracy_sample_count_override": _COUNT,
    "performance_issue_same_index": _COUNT,
    "accuracy_log_sampling_target": _COUNT,
    "token_latency_scaling_factor": _COUNT,
    "qsl_rng_seed": _SEED,
    "sample_index_rng_seed": _SEED,
    "schedule_rng_seed": _SEED,
    "accuracy_log_rng_seed": _SEED,
    "test05_qsl_rng_seed": _SEED,
    "test05_sample_index_rng_seed": _SEED,
    "test05_schedule_rng_seed": _SEED,
    "accuracy_log_probability": _Key("float", 0, 100, "a percentage from 0 to 100"),
    "print_timestamps": _BOOL,
    "performance_issue_unique": _BOOL,
    "performance_issue_same": _BOOL,
    "test05": _BOOL,
    "coalesce_queries": _BOOL,
    "use_token_latencies": _BOOL,
    "infer_token_latencies": _BOOL,
    "sample_concatenate_permutation": _BOOL,
    "target_qps": _Key("float", 0, float("inf"), "queries per second > 0", lo_open=True),
    "target_latency": _MS,
    "ttft_latency": _MS,
    "tpot_latency": _MS,
    "target_latency_percentile": _PERCENT,
    "samples_per_query": _Key("int", 1, 2**31 - 1, f"a whole number from 1 to {2**31 - 1}"),
    "max_async_queries": _Key("int", 0, 2**31 - 1, f"a whole number from 0 to {2**31 - 1}"),
}
_lock = threading.Lock()
_loaded: tuple[str, str, str] | None = None
# The TestSettings attribute values the first load produced (LoadGen's own types), replayed with setattr.
_snapshot: dict[str, object] = {}


class UserConfError(ValueError):
    """A user.conf is missing, malformed or conflicts with the one already loaded; one line."""


SEED_FIELDS = ("qsl_rng_seed", "sample_index_rng_seed", "schedule_rng_seed")


class MlperfRules(BaseModel):
    """LoadGen's own mlperf.conf values for a (model, scenario): the official seeds, the minimum duration
    and the token-latency limits (what MLPerf's checker holds a run to)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    qsl_rng_seed: int
    sample_index_rng_seed: int
    schedule_rng_seed: int
    min_duration_ms: int
    use_token_latencies: bool = False
    ttft_latency: int | None = Field(default=None, description="ns")
    tpot_latency: int | None = Field(default=None, description="ns")
    sample_concatenate_permutation: bool = False

    def seed(self, key: str) -> int:
        """One of :data:`SEED_FIELDS` by name."""
        return {
            "qsl_rng_seed": self.qsl_rng_seed,
            "sample_index_rng_seed": self.sample_index_rng_seed,
            "schedule_rng_seed": self.schedule_rng_seed,
        }[key]


# Reads LoadGen's embedded mlperf.conf in a child process: FromConfig applies it on its first call,
# and a second FromConfig in one process marks the run invalid, so this process must not call it.
_DEFAULTS_SCRIPT = """
import json, sys, tempfile, mlperf_loadgen as lg
s = lg.TestSettings()
with tempfile.NamedTemporaryFile("w", suffix=".conf") as f:
    s.FromConfig(f.name, sys.argv[1], sys.argv[2])
keys = sys.argv[3].split(",")
print(json.dumps({k: getattr(s, k) for k in keys}))
"""
_DEFAULT_KEYS = (
    *SEED_FIELDS,
    "min_duration_ms",
    "use_token_latencies",
    "ttft_latency",
    "tpot_latency",
    "sample_concatenate_permutation",
)


@functools.lru_cache(maxsize=32)
def mlperf_conf_defaults(model: str, scenario: str) -> MlperfRules:
    """LoadGen's own mlperf.conf values for (model, scenario): the official seeds, min duration, limits."""
    proc = subprocess.run(
        [sys.executable, "-c", _DEFAULTS_SCRIPT, model, scenario, ",".join(_DEFAULT_KEYS)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise UserConfError(f"cannot read LoadGen's mlperf.conf for {model}/{scenario}: {tail}")
    try:
        return MlperfRules.model_validate_json(proc.stdout.strip().splitlines()[-1])
    except ValidationError as exc:
        raise UserConfError(first_error_line(exc, f"LoadGen's mlperf.conf for {model}/{scenario}")) from None


def _settings_fields(settings: Any) -> list[str]:
    return [n for n in dir(settings) if not n.startswith("_") and not callable(getattr(settings, n))]


def conf_keys(path: str | Path, model: str, scenario: str) -> set[str]:
    """Keys a conf file sets for ``model``/``scenario`` (``*`` matches any), validating each line."""
    p = Path(path)
    if p.is_dir():
        raise UserConfError(f"{p}: expected a user.conf file, got a directory")
    if not p.is_file():
        raise UserConfError(f"{p}: user.conf not found")
    try:
        text = p.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise UserConfError(f"{p}: cannot read the user.conf ({exc.strerror or exc})") from None
    keys: set[str] = set()
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if "#" in line:
            # LoadGen takes a '#' after the value for another value and rejects the whole file.
            raise UserConfError(f"{p}:{lineno}: a comment must be on a line of its own, got '{line}'")
        m = _LINE.match(line)
        if m is None:
            raise UserConfError(
                f"{p}:{lineno}: expected 'model.Scenario.key = value' with spaces around '=', got '{raw.strip()}'"
            )
        m_model, m_scen, key, value = m.groups()
        _check_conf_value(f"{p}:{lineno}", m_scen, key, value)
        if m_model in ("*", model) and m_scen in ("*", scenario):
            keys.add(key)
    return keys


def _check_conf_value(where: str, scenario: str, key: str, value: str) -> None:
    """UsageError-style one line unless ``scenario.key = value`` is something LoadGen reads as written."""
    if scenario not in _SCENARIOS:
        raise UserConfError(f"{where}: scenario '{scenario}': expected one of {', '.join(_SCENARIOS)}")
    spec = LOADGEN_CONF_KEYS.get(key)
    if spec is None:
        close = difflib.get_close_matches(key, LOADGEN_CONF_KEYS, n=1)
        hint = f"did you mean '{close[0]}'?" if close else f"expected one of {', '.join(sorted(LOADGEN_CONF_KEYS))}"
        raise UserConfError(f"{where}: unknown key '{key}' (LoadGen would ignore it); {hint}")
    if not _FLOAT_TEXT.fullmatch(value):
        raise UserConfError(f"{where}: field '{key}': expected a number, got '{value}'")
    if spec.kind in ("int", "bool") and not _INT_TEXT.fullmatch(value):
        raise UserConfError(f"{where}: field '{key}': expected {spec.what} written as digits, got '{value}'")
    number = int(value) if spec.kind != "float" else float(value)
    low_ok = number > spec.lo if spec.lo_open else number >= spec.lo
    if not (math.isfinite(number) and low_ok and number <= spec.hi):
        raise UserConfError(f"{where}: field '{key}': expected {spec.what}, got '{value}'")


def fields_set_by(keys: set[str]) -> set[str]:
    """TestSettings attribute names a set of conf keys may have changed."""
    out: set[str] = set()
    for k in keys:
        out.update(CONF_KEY_FIELDS.get(k, ()))
    return out


def apply_user_conf(settings: Any, path: str | Path, model: str, scenario: str) -> set[str]:
    """Apply ``path`` to ``settings`` (LoadGen's FromConfig at most once per process).

    Returns the TestSettings attributes the file sets, so presets do not overwrite them.
    """
    global _loaded, _snapshot
    p = Path(path).resolve()
    keys = conf_keys(p, model, scenario)
    ident = (str(p), model, scenario)
    with _lock:
        if _loaded is None:
            rc = settings.FromConfig(str(p), model, scenario, 1)
            if rc not in (0, None):
                raise UserConfError(f"{p}: LoadGen rejected the user.conf (FromConfig returned {rc})")
            _loaded = ident
            _snapshot = {n: getattr(settings, n) for n in _settings_fields(settings)}
        elif _loaded == ident:
            # Replay only what the conf files decided (seeds and the file's own keys): mode and scenario
            # belong to this run, not to the first one.
            replay = fields_set_by(keys) | set(SEED_FIELDS)
            for name, value in _snapshot.items():
                if name not in replay:
                    continue
                try:
                    setattr(settings, name, value)
                except (AttributeError, TypeError):
                    continue  # read-only properties are not settings
        else:
            raise UserConfError(
                f"{p}: this process already loaded {_loaded[0]} for {_loaded[1]}/{_loaded[2]}; LoadGen marks a "
                "second conf load invalid, so run this one in a new process"
            )
    return fields_set_by(keys)
