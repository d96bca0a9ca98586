"""Render the README's Performance figures from a results file: `python -m bench.readme [--write] [PATH]`.

Role in the benchmark: the README tables are printed from bench/results/latest.json (a real
run), never typed by hand; `--write` puts them between the README's `bench:begin` / `bench:end`
markers, and tests/bench checks that the README and the JSON agree.
"""

from __future__ import annotations

import sys
from pathlib import Path

import orjson

from .run import RESULTS

README = Path(__file__).resolve().parent.parent / "README.md"
BEGIN, END = "<!-- bench:begin (python -m bench.readme --write) -->", "<!-- bench:end -->"


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
        "| N resources | threads per worker | service req/s | service p50 | service p99 | floor req/s | floor p50 | floor p99 | throughput service/floor |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results.get("http", []):
        if "error" in r:
            lines.append(f"| {r['n']} | {r['threads']} | error: {r['error'][:60]} | | | | | | |")
            continue
        s, f = r["service"], r["floor"]
        lines.append(
            f"| {r['n']:,} | {r['threads']} | {s['rps']:.1f} | {_ms(s['p50_ms'])} ms | {_ms(s['p99_ms'])} ms | {f['rps']:.1f} | "
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
            f"Over HTTP: gunicorn, {http['workers']} workers with {http['threads']} threads each as `lumbar-cds serve` "
            f"runs them (and, for comparison, 1 thread), load from `{http['generator']}` on loopback, "
            f"{http['connections']} connections, "
            + ", ".join(f"{seconds} s at N = {n:,}" for n, seconds in sorted({(r["n"], r["seconds_each"]) for r in results["http"]}))
            + " per endpoint:",
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
    big, text = results.get("ehr", {}), results.get("text", {})
    if "paging_hapi" in big:
        for name, how in (("hapi", "paged as HAPI's JPA starter pages: 20 unless `_count` asks for more, up to 200"),
                          ("strict", "paged strictly: 20 whatever `_count` asks for")):
            r = big[f"paging_{name}"]
            out.append(
                f"- Large record, no prefetch, {how}; 20 ms a request: {r['fhir_requests_per_call']} FHIR requests "
                f"a hook call, p50 {r['p50_ms']} ms, p90 {r['p90_ms']} ms, the fever found on every call: "
                f"{'yes' if r['fever_found_every_call'] else 'no'}."
            )
        out.append(
            f"- Large record, the prefetch the discovery templates ask for: {big['prefetch_bytes_narrowed'] / 1e6:.2f} MB "
            f"(un-narrowed templates: {big['prefetch_bytes_unnarrowed'] / 1e6:.2f} MB)."
        )
    if "reads" in text:
        reads = text["reads"]
        out.append(
            "- Free text, CPU time of 2 KB notes: "
            + ", ".join(f"{n} cold {reads[n]['cold_ms']} ms (cached {reads[n]['cached_ms']} ms)" for n in ("1", "5", "20"))
            + f"; pipeline import and build {text['build_s']} s; RSS after {text['rss_mb']} MB."
        )
    out += ["", "| target | measured | met |", "|---|---:|---|"]
    for t in results["targets"]:
        value = "-" if t["value"] is None else f"{t['value']:g}"
        out.append(f"| {t['target']} | {value} | {({True: 'yes', False: '**no**', None: 'not measured'})[t['met']]} |")
    return "\n".join(out)


def generated_part(readme_text: str) -> str | None:
    """The text between the markers, or None when the README has none."""
    if BEGIN not in readme_text or END not in readme_text:
        return None
    return readme_text.split(BEGIN, 1)[1].split(END, 1)[0].strip("\n")


def write(readme: Path, figures: str) -> None:
    text = readme.read_text()
    if generated_part(text) is None:
        raise SystemExit(f"{readme}: no {BEGIN} ... {END} markers")
    head, rest = text.split(BEGIN, 1)
    tail = rest.split(END, 1)[1]
    readme.write_text(f"{head}{BEGIN}\n{figures}\n{END}{tail}")


def main(argv: list[str]) -> int:
    args = [a for a in argv if a != "--write"]
    path = Path(args[0]) if args else RESULTS
    figures = render(orjson.loads(path.read_bytes()))
    if "--write" in argv:
        write(README, figures)
        print(f"written into {README}")
    else:
        print(figures)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
