"""The `cds-hooks` command: serve the API under gunicorn, or evaluate a request file offline."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Sequence

from cds_hooks.logs import configure_logging
from cds_hooks.protocol.errors import ServiceError
from cds_hooks.services import SERVICES
from cds_hooks.settings import Settings, SettingsError

EXIT_BAD_INPUT = 2
EXIT_SERVICE_ERROR = 3


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    arguments = parser.parse_args(argv)
    try:
        settings = Settings.from_environment()
    except (SettingsError, OSError) as error:
        print(f"cds-hooks: bad configuration: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    configure_logging(settings.log_level)
    return arguments.command(arguments, settings)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cds-hooks", description=__doc__)
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="serve the CDS Hooks API with gunicorn")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8080, help="port to bind (default 8080)")
    serve.add_argument("--workers", type=int, help="gunicorn worker processes (default: setting 'workers')")
    serve.add_argument("--threads", type=int, help="threads per worker (default: setting 'threads')")
    serve.add_argument(
        "--allow-unauthenticated-non-loopback", action="store_true",
        help="with auth_required = false, serve on a host other machines can reach anyway (refused without this flag)",
    )
    serve.set_defaults(command=_serve)

    run = commands.add_parser("run", help="evaluate a CDS Hooks request file and print the response JSON")
    run.add_argument("request", type=Path, help="a CDS Hooks request (JSON)")
    run.add_argument("--service", help="service id (default: the service for the request's hook)")
    run.set_defaults(command=_run)

    catalog = commands.add_parser("catalog", help="write the rule catalogue (docs/rules.md) from the rules and cards")
    catalog.add_argument("--output", type=Path, default=Path("docs/rules.md"), help="where to write (default docs/rules.md)")
    catalog.add_argument("--check", action="store_true", help="do not write; exit 1 if the file differs from the rules")
    catalog.set_defaults(command=_catalog)
    return parser


def _serve(arguments: argparse.Namespace, settings: Settings) -> int:
    from gunicorn.app.base import BaseApplication

    from cds_hooks.app import create_app
    from cds_hooks.auth import AuthConfigurationError, check_serving_configuration

    # Checked here, before gunicorn starts workers, so a refusal is one clear message and exit status 2.
    try:
        check_serving_configuration(settings, arguments.host, arguments.allow_unauthenticated_non_loopback)
    except AuthConfigurationError as error:
        print(f"cds-hooks serve: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT

    options = {
        "bind": f"{_bracket_ipv6(arguments.host)}:{arguments.port}",
        "workers": arguments.workers or settings.workers,
        "threads": arguments.threads or settings.threads,
        "worker_class": "gthread",
        # Each worker builds its own app after the fork, so its prefetch thread pool is its own.
        "preload_app": False,
        "timeout": 30,
        "graceful_timeout": 10,
        "accesslog": None,
        "loglevel": settings.log_level.lower(),
    }

    class Server(BaseApplication):
        def load_config(self) -> None:
            for key, value in options.items():
                self.cfg.set(key, value)

        def load(self):
            return create_app(settings)

    Server().run()
    return 0


def _run(arguments: argparse.Namespace, settings: Settings) -> int:
    from cds_hooks.engine import Engine

    try:
        body = json.loads(arguments.request.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        print(f"cds-hooks run: cannot read {arguments.request}: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except RecursionError:
        print(f"cds-hooks run: {arguments.request} is nested too deeply to be a CDS Hooks request", file=sys.stderr)
        return EXIT_BAD_INPUT
    service_id = arguments.service or _service_for(body)
    if service_id is None:
        print("cds-hooks run: the request names no hook this server offers; pass --service", file=sys.stderr)
        return EXIT_BAD_INPUT
    engine = Engine(settings)
    try:
        evaluation = engine.evaluate(service_id, body)
    except ServiceError as error:
        print(json.dumps({"status": error.status, **error.body()}, indent=2), file=sys.stderr)
        return EXIT_SERVICE_ERROR if error.status == 412 else EXIT_BAD_INPUT
    finally:
        engine.close()
    print(json.dumps(evaluation.body, indent=2))
    return 0


def _catalog(arguments: argparse.Namespace, settings: Settings) -> int:
    from cds_hooks.catalog import catalog_markdown

    text = catalog_markdown()
    if arguments.check:
        current = arguments.output.read_text("utf-8") if arguments.output.exists() else ""
        if current != text:
            print(f"{arguments.output} is out of date: run `cds-hooks catalog`", file=sys.stderr)
            return 1
        return 0
    arguments.output.parent.mkdir(parents=True, exist_ok=True)
    arguments.output.write_text(text, "utf-8")
    print(f"wrote {arguments.output}", file=sys.stderr)
    return 0


def _service_for(body: Any) -> str | None:
    hook = body.get("hook") if isinstance(body, dict) else None
    return next((service.id for service in SERVICES if service.hook == hook), None)


def _bracket_ipv6(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


if __name__ == "__main__":
    sys.exit(main())
