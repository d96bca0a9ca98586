"""Look-back windows: every window the pathway applies by default, in one place.

Role in the data flow: a shared utility. A red-flag value set names its own window
(`window_days` in rules/valuesets/<id>.json); the windows below are those no value set names, and
the defaults used when a value set leaves one out. `decide` applies the pathway's windows, `read`
the measures' windows, and `queries.py` asks the FHIR server for what the windows can reach
(docs/clinical-specification.md §5, §5.4, §5.7, §8.4, §9.1).
"""

from __future__ import annotations

# The pathway (decide)
SIX_WEEKS_DAYS = 42  # §5.7: "< 6 weeks (42 days)"
REPEAT_WINDOW_DAYS = 365  # §5.4: prior imaging "in the last 12 months"
MOTOR_GRADE_WINDOW_DAYS = 365  # §5: "worsening motor grade across serial observations (365 days)"

# Measures (read): the defaults of the observation value set's own windows
FEVER_WINDOW_DAYS = 14  # a measured temperature: the fever value set's window, else this
WEIGHT_LOSS_WINDOW_DAYS = 180  # §5, malignancy: ">= 5 % body weight loss over 180 d"
POST_VOID_RESIDUAL_WINDOW_DAYS = 14  # a post-void residual above the threshold: urinary retention

# What is fetched (queries.py, §8.4)
# Medication records: a course counts in the 12 months before the reference date when it
# overlaps them; one authored up to a year before that window (courses up to a year long) or
# still active covers every such course. Two searches, merged.
MEDICATION_LOOKBACK_DAYS = 730
# Prior management (physical therapy referrals and visits) is asked for over the same two years:
# an episode's management older than that is not fetched.
MANAGEMENT_LOOKBACK_DAYS = 730
# Clinical notes (§9.1): those written in the last 90 days.
NOTES_LOOKBACK_DAYS = 90
