"""The `lumbar-cds` command: serve, evaluate a request file, and the governance commands.

Role in the data flow: an edge. `serve` runs the app under gunicorn; `evaluate` hands one hook
request JSON (or the request of a scenario file) to the service entry point the HTTP view calls
(`service.CdsService`: same contract, gathering and pathway) and prints the response, which is
how a developer tries a request without an EHR; it records the judgements only with --record.

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

from cds_service import __version__
from cds_service.cli.common import (  # noqa: F401 - the exit codes are the command's interface
    EXIT_ANSWERED_ERROR,
    EXIT_OK,
    EXIT_STORE_UNREACHABLE,
    EXIT_USAGE,
    MULTIPROC_ENV,
)
from cds_service.cli.evaluate import evaluate as _evaluate_command
from cds_service.cli.serve import preflight as _preflight  # noqa: F401 - tests/test_readme.py reads it
from cds_service.cli.serve import serve as _serve_command


def _at_least_one(value: str) -> int:
    number = _integer(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {number}")
    return number


def _port(value: str) -> int:
    number = _integer(value)
    if not 0 <= number <= 65535:
        raise argparse.ArgumentTypeError(f"must be a port from 0 to 65535, not {number}")
    return number


def _integer(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {value!r}") from None


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
    serve.add_argument("--port", type=_port, default=None,
                       help="port (default CDS_PORT, else 8080); 0: any free port, logged once bound")
    serve.add_argument("--workers", type=_at_least_one, default=2, help="worker processes (default 2)")
    serve.add_argument("--threads", type=_at_least_one, default=8,
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
    serve.set_defaults(handler=_serve_command)

    evaluate = commands.add_parser(
        "evaluate", help="evaluate one hook request (or scenario) file and print the response",
        description="Evaluate a CDS Hooks request (JSON file, or - for stdin) and print the response JSON. "
                    "A scenario file (tests/scenarios/*.json, {\"request\": ...}) is evaluated by its request.",
    )
    evaluate.add_argument("file", help="hook request or scenario JSON file, or - for standard input")
    evaluate.add_argument("--service", help="service id (default: the service of the request's hook)")
    evaluate.add_argument("--pretty", action="store_true", help="indent the JSON output")
    recording = evaluate.add_mutually_exclusive_group()
    recording.add_argument("--record", action="store_true",
                           help="record the judgements in the governance store (CDS_DATABASE_URL, else the "
                                "embedded SQLite file); by default nothing is recorded")
    recording.add_argument("--no-record", dest="record", action="store_false",
                           help="record nothing (the default)")
    evaluate.set_defaults(handler=_evaluate_command)

    _add_store_commands(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.handler(args)
