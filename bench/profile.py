"""Profile the order-select service with pyinstrument: `python -m bench.profile [N ...]`.

Role in the benchmark: finds where the time goes at large N. Warm app, in process, a few calls
per size; writes the call tree to <tmp>/lumbar-cds-profile/profile-<N>.txt (and .html, for a
browser) and prints it. Profiles are not committed: they are for the one who reads them.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import tempfile
from pathlib import Path

from pyinstrument import Profiler

from . import payloads
from .app import SERVICE_PATH, bench_settings, create_bench_app
from .inprocess import check_answer, post

RESULTS = Path(tempfile.gettempdir()) / "lumbar-cds-profile"


def profile(n: int, calls: int, out: Path) -> str:
    with tempfile.TemporaryDirectory(prefix="lumbar-profile-") as tmp:
        app = create_bench_app(bench_settings(str(Path(tmp) / "store.sqlite3")))
        try:
            client = app.test_client()
            body = payloads.hook_body(n)
            with open(os.devnull, "w") as sink, contextlib.redirect_stderr(sink):
                check_answer(post(client, SERVICE_PATH, body), SERVICE_PATH)
                profiler = Profiler(interval=0.0005)
                profiler.start()
                for _ in range(calls):
                    post(client, SERVICE_PATH, body)
                profiler.stop()
        finally:
            app.extensions["lumbar_cds_shutdown"]()
    text = profiler.output_text(unicode=False, color=False, show_all=False)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"profile-{n}.txt").write_text(text)
    (out / f"profile-{n}.html").write_text(profiler.output_html())
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile")
    parser.add_argument("sizes", nargs="*", type=int, default=[3000, 10_000])
    parser.add_argument("--calls", type=int, default=10)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    for n in args.sizes:
        print(f"=== N={n}, {args.calls} calls ===")
        print(profile(n, args.calls, args.out))
    print(f"profiles written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
