"""The deployment run for real, on loopback (issue 23): Debian's nginx with deploy/nginx.conf in
front of two `lumbar-cds serve` replicas of 2 workers, sharing PostgreSQL (through a TCP proxy
that can cut it) and Redis, client authentication on.

One run, bounded in time (well under 90 s on an idle 2-core machine), in phases:
1. replay: one signed token sent 16 times at once through nginx is accepted exactly once;
2. graceful restarts under load: replicas B then A stopped with SIGTERM and started again (a
   rolling restart), then A reloaded with SIGHUP: no client sees a 5xx or a failed connection;
3. kill -9 of replica A (master and workers) under load, then A started again: every hook call
   answered 200 has its judgement stored exactly once (what A had answered but not committed is
   in its spool file, adopted when it starts again; calls cut by the kill were retried by nginx
   on B, recorded once);
4. the shared store cut for a few seconds under load: hook calls go on (no client error),
   `/readyz` stays 200 and says the store is unreachable, and every 200 is stored once after it.
The figures of each phase are printed (pytest -s, or -rA) for the README and the issue.
"""

from __future__ import annotations

import json
import signal
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from sqlalchemy import create_engine, func, select
from sqlalchemy.engine import make_url

from cds_service.cli import main as cli_main
from cds_service.governance.store.schema import judgement
from tests.governance.support import SIGN, early_mri_request
from tests.governance.tcp_proxy import TcpProxy
from tests.security.jwt_support import claims, sign

from .topology import Load, Nginx, SignedDeployment, nginx_binary

pytestmark = [pytest.mark.topology, pytest.mark.postgres, pytest.mark.redis]

NGINX = nginx_binary()
CLIENTS = 4


def stored_counts(engine, hook_instances: set[str]) -> dict[str, int]:
    j = judgement.c
    with engine.connect() as connection:
        rows = connection.execute(select(j.hook_instance, func.count()).group_by(j.hook_instance))
        return {h: n for h, n in rows if h in hook_instances}


def wait_until(condition, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if condition():
                return True
        except requests.RequestException:
            pass
        time.sleep(0.25)
    return False


def figures(phase: str, load: Load, engine=None) -> dict:
    result = {"phase": phase, "calls": len(load.outcomes), "outcomes": dict(load.summary())}
    if engine is not None:
        answered = load.answered()
        counts = stored_counts(engine, answered)
        result.update(answered_200=len(answered), stored=sum(1 for h in answered if counts.get(h) == 1),
                      missing=sorted(answered - set(counts))[:5], twice=sorted(h for h, n in counts.items() if n > 1))
    print(f"topology {json.dumps(result)}")
    return result


@pytest.mark.skipif(NGINX is None, reason="nginx is not installed (Debian: apt-get install nginx)")
def test_two_replicas_behind_nginx_survive_kills_restarts_and_a_store_cut(tmp_path, pg_url, redis_url):
    assert cli_main(["db", "upgrade", "--database-url", pg_url]) == 0
    target = make_url(pg_url)
    store_proxy = TcpProxy((target.host, target.port or 5432)).start()
    through_proxy = target.set(host="127.0.0.1", port=store_proxy.port).render_as_string(hide_password=False)
    engine = create_engine(pg_url)

    deployment = SignedDeployment(tmp_path, through_proxy, redis_url, "topology-test-key")
    key, base, conf = deployment.key, deployment.base, deployment.conf
    replica_a, replica_b = deployment.replica_a, deployment.replica_b

    def hook_call(hook_instance: str):
        token = sign(key, claims(f"{base}/cds-services/{SIGN}"))
        return f"/cds-services/{SIGN}", early_mri_request(hook_instance), {"Authorization": f"Bearer {token}"}

    try:
        replica_a.wait_ready()
        replica_b.wait_ready()
        with Nginx(NGINX, conf):
            assert wait_until(lambda: requests.get(f"{base}/healthz", timeout=2).status_code == 200, 10)

            # 1. replay: one token, 16 sends at once, both replicas behind nginx
            path, body, headers = hook_call("replayed")
            with ThreadPoolExecutor(16) as pool:
                statuses = list(pool.map(lambda _: requests.post(f"{base}{path}", json=body, headers=headers,
                                                                   timeout=30).status_code, range(16)))
            print(f"topology {json.dumps({'phase': 'replay', 'statuses': sorted(statuses)})}")
            assert statuses.count(200) == 1 and statuses.count(401) == 15, statuses

            # 2. graceful: a rolling restart (SIGTERM + start of B, then of A), then SIGHUP of A,
            # under load. A starting replica refuses connections until its workers serve, so nginx
            # marks it failed for fail_timeout; A is stopped within that time: the upstream's
            # backup lines keep "no live upstreams" (502) away.
            load = Load(base, hook_call, CLIENTS).start("graceful")
            time.sleep(1)
            for replica in (replica_b, replica_a):
                assert replica.stop() == 0
                replica.start().wait_ready()
            replica_a.signal(signal.SIGHUP)
            time.sleep(3)
            load.stop()
            answered = load.answered()
            assert wait_until(lambda: len(stored_counts(engine, answered)) == len(answered), 20)
            graceful = figures("rolling restart (SIGTERM+start of B, then A), HUP of A", load, engine)
            assert set(load.summary()) == {"200"}, f"clients saw errors on a graceful restart: {load.summary()}"
            assert graceful["stored"] == graceful["answered_200"] > 0 and not graceful["twice"], graceful

            # 3. kill -9 of A under load, then A again (adopts its spool)
            load = Load(base, hook_call, CLIENTS).start("kill")
            time.sleep(1.5)
            replica_a.kill()
            spooled = sum(len(p.read_bytes().splitlines()) for p in (replica_a.folder / "spool").glob("*.jsonl"))
            time.sleep(2)
            replica_a.start().wait_ready()
            time.sleep(1)
            load.stop()
            answered = load.answered()
            assert wait_until(lambda: len(stored_counts(engine, answered)) == len(answered), 20)
            killed = figures("kill -9 of replica A", load, engine)
            # Calls cut by the kill were sent to B by nginx with their JWT, which B may refuse as
            # replayed (401): counted in the figures, not an error of the store.
            print(f"topology {json.dumps({'phase': 'kill -9', 'lines_in_spool_files_of_A_after_the_kill': spooled})}")
            assert killed["stored"] == killed["answered_200"] > 0 and not killed["twice"], killed

            # 4. the shared store cut for 5 s under load
            load = Load(base, hook_call, CLIENTS).start("cut")
            time.sleep(1)
            store_proxy.stop()
            time.sleep(1.5)
            ready = requests.get(f"http://127.0.0.1:{replica_a.port}/readyz", timeout=5)
            time.sleep(3.5)
            store_proxy.start()
            time.sleep(1)
            load.stop()
            answered = load.answered()
            assert wait_until(lambda: len(stored_counts(engine, answered)) == len(answered), 30)
            cut = figures("store cut 5 s", load, engine)
            assert ready.status_code == 200 and ready.json()["store"] == "unreachable", ready.text
            assert set(load.summary()) == {"200"}, load.summary()
            assert cut["stored"] == cut["answered_200"] > 0 and not cut["twice"], cut
    finally:
        for replica in (replica_a, replica_b):
            replica.stop()
        store_proxy.stop()
        engine.dispose()
