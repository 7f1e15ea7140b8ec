"""The rules of MLPerf's submission checker that a round's table decides, applied to a submission tree.

``workflows._submission_check`` walks the tree and checks each scenario's logs; this module adds what
MLPerf's checker holds a whole submission to, read from the round's table (``scenarios.get_round``):

* the **system description**: every field the round requires present, the ones that need an answer not
  blank, a known ``status`` and ``system_type``, the division and submitter of the directory it sits in,
  and ``is_network`` true exactly in the network division;
* **required scenarios** per benchmark and system type (closed and network divisions only);
* the **performance sample count** of each performance run, the **accuracy run's coverage** of the dataset,
  and an Offline run's samples per query (closed division);
* the **code folder** (``src/`` from v6.0 on) and non-empty ``user.conf`` / ``README.md``;
* **measurements.json** fields MLPerf requires, each with an answer.

A benchmark the round's table does not profile gets only the round-independent rules, and the report's
note names which benchmarks were held to fewer rules.
"""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import JsonValue

from common import UsageError, read_json_object
from scenarios import MlperfRound, ModelRules
from workflows._submission import _as_int, read_detail_log

# MLPerf's checker: SYSTEM_DESC_REQUIRED_FIELDS and, of those, the ones that need a non-blank answer.
SYSTEM_REQUIRED_FIELDS: tuple[str, ...] = (
    "division", "submitter", "status", "system_name", "number_of_nodes", "host_processor_model_name",
    "host_processors_per_node", "host_processor_core_count", "host_memory_capacity", "host_storage_capacity",
    "host_storage_type", "accelerators_per_node", "accelerator_model_name", "accelerator_memory_capacity",
    "framework", "operating_system", "system_type", "other_software_stack", "host_processor_frequency",
    "host_processor_caches", "host_memory_configuration", "host_processor_interconnect", "host_networking",
    "host_networking_topology", "accelerator_frequency", "accelerator_host_interconnect",
    "accelerator_interconnect", "accelerator_interconnect_topology", "accelerator_memory_configuration",
    "accelerator_on-chip_memories", "cooling", "hw_notes", "sw_notes", "host_network_card_count",
    "system_type_detail",
)  # fmt: skip
SYSTEM_ANSWER_REQUIRED: frozenset[str] = frozenset(
    {
        "division", "submitter", "system_type", "status", "system_name", "number_of_nodes",
        "host_processor_model_name", "host_processors_per_node", "host_processor_core_count",
        "host_memory_capacity", "host_memory_configuration", "host_storage_capacity", "host_storage_type",
        "host_networking", "host_network_card_count", "host_networking_topology", "accelerators_per_node",
        "accelerator_model_name", "accelerator_memory_capacity", "accelerator_host_interconnect",
        "accelerator_memory_configuration", "accelerator_interconnect", "cooling", "framework",
        "operating_system", "other_software_stack",
    }
)  # fmt: skip
# The network division adds these (SYSTEM_DESC_REQUIRED_FIELDS_NETWORK_MODE), present but not judged.
SYSTEM_NETWORK_FIELDS: tuple[str, ...] = (
    "is_network", "network_type", "network_media", "network_rate", "nic_loadgen", "number_nic_loadgen",
    "net_software_stack_loadgen", "network_protocol", "number_connections", "nic_sut", "number_nic_sut",
    "net_software_stack_sut", "network_topology",
)  # fmt: skip
MEASUREMENTS_REQUIRED_FIELDS: tuple[str, ...] = (
    "input_data_types",
    "retraining",
    "starting_weights_filename",
    "weight_data_types",
    "weight_transformations",
)
VALID_STATUSES = ("available", "preview", "rdi")
VALID_SYSTEM_TYPES = ("datacenter", "edge", "datacenter,edge", "edge,datacenter")
# Files MLPerf's checker refuses when empty (REQUIRED_MEASURE_FILES with its empty-file check).
NON_EMPTY_FILES = ("user.conf", "README.md")
# Rounds before v6.0 kept the code under code/, later ones under src/ (SRC_PATH).
_OLD_CODE_ROUNDS = ("v4.0", "v4.1", "v5.0", "v5.1")


_NEW_CODE_ROUNDS = ("v6.0", "v6.1")


def code_folders(version: str | None) -> tuple[str, ...]:
    """The folder(s) under ``<division>/<submitter>/`` that may hold the code for round ``version``
    (the current round's without one; either name for a round not known here)."""
    name = None if version is None else version if version.startswith("v") else f"v{version}"
    if name in _OLD_CODE_ROUNDS:
        return ("code",)
    if name is None or name in _NEW_CODE_ROUNDS:
        return ("src",)
    return ("src", "code")


def blank(value: JsonValue) -> bool:
    """MLPerf's checker refuses a falsy answer (empty string, 0, null, empty list) for a meaningful field."""
    return not value


def system_findings(system: dict[str, JsonValue], division: str, submitter: str) -> list[tuple[str, str]]:
    """(code, message) for each way a system description breaks the round's rules."""
    out: list[tuple[str, str]] = []
    network = str(system.get("is_network", "")).strip().lower() == "true"
    # MLPerf asks for the network fields whenever is_network holds anything at all ("false" included).
    fields = SYSTEM_REQUIRED_FIELDS + (SYSTEM_NETWORK_FIELDS if system.get("is_network") else ())
    missing = [k for k in fields if k not in system]
    empty = [k for k in fields if k in system and k in SYSTEM_ANSWER_REQUIRED and blank(system[k])]
    if missing:
        out.append(("system-field", f"{len(missing)} required field(s) missing: {', '.join(missing)}"))
    if empty:
        out.append(("system-field", f"{len(empty)} required field(s) blank: {', '.join(empty)}"))
    status = str(system.get("status", "")).lower()
    if "status" in system and status not in VALID_STATUSES:
        out.append(("system-status", f"status '{status}' is not one of {', '.join(VALID_STATUSES)}"))
    system_type = system.get("system_type")
    if "system_type" in system and system_type not in VALID_SYSTEM_TYPES:
        out.append(("system-type", f"system_type '{system_type}' is not one of {', '.join(VALID_SYSTEM_TYPES)}"))
    for key, want in (("division", division), ("submitter", submitter)):
        got = str(system.get(key, ""))
        if key in system and got.lower() != want.lower():
            out.append(("system-" + key, f"{key} is '{got}', the directory says '{want}'"))
    if division in ("closed", "network") and network != (division == "network"):
        out.append(("network-mode", f"is_network is {network}; the {division} division needs {division == 'network'}"))
    return out


def read_system(path: Path) -> dict[str, JsonValue] | None:
    """A system description, or None when it is not a JSON object (a finding names that)."""
    try:
        return dict(read_json_object(path, "system description"))
    except UsageError:
        return None


def system_type_of(system: dict[str, JsonValue] | None) -> str:
    """The system type the required scenarios are read for; MLPerf's 'datacenter,edge' holds both."""
    value = str((system or {}).get("system_type") or "datacenter")
    return value


def missing_scenarios(rules: ModelRules, system_type: str, present: set[str]) -> list[str]:
    """Scenarios the benchmark lacks for the system type (both types' needs for a datacenter,edge system)."""
    out: list[str] = []
    for kind in ("datacenter", "edge"):
        if kind in system_type and kind in rules.required:
            out += [m for m in rules.required[kind].missing(present) if m not in out]
    return out


def _detail(path: Path) -> dict[str, JsonValue] | None:
    return read_detail_log(path) if path.is_file() else None


def sample_count_findings(scen: Path, rules: ModelRules, division: str) -> list[tuple[str, str, str]]:
    """(code, relative path, message): performance sample count, accuracy coverage, Offline samples per query."""
    out: list[tuple[str, str, str]] = []
    perf_rel = "performance/run_1/mlperf_log_detail.txt"
    perf = _detail(scen / perf_rel)
    if perf is not None:
        psc = _as_int(perf.get("effective_performance_sample_count"))
        if psc is None or psc < rules.performance_sample_count:
            out.append(
                (
                    "performance-sample-count",
                    perf_rel,
                    f"performance_sample_count is {psc}, {rules.checker_model} needs >= {rules.performance_sample_count}",
                )
            )
        spq = _as_int(perf.get("effective_samples_per_query"))
        if scen.name == "Offline" and division == "closed" and (spq or 0) < rules.dataset_size:
            out.append(
                (
                    "offline-samples",
                    perf_rel,
                    f"Offline samples_per_query is {spq}, {rules.checker_model} needs >= {rules.dataset_size}",
                )
            )
    acc_rel = "accuracy/mlperf_log_detail.txt"
    acc = _detail(scen / acc_rel)
    if acc is not None:
        covered = _as_int(acc.get("effective_accuracy_sample_count", acc.get("qsl_reported_total_count")))
        if covered != rules.accuracy_sample_count:
            out.append(
                (
                    "accuracy-coverage",
                    acc_rel,
                    f"the accuracy run covered {covered} samples; {rules.checker_model}'s dataset has "
                    f"{rules.accuracy_sample_count}",
                )
            )
    return out


def round_rules(rnd: MlperfRound | None, benchmark_dir: str) -> ModelRules | None:
    """The round's rules for a benchmark directory (MLPerf's name); None when the round does not profile it."""
    return rnd.rules(benchmark_dir) if rnd is not None else None


def unknown_scenarios(rules: ModelRules, system_type: str, present: set[str]) -> list[str]:
    """Scenario directories the benchmark has no use for under the system type (MLPerf: 'unknown scenarios')."""
    known: set[str] = set()
    for kind in ("datacenter", "edge"):
        if kind in system_type and kind in rules.required:
            req = rules.required[kind]
            known |= set(req.all_of) | set(req.one_of)
    return sorted(present - known) if known else []


# How accuracy.txt names each metric of the round's table (MLPerf's ACC_PATTERN keys -> the score's key).
ACCURACY_KEYS = {
    "ROUGE1": "rouge1",
    "ROUGE2": "rouge2",
    "ROUGEL": "rougeL",
    "ROUGELSUM": "rougeLsum",
    "GEN_LEN": "gen_len",
    "TOKENS_PER_SAMPLE": "tokens_per_sample",
    "exact_match": "exact_match",
}


def _score(text: str, key: str) -> float | None:
    """``'key': value`` from accuracy.txt's score line (the form every MLPerf LLM scorer prints)."""
    m = re.search(rf"'{re.escape(key)}':\s+'?([0-9.]+)'?", text)
    return float(m.group(1)) if m else None


def accuracy_findings(text: str, rules: ModelRules) -> list[str]:
    """Messages for each metric below the round's target, above its upper limit, or not reported at all."""
    out = []
    for metric, target in rules.accuracy_targets.items():
        value = _score(text, ACCURACY_KEYS.get(metric, metric))
        if value is None:
            out.append(f"{metric} not reported (target >= {target:g})")
        elif value < target:
            out.append(f"{metric} is {value:g}, {rules.checker_model} needs >= {target:g}")
    for metric, limit in rules.accuracy_upper_limits.items():
        value = _score(text, ACCURACY_KEYS.get(metric, metric))
        if value is not None and value > limit:
            out.append(f"{metric} is {value:g}, above {rules.checker_model}'s limit {limit:g}")
    return out
