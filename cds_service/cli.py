"""The `lumbar-cds` command: serve, evaluate a request file, and the governance commands.

Role in the data flow: an edge. `serve` runs the app under gunicorn; `evaluate` pushes one hook
request JSON through the same app (same validation, gathering and pathway) and prints the
response, which is how a developer tries a request without an EHR.
"""

from __future__ import annotations

import argparse
import sys

import orjson


def _serve(args: argparse.Namespace) -> int:
    """gunicorn with uvicorn workers; in each, the app behind `web.serving.BufferedWsgi`: request
    bodies are received on the event loop under a deadline and a size limit, so a slow client
    holds a socket, never one of the `--threads` threads that run the app."""
    from gunicorn.app.base import BaseApplication

    from cds_service.config import SettingsError, load_settings
    from cds_service.web.serving import worker_class

    try:
        settings = load_settings()
    except SettingsError as error:
        print(f"lumbar-cds: {error}", file=sys.stderr)
        return 2
    if args.require_fhir_allowlist and settings["AUTH_REQUIRED"] and not settings["FHIR_ALLOWED_ORIGINS"]:
        print("lumbar-cds: refusing to start: CDS_AUTH_REQUIRED is on and CDS_FHIR_ALLOWED_ORIGINS is "
              "empty; set the FHIR origins the service may call", file=sys.stderr)
        return 2

    class Server(BaseApplication):
        def load_config(self):
            self.cfg.set("bind", f"{args.host}:{args.port}" if ":" not in args.host else f"[{args.host}]:{args.port}")
            self.cfg.set("workers", args.workers)
            self.cfg.set("worker_class", worker_class())
            self.cfg.set("timeout", args.timeout)
            self.cfg.set("graceful_timeout", 20)
            self.cfg.set("keepalive", 5)
            self.cfg.set("accesslog", None)  # our structured request log replaces it

        def load(self):
            from cds_service.app import create_app
            from cds_service.web.serving import BufferedWsgi

            app = create_app()
            return BufferedWsgi(
                app, threads=args.threads,
                body_timeout=args.body_timeout or float(app.config.get("BODY_READ_TIMEOUT") or 10.0),
                max_body=int(app.config["MAX_BODY_BYTES"]),
                on_shutdown=app.extensions["lumbar_cds_shutdown"],
            )

    print(f"lumbar-cds: serving on http://{args.host}:{args.port}/cds-services", file=sys.stderr)
    Server().run()
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from cds_service.app import create_app

    raw = sys.stdin.buffer.read() if args.file == "-" else open(args.file, "rb").read()
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        print('{"error": {"code": "LCDS-1001", "message": "The request file is not valid JSON."}}')
        return 2
    service = args.service or _service_for(body)
    if service is None:
        print('{"error": {"code": "LCDS-1003", "message": "Give --service, or a request whose hook names one."}}')
        return 2
    app = create_app({"RECORD_JUDGEMENTS": False} if args.no_record else None)
    client = app.test_client()
    response = client.post(f"/cds-services/{service}", data=raw, content_type="application/json")
    option = orjson.OPT_INDENT_2 if args.pretty else 0
    sys.stdout.write(orjson.dumps(response.get_json(), option=option).decode() + "\n")
    return 0 if response.status_code == 200 else 1


def _service_for(body) -> str | None:
    from cds_service.hooks.registry import SERVICES

    hook = body.get("hook") if isinstance(body, dict) else None
    for service in SERVICES:
        if service.hook == hook:
            return service.id
    return None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lumbar-cds", description="Lumbar spine imaging CDS Hooks service."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="serve the CDS Hooks API with gunicorn",
                                description="Serve the CDS Hooks API with gunicorn.")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8080, help="port (default 8080)")
    serve.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    serve.add_argument("--threads", type=int, default=8,
                       help="threads per worker running the app, once a request's body is in (default 8)")
    serve.add_argument("--timeout", type=int, default=30, help="worker timeout in seconds (default 30)")
    serve.add_argument("--body-timeout", type=float, default=None,
                       help="seconds a client has to send a request body, else 408 (default 10)")
    serve.add_argument("--require-fhir-allowlist", action="store_true",
                       help="refuse to start (exit 2) when authentication is on and CDS_FHIR_ALLOWED_ORIGINS is empty")
    serve.set_defaults(handler=_serve)

    evaluate = commands.add_parser(
        "evaluate", help="evaluate one hook request file and print the response",
        description="Evaluate a CDS Hooks request (JSON file, or - for stdin) and print the response JSON.",
    )
    evaluate.add_argument("file", help="hook request JSON file, or - for standard input")
    evaluate.add_argument("--service", help="service id (default: the service of the request's hook)")
    evaluate.add_argument("--pretty", action="store_true", help="indent the JSON output")
    evaluate.add_argument("--no-record", action="store_true", help="do not record the judgement")
    evaluate.set_defaults(handler=_evaluate)

    try:
        from cds_service.governance.store.cli import register as register_store_commands
    except ImportError:
        pass
    else:
        register_store_commands(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
