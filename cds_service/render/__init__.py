"""render: decisions -> CDS Hooks cards, suggestions and PAMA-rated system actions, with the wording
taken from `cards/`."""
