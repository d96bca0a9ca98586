"""Rule data: every rule the service applies that is data rather than code, in one folder, read one way.

Role in the data flow: a shared utility that any stage may import (the readers in `read`, the card
wording in `render`). The convention:

- the data lives here, one folder per rule type: `valuesets/<id>.json` (value sets, one file
  each), `orders/order-names.json` (order names read as regular expressions); the free-text rules
  join as `text/`; card wording stays in `cards/` at the repository root, as the design fixes it,
  and a site's local codes file is wherever `LOCAL_CODES_FILE` says;
- each rule type owns its schema, a pydantic model in `schemas/` listing the keys it allows
  (`schemas/valueset.py`, `schemas/order_names.py`, `schemas/local_codes.py`, `schemas/cards.py`);
- every file is read by `loader.load_rule_file(path, Model)` at start-up, and a bad file stops the
  start-up with a `RuleDataError` naming the file, the entry and the problem;
- word lists several rules share are defined once in the file and referred to by name (the
  order-name patterns' `{without}` and `{with}`);
- the words every stage shares (modality, contrast, topic, rating, ...) are the string enums of
  `cds_service.vocabulary`; look-back window defaults are in `rules/windows.py`.

docs/architecture.md, "Rule data", says how to add a value set, an order name or a card.
"""

from cds_service.rules.loader import RULES_DIR, RuleDataError, RuleModel, load_rule_file

__all__ = ["RULES_DIR", "RuleDataError", "RuleModel", "load_rule_file"]
