"""Duration phrases -> onset dates (durations.py through the reader, and its helpers)."""

from __future__ import annotations

from datetime import date

import pytest

from cds_service.read.text import default_reader
from cds_service.read.text.durations import minus_months, subtract

ON = date(2024, 6, 15)  # a Saturday


@pytest.mark.parametrize(
    "text, onset",
    [
        ("Back pain x 3 days.", date(2024, 6, 12)),
        ("Radicular pain R leg x 3/52.", date(2024, 5, 25)),  # UK notation: weeks, days, months
        ("LBP 2/7, no red flags.", date(2024, 6, 13)),
        ("Back pain for 6/12.", date(2023, 12, 15)),
        ("Back pain x3d.", date(2024, 6, 12)),
        ("Back pain x 2 wks.", date(2024, 6, 1)),
        ("Back pain for 2 weeks.", date(2024, 6, 1)),
        ("Back pain for the past 6 weeks.", date(2024, 5, 4)),
        ("3-month history of back pain.", date(2024, 3, 15)),
        ("Two-week history of sciatica.", date(2024, 6, 1)),
        ("Pain since 15 Oct.", date(2023, 10, 15)),
        ("Pain since 1 June.", date(2024, 6, 1)),
        ("Pain since October 15th, 2022.", date(2022, 10, 15)),
        ("Pain started yesterday.", date(2024, 6, 14)),
        ("Pain since this morning.", date(2024, 6, 15)),
        ("Pain began 10 days ago.", date(2024, 6, 5)),
        ("Chronic low back pain for years.", date(2022, 6, 15)),
        ("Back pain for several years.", date(2021, 6, 15)),
        ("Back pain since last Tuesday.", date(2024, 6, 11)),
        ("Back pain since Saturday.", date(2024, 6, 8)),
        ("Back pain since last week.", date(2024, 6, 8)),
        ("Back pain since March.", date(2024, 3, 1)),
        ("Back pain since July.", date(2023, 7, 1)),
        ("Back pain since 2019.", date(2019, 1, 1)),
        ("Back pain since 6/1.", date(2024, 6, 1)),
        ("Back pain since 2021-11-03.", date(2021, 11, 3)),
        ("Back pain for 2-3 weeks.", date(2024, 6, 1)),
        ("Back pain for 48 hours.", date(2024, 6, 13)),
        ("Back pain for a month.", date(2024, 5, 15)),
        ("Back pain for 1.5 years.", date(2022, 12, 15)),
    ],
)
def test_onsets(text, onset):
    findings = [f for f in default_reader().read(text, ON) if f.group == "duration"]
    assert [f.onset for f in findings] == [onset], findings


def test_future_date_gives_no_onset():
    (finding,) = [f for f in default_reader().read("Back pain since 2025-01-01.", ON) if f.group == "duration"]
    assert finding.onset is None


def test_no_anchor_no_duration():
    assert not [f for f in default_reader().read("Microdiscectomy three years ago.", ON) if f.group == "duration"]


def test_month_arithmetic():
    assert minus_months(date(2024, 3, 31), 1) == date(2024, 2, 29)
    assert minus_months(date(2024, 1, 15), 13) == date(2022, 12, 15)
    assert subtract(date(2024, 6, 15), 2, "fortnight") == date(2024, 5, 18)
    assert subtract(date(2024, 6, 15), 1, "decade") == date(2014, 6, 15)


def test_fractions_that_are_not_durations():
    """Only /7, /52 and /12 are durations: power grades and pain scores are not, and a full date
    ('3/12/2023') is not 3 months."""
    for text in ("Back pain, power 4/5 in L leg.", "Low back pain, pain score 7/10."):
        assert not [f for f in default_reader().read(text, ON) if f.group == "duration"], text
    onsets = [f.onset for f in default_reader().read("Back pain, seen 3/12/2023.", ON) if f.group == "duration"]
    assert date(2024, 3, 15) not in onsets
