"""The highest concurrency and open-loop rate the load scheduler sustains on this machine against the instant sim.

One instant server (``lpuperf serve --artifact sim-instant``, chunk 8, 128-token answers) in its own process;
each step is the real CLI as a child: ``python -m cli run --load concurrency:N --duration D`` for N doubling
from 1 to 1,024, then ``--load rate:R:poisson`` for R stepped from 500 up. Per step, from results.json: the
completed rate (successful queries over their window), the dispatch lag p50/p99 and whether the run was
client-limited (lag p99 over 10 ms); from outside: the harness process's CPU per completed request (rusage of
the child: whole run, and less a one-request run's fixed start-up cost) and the server's.

An open-loop rate is **sustained** when the run completed at least 95 % of it, with no errors and a dispatch
lag p99 within 10 ms; the rate steps stop at the first rate not sustained. For the closed loop there is no
target rate: its throughput should rise with N until the machine saturates. A concurrency is **kept** when
the run had no errors and its lag p99 stayed within 10 ms; the table also marks the knee, the smallest N
reaching 95 % of the peak throughput. Each ``--reps`` round repeats both ladders; every row is a JSON line
with the 1-minute load average at its start and end.

Usage: ``python -m bench.load_capacity [--reps 3] [--duration 8] [--concurrencies 1,2,...] [--rates ...]
[--transport grpc|http] [--quick] [--json F]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.load_common import (
    COMPLETION_FLOOR,
    LAG_BOUND_MS,
    Server,
    bench_dataset,
    figures,
    fixed_cpu_s,
    instant_server,
    load_range,
    med,
    run_load,
)

CONCURRENCIES = "1,2,4,8,16,32,64,128,256,512,1024"
RATES = "500,1000,1500,2000,2500,3000,3500,4000,5000"


def _step(
    server: Server, tmp: Path, dataset: Path, spec: str, duration_s: float, transport: str, fixed: float
) -> dict[str, Any]:
    run_id = f"cap-{spec.replace(':', '-')}-{time.monotonic_ns()}"
    child = run_load(
        spec,
        server,
        tmp,
        run_id,
        dataset=dataset,
        duration_s=duration_s,
        transport=transport,
        timeout_s=duration_s * 8 + 120,
    )
    return figures(child, fixed)


def kept(row: dict[str, Any]) -> bool:
    """No errors, not stopped as overloaded, dispatch lag p99 within the bound."""
    lag = row["lag_p99_ms"]
    return (
        row["completed"] > 0 and not row["errors"] and not row["overloaded"] and lag is not None and lag <= LAG_BOUND_MS
    )


def sustained(row: dict[str, Any]) -> bool:
    return kept(row) and (row["completed_qps"] or 0) >= COMPLETION_FLOOR * row["rate"]


def run(
    concurrencies: list[int], rates: list[float], reps: int, duration_s: float, transport: str
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="lpuperf-cap-") as tmp_s:
        tmp = Path(tmp_s)
        dataset = bench_dataset(tmp)
        with instant_server(tmp, dataset, http=transport == "http") as server:
            for rep in range(1, reps + 1):
                fixed = fixed_cpu_s(server, tmp, dataset, transport)
                print(json.dumps({"rep": rep, "fixed_cpu_s": round(fixed, 3)}), flush=True)
                for n in concurrencies:
                    row = {"rep": rep, "mode": "concurrency", "concurrency": n, "transport": transport}
                    row |= _step(server, tmp, dataset, f"concurrency:{n}", duration_s, transport, fixed)
                    row["kept"] = kept(row)
                    rows.append(row)
                    print(json.dumps(row), flush=True)
                for rate in rates:
                    row = {"rep": rep, "mode": "rate", "rate": rate, "transport": transport}
                    row |= _step(server, tmp, dataset, f"rate:{rate:g}:poisson", duration_s, transport, fixed)
                    row["sustained"] = sustained(row)
                    rows.append(row)
                    print(json.dumps(row), flush=True)
                    if not row["sustained"]:
                        break
    return rows


def _summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    reps = sorted({r["rep"] for r in rows})
    out: dict[str, Any] = {"max_kept_concurrency": [], "knee_concurrency": [], "peak_qps": [], "max_rate": []}
    for rep in reps:
        conc = [r for r in rows if r["rep"] == rep and r["mode"] == "concurrency"]
        rate = [r for r in rows if r["rep"] == rep and r["mode"] == "rate"]
        peak = max((r["completed_qps"] or 0 for r in conc), default=0.0)
        out["peak_qps"].append(round(peak, 1))
        out["knee_concurrency"].append(
            min((r["concurrency"] for r in conc if (r["completed_qps"] or 0) >= COMPLETION_FLOOR * peak), default=0)
        )
        out["max_kept_concurrency"].append(max((r["concurrency"] for r in conc if r["kept"]), default=0))
        out["max_rate"].append(max((r["rate"] for r in rate if r["sustained"]), default=0.0))
    # The knee of the medians: one rep's noise (a busy box moves a step by 20 %) does not move it.
    conc = [r for r in rows if r["mode"] == "concurrency"]
    medians = {
        n: statistics.median(r["completed_qps"] or 0 for r in conc if r["concurrency"] == n)
        for n in sorted({r["concurrency"] for r in conc})
    }
    peak = max(medians.values(), default=0.0)
    out["knee_of_medians"] = min((n for n, q in medians.items() if q >= COMPLETION_FLOOR * peak), default=0)
    return out


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| load | completed, req/s | dispatch lag p50 / p99, ms | kept or sustained (reps) | "
        "client CPU per request (whole run / less start-up), ms | server CPU per request, ms | load (1 min) |",
        "|---|---|---|---|---|---|---|",
    ]
    keys = list(dict.fromkeys((r["mode"], r.get("concurrency") or r.get("rate")) for r in rows))
    for mode, value in keys:
        mine = [r for r in rows if r["mode"] == mode and (r.get("concurrency") or r.get("rate")) == value]
        ok = sum(1 for r in mine if r.get("kept") or r.get("sustained"))
        label = f"concurrency {value}" if mode == "concurrency" else f"rate {value:g} req/s poisson"
        lines.append(
            f"| {label} | {med([r['completed_qps'] for r in mine])} | {med([r['lag_p50_ms'] for r in mine])} / "
            f"{med([r['lag_p99_ms'] for r in mine])} | {ok} of {len(mine)} | "
            f"{med([r['client_cpu_ms_per_req'] for r in mine])} / {med([r.get('client_cpu_net_ms_per_req') for r in mine])} | "
            f"{med([r['server_cpu_ms_per_req'] for r in mine])} | {load_range(mine)} |"
        )
    s = _summary(rows)
    lines += [
        "",
        f"per rep: highest concurrency kept (lag p99 <= {LAG_BOUND_MS:g} ms, no errors) {s['max_kept_concurrency']}, "
        f"knee (95 % of peak throughput) {s['knee_concurrency']}, peak closed-loop throughput {s['peak_qps']} req/s, "
        f"highest open-loop rate sustained {s['max_rate']} req/s "
        f"(medians {statistics.median(s['max_kept_concurrency']):g}, {statistics.median(s['knee_concurrency']):g}, "
        f"{statistics.median(s['peak_qps']):g}, {statistics.median(s['max_rate']):g}); "
        f"knee of the per-step medians: concurrency {s['knee_of_medians']}",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.load_capacity", description=__doc__.splitlines()[0])
    ap.add_argument("--concurrencies", default=CONCURRENCIES)
    ap.add_argument("--rates", default=RATES, help="open-loop rates, req/s, stepped until one is not sustained")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--duration", type=float, default=8.0, help="seconds of sending per step")
    ap.add_argument("--transport", choices=("grpc", "http"), default="grpc")
    ap.add_argument("--quick", action="store_true", help="one rep of 3 s steps over a short ladder (a smoke run)")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--report", type=Path, help="only print the table of a --json file")
    args = ap.parse_args(argv)
    if args.report is not None:
        print(table(json.loads(args.report.read_text())["rows"]))
        return 0
    conc, rates = args.concurrencies, args.rates
    reps, duration = args.reps, args.duration
    if args.quick:
        reps, duration, conc, rates = 1, 3.0, "1,16,256", "500,2000"
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    rows = run([int(x) for x in conc.split(",")], [float(x) for x in rates.split(",")], reps, duration, args.transport)
    if args.json is not None:
        args.json.write_text(json.dumps({"started": started, "duration_s": duration, "rows": rows}, indent=1))
    print(table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
