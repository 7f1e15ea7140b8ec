"""Known telemetry sources: which scraped metric means what, whoever exposes it.

A scraped target keeps every series raw (``telemetry.npz``). On top of that, a small mapping names the
series of the servers and exporters a run usually meets (the SUT's own ``lpuperf_sut_*``, vLLM, SGLang,
TGI, NVIDIA's DCGM exporter, the node exporter, the host's RAPL counters) under one *canonical* name
each (``queue_depth``, ``running``, ``kv_cache_usage``, ``power_watts``, ...), in one unit. The report's
panels, the correlation line and the energy figures read canonical series only; a metric the mapping
does not know stays raw and is never guessed at.

A canonical series of one target is the sum, per scrape, of the matching samples (a DCGM exporter's
GPUs, vLLM's models, a node's CPUs), optionally filtered on a label.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

Canonical = Literal[
    "queue_depth",
    "running",
    "in_flight",
    "kv_cache_usage",
    "preemptions",
    "power_watts",
    "energy_joules",
    "gpu_utilization_pct",
    "gpu_memory_used_bytes",
    "cpu_busy_seconds",
    "memory_available_bytes",
    "network_receive_bytes",
    "network_transmit_bytes",
]

# What a canonical series is, for panels and tables: (title, unit, is a counter whose rate is shown).
CANONICAL_INFO: dict[str, tuple[str, str, bool]] = {
    "queue_depth": ("Queue depth", "requests", False),
    "running": ("Batch occupancy (running sequences)", "sequences", False),
    "in_flight": ("Requests in flight", "requests", False),
    "kv_cache_usage": ("KV/prefix cache usage", "fraction", False),
    "preemptions": ("Preemptions", "per second", True),
    "power_watts": ("Power", "watts", False),
    "energy_joules": ("Power from the energy counter", "watts", True),
    "gpu_utilization_pct": ("GPU utilisation", "%", False),
    "gpu_memory_used_bytes": ("GPU memory used", "bytes", False),
    "cpu_busy_seconds": ("Host CPU busy", "cores", True),
    "memory_available_bytes": ("Host memory available", "bytes", False),
    "network_receive_bytes": ("Network received", "bytes/s", True),
    "network_transmit_bytes": ("Network sent", "bytes/s", True),
}


@dataclass(frozen=True)
class MetricMap:
    """One exposed sample name that stands for a canonical series (times ``scale``), optionally filtered on a label."""

    canonical: Canonical
    sample: str
    scale: float = 1.0
    label: str = ""  # with ``keep``/``drop``: the label filtered on
    keep: tuple[str, ...] = ()  # only samples whose label is one of these
    drop: tuple[str, ...] = ()  # samples whose label is one of these are left out

    def matches(self, labels: dict[str, str]) -> bool:
        if not self.label:
            return True
        value = labels.get(self.label, "")
        return (not self.keep or value in self.keep) and value not in self.drop


# The sources, by name. ``lpuperf`` is the SUT's own exporter (its power is the artifact's power model).
KNOWN_SOURCES: dict[str, tuple[MetricMap, ...]] = {
    "lpuperf": (
        MetricMap("queue_depth", "lpuperf_sut_queue_depth"),
        MetricMap("running", "lpuperf_sut_active_batch_size"),
        MetricMap("in_flight", "lpuperf_sut_inflight_requests"),
        MetricMap("power_watts", "lpuperf_sut_power_watts"),
        MetricMap("energy_joules", "lpuperf_sut_energy_joules_total"),
    ),
    "vllm": (
        MetricMap("queue_depth", "vllm:num_requests_waiting"),
        MetricMap("running", "vllm:num_requests_running"),
        MetricMap("kv_cache_usage", "vllm:gpu_cache_usage_perc"),
        MetricMap("kv_cache_usage", "vllm:kv_cache_usage_perc"),
        MetricMap("preemptions", "vllm:num_preemptions_total"),
    ),
    "sglang": (
        MetricMap("queue_depth", "sglang:num_queue_reqs"),
        MetricMap("running", "sglang:num_running_reqs"),
        MetricMap("kv_cache_usage", "sglang:token_usage"),
    ),
    "tgi": (
        MetricMap("queue_depth", "tgi_queue_size"),
        MetricMap("running", "tgi_batch_current_size"),
    ),
    "dcgm": (
        MetricMap("power_watts", "DCGM_FI_DEV_POWER_USAGE"),
        # DCGM counts energy in millijoules since the driver loaded; declared a counter, the parser names its
        # sample with a _total suffix the exporter does not write.
        MetricMap("energy_joules", "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION_total", scale=1e-3),
        MetricMap("energy_joules", "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", scale=1e-3),
        MetricMap("gpu_utilization_pct", "DCGM_FI_DEV_GPU_UTIL"),
        MetricMap("gpu_memory_used_bytes", "DCGM_FI_DEV_FB_USED", scale=1024.0 * 1024.0),  # MiB
    ),
    "node": (
        MetricMap("cpu_busy_seconds", "node_cpu_seconds_total", label="mode", drop=("idle", "iowait", "steal")),
        MetricMap("memory_available_bytes", "node_memory_MemAvailable_bytes"),
        MetricMap("network_receive_bytes", "node_network_receive_bytes_total", label="device", drop=("lo",)),
        MetricMap("network_transmit_bytes", "node_network_transmit_bytes_total", label="device", drop=("lo",)),
    ),
    # The node exporter's RAPL collector and lpuperf's own reader of /sys/class/powercap.
    "rapl": (
        MetricMap("energy_joules", "node_rapl_package_joules_total"),
        MetricMap("energy_joules", "lpuperf_rapl_energy_joules_total"),
    ),
}

_BY_SAMPLE: dict[str, list[tuple[str, MetricMap]]] = {}
for _source, _maps in KNOWN_SOURCES.items():
    for _m in _maps:
        _BY_SAMPLE.setdefault(_m.sample, []).append((_source, _m))


def known_maps(sample: str) -> list[tuple[str, MetricMap]]:
    """(source, map) of every known source that names ``sample``; empty for an unknown metric (kept raw)."""
    return _BY_SAMPLE.get(sample, [])


@dataclass
class CanonicalSeries:
    """One target's canonical series: per-scrape sums on the run's clock (counters as their running total)."""

    target: str
    source: str
    canonical: str
    t_s: np.ndarray
    values: np.ndarray
    replica_id: str = ""  # the SUT replica the target belongs to, when it is one

    @property
    def is_counter(self) -> bool:
        return CANONICAL_INFO[self.canonical][2]

    def rate(self) -> tuple[np.ndarray, np.ndarray]:
        """A counter's per-second rate between scrapes (a reset counts from zero), at each interval's end."""
        if self.t_s.size < 2:
            return np.zeros(0), np.zeros(0)
        inc = counter_increase(self.values)
        dt = np.diff(self.t_s)
        ok = dt > 0
        return self.t_s[1:][ok], np.diff(inc)[ok] / dt[ok]


def counter_increase(values: np.ndarray) -> np.ndarray:
    """The running increase of a counter from its first sample; a drop (a restarted exporter) counts from 0."""
    if values.size == 0:
        return values
    step = np.diff(values)
    reset = step < 0
    step[reset] = values[1:][reset]
    return np.concatenate([[0.0], np.cumsum(step)])
