"""The performance benchmark of the service (`make bench`, issue "Performance").

Role: outside the product. It builds hook requests of realistic size (`payloads`), adds a floor
endpoint that only parses the body to an app from `cds_service.app.create_app` (`app`, `wsgi`),
measures in process (`inprocess`), over HTTP with gunicorn (`load`, `server`), the no-prefetch
path against a slow loopback FHIR server, worker memory and cold start (`system`), prints the
table and, when asked, writes bench/results/latest.json (`run --save`). `profile` runs
pyinstrument on the service. Issue 23's parts: `serving` (the product's worker, `asgi`, in
several configurations), `report` (the governance report at a million judgements) and `topology`
(nginx in front of two replicas, steady and during a rolling restart).
"""
