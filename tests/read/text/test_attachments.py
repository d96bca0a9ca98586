"""attachment_text: text/plain (charset), text/html (markup stripped), RTF (striprtf), others -> None."""

from __future__ import annotations

from cds_service.read.text import attachment_text


def test_plain_utf8_and_charset():
    assert attachment_text("text/plain", "Saddle numbness – new".encode()) == "Saddle numbness – new"
    assert attachment_text("text/plain; charset=ISO-8859-1", "Anästhesie".encode("latin-1")) == "Anästhesie"
    assert attachment_text("text/plain;charset=\"utf-16\"", "retention".encode("utf-16")) == "retention"
    assert attachment_text("TEXT/PLAIN", b"\xef\xbb\xbfBOM text") == "BOM text"


def test_plain_bad_bytes_do_not_raise():
    text = attachment_text("text/plain; charset=utf-8", b"caf\xe9 urinary retention")
    assert "urinary retention" in text
    assert attachment_text("text/plain; charset=no-such-charset", b"ok") == "ok"


def test_html_markup_script_style_and_blocks():
    html = (b"<html><head><title>Note</title><style>p {color: red}</style></head><body>"
            b"<h1>ED note</h1><p>Denies fever.</p><div>Reports <b>new</b> urinary&nbsp;retention &amp; "
            b"perineal numbness.<br>Plan: MRI</div><script>var x = 'saddle';</script>"
            b"<ul><li>PT</li><li>NSAIDs</li></ul></body></html>")
    text = attachment_text("text/html; charset=utf-8", html)
    assert "color" not in text and "var x" not in text and "Note" not in text
    assert text.splitlines() == ["ED note", "", "Denies fever.", "", "Reports new urinary\xa0retention & perineal numbness.",
                                 "Plan: MRI", "", "PT", "", "NSAIDs"] or "Reports new urinary" in text
    lines = [line for line in text.splitlines() if line]
    assert lines[0] == "ED note" and lines[1] == "Denies fever."
    assert any(line.startswith("Reports new urinary") and line.endswith("perineal numbness.") for line in lines)
    assert "Plan: MRI" in lines and "PT" in lines and "NSAIDs" in lines
    assert "<" not in text


def test_xhtml_narrative_reads():
    xhtml = '<div xmlns="http://www.w3.org/1999/xhtml"><p>Saddle anaesthesia</p><p>since yesterday</p></div>'
    assert attachment_text("application/xhtml+xml", xhtml.encode()) == "Saddle anaesthesia\n\nsince yesterday"


def test_rtf():
    rtf = rb"{\rtf1\ansi\deff0 {\fonttbl {\f0 Times;}}\f0\fs24 Low back pain x 3 days.\par Denies \b saddle\b0  numbness.\par}"
    for content_type in ("text/rtf", "application/rtf"):
        text = attachment_text(content_type, rtf)
        assert "Low back pain x 3 days." in text and "Denies saddle numbness." in text
        assert "\\" not in text and "{" not in text


def test_other_types_are_skipped():
    for content_type in ("application/pdf", "image/png", "application/xml", "", "text/csv"):
        assert attachment_text(content_type, b"%PDF-1.4") is None


def test_extracted_text_reads(tmp_path):
    from datetime import date

    from cds_service.read.text import default_reader

    html = b"<p>Assessment:</p><p>New urinary retention and perianal numbness.</p>"
    findings = default_reader().read(attachment_text("text/html", html), date(2024, 6, 15))
    assert {f.group for f in findings} >= {"cauda-equina-urinary-retention", "cauda-equina-saddle-anaesthesia"}
