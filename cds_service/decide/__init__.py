"""decide: the pure pathway rules (no I/O, no clock: the reference date is an input) and the ACR
variant table: pathway inputs -> one `OrderDecision` per judged order."""
