"""Render the README's Performance figures from a results file: `python -m bench.readme [PATH]`.

Role in the benchmark: the README tables are printed from bench/results/latest.json (a real
run), never typed by hand; tests/bench checks that the README and the JSON agree.
"""

from __future__ import annotations

import sys
from pathlib import Path

import orjson

from .run import RESULTS


def _ms(value: float) -> str:
    return f"{value:.1f}" if value >= 10 else f"{value:.2f}"


def inprocess_table(results: dict) -> list[str]:
    lines = [
        "| N resources | body | service p50 | service p99 | floor p50 | floor p99 | p50 ratio | CPU p50 service / floor | calls |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results.get("inprocess", []):
        if "error" in r:
            lines.append(f"| {r['n']} | {r['body_bytes'] / 1e6:.2f} MB | error: {r['error'][:60]} | | | | | | |")
            continue
        s, f = r["service"], r["floor"]
        lines.append(
            f"| {r['n']:,} | {r['body_bytes'] / 1e6:.2f} MB | {_ms(s['p50_ms'])} ms | {_ms(s['p99_ms'])} ms | "
            f"{_ms(f['p50_ms'])} ms | {_ms(f['p99_ms'])} ms | {r['ratio_p50']:.2f} | "
            f"{_ms(r['cpu_service_p50_ms'])} / {_ms(r['cpu_floor_p50_ms'])} ms = {r['cpu_ratio_p50']:.2f} | {s['count']} |"
        )
    return lines


def http_table(results: dict) -> list[str]:
    lines = [
        "| N resources | service req/s | service p50 | service p99 | floor req/s | floor p50 | floor p99 | throughput service/floor |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results.get("http", []):
        if "error" in r:
            lines.append(f"| {r['n']} | error: {r['error'][:60]} | | | | | | |")
            continue
        s, f = r["service"], r["floor"]
        lines.append(
            f"| {r['n']:,} | {s['rps']:.1f} | {_ms(s['p50_ms'])} ms | {_ms(s['p99_ms'])} ms | {f['rps']:.1f} | "
            f"{_ms(f['p50_ms'])} ms | {_ms(f['p99_ms'])} ms | {r['throughput_ratio']:.2f} |"
        )
    return lines


def render(results: dict) -> str:
    m, git = results["machine"], results["git"]
    http = next((r for r in results.get("http", []) if "error" not in r), None)
    out = [
        f"Measured {results['date']} on commit `{git['commit'][:10]}`{' (with uncommitted changes)' if git['dirty'] else ''}: "
        f"{m['nproc']} CPU ({m['cpu_model']}), {m['memory_gb']} GB RAM, Python {m['python']}, "
        f"load average {m['load_average'][0]} at the start and {m.get('load_average_at_end', ['?'])[0]} at the end "
        f"(the run took {results['elapsed_s']:.0f} s).",
        "",
        "In process (Flask test client, warm), order-select with N resources in prefetch, against the floor "
        "(`orjson.loads` of the same body, then `{\"cards\": []}`) measured in the same run:",
        "",
        *inprocess_table(results),
        "",
    ]
    if http:
        out += [
            f"Over HTTP: gunicorn, {http['workers']} workers x {http['threads']} threads, load from `{http['generator']}` "
            f"on loopback, {http['connections']} connections, {http['seconds_each']} s per row and endpoint:",
            "",
            *http_table(results),
            "",
        ]
    np, mem, cold = results.get("no_prefetch", {}), results.get("memory", {}), results.get("cold_start", {})
    if "p50_ms" in np:
        out.append(
            f"- No prefetch: the {np['keys_fetched']} keys fetched from a loopback FHIR server that waits "
            f"{np['delay_ms']:.0f} ms before each answer: p50 {np['p50_ms']:.1f} ms, p90 {np['p90_ms']:.1f} ms over "
            f"{np['count']} calls, {np['max_in_flight']} fetches in flight at once (one after another: "
            f"{np['serial_would_be_ms']:.0f} ms)."
        )
    if "peak_rss_mb" in mem:
        out.append(
            f"- Worker memory: peak RSS (VmHWM) {mem['peak_rss_mb']} MB after {mem['requests']:,} calls at "
            f"N = {mem['n']:,} ({mem['body_bytes'] / 1e6:.1f} MB bodies)."
        )
    if "create_app_s" in cold:
        out.append(
            f"- Cold start: import + `create_app` {cold['create_app_s']} s (median of {cold['runs']} fresh "
            f"interpreters; {cold['first_start_with_new_store_s']} s the first time, creating the store)."
        )
    out += ["", "| target | measured | met |", "|---|---:|---|"]
    for t in results["targets"]:
        value = "-" if t["value"] is None else f"{t['value']:g}"
        out.append(f"| {t['target']} | {value} | {({True: 'yes', False: '**no**', None: 'not measured'})[t['met']]} |")
    return "\n".join(out)


def main(argv: list[str]) -> int:
    path = Path(argv[0]) if argv else RESULTS
    print(render(orjson.loads(path.read_bytes())))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
