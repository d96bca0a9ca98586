"""No note text, snippet or match reaches a log, a warning or the console while the reader is built
and reads notes: loguru (medspaCy/PyRuSH), the standard logging tree at DEBUG, warnings, stdout/stderr."""

from __future__ import annotations

import io
import logging
import warnings
from datetime import date

from loguru import logger

from cds_service.read.text import TextReader, attachment_text

NOTE = (
    "HPI: Zebediah Quixworth, 58M, low back pain x 3 days after lifting; now reports urinary retention and "
    "perineal numbness since this morning. Denies fever. Family History: mother with breast cancer.\n"
    "Return precautions: loss of bowel control, bilateral sciatica. Plan: start naproxen, r/o cauda equina."
)
MARKERS = ["Zebediah", "Quixworth", "urinary retention", "perineal numbness", "breast cancer", "naproxen", "cauda equina"]


def test_no_note_text_in_any_output(capsys, caplog):
    sink = io.StringIO()
    sink_id = logger.add(sink, level="TRACE", format="{name}:{function}:{message}")
    root = logging.getLogger()
    old_level = root.level
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setLevel(logging.DEBUG)
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        with warnings.catch_warnings(record=True) as caught, caplog.at_level(logging.DEBUG):
            warnings.simplefilter("always")
            reader = TextReader()
            findings = reader.read(NOTE, date(2024, 6, 15))
            reader.read(NOTE, date(2024, 6, 15))  # cached
            reader.read(attachment_text("text/html", f"<p>{NOTE}</p>".encode()), None)
            reader.read("Overlapping: bowel and bladder incontinence incontinence retention retention?", None)
    finally:
        logger.remove(sink_id)
        root.removeHandler(handler)
        root.setLevel(old_level)
    assert findings, "the note should give findings"
    captured = capsys.readouterr()
    outputs = {
        "loguru": sink.getvalue(),
        "logging": stream.getvalue() + "\n".join(r.getMessage() for r in caplog.records),
        "warnings": "\n".join(str(w.message) for w in caught),
        "stdout": captured.out,
        "stderr": captured.err,
    }
    for name, output in outputs.items():
        for marker in MARKERS + [f.snippet for f in findings]:
            assert marker not in output, f"{marker!r} leaked to {name}"
