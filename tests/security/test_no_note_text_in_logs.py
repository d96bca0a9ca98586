"""No note text, snippet or match in any log line (issue 12 item 4, clinical-specification.md §9.7).

Full text vignettes go through the app with every logger at DEBUG: an inline HTML note and an
order reason (prefetch), and a note held as a Binary on a real FHIR server (fetched with the
token). Everything logged is captured: the raw log records of every logger (the service's, the
HTTP libraries', spaCy's), and everything written to the process's stdout and stderr at the file
descriptor level (loguru, which medspaCy and PyRuSH log through, holds its own reference to
stderr). None of it may hold a sentence of the notes, or the snippet the card quotes.
"""

from __future__ import annotations

import copy
import logging

from cds_service.app import create_app
from cds_service.logs import LOGGER_NAME
from tests.support.medplum import MedplumFhirServer
from tests.support.scenario import (
    SCENARIO_TOKEN,
    load_fhir_server,
    load_scenarios,
    service_path,
    without_prefetch,
)

SCENARIOS = dict(load_scenarios())
# Phrases of the notes' text (and of the snippets quoted from them).
NOTE_PHRASES = [
    "saddle anaesthesia", "since last night", "Numbness around the anus", "perineum since yesterday",
    "worsening low back pain", "r/o cauda equina", "Back pain 10 days",
]


def test_a_full_scenario_with_notes_logs_none_of_their_text(tmp_path, caplog, capfd):
    caplog.set_level(logging.DEBUG)  # every logger, not only the service's
    app = create_app({"TESTING": True, "DATABASE_PATH": str(tmp_path / "store.sqlite3"), "LOG_LEVEL": "DEBUG"})
    logging.getLogger(LOGGER_NAME).setLevel(logging.DEBUG)
    client = app.test_client()
    answers = []
    try:
        for name in ("text-html-note-saddle", "text-order-reason-ro-cauda-equina"):
            request = SCENARIOS[name]["request"]
            answers.append(client.post(service_path(request), json=request))
        fixture = SCENARIOS["text-binary-url-saddle"]
        with MedplumFhirServer(required_token=SCENARIO_TOKEN) as server:
            load_fhir_server(server, fixture["request"]["prefetch"], fixture["binaries"])
            body = without_prefetch(copy.deepcopy(fixture["request"]), server.base_url)
            answers.append(client.post(service_path(body), json=body))
            assert "Binary" in {s.path.split("/")[2] for s in server.seen()}
    finally:
        app.extensions["lumbar_cds_shutdown"]()
    for answer in answers:
        assert answer.status_code == 200
        assert answer.get_json()["cards"][0]["indicator"] == "critical"  # the text was read
    raw = "\n".join(f"{record.getMessage()} {record.__dict__}" for record in caplog.records)
    out, err = capfd.readouterr()
    assert caplog.records  # something was logged: the assertions below are not vacuous
    for text, where in ((raw, "log records"), (out + err, "process output")):
        for phrase in NOTE_PHRASES:
            assert phrase.lower() not in text.lower(), f"{phrase!r} found in the {where}"
