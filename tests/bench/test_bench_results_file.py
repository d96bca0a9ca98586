"""`make bench` leaves the tracked results file alone unless asked to write it (issue 18).

bench/results/latest.json is the committed run the README's figures come from (test_readme_figures):
a run only prints its table; `--save` (`make bench BENCH_SAVE=1`) writes that file, `--out PATH`
another one. The runs here skip every measured part, so they take a moment and measure nothing.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import orjson
import pytest

from bench import run

ROOT = Path(__file__).resolve().parent.parent.parent
NOTHING_MEASURED = ["--quick", "--skip", ",".join(run.PARTS)]


@pytest.fixture
def results_file(tmp_path, monkeypatch):
    """Where --save writes, here a file of the test's own instead of the tracked one."""
    path = tmp_path / "results" / "latest.json"
    monkeypatch.setattr(run, "RESULTS", path)
    return path


def test_a_run_writes_no_file_unless_asked(results_file, tmp_path, capsys):
    assert run.main(NOTHING_MEASURED) == 0
    assert not results_file.exists() and list(tmp_path.rglob("*.json")) == []
    assert "not written" in capsys.readouterr().out


def test_save_writes_the_results_file(results_file, capsys):
    assert run.main([*NOTHING_MEASURED, "--save"]) == 0
    saved = orjson.loads(results_file.read_bytes())
    assert saved["quick"] is True and {t["id"] for t in saved["targets"]} == {t[0] for t in run.TARGETS}
    assert f"written: {results_file}" in capsys.readouterr().out


def test_out_writes_the_file_named(results_file, tmp_path):
    other = tmp_path / "elsewhere.json"
    assert run.main([*NOTHING_MEASURED, "--out", str(other)]) == 0
    assert orjson.loads(other.read_bytes())["quick"] is True
    assert not results_file.exists()


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
@pytest.mark.parametrize(("variables", "saves"), [((), False), (("BENCH_SAVE=1",), True), (("BENCH_SAVE=0",), False)])
def test_make_bench_saves_only_with_bench_save(variables, saves):
    """The command `make bench` runs (make -n prints it without running it)."""
    shown = subprocess.run(["make", "-n", "bench", *variables], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    (command,) = [line for line in shown.splitlines() if "-m bench.run" in line]
    assert ("--save" in command.split()) is saves
