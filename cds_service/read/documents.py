"""Clinical notes (DocumentReference, prefetch key `clinicalNotes`): their text -> pathway facts.

Role in the data flow: read stage (clinical-specification.md §9.1). A note is read when it is
`current` and not entered in error, and is this patient's. Its text is each attachment's: inline
`data` (base64), or the bytes the gather stage fetched for its `url` (`gather.attachments`);
text/plain, text/html and text/rtf are turned into text (`read/text/attachments.py`). A note in
any other format (PDF, images, CDA) is skipped and said so: `clinicalNotes` is incomplete,
"unsupported-format". The note's date (`date`, else `context.period.start`) is the date of its
facts: windows count from it (§9.3). The text itself is never logged nor kept past the call.
"""

from __future__ import annotations

import base64
import binascii

from cds_service.gather.attachments import (
    NOTES_KEY,
    TEXT_TYPES,
    media_type,
    note_attachments,
    readable_note,
)
from cds_service.read.context import ReadContext
from cds_service.read.fhir import first_date
from cds_service.read.free_text import TextSource, apply_findings, read_source
from cds_service.read.text import attachment_text


def read_document(ctx: ReadContext, resource: dict, full_url: str | None) -> None:
    if ctx.text_reader is None or not readable_note(resource) or ctx.is_other_patient(resource):
        return
    texts = []
    for attachment in note_attachments(resource):
        stated = attachment.get("contentType")
        data = attachment.get("data")
        raw = None
        if isinstance(data, str) and data:
            try:
                raw = base64.b64decode(data, validate=False)
            except (binascii.Error, ValueError):
                ctx.text_gaps.setdefault(NOTES_KEY, "unreadable")
                continue
        elif isinstance(attachment.get("url"), str):
            if media_type(stated) not in TEXT_TYPES and media_type(stated) is not None:
                ctx.text_gaps.setdefault(NOTES_KEY, "unsupported-format")
                continue
            fetched = ctx.gathered.attachments.get(attachment["url"])
            if fetched is None:
                continue  # not fetched: the gather stage has marked the key incomplete
            raw, stated = fetched.data, fetched.content_type or stated
        if raw is None:
            continue
        text = attachment_text(stated if isinstance(stated, str) and stated else "text/plain", raw)
        if text is None:
            ctx.text_gaps.setdefault(NOTES_KEY, "unsupported-format")
            continue
        texts.append(text)
    if not texts:
        return
    when = first_date(resource, "date", "context.period.start")
    source = TextSource("", "DocumentReference", when, "clinical note")
    found = read_source(ctx, source, texts)
    if not found:
        return
    ref = ctx.accept(resource, full_url)
    if ref is None:
        return
    apply_findings(ctx, TextSource(ref, "DocumentReference", when, "clinical note"), found)
