"""The `lumbar-cds` command: serve, evaluate a request file, and the governance commands.

Role in the data flow: an edge. `serve` runs the app under gunicorn; `evaluate` pushes one hook
request JSON (or the request of a scenario file) through the same app (same validation, gathering
and pathway) and prints the response, which is how a developer tries a request without an EHR.

Every error is one line on stderr, `lumbar-cds <command>: <what>, <which file or URL>; <what to
do>`, never a traceback, and the exit code says what kind of failure it was (README, "The
lumbar-cds command"):

- 0: done;
- 1: the command ran and the answer is negative: `evaluate` got an error status from the
  service (its JSON body is printed), `db current` found the schema behind head;
- 2: usage or configuration: an unknown option, a file that cannot be read, a setting the
  service refuses (checked before gunicorn starts), a database URL it cannot use;
- 3: the governance store cannot be reached (`db`, `report`).

Parsing is cheap (`--help`, `--version`): the store, Flask and gunicorn are imported only by the
command that needs them.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from cds_service import __version__

EXIT_OK, EXIT_ANSWERED_ERROR, EXIT_USAGE, EXIT_STORE_UNREACHABLE = 0, 1, 2, 3
# Read by prometheus-client when it is first imported (cds_service.metrics.MULTIPROC_ENV): `serve`
# sets it before anything imports the metrics.
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def _fail(command: str, message: str, code: int = EXIT_USAGE) -> int:
    print(f"lumbar-cds {command}: {message}", file=sys.stderr)
    return code


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return f"{type(error).__name__}: {text.splitlines()[0]}" if text else type(error).__name__


# --- serve ----------------------------------------------------------------------------------


def _preflight(args: argparse.Namespace, settings: dict) -> str | None:
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
        return (f"CDS_DATABASE_URL cannot be used ({_first_line(error)}); give a SQLAlchemy URL such "
                "as postgresql+psycopg://user@host/db or sqlite:////path/to/file.sqlite3")
    return None


def _serve(args: argparse.Namespace) -> int:
    """gunicorn with uvicorn workers; in each, the app behind `web.serving.BufferedWsgi`: request
    bodies are received on the event loop under a deadline and a size limit, so a slow client
    holds a socket, never one of the `--threads` threads that run the app. Settings are checked
    here, in the master, before gunicorn starts: a refused one is one line and exit code 2."""
    import shutil
    import tempfile

    from cds_service.config import SettingsError, load_settings
    from cds_service.logs import ONCE_ENV, configure_logging, get_logger, log_event

    try:
        settings = load_settings()
    except SettingsError as error:
        return _fail("serve", f"{error}")
    host = args.host if args.host is not None else settings["HOST"]  # the flags win over CDS_HOST/CDS_PORT
    port = args.port if args.port is not None else settings["PORT"]
    # One folder of this instance's own: the workers' metric files (prometheus-client's
    # multiprocess mode, set before it is first imported) and the one-time warning markers.
    try:
        instance = tempfile.mkdtemp(prefix="lumbar-cds-", dir=os.environ.get(MULTIPROC_ENV) or None)
    except OSError as error:
        return _fail("serve", f"cannot create the instance folder in {os.environ.get(MULTIPROC_ENV) or tempfile.gettempdir()} "
                     f"({error.strerror}); set PROMETHEUS_MULTIPROC_DIR or TMPDIR to a writable folder")
    master = os.getpid()
    try:
        for name in ("metrics", "once"):
            os.mkdir(os.path.join(instance, name))
        os.environ[MULTIPROC_ENV] = os.path.join(instance, "metrics")
        os.environ[ONCE_ENV] = os.path.join(instance, "once")
        problem = _preflight(args, settings)
        if problem:
            return _fail("serve", problem)
        configure_logging(settings["LOG_LEVEL"], bool(settings.get("LOG_THIRD_PARTY", False)))
        server = _gunicorn(args, host, port, settings)
        log_event(get_logger("serve"), "serving", url=f"http://{host}:{port}/cds-services",
                  workers=args.workers, threads=args.threads)
        try:
            server.run()
        except SystemExit as stop:
            if os.getpid() != master:
                raise  # a worker ending: its exit code is gunicorn's business
            if stop.code not in (0, None):
                return _fail("serve", f"gunicorn stopped with exit code {stop.code}: a worker could not start "
                             "(see the log line `the service cannot start`); fix it and start again", EXIT_USAGE)
        return EXIT_OK
    finally:
        if os.getpid() == master:
            shutil.rmtree(instance, ignore_errors=True)


def _gunicorn(args: argparse.Namespace, host: str, port: int, settings: dict):
    from gunicorn.app.base import BaseApplication

    from cds_service import metrics
    from cds_service.web.serving import logger_class, worker_class

    class Server(BaseApplication):
        def load_config(self):
            self.cfg.set("bind", f"{host}:{port}" if ":" not in host else f"[{host}]:{port}")
            self.cfg.set("workers", args.workers)
            self.cfg.set("worker_class", worker_class())
            self.cfg.set("timeout", args.timeout)
            self.cfg.set("graceful_timeout", 20)
            self.cfg.set("keepalive", 5)
            self.cfg.set("reuse_port", args.reuse_port)  # a listener per worker too (web/serving.py)
            self.cfg.set("accesslog", None)  # our structured request log replaces it
            self.cfg.set("logger_class", logger_class())  # gunicorn's own lines as JSON lines
            self.cfg.set("loglevel", settings["LOG_LEVEL"].lower())
            self.cfg.set("child_exit", lambda _arbiter, worker: metrics.worker_exited(worker.pid))
            if "control_socket_disable" in self.cfg.settings:
                # gunicorn >= 24 opens a control socket at one path per user ($HOME/.gunicorn):
                # instances would clobber each other's. Nothing here uses it: off.
                self.cfg.set("control_socket_disable", True)

        def load(self):
            from cds_service.app import create_app
            from cds_service.web.serving import BufferedWsgi

            try:
                app = create_app()
            except Exception as error:  # a card file, a value set, the store: said in one JSON line
                from cds_service.logs import get_logger, log_event

                log_event(get_logger("serve"), "the service cannot start", logging.CRITICAL,
                          exception=type(error).__name__, reason=_first_line(error))
                sys.exit(3)  # gunicorn's "worker failed to boot": the master stops
            return BufferedWsgi(
                app, threads=args.threads,
                body_timeout=args.body_timeout or float(app.config.get("BODY_READ_TIMEOUT") or 10.0),
                max_body=int(app.config["MAX_BODY_BYTES"]),
                on_shutdown=app.extensions["lumbar_cds_shutdown"],
            )

    return Server()


# --- evaluate -------------------------------------------------------------------------------


def _evaluate(args: argparse.Namespace) -> int:
    import orjson

    try:
        raw = sys.stdin.buffer.read() if args.file == "-" else open(args.file, "rb").read()
    except OSError as error:
        return _fail("evaluate", f"cannot read {args.file} ({error.strerror or type(error).__name__}); give a "
                     "hook request or scenario JSON file, or - for standard input")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        print('{"error": {"code": "LCDS-1001", "message": "The request file is not valid JSON."}}')
        return EXIT_USAGE
    scenario = isinstance(body, dict) and "hook" not in body and isinstance(body.get("request"), dict)
    if scenario:
        body = body["request"]  # a scenario file (tests/scenarios/*.json): its request
    service = args.service or _service_for(body)
    if service is None:
        print('{"error": {"code": "LCDS-1003", "message": "Give --service, or a request whose hook names one."}}')
        return EXIT_USAGE

    from cds_service.config import SettingsError
    from cds_service.logs import ONCE_ENV

    before = os.environ.get(ONCE_ENV)
    os.environ[ONCE_ENV] = before or "-"  # deployment warnings are for `serve`, not a developer's try
    try:
        from cds_service.app import create_app

        app = create_app({"RECORD_JUDGEMENTS": False} if args.no_record else None)
    except SettingsError as error:
        return _fail("evaluate", f"{error}")
    except Exception as error:
        return _fail("evaluate", f"the service cannot start ({_first_line(error)}); check the CDS_* settings")
    finally:
        if before is None:
            os.environ.pop(ONCE_ENV, None)
    if scenario:
        raw = orjson.dumps(_with_planned_keys(body, app))
    client = app.test_client()
    response = client.post(f"/cds-services/{service}", data=raw, content_type="application/json")
    option = orjson.OPT_INDENT_2 if args.pretty else 0
    sys.stdout.write(orjson.dumps(response.get_json(), option=option).decode() + "\n")
    return EXIT_OK if response.status_code == 200 else EXIT_ANSWERED_ERROR


def _with_planned_keys(request: dict, app) -> dict:
    """A scenario lists each resource type's searchset once (e.g. every Observation under
    `observations`): the narrowed keys of the same type get it too, as a client running every
    discovery template would send them (the scenario runner does the same)."""
    prefetch = request.get("prefetch")
    if not isinstance(prefetch, dict):
        return request
    by_type: dict[str, list[str]] = {}
    for key, template in app.extensions["lumbar_cds"].evaluator.query_plan.templates().items():
        by_type.setdefault(template.split("?")[0].split("/")[0], []).append(key)
    for keys in by_type.values():
        given = next((prefetch[k] for k in keys if k in prefetch), None)
        if given is not None:
            for key in keys:
                prefetch.setdefault(key, given)
    return request


def _service_for(body) -> str | None:
    from cds_service.hooks.registry import SERVICES

    hook = body.get("hook") if isinstance(body, dict) else None
    for service in SERVICES:
        if service.hook == hook:
            return service.id
    return None


# --- the parser -----------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    """argparse, with a usage error in one line (the usage itself is in --help)."""

    def error(self, message: str):
        self.exit(EXIT_USAGE, f"{self.prog}: {message}; see {self.prog} --help\n")


def _store_command(name: str):
    """A handler of cds_service.governance.store.cli, imported only when its command runs."""

    def handler(args: argparse.Namespace) -> int:
        from cds_service.governance.store import cli as store_cli

        return getattr(store_cli, name)(args)

    return handler


def _add_store_commands(commands) -> None:
    from datetime import date

    def day(value: str) -> date:
        try:
            return date.fromisoformat(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a date YYYY-MM-DD: {value!r}") from None

    db = commands.add_parser("db", help="governance store schema (Alembic migrations)",
                             description="Manage the schema of the judgement/feedback store.")
    db_commands = db.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    upgrade = db_commands.add_parser(
        "upgrade", help="migrate the store to the latest schema",
        description="Run the store's migrations against CDS_DATABASE_URL (or the embedded SQLite file).")
    upgrade.add_argument("--revision", default="head", help="target revision (default head)")
    upgrade.add_argument("--database-url", help="SQLAlchemy URL (default: CDS_DATABASE_URL)")
    upgrade.set_defaults(handler=_store_command("db_upgrade"))
    current = db_commands.add_parser("current", help="print the store's schema revision",
                                     description="Print the store's revision; exit 1 if it is behind, 3 if "
                                                 "the store cannot be reached.")
    current.add_argument("--database-url", help="SQLAlchemy URL (default: CDS_DATABASE_URL)")
    current.set_defaults(handler=_store_command("db_current"))

    report = commands.add_parser(
        "report", help="governance figures per card topic",
        description="Per topic: cards shown, accepted, overridden, override rate, top override "
                    "reasons, suggestion acceptance, ratings, orders judged per day (UTC days).")
    report.add_argument("--since", type=day, help="first day, YYYY-MM-DD (inclusive)")
    report.add_argument("--until", type=day, help="last day, YYYY-MM-DD (inclusive)")
    report.add_argument("--format", choices=("table", "json", "csv"), default="table",
                        help="output format (default table)")
    report.add_argument("--database-url", help="SQLAlchemy URL (default: CDS_DATABASE_URL)")
    report.set_defaults(handler=_store_command("report"))


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="lumbar-cds", description="Lumbar spine imaging CDS Hooks service.",
                     epilog="Exit codes: 0 done; 1 the service answered an error (evaluate) or the "
                            "schema is behind (db current); 2 usage or configuration error; 3 the "
                            "governance store cannot be reached.")
    parser.add_argument("--version", action="version", version=f"lumbar-cds {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="serve the CDS Hooks API with gunicorn",
                                description="Serve the CDS Hooks API with gunicorn.")
    serve.add_argument("--host", default=None, help="address to bind (default CDS_HOST, else 127.0.0.1)")
    serve.add_argument("--port", type=int, default=None, help="port (default CDS_PORT, else 8080)")
    serve.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    serve.add_argument("--threads", type=int, default=8,
                       help="threads per worker running the app, once a request's body is in (default 8)")
    serve.add_argument("--timeout", type=int, default=30, help="worker timeout in seconds (default 30)")
    serve.add_argument("--reuse-port", action=argparse.BooleanOptionalAction, default=True,
                       help="each worker also listens on a socket of its own (SO_REUSEPORT), so the kernel "
                            "spreads new connections over the workers (default on; --no-reuse-port: one "
                            "shared listener)")
    serve.add_argument("--body-timeout", type=float, default=None,
                       help="seconds a client has to send a request body, else 408 (default 10)")
    serve.add_argument("--require-fhir-allowlist", action="store_true",
                       help="refuse to start (exit 2) when authentication is on and CDS_FHIR_ALLOWED_ORIGINS is empty")
    serve.set_defaults(handler=_serve)

    evaluate = commands.add_parser(
        "evaluate", help="evaluate one hook request (or scenario) file and print the response",
        description="Evaluate a CDS Hooks request (JSON file, or - for stdin) and print the response JSON. "
                    "A scenario file (tests/scenarios/*.json, {\"request\": ...}) is evaluated by its request.",
    )
    evaluate.add_argument("file", help="hook request or scenario JSON file, or - for standard input")
    evaluate.add_argument("--service", help="service id (default: the service of the request's hook)")
    evaluate.add_argument("--pretty", action="store_true", help="indent the JSON output")
    evaluate.add_argument("--no-record", action="store_true", help="do not record the judgement")
    evaluate.set_defaults(handler=_evaluate)

    _add_store_commands(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
