"""A submission's system description and code folder, complete by MLPerf's rules.

MLPerf's checker requires 35 fields of ``systems/<system>.json`` and a non-blank answer for 26 of them.
lpuperf detects what the host and the artifact manifest tell (processor, cores, memory, OS, accelerator,
toolchain) and nothing else: a submitter states the rest (storage type, cooling, interconnects, ...) in a
file ``lpuperf submission init-system`` writes. ``--system-desc FILE`` merges that file over the detected
values, and a required field still blank there is refused by name before anything is written.
Without a file, a field the host cannot tell says so in its value, which MLPerf's checker accepts and a
reviewer reads.

The code folder (``<division>/<submitter>/src``) holds a README naming the lpuperf version and the runs
the results came from: MLPerf requires the code that produced a result to be part of the submission.
"""

from __future__ import annotations

import json
from importlib import metadata
from pathlib import Path

from pydantic import JsonValue, ValidationError

from common import first_error_line, read_json_object, write_atomic
from loadgen_harness import RunResult
from workflows._submission import SubmissionConfig, SubmissionError, SystemDescription, system_description
from workflows._submission_rules import SYSTEM_ANSWER_REQUIRED, SYSTEM_REQUIRED_FIELDS, blank

UNDETECTED = "not detected by lpuperf; state it with `lpuperf submission init-system`"
# The fields only the submitter can answer; init-system leaves them blank for them to fill.
SUBMITTER_FIELDS: tuple[str, ...] = tuple(
    k
    for k in SYSTEM_REQUIRED_FIELDS
    if k not in {"division", "submitter", "status", "system_name", "system_type", "number_of_nodes"}
)


def _dump(desc: SystemDescription) -> dict[str, JsonValue]:
    return dict(desc.model_dump(mode="json", by_alias=True))


def _detected(desc: SystemDescription) -> dict[str, JsonValue]:
    """The description with each blank required answer stated as undetected."""
    data = _dump(desc)
    for key in SYSTEM_REQUIRED_FIELDS:
        if blank(data.get(key)) and key in SYSTEM_ANSWER_REQUIRED:
            data[key] = UNDETECTED
    return data


def read_system_file(path: Path) -> dict[str, JsonValue]:
    """A submitter's system file; every required field that needs an answer must have one."""
    try:
        data = dict(read_json_object(path, "system description", SubmissionError))
    except FileNotFoundError:
        raise SubmissionError(f"{path}: system description not found") from None
    blanks = [k for k in SYSTEM_REQUIRED_FIELDS if k in SYSTEM_ANSWER_REQUIRED and blank(data.get(k))]
    if blanks:
        raise SubmissionError(f"{path}: field '{blanks[0]}' is blank; MLPerf requires an answer ({len(blanks)} blank)")
    return data


def complete_system(desc: SystemDescription, system_file: Path | None) -> SystemDescription:
    """Detected values, the undetected ones stated, the submitter's file (``system_file``) over both.

    The directory's division, submitter, system name and type always win: MLPerf's checker compares them.
    """
    data = _detected(desc)
    if system_file is not None:
        own = read_system_file(system_file)
        keep: dict[str, JsonValue] = {k: data[k] for k in ("division", "submitter", "system_name") if k in data}
        data.update(own)
        data.update(keep)
    try:
        return SystemDescription.model_validate(data)
    except ValidationError as exc:
        raise SubmissionError(first_error_line(exc, str(system_file or "system description"))) from None


def system_template(cfg: SubmissionConfig, system: str, artifact: dict[str, JsonValue]) -> str:
    """``init-system``'s file: what lpuperf detects, and a blank for every field only the submitter knows."""
    data = _dump(system_description(cfg, system, artifact))
    for key in SUBMITTER_FIELDS:
        data.setdefault(key, "")
    data.pop("artifact", None)
    return json.dumps(data, indent=2) + "\n"


def _version() -> str:
    try:
        return metadata.version("lpuperf")
    except metadata.PackageNotFoundError:
        return "unknown"


def write_code_folder(sub_root: Path, results: RunResult) -> Path:
    """``<division>/<submitter>/src/README.md``: which lpuperf produced the runs, and how to reproduce them."""
    path = sub_root / "src" / "README.md"
    lines = [
        "# Code",
        "",
        f"The results under `results/` were produced by lpuperf {_version()} (LoadGen harness, gRPC SUT).",
        "",
        f"- benchmark `{results.benchmark}`, preset `{results.preset}`",
        f"- run `{results.run_id}` ({results.scenario})",
        "",
        "Reproduce with `lpuperf submission run --benchmark BENCHMARK --scenario SCENARIOS --preset submission`.",
    ]
    readme = "\n".join(lines) + "\n"
    if path.is_file():  # one README for every scenario of the submitter: keep each run's lines
        old = path.read_text(encoding="utf-8")
        run_line = f"- run `{results.run_id}` ({results.scenario})"
        readme = old.rstrip("\n") + "\n" + run_line + "\n" if run_line not in old else old
    write_atomic(path, readme)
    return path
