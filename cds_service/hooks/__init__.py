"""hooks: the CDS Hooks 2.0 contract every stage uses: the request envelope, the service registry
(discovery, prefetch templates) and the numbered LCDS-xxxx errors."""
