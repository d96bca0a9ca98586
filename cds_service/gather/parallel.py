"""Several GETs at once within the call's gathering budget (clinical-specification.md §8.2).

Role in the data flow: gather stage. The notes' Binary attachments (attachments.py) and the
Medications referenced by the medication records (medications.py) are each a short list of single
reads; both run them here, each on a FHIR client of its own, at most `max_parallel` at a time, and
stop waiting at the deadline. What did not finish is reported as 'budget', a failed read by its
`FhirFetchError` kind, so the caller decides which key is incomplete.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable, Iterable
from concurrent.futures import ThreadPoolExecutor, wait
from typing import Any

from cds_service.gather.fhir_client import FhirClient, FhirFetchError


def fetch_in_parallel(items: Iterable[Hashable], fetch: Callable[[FhirClient, Any], Any],
                      make_client: Callable[[], FhirClient], deadline: float, max_parallel: int,
                      name: str) -> tuple[dict, dict[Any, str], int]:
    """`fetch(client, item)` for each item: (results by item, failure kind by item, requests made)."""
    items = list(dict.fromkeys(items))
    clients: list[FhirClient] = []

    def run(item):
        client = make_client()
        clients.append(client)
        return fetch(client, item)

    results, failures = {}, {}
    pool = ThreadPoolExecutor(max_workers=min(max_parallel, len(items)), thread_name_prefix=name)
    try:
        futures = {item: pool.submit(run, item) for item in items}
        wait(futures.values(), timeout=max(0.0, deadline - time.monotonic()) + 0.05)
        for item, future in futures.items():
            if not future.done():
                failures[item] = "budget"
                continue
            try:
                results[item] = future.result()
            except FhirFetchError as error:
                failures[item] = error.kind
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    return results, failures, sum(c.requests for c in clients)
