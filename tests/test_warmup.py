"""A worker's first call builds nothing lazily: start-up made one synthetic call per service
(cds_service/warmup.py), so the first real call imports no module and compiles no SQL statement
that the later calls would not. Run in a fresh interpreter (this one has imported everything)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

PROBE = r"""
import json, sys, tempfile
from cds_service.app import create_app
from tests.support.scenario import load_scenarios, service_path

app = create_app({"DATABASE_PATH": tempfile.mkdtemp() + "/store.sqlite3", "TESTING": True})
client = app.test_client()
before_modules = set(sys.modules)
answered = 0
for name, fixture in load_scenarios():
    if fixture.get("binaries") or fixture.get("server_only"):
        continue
    request = fixture["request"]
    answered += client.post(service_path(request), json=request).status_code == 200
app.extensions["lumbar_cds_shutdown"]()
print(json.dumps({"answered": answered, "modules": sorted(set(sys.modules) - before_modules)}))
"""


def test_the_first_calls_of_a_worker_import_nothing_new():
    """Every prefetch-only scenario (notes, medicines, prior imaging, red flags of each group) on a
    freshly started app: no module is imported by any of them."""
    done = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["answered"] >= 40
    assert seen["modules"] == [], seen["modules"]
