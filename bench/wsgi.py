"""gunicorn entry point of the benchmark: `gunicorn bench.wsgi:app` (settings from CDS_* env).

Role in the benchmark: the HTTP measurements run the service and the floor in the same gunicorn
workers; `bench.server` starts it with the product's worker settings (2 workers, 4 threads).
"""

from bench.app import create_bench_app

app = create_bench_app()
