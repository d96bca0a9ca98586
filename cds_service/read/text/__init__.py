"""Free-text reader: note text (or an attachment's bytes) -> red-flag, episode, duration and
conservative-care findings with ConText assertions. See reader.py for the engine, attachments.py for
text extraction, durations.py for onset dates; the rules are data in cds_service/rules/text/."""

from .attachments import attachment_text
from .durations import onset_of
from .reader import TextFinding, TextReader, default_reader
from .rules import RulesError

__all__ = ["RulesError", "TextFinding", "TextReader", "attachment_text", "default_reader", "onset_of"]
