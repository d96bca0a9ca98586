"""`lumbar-cds serve`: the CDS Hooks API under gunicorn with uvicorn workers.

Role in the data flow: an edge. Settings, the trusted issuers file and the database URL are
checked here, in the master, before gunicorn starts (one line, exit code 2); each worker builds
the app (`app.create_app`) behind `web.serving.BufferedWsgi`.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from cds_service.cli.common import EXIT_OK, EXIT_USAGE, MULTIPROC_ENV, fail, first_line


def preflight(args: argparse.Namespace, settings: dict) -> str | None:
    """What would stop every worker at start, found in the master first (one line), or None."""
    if args.require_fhir_allowlist and settings["AUTH_REQUIRED"] and not settings["FHIR_ALLOWED_ORIGINS"]:
        return ("refusing to start: CDS_AUTH_REQUIRED is on and CDS_FHIR_ALLOWED_ORIGINS is empty; set "
                "the FHIR origins the service may call")
    if settings["AUTH_REQUIRED"]:
        from cds_service.security.auth import TrustConfigError, trusted_issuers

        try:
            trusted_issuers(settings)
        except TrustConfigError as error:
            return f"CDS_TRUSTED_ISSUERS_FILE: {error}; fix the file or the setting"
    from cds_service.governance.store.database import create_store_engine, database_url

    try:
        create_store_engine(database_url(settings)[0]).dispose()
    except Exception as error:  # no such dialect or driver, a malformed URL
        return (f"CDS_DATABASE_URL cannot be used ({first_line(error)}); give a SQLAlchemy URL such "
                "as postgresql+psycopg://user@host/db or sqlite:////path/to/file.sqlite3")
    return None


def serve(args: argparse.Namespace) -> int:
    """gunicorn with uvicorn workers; in each, the app behind `web.serving.BufferedWsgi`: request
    bodies are received on the event loop under a deadline and a size limit, so a slow client
    holds a socket, never one of the `--threads` threads that run the app. Settings are checked
    here, in the master, before gunicorn starts: a refused one is one line and exit code 2."""
    import shutil
    import tempfile

    from cds_service.config import SettingsError, load_settings
    from cds_service.logs import ONCE_ENV, configure_logging
    from cds_service.web.rolling import READY_ENV

    try:
        settings = load_settings()
    except SettingsError as error:
        return fail("serve", f"{error}")
    host = args.host if args.host is not None else settings["HOST"]  # the flags win over CDS_HOST/CDS_PORT
    port = args.port if args.port is not None else settings["PORT"]
    # One folder of this instance's own: the workers' metric files (prometheus-client's
    # multiprocess mode, set before it is first imported) and the one-time warning markers.
    try:
        instance = tempfile.mkdtemp(prefix="lumbar-cds-", dir=os.environ.get(MULTIPROC_ENV) or None)
    except OSError as error:
        return fail("serve", f"cannot create the instance folder in {os.environ.get(MULTIPROC_ENV) or tempfile.gettempdir()} "
                     f"({error.strerror}); set PROMETHEUS_MULTIPROC_DIR or TMPDIR to a writable folder")
    master = os.getpid()
    try:
        for name in ("metrics", "once", "ready"):
            os.mkdir(os.path.join(instance, name))
        os.environ[MULTIPROC_ENV] = os.path.join(instance, "metrics")
        os.environ[ONCE_ENV] = os.path.join(instance, "once")
        os.environ[READY_ENV] = os.path.join(instance, "ready")  # web/rolling.py: workers say "ready"
        problem = preflight(args, settings)
        if problem:
            return fail("serve", problem)
        configure_logging(settings["LOG_LEVEL"], bool(settings.get("LOG_THIRD_PARTY", False)))
        server = _gunicorn(args, host, port, settings)
        try:
            server.run()
        except SystemExit as stop:
            if os.getpid() != master:
                raise  # a worker ending: its exit code is gunicorn's business
            if stop.code not in (0, None):
                return fail("serve", f"gunicorn stopped with exit code {stop.code}: a worker could not start "
                             "(see the log line `the service cannot start`); fix it and start again", EXIT_USAGE)
        return EXIT_OK
    finally:
        if os.getpid() == master:
            shutil.rmtree(instance, ignore_errors=True)


def _log_serving(arbiter, args: argparse.Namespace) -> None:
    """Said once gunicorn has bound: the address really listened on (with --port 0, the port
    the system chose)."""
    from cds_service.logs import get_logger, log_event

    # With reuse_port the workers bind (gunicorn >= 23) and the master holds no listener: the
    # address is the one asked for, never port 0 (reuse_port is off then).
    addresses = [listener.sock.getsockname()[:2] for listener in arbiter.LISTENERS] or [
        tuple(bind.rsplit(":", 1)) for bind in arbiter.cfg.bind]
    for host, port in addresses:
        host = host.strip("[]")
        host = f"[{host}]" if ":" in host else host
        log_event(get_logger("serve"), "serving", url=f"http://{host}:{port}/cds-services",
                  workers=args.workers, threads=args.threads)


def _worker_exited(pid: int) -> None:
    from cds_service import metrics
    from cds_service.web.rolling import forget

    metrics.worker_exited(pid)
    forget(pid)


def _gunicorn(args: argparse.Namespace, host: str, port: int, settings: dict):
    from gunicorn.app.base import BaseApplication

    from cds_service.web.rolling import RollingArbiter
    from cds_service.web.serving import logger_class, worker_class

    class Server(BaseApplication):
        def load_config(self):
            self.cfg.set("bind", f"{host}:{port}" if ":" not in host else f"[{host}]:{port}")
            self.cfg.set("workers", args.workers)
            self.cfg.set("worker_class", worker_class())
            self.cfg.set("timeout", args.timeout)
            self.cfg.set("graceful_timeout", 20)
            self.cfg.set("keepalive", 5)
            # A listener per worker (web/serving.py). Not with --port 0: each worker would be given a
            # port of its own by the system, and the address logged would serve one worker only.
            self.cfg.set("reuse_port", args.reuse_port and port != 0)
            self.cfg.set("accesslog", None)  # our structured request log replaces it
            self.cfg.set("logger_class", logger_class())  # gunicorn's own lines as JSON lines
            self.cfg.set("loglevel", settings["LOG_LEVEL"].lower())
            self.cfg.set("child_exit", lambda _arbiter, worker: _worker_exited(worker.pid))
            self.cfg.set("when_ready", lambda arbiter: _log_serving(arbiter, args))
            if "control_socket_disable" in self.cfg.settings:
                # gunicorn >= 24 opens a control socket at one path per user ($HOME/.gunicorn):
                # instances would clobber each other's. Nothing here uses it: off.
                self.cfg.set("control_socket_disable", True)

        def run(self):
            # gunicorn's own run() with the arbiter that keeps old workers through a SIGHUP
            # until the new ones serve (web/rolling.py).
            try:
                RollingArbiter(self).run()
            except RuntimeError as error:
                print(f"\nError: {error}\n", file=sys.stderr)
                sys.exit(1)

        def load(self):
            from cds_service.app import create_app
            from cds_service.web.serving import BufferedWsgi

            try:
                app = create_app()
            except Exception as error:  # a card file, a value set, the store: said in one JSON line
                from cds_service.logs import get_logger, log_event

                log_event(get_logger("serve"), "the service cannot start", logging.CRITICAL,
                          exception=type(error).__name__, reason=first_line(error))
                sys.exit(3)  # gunicorn's "worker failed to boot": the master stops
            return BufferedWsgi(
                app, threads=args.threads,
                body_timeout=args.body_timeout or float(app.config.get("BODY_READ_TIMEOUT") or 10.0),
                max_body=int(app.config["MAX_BODY_BYTES"]),
                on_shutdown=app.extensions["lumbar_cds_shutdown"],
            )

    return Server()
