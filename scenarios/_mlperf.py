"""MLPerf's names and per-round facts that reading published results needs.

A published tree names benchmarks the way MLPerf's submission directories do (``llama2-70b-99.9``,
``llama3.1-8b``), LoadGen's mlperf.conf names the same models ``llama2-70b`` and ``llama3_1-8b``, and
the project's profiles have their own names. :func:`mlperf_model` maps any of them to LoadGen's name,
:func:`project_benchmark` back to a profile. Which benchmarks carry which compliance tests (TEST06,
TEST07, TEST09) and which seeds a round used live here and in the round tables (``scenarios._rounds``).
"""

from __future__ import annotations

import re

from scenarios._benchmarks import BENCHMARKS
from scenarios._rounds import MLPERF_ROUNDS, RoundSeeds

# Per round, as MLPerf's submission checker expects them. A round not listed here is not guessed at.
MLPERF_ROUND_SEEDS: dict[str, RoundSeeds] = {
    "v4.0": RoundSeeds(
        qsl_rng_seed=13281865557512327830,
        sample_index_rng_seed=198141574272810017,
        schedule_rng_seed=7575108116881280410,
    ),
    "v4.1": RoundSeeds(
        qsl_rng_seed=3066443479025735752,
        sample_index_rng_seed=10688027786191513374,
        schedule_rng_seed=14962580496156340209,
    ),
    "v5.0": RoundSeeds(
        qsl_rng_seed=6023615788873153749,
        sample_index_rng_seed=15036839855038426416,
        schedule_rng_seed=9933818062894767841,
    ),
    "v5.1": RoundSeeds(
        qsl_rng_seed=1780908523862526354,
        sample_index_rng_seed=14771362308971278857,
        schedule_rng_seed=18209322760996052031,
    ),
    "v6.0": RoundSeeds(
        qsl_rng_seed=2465351861681999779,
        sample_index_rng_seed=14276810075590677512,
        schedule_rng_seed=3936089224930324775,
    ),
    # The rounds with a full table (scenarios._rounds) hold their own seeds.
    **{name: rnd.seeds for name, rnd in MLPERF_ROUNDS.items()},
}

# LoadGen model names of the LLM benchmarks whose submissions carry TEST06 (MLPerf's list across rounds).
# llama3_1-8b-edge is an LLM without TEST06 in MLPerf's rules; image, speech and recommendation
# models (stable-diffusion-xl, whisper, dlrm, ...) have none either. A project profile's own
# ``compliance_tests`` (read from its round's checker table) win over these lists.
TEST06_MODELS: frozenset[str] = frozenset(
    {
        "llama2-70b",
        "llama2-70b-interactive",
        "llama3_1-8b",
        "llama3_1-8b-interactive",
        "llama3_1-405b",
        "llama3_1-405b-interactive",
        "mixtral-8x7b",
        "deepseek-r1",
        "deepseek-r1-interactive",
        "gptj",
    }
)

_ACCURACY_SUFFIX = re.compile(r"-99(?:\.9)?$")


def round_name(version: str) -> str:
    """``5.1`` or ``v5.1`` -> ``v5.1``."""
    v = version.strip()
    return v if v.startswith("v") else f"v{v}"


def round_seeds(version: str) -> RoundSeeds | None:
    """The seeds of a known MLPerf round; None for a round the table does not hold."""
    return MLPERF_ROUND_SEEDS.get(round_name(version))


def mlperf_model(name: str, scenario: str | None = None) -> str:
    """LoadGen's mlperf.conf model name for a benchmark named as a project profile or an MLPerf directory.

    ``llama2-70b-99.9`` -> ``llama2-70b``, ``llama3.1-405b`` -> ``llama3_1-405b``, ``embedded`` ->
    ``lpuperf-embedded``. An Interactive scenario selects the ``-interactive`` model, as LoadGen's conf does.
    """
    profile = BENCHMARKS.get(name)
    model = (
        profile.loadgen_model if profile is not None else _ACCURACY_SUFFIX.sub("", name).replace("llama3.1", "llama3_1")
    )
    if scenario == "Interactive" and not model.endswith("-interactive"):
        model = f"{model}-interactive"
    return model


def project_benchmark(name: str) -> str:
    """The project's profile for an MLPerf benchmark directory name (``llama2-70b-99`` -> ``llama2-70b``), else ``name``."""
    if name in BENCHMARKS:
        return name
    model = mlperf_model(name)
    return next((p.name for p in BENCHMARKS.values() if p.loadgen_model == model), name)


# v6.1's models_TEST07 / models_TEST09 (checker constants.py l.318-324), as LoadGen models.
TEST07_MODELS: frozenset[str] = frozenset({"gpt-oss-120b", "gpt-oss-120b-interactive"})
TEST09_MODELS: frozenset[str] = frozenset({"gpt-oss-120b", "gpt-oss-120b-interactive"})
_LISTS = {"TEST06": TEST06_MODELS, "TEST07": TEST07_MODELS, "TEST09": TEST09_MODELS}


def compliance_tests(name: str) -> tuple[str, ...]:
    """The compliance tests a benchmark's submission carries (a profile, or an MLPerf directory name).

    A project profile (also found through its MLPerf name, ``gpt-oss-120b`` or ``llama3.1-8b-edge``) names its
    own; any other name is looked up in MLPerf's lists.
    """
    profile = BENCHMARKS.get(project_benchmark(name))
    if profile is not None:
        return tuple(profile.compliance_tests)
    model = mlperf_model(name)
    return tuple(test for test, models in _LISTS.items() if model in models)


def requires_test06(name: str) -> bool:
    """Whether a benchmark's submission carries TEST06 (MLPerf's LLMs but gpt-oss-120b and llama3.1-8b-edge)."""
    return "TEST06" in compliance_tests(name)


def requires_test07(name: str) -> bool:
    return "TEST07" in compliance_tests(name)


def requires_test09(name: str) -> bool:
    return "TEST09" in compliance_tests(name)
