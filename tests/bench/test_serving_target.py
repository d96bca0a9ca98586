"""The serving target counts only runs with both workers busy (issue 23, bench/serving.py).

With reuse_port the kernel hashes 4 connections to the two workers' listeners, often 3 to 1: such
a run has one worker half idle, and its ratio swung from 0.18 to 0.54 in one afternoon by the
split alone. The benchmark runs a side again until the split is even; the target is the median of
the rounds whose two sides were, and is not measured when none was.
"""

from __future__ import annotations

from bench import run, serving


def _row(ratio: float, service_share: float, floor_share: float) -> dict:
    def side(share: float) -> dict:
        figures = {"rps": 100.0, "busiest_worker_share": share}
        return {**figures, "attempt_shares": [share], "balanced": serving.is_balanced(figures)}

    return {"config": "threads 8, reuse_port", "threads": 8, "reuse_port": True,
            "service": side(service_share), "floor": side(floor_share), "throughput_ratio": ratio}


def _serving_target(rows: list[dict]) -> float | None:
    (judged,) = [t for t in run.judge({"serving": rows}) if t["id"] == "serving_throughput_300"]
    return judged["value"]


def test_a_round_with_one_worker_half_idle_is_left_out_of_the_target():
    rows = [_row(0.45, 0.51, 0.50), _row(0.18, 0.86, 0.50), _row(0.30, 0.50, 0.86)]
    assert _serving_target(rows) == 0.45


def test_the_target_is_the_median_of_the_balanced_rounds():
    assert _serving_target([_row(0.40, 0.52, 0.55), _row(0.50, 0.58, 0.49)]) == 0.45


def test_no_balanced_round_means_not_measured():
    assert _serving_target([_row(0.18, 0.86, 0.50)]) is None


def test_a_split_of_three_connections_to_one_is_not_balanced():
    assert serving.is_balanced({"busiest_worker_share": 0.5})
    assert serving.is_balanced({"busiest_worker_share": serving.BALANCED_SHARE})
    assert not serving.is_balanced({"busiest_worker_share": 0.75})
    assert not serving.is_balanced({"busiest_worker_share": None})
