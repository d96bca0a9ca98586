"""web: the HTTP edge: the thin controller, request limits (size, depth, entries) and the OpenAPI
description."""
