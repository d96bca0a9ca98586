"""Calls through nginx to two replicas, steady and during a rolling restart.

Role in the benchmark: part `topology` of `make bench`. The deployment of deploy/nginx.conf on
loopback, as tests/deploy/test_topology.py runs it (its helpers: real nginx, two `lumbar-cds
serve` replicas of 2 workers, PostgreSQL and Redis: BENCH_DATABASE_URL / BENCH_REDIS_URL, else
throwaway servers from the machine's binaries), client authentication off (the clients here are
Python threads on the same two cores: signing a JWT per call would be their cost, not the
service's). Measures calls/s and p99 with `clients` clients for `seconds`, then the same while
replica B and then replica A are stopped (SIGTERM) and started again, and counts the errors the
clients saw. Skipped (with the reason) where nginx is not installed.

    python -m bench.topology [--seconds 8] [--clients 8]
"""

from __future__ import annotations

import argparse
import os
import signal
import tempfile
import time
import uuid
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import make_url

from cds_service.cli import main as cli_main
from cds_service.governance.store.database import create_store_engine
from tests.deploy.topology import (
    Load,
    Nginx,
    Replica,
    free_port,
    nginx_binary,
    nginx_conf,
    nginx_version,
)
from tests.governance.support import SIGN, early_mri_request
from tests.support.throwaway import ThrowawayPostgres, ThrowawayRedis, postgres_bin, redis_binary

from .stats import summary


def _figures(load: Load, seconds: float) -> dict:
    stats = summary(load.latencies)
    errors = {k: v for k, v in load.summary().items() if k != "200"}
    return {"calls": len(load.outcomes), "calls_per_s": round(len(load.answered()) / seconds, 1),
            "p50_ms": stats["p50_ms"], "p99_ms": stats["p99_ms"], "errors": errors}


def _servers(stack: list):
    database = os.environ.get("BENCH_DATABASE_URL")
    if not database:
        server = ThrowawayPostgres(postgres_bin()).start()
        stack.append(server)
        database = server.url
    redis = os.environ.get("BENCH_REDIS_URL")
    if not redis:
        server = ThrowawayRedis(redis_binary()).start()
        stack.append(server)
        redis = server.url
    return database, redis


def measure(seconds: float = 8.0, clients: int = 8) -> dict:
    binary = nginx_binary()
    if binary is None:
        return {"skipped": "nginx is not installed"}
    stack: list = []
    replicas: list[Replica] = []
    admin = schema = None
    try:
        database, redis = _servers(stack)
        schema = f"lcds_bench_{uuid.uuid4().hex[:10]}"
        admin = create_store_engine(database)
        with admin.begin() as connection:
            connection.execute(text(f'CREATE SCHEMA "{schema}"'))
        url = make_url(database).update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(
            hide_password=False)
        assert cli_main(["db", "upgrade", "--database-url", url]) == 0
        folder = Path(tempfile.mkdtemp(prefix="lcds-bench-topology-"))
        port, ports = free_port(), [free_port(), free_port()]
        env = {"CDS_DATABASE_URL": url, "CDS_REDIS_URL": redis, "CDS_AUTH_REQUIRED": "false",
               "CDS_LOG_LEVEL": "WARNING", "CDS_PATIENT_HASH_KEY": "bench-key"}
        replicas = [Replica(folder / name, p, env).start() for name, p in zip("ab", ports, strict=True)]
        for replica in replicas:
            replica.wait_ready(120)
        base = f"http://127.0.0.1:{port}"

        def call(hook_instance: str):
            return f"/cds-services/{SIGN}", early_mri_request(hook_instance), {}

        conf = nginx_conf(folder / "nginx", port, ports, can_resolve=nginx_version(binary) >= (1, 27, 3))
        with Nginx(binary, conf):
            time.sleep(0.5)
            load = Load(base, call, clients).start("steady")
            time.sleep(seconds)
            load.stop()
            steady = _figures(load, seconds)
            load = Load(base, call, clients).start("rolling")
            started = time.perf_counter()
            for replica in (replicas[1], replicas[0]):  # B, then A: one replica serves meanwhile
                replica.signal(signal.SIGTERM)
                replica.process.wait(60)
                replica.start().wait_ready(120)
            elapsed = time.perf_counter() - started
            load.stop()
            rolling = {**_figures(load, elapsed), "seconds": round(elapsed, 1)}
        return {"replicas": 2, "workers_each": 2, "clients": clients, "steady": steady, "rolling_restart": rolling}
    finally:
        for replica in replicas:
            replica.stop()
        if admin is not None:
            with admin.begin() as connection:
                connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
            admin.dispose()
        for server in stack:
            server.stop()


def main(argv: list[str] | None = None) -> int:
    import orjson

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--clients", type=int, default=8)
    args = parser.parse_args(argv)
    print(orjson.dumps(measure(args.seconds, args.clients), option=orjson.OPT_INDENT_2).decode())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
