"""hooks: the CDS Hooks 2.0 contract every stage uses: the request, response and feedback body as
pydantic models (request.py, response.py, feedback.py; validation.py reads their errors), the
validated `HookRequest` (envelope.py), the service registry (discovery, prefetch templates) and
the numbered LCDS-xxxx errors."""
