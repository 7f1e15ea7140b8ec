"""Audit configs for the tests that need every sample logged in performance mode (TEST07, TEST09).

MLPerf's TEST07 and TEST09 audit.config files run LoadGen in performance mode with unique issue
(each loaded sample exactly once) and log responses to the accuracy log with probability
``accuracy_log_sampling_target / expected queries``. With TEST07's upstream target (990) an Offline run
over the 6,396-sample performance set logs only about 15 % of the samples. The project writes its own
audit.config with the sampling target at least the number of samples the run issues, so LoadGen's
probability is >= 1 and every response is logged, and then checks both: the detail log shows those
settings, and the log holds each of the issued samples once.

The script-only keys (``test07_accuracy_threshold``, ``test09_*_output_tokens``) are read back exactly as
MLPerf's verification scripts read them: TEST07 keeps an inline ``#`` comment in the value (which then
fails to parse), TEST09 strips it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from pydantic import JsonValue

ACCURACY_LOG_RNG_SEED = 720381539243781796  # MLPerf's, in every compliance audit.config
AUDIT_CONFIG_FILE = "audit.config"


def sampling_target(n_samples: int, upstream: int) -> int:
    """A sampling target that logs every one of ``n_samples`` issued samples (LoadGen's probability >= 1).

    With min_duration 0 and min_query_count = n, LoadGen's expected queries are n in Server and the
    performance sample count (n) in Offline; MLPerf's own target is kept where it is already larger.
    """
    return max(n_samples, upstream)


def audit_config_text(title: str, n_samples: int, target: int, script_keys: Mapping[str, float]) -> str:
    """An audit.config in MLPerf's layout: LoadGen's keys, then the keys only the verification reads."""
    lines = [
        f"# {title} (lpuperf). Format: model.scenario.key = value; '*' matches any.",
        "# mode: 0 = submission, 1 = accuracy, 2 = performance, 3 = find peak performance",
        "*.*.mode = 2",
        f"*.*.accuracy_log_rng_seed = {ACCURACY_LOG_RNG_SEED}",
        f"# {target} >= the {n_samples} samples issued: LoadGen's logging probability is >= 1, every sample is logged",
        f"*.*.accuracy_log_sampling_target = {target}",
        f"*.*.min_query_count = {n_samples}",
        "*.*.min_duration = 0",
        "# each loaded sample is issued exactly once",
        "*.*.performance_issue_unique = 1",
        "*.*.sample_concatenate_permutation = 0",
        "# read by the verification only (LoadGen ignores keys it does not know)",
    ]
    lines += [f"*.*.{key} = {value}" for key, value in script_keys.items()]
    return "\n".join(lines) + "\n"


def read_audit_value(path: Path, name: str, strip_inline_comment: bool) -> tuple[float | None, str]:
    """``name``'s value in an audit.config, as MLPerf's TEST07 (``strip_inline_comment=False``) or TEST09 reads it.

    Returns (value, warning): lines are ``key = value`` with the key's last dot-separated part compared; the
    last line naming the key wins; an unparsable value gives None and the warning MLPerf prints.
    """
    value: float | None = None
    warning = ""
    if not path.is_file():
        return None, ""
    for raw in path.read_text(encoding="utf-8", errors="replace").splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, text = (part.strip() for part in line.split("=", 1))
        if strip_inline_comment and "#" in text:
            text = text.split("#", 1)[0].strip()
        parts = key.split(".")
        if len(parts) < 3 or parts[-1] != name:
            continue
        try:
            value = float(text)
        except ValueError:
            warning = f"{path}: invalid {name} value: {text}"
    return value, warning


def audit_problem(
    seen: Mapping[str, JsonValue], expected: Mapping[str, JsonValue], what: str, source: str = "mlperf_log_detail.txt"
) -> str:
    """'' when the detail log's values match ``expected``, else one line naming every difference."""
    wrong = [f"{k} = {seen.get(k, 'missing')!r} (expected {v!r})" for k, v in expected.items() if seen.get(k) != v]
    return f"{source}: {what} audit settings not in effect: " + "; ".join(wrong) if wrong else ""


def coverage_problem(qsl_indices: list[int], n_samples: int, what: str) -> str:
    """'' when the log holds each of the ``n_samples`` issued samples exactly once, else why not (one line)."""
    unique = len(set(qsl_indices))
    if len(qsl_indices) == n_samples and unique == n_samples:
        return ""
    return (
        f"{what} needs every sample logged: the accuracy log has {len(qsl_indices)} entries for {unique} samples, "
        f"the run issued {n_samples}"
    )
