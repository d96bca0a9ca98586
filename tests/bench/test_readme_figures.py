"""The README's Performance figures are those of the committed real run (bench/results/latest.json).

After `make bench BENCH_SAVE=1`, run `python -m bench.readme --write` to put the new figures in the
README.
"""

from __future__ import annotations

import orjson

from bench.readme import README, generated_part, render
from bench.run import RESULTS, SIZES, TARGETS


def results() -> dict:
    return orjson.loads(RESULTS.read_bytes())


def test_the_committed_results_are_a_full_run():
    data = results()
    assert data["quick"] is False
    assert [row["n"] for row in data["inprocess"]] == list(SIZES)
    assert {t["id"] for t in data["targets"]} == {t[0] for t in TARGETS}
    assert data["git"]["commit"] and data["machine"]["nproc"] >= 1


def test_readme_performance_section_matches_the_results_file():
    part = generated_part(README.read_text())
    assert part is not None, "README lacks the bench:begin / bench:end markers"
    assert part == render(results()), "README figures are stale: run `python -m bench.readme --write`"
    performance = README.read_text().split("## Performance", 1)[1].split("\n## ", 1)[0]
    assert part in performance
