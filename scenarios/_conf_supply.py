"""Keys a round needs that the installed LoadGen's bundled mlperf.conf lacks: the harness supplies them.

LoadGen compiles its ``mlperf.conf`` into the wheel and applies it on ``FromConfig``. A wheel built before
a round's conf changes lacks that round's keys (a new model's TTFT/TPOT limits, its sample counts) or
carries the previous round's values (seeds). For a profile that names its round, the harness compares the
round's table (``scenarios._rounds``) with the conf text embedded in the installed wheel, key by key, with
LoadGen's own lookup (``model.scenario``, ``*.scenario``, ``model.*``, ``*.*``), and sets each missing or
different key on the TestSettings where the wheel's conf would have been applied: beneath a user.conf and
the harness's own settings. Each supplied key is a :class:`ConfSupply`; its ``note`` goes into
results.json's settings, so a run says which values did not come from LoadGen.
"""

from __future__ import annotations

import functools
import importlib.util
import re
from pathlib import Path
from typing import Any, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field

# A conf line as LoadGen splits it: key, '=', value (a '#' word ends the line).
_LINE = re.compile(r"^\s*(\S+)\s+=\s+(\S+)")
# The embedded conf is one NUL-terminated string of text in the shared object.
_TEXT_RUN = re.compile(rb"[\t\n\r\x20-\x7e]{512,}")
_CONF_LINE = re.compile(rb"(?m)^[A-Za-z0-9_.*-]+\.[A-Za-z*]+\.[a-z0-9_]+ *= *\S+")
_MIN_CONF_LINES = 20
SEED_KEYS = ("qsl_rng_seed", "sample_index_rng_seed", "schedule_rng_seed")


class _Field(NamedTuple):
    """Where FromConfig puts a conf key: the TestSettings attribute, the scenario it looks the key up under
    (None: the run's own), the factor it multiplies by, and how it reads the number."""

    attr: str
    lookup: str | None
    scale: float
    kind: Literal["int", "float", "bool"]


# test_settings_internal.cc, TestSettings::FromConfig: the keys a round's table may hold.
_FIELDS: dict[str, tuple[_Field, ...]] = {
    "qsl_rng_seed": (_Field("qsl_rng_seed", None, 1, "int"),),
    "sample_index_rng_seed": (_Field("sample_index_rng_seed", None, 1, "int"),),
    "schedule_rng_seed": (_Field("schedule_rng_seed", None, 1, "int"),),
    "min_duration": (_Field("min_duration_ms", None, 1, "int"),),
    "max_duration": (_Field("max_duration_ms", None, 1, "int"),),
    "min_query_count": (_Field("min_query_count", None, 1, "int"),),
    "max_query_count": (_Field("max_query_count", None, 1, "int"),),
    "performance_sample_count_override": (_Field("performance_sample_count_override", None, 1, "int"),),
    "accuracy_sample_count_override": (_Field("accuracy_sample_count_override", None, 1, "int"),),
    "sample_concatenate_permutation": (_Field("sample_concatenate_permutation", None, 1, "bool"),),
    "use_token_latencies": (_Field("use_token_latencies", None, 1, "bool"),),
    "ttft_latency": (_Field("ttft_latency", "Server", 1_000_000, "int"),),
    "tpot_latency": (_Field("tpot_latency", "Server", 1_000_000, "int"),),
    "target_latency": (
        _Field("server_target_latency_ns", "Server", 1_000_000, "int"),
        _Field("single_stream_expected_latency_ns", "SingleStream", 1_000_000, "float"),
        _Field("multi_stream_expected_latency_ns", "MultiStream", 1_000_000, "float"),
    ),
    "target_latency_percentile": (
        _Field("server_target_latency_percentile", "Server", 0.01, "float"),
        _Field("single_stream_target_latency_percentile", "SingleStream", 0.01, "float"),
        _Field("multi_stream_target_latency_percentile", "MultiStream", 0.01, "float"),
    ),
    "samples_per_query": (_Field("multi_stream_samples_per_query", "MultiStream", 1, "int"),),
}


class ConfSupply(BaseModel):
    """One conf key the harness supplies for a run because the installed LoadGen's conf lacks it or differs."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    line: str = Field(description="the round's conf key that applies, e.g. 'deepseek-r1.Server.ttft_latency'")
    key: str = Field(description="the key part, e.g. 'ttft_latency'")
    value: str = Field(description="the round's value, as mlperf.conf writes it")
    round: str
    wheel_line: str | None = Field(default=None, description="the installed conf's key that applied, if any")
    wheel_value: str | None = None
    wheel: str = Field(default="", description="the installed LoadGen, e.g. 'mlcommons-loadgen 6.0.17'")

    @property
    def note(self) -> str:
        what = f"{self.line} = {self.value}"
        where = f"the installed LoadGen's mlperf.conf ({self.wheel or 'version unknown'})"
        if self.wheel_value is None:
            return f"{what}: not in {where}; supplied from MLPerf {self.round}"
        return f"{what}: {where} has {self.wheel_value} ({self.wheel_line}); supplied MLPerf {self.round}'s value"


def parse_conf(text: str) -> dict[str, str]:
    """``model.scenario.key`` -> value text, as LoadGen's parser keeps them (comments skipped, last line wins)."""
    out: dict[str, str] = {}
    for raw in text.splitlines():
        m = _LINE.match(raw)
        if m is not None and m.group(1).count(".") >= 2:
            out[m.group(1)] = m.group(2)
    return out


def lookup(conf: dict[str, str], model: str, scenario: str, key: str) -> tuple[str, str] | None:
    """(the conf key that applies, its value) in LoadGen's order, or None when no line sets the key."""
    for cand in (f"{model}.{scenario}.{key}", f"*.{scenario}.{key}", f"{model}.*.{key}", f"*.*.{key}"):
        if cand in conf:
            return cand, conf[cand]
    return None


def _number(text: str) -> float | int | None:
    """The value as LoadGen would read it; seeds stay exact integers."""
    try:
        return int(text, 0) if re.fullmatch(r"\d+|0[xX][0-9a-fA-F]+", text) else float(text)
    except ValueError:
        return None


def _fields_for(key: str, scenario: str) -> list[_Field]:
    """The fields a key sets in a run of LoadGen scenario ``scenario`` (e.g. target_latency only under Server)."""
    return [f for f in _FIELDS.get(key, ()) if f.lookup is None or f.lookup == scenario]


def _round_keys(round_conf: dict[str, str]) -> list[str]:
    return sorted({k.rsplit(".", 1)[1] for k in round_conf})


def supplied_keys(
    round_name: str,
    round_conf: dict[str, str],
    wheel_conf: dict[str, str] | None,
    model: str,
    scenario: str,
    wheel: str = "",
) -> list[ConfSupply]:
    """Every key the round sets for (model, LoadGen scenario) that the wheel's conf lacks or sets differently.

    ``wheel_conf`` None means the installed conf could not be read: every key of the round is supplied.
    """
    out: list[ConfSupply] = []
    for key in _round_keys(round_conf):
        fields = _fields_for(key, scenario)
        if not fields:
            continue
        lookup_scenario = fields[0].lookup or scenario
        want = lookup(round_conf, model, lookup_scenario, key)
        if want is None:
            continue
        have = lookup(wheel_conf, model, lookup_scenario, key) if wheel_conf is not None else None
        if have is not None and _number(have[1]) == _number(want[1]):
            continue
        out.append(
            ConfSupply(
                line=want[0],
                key=key,
                value=want[1],
                round=round_name,
                wheel_line=have[0] if have is not None else None,
                wheel_value=have[1] if have is not None else None,
                wheel=wheel,
            )
        )
    return out


def apply_supplied(
    settings: Any, supplied: list[ConfSupply], scenario: str, skip_attrs: set[str] | frozenset[str] = frozenset()
) -> None:
    """Set each supplied key on LoadGen TestSettings as FromConfig would; fields in ``skip_attrs`` (a user.conf's)
    keep their value, but seeds: LoadGen reads those from its mlperf.conf only."""
    for item in supplied:
        number = _number(item.value)
        if number is None:
            continue
        for f in _fields_for(item.key, scenario):
            if f.attr in skip_attrs and item.key not in SEED_KEYS:
                continue
            if f.kind == "bool":
                setattr(settings, f.attr, number == 1)
            elif f.kind == "int":
                setattr(settings, f.attr, int(number) * int(f.scale))
            else:
                setattr(settings, f.attr, float(number) * f.scale)


def loadgen_so() -> Path | None:
    """The installed LoadGen extension, found without importing it."""
    spec = importlib.util.find_spec("mlperf_loadgen")
    return Path(spec.origin) if spec is not None and spec.origin else None


def loadgen_version() -> str:
    try:
        from importlib.metadata import version

        return f"mlcommons-loadgen {version('mlcommons-loadgen')}"
    except Exception:  # a LoadGen built from source has no distribution metadata
        return "mlcommons-loadgen (version unknown)"


def extract_conf(data: bytes) -> str | None:
    """The mlperf.conf text compiled into a LoadGen shared object: its longest run of conf lines."""
    best: tuple[int, bytes] | None = None
    for m in _TEXT_RUN.finditer(data):
        n = len(_CONF_LINE.findall(m.group()))
        if n >= _MIN_CONF_LINES and (best is None or n > best[0]):
            best = (n, m.group())
    return best[1].decode("ascii") if best is not None else None


@functools.lru_cache(maxsize=4)
def _wheel_conf_cached(path: str, mtime_ns: int, size: int) -> str | None:
    try:
        return extract_conf(Path(path).read_bytes())
    except OSError:
        return None


def wheel_conf_text() -> str | None:
    """The installed LoadGen's bundled mlperf.conf, or None when it cannot be read (cached per file version)."""
    so = loadgen_so()
    if so is None:
        return None
    try:
        st = so.stat()
    except OSError:
        return None
    return _wheel_conf_cached(str(so), st.st_mtime_ns, st.st_size)


def conf_supply(round_name: str, model: str, scenario: str) -> list[ConfSupply]:
    """What the harness supplies for (model, LoadGen scenario) under ``round_name`` with the installed LoadGen."""
    from scenarios._rounds import get_round

    rnd = get_round(round_name)
    if rnd is None:
        return []
    text = wheel_conf_text()
    wheel = parse_conf(text) if text is not None else None
    return supplied_keys(rnd.name, rnd.conf, wheel, model, scenario, loadgen_version())
