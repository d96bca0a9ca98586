"""Text of a FHIR Attachment (DocumentReference.content.attachment, DiagnosticReport.presentedForm).

Role in the data flow: the caller decodes the attachment's base64 `data` (or fetches its `url`) and
passes the bytes with the attachment's `contentType`; `attachment_text` returns the plain text for the
TextReader, or None for a type it does not read (the caller reports the document as skipped).

- text/plain: decoded with the charset parameter (default UTF-8, then a BOM sniff; undecodable bytes
  are replaced, never raised).
- text/html, application/xhtml+xml: markup removed with the standard library's html.parser; script,
  style, head and template contents are dropped; block elements (p, div, br, li, tr, headings, ...)
  become line breaks so that the reader's sentence splitter sees the note's lines; entities decoded.
- text/rtf, application/rtf: the `striprtf` package.
Anything else (PDF, images, CDA XML) -> None.
"""

from __future__ import annotations

import codecs
import re
from html.parser import HTMLParser

_BLOCK = {
    "address", "article", "aside", "blockquote", "br", "caption", "dd", "div", "dl", "dt", "fieldset", "figcaption",
    "figure", "footer", "form", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr", "legend", "li", "main", "nav",
    "ol", "p", "pre", "section", "table", "tbody", "td", "tfoot", "th", "thead", "tr", "ul",
}
_DROP = {"script", "style", "head", "template", "noscript", "title"}
_MAX_BLANK = re.compile(r"\n[ \t]*(?:\n[ \t]*){2,}")
_SPACES = re.compile(r"[ \t\f\v\r]+")


def _media_type(content_type: str) -> tuple[str, dict[str, str]]:
    parts = [p.strip() for p in (content_type or "").split(";")]
    media = parts[0].lower()
    params = {}
    for part in parts[1:]:
        if "=" in part:
            key, value = part.split("=", 1)
            params[key.strip().lower()] = value.strip().strip('"').strip("'")
    return media, params


def _decode(data: bytes, charset: str | None) -> str:
    for bom, name in ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16")):
        if data.startswith(bom):
            return data.decode(name, errors="replace")
    if charset:
        try:
            return data.decode(charset, errors="replace")
        except LookupError:
            pass
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._drop_depth = 0

    def handle_starttag(self, tag, attrs):
        if tag in _DROP:
            self._drop_depth += 1
        elif tag in _BLOCK:
            self.parts.append("\n")

    def handle_startendtag(self, tag, attrs):
        if tag in _BLOCK:
            self.parts.append("\n")

    def handle_endtag(self, tag):
        if tag in _DROP:
            self._drop_depth = max(0, self._drop_depth - 1)
        elif tag in _BLOCK:
            self.parts.append("\n")
        elif tag in ("td", "th"):
            self.parts.append(" ")

    def handle_data(self, data):
        if not self._drop_depth:
            self.parts.append(data)


def _tidy(text: str) -> str:
    lines = [_SPACES.sub(" ", line).strip() for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    return _MAX_BLANK.sub("\n\n", "\n".join(lines)).strip()


def html_to_text(markup: str) -> str:
    parser = _TextExtractor()
    parser.feed(markup)
    parser.close()
    # inside an HTML document, source line breaks are just spaces; only block elements break lines
    text = "".join(p if p == "\n" else p.replace("\n", " ") for p in parser.parts)
    return _tidy(text)


def rtf_to_text(source: str) -> str:
    from striprtf.striprtf import rtf_to_text as _strip

    return _tidy(_strip(source, errors="ignore"))


def attachment_text(content_type: str, data: bytes) -> str | None:
    """Plain text of an attachment, or None when its type is not read (the caller says 'skipped')."""
    media, params = _media_type(content_type)
    charset = params.get("charset")
    if media == "text/plain":
        return _decode(data, charset)
    if media in ("text/html", "application/xhtml+xml"):
        return html_to_text(_decode(data, charset))
    if media in ("text/rtf", "application/rtf", "text/richtext"):
        return rtf_to_text(_decode(data, charset or "cp1252"))
    return None
