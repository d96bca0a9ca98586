"""The CDS Hooks sandbox as the EHR of the screen's loop: its built files and a small FHIR
server on one loopback origin (the sandbox reads the FHIR server from the browser, so one origin
spares it CORS).

Role in the test data flow: the sandbox is built outside this repository (README, "The real CDS
Hooks sandbox"); LUMBAR_CDS_SANDBOX_DIR names its `build/` folder. The FHIR side answers what
the sandbox and the service ask: `metadata`, `Patient/<id>`, and searches by patient (the record
holds the patient alone: the order's reason is the only back pain the service sees, so its
onset is unknown).
"""

from __future__ import annotations

import os
from pathlib import Path

from flask import Flask, abort, jsonify, send_from_directory

SANDBOX_ENV = "LUMBAR_CDS_SANDBOX_DIR"
PATIENT = {"resourceType": "Patient", "id": "pat-sandbox", "gender": "male", "birthDate": "1980-02-01",
           "name": [{"use": "official", "family": "Synthetic", "given": ["Sam"]}]}


def sandbox_dir() -> Path | None:
    """The built sandbox (a folder holding index.html and app.bundle.js), or None."""
    folder = os.environ.get(SANDBOX_ENV)
    if folder and (Path(folder) / "index.html").is_file() and (Path(folder) / "app.bundle.js").is_file():
        return Path(folder)
    return None


def sandbox_ehr(build: Path, resources: list[dict]) -> Flask:
    app = Flask("sandbox-ehr")
    by_type: dict[str, dict[str, dict]] = {}
    for resource in resources:
        by_type.setdefault(resource["resourceType"], {})[resource["id"]] = resource

    def fhir(body: dict, status: int = 200):
        response = jsonify(body)
        response.status_code = status
        response.mimetype = "application/fhir+json"
        return response

    @app.get("/fhir/metadata")
    def metadata():
        return fhir({"resourceType": "CapabilityStatement", "status": "active", "kind": "instance",
                     "fhirVersion": "4.0.1", "format": ["json"], "date": "2026-12-07"})

    @app.get("/fhir/<resource_type>/<resource_id>")
    def read(resource_type: str, resource_id: str):
        found = by_type.get(resource_type, {}).get(resource_id)
        if found is None:
            return fhir({"resourceType": "OperationOutcome", "issue": [
                {"severity": "error", "code": "not-found", "diagnostics": "no such resource"}]}, 404)
        return fhir(found)

    @app.get("/fhir/<resource_type>")
    def search(resource_type: str):
        from flask import request

        patient = request.args.get("patient") or request.args.get("subject", "").removeprefix("Patient/") or None
        matches = [r for r in by_type.get(resource_type, {}).values()
                   if patient is None or resource_type == "Patient"
                   or (r.get("subject") or {}).get("reference") == f"Patient/{patient}"]
        return fhir({"resourceType": "Bundle", "type": "searchset", "total": len(matches),
                     "entry": [{"resource": r} for r in matches]})

    @app.get("/")
    def index():
        return send_from_directory(build, "index.html")

    @app.get("/<path:name>")
    def files(name: str):
        if not (build / name).is_file():
            abort(404)
        return send_from_directory(build, name)

    return app
