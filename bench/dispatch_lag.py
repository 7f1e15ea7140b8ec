"""Dispatch lag of the open loop (``--load rate:R``) at 100, 500 and 1,000 req/s, constant and Poisson arrivals.

One instant server (``lpuperf serve --artifact sim-instant``, chunk 8, 128-token answers) in its own process;
each case is the real CLI, ``python -m cli run --load rate:R:ARRIVAL --duration D --sut ADDR``, as a child.
From its results.json: the dispatch lag (actual send minus due time, every sent query) p50/p99/max, the
completed rate; from outside: the harness process's CPU (rusage of the child, start-up included) per
completed request, and the server's. ``--reps`` rounds rotate the case order; each figure is printed as a
JSON line with the 1-minute load average at its start and end, then the medians (min-max) as a table.

Usage: ``python -m bench.dispatch_lag [--reps 3] [--duration 10] [--rates 100,500,1000] [--quick] [--json F]``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.load_common import (
    LAG_BOUND_MS,
    bench_dataset,
    figures,
    fixed_cpu_s,
    instant_server,
    load_range,
    med,
    run_load,
)


def run(rates: list[float], arrivals: list[str], reps: int, duration_s: float, transport: str) -> list[dict[str, Any]]:
    cases = [(rate, arrival) for rate in rates for arrival in arrivals]
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="lpuperf-lag-") as tmp_s:
        tmp = Path(tmp_s)
        dataset = bench_dataset(tmp)
        with instant_server(tmp, dataset, http=transport == "http") as server:
            fixed = fixed_cpu_s(server, tmp, dataset, transport)
            print(json.dumps({"fixed_cpu_s": round(fixed, 3)}), flush=True)
            for rep in range(1, reps + 1):
                k = (rep - 1) % len(cases)
                for rate, arrival in cases[k:] + cases[:k]:
                    run_id = f"lag-{rep}-{rate:g}-{arrival}-{time.monotonic_ns()}"
                    child = run_load(
                        f"rate:{rate:g}:{arrival}",
                        server,
                        tmp,
                        run_id,
                        dataset=dataset,
                        duration_s=duration_s,
                        transport=transport,
                        timeout_s=duration_s * 6 + 120,
                    )
                    row = {"rep": rep, "rate": rate, "arrival": arrival, "transport": transport}
                    row |= figures(child, fixed)
                    rows.append(row)
                    print(json.dumps(row), flush=True)
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| rate, arrivals | dispatch lag p50, ms | p99, ms | max, ms | runs over the 10 ms bound | completed / target |"
        " client CPU per request (whole run / less start-up), ms | server CPU per request, ms | load (1 min) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for key in dict.fromkeys((r["rate"], r["arrival"]) for r in rows):
        mine = [r for r in rows if (r["rate"], r["arrival"]) == key]
        over = sum(1 for r in mine if (r["lag_p99_ms"] or 0) > LAG_BOUND_MS)
        ratio = [r["completed_qps"] / key[0] if r["completed_qps"] else None for r in mine]
        lines.append(
            f"| {key[0]:g} req/s {key[1]} | {med([r['lag_p50_ms'] for r in mine])} | "
            f"{med([r['lag_p99_ms'] for r in mine])} | {med([r['lag_max_ms'] for r in mine])} | "
            f"{over} of {len(mine)} | {med(ratio)} | {med([r['client_cpu_ms_per_req'] for r in mine])} / "
            f"{med([r.get('client_cpu_net_ms_per_req') for r in mine])} | "
            f"{med([r['server_cpu_ms_per_req'] for r in mine])} | {load_range(mine)} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.dispatch_lag", description=__doc__.splitlines()[0])
    ap.add_argument("--rates", default="100,500,1000", help="req/s, comma-separated")
    ap.add_argument("--arrivals", default="constant,poisson")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--duration", type=float, default=10.0, help="seconds of sending per run")
    ap.add_argument("--transport", choices=("grpc", "http"), default="grpc")
    ap.add_argument("--quick", action="store_true", help="one rep of 4 s per case (a smoke run)")
    ap.add_argument("--json", type=Path, help="also write every row here")
    ap.add_argument("--report", type=Path, help="only print the table of a --json file")
    args = ap.parse_args(argv)
    if args.report is not None:
        print(table(json.loads(args.report.read_text())["rows"]))
        return 0
    reps, duration = (1, 4.0) if args.quick else (args.reps, args.duration)
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    rows = run([float(x) for x in args.rates.split(",")], args.arrivals.split(","), reps, duration, args.transport)
    if args.json is not None:
        args.json.write_text(json.dumps({"started": started, "duration_s": duration, "rows": rows}, indent=1))
    print(table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
