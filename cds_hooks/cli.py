"""The `cds-hooks` command: serve the API under gunicorn, evaluate a request file offline, run fixture cases, and
report clinicians' feedback on the cards."""
from __future__ import annotations

import argparse
import gc
import json
import os
import socket
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from cds_hooks.json_files import UnreadableJsonFile, read_json_file
from cds_hooks.logs import configure_logging
from cds_hooks.protocol.errors import ServiceError
from cds_hooks.services import service_for_hook
from cds_hooks.settings import Settings, SettingsError, is_loopback

if TYPE_CHECKING:
    from cds_hooks.case_runner import Authorization, CaseResult
    from cds_hooks.cases import Case

EXIT_CASES_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_SERVICE_ERROR = 3
# A fixed bearer token for `cds-hooks test --url`, from the environment so it stays out of process lists and CI logs.
TEST_TOKEN_VARIABLE = "CDS_HOOKS_TEST_BEARER_TOKEN"


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
    from cds_hooks.feedback_report import FORMATS

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

    test = commands.add_parser(
        "test", help="run fixture cases and report which pass",
        description="Run fixture cases (files, or folders searched for *.json) in-process, or against a running "
                    "server with --url. Exit 0 when all pass, 1 when some fail, 2 when a case file is unreadable or invalid.",
    )
    test.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="a case file or a folder of them")
    test.add_argument("--url", help="base URL of a running service (e.g. https://cds.example.org); default: in-process")
    test.add_argument("--junit", type=Path, metavar="FILE", help="also write the results as JUnit XML")
    test.add_argument("--client-key", type=Path, metavar="PEM",
                      help="with --url: sign a new CDS client JWT for every call with this private key (EC or RSA, unencrypted PEM)")
    test.add_argument("--client-iss", metavar="ISS", help="the tokens' iss: an issuer the server trusts")
    test.add_argument("--client-kid", metavar="KID", help="the kid under which the server knows the public key")
    test.add_argument("--client-tenant", metavar="TENANT", help="the tokens' tenant claim, if the server's issuer names one")
    test.set_defaults(command=_test)

    report = commands.add_parser(
        "feedback-report", help="per card and rule: shown, accepted, overridden, and the override reasons",
        description="Read the issued cards and feedback in the database (setting database_path) and print, per card "
                    "and rule, how many were shown, accepted and overridden, the acceptance rate and the override reasons.",
    )
    report.add_argument("--since", metavar="DATE", help="only cards issued from this date (UTC) or ISO 8601 date-time on")
    report.add_argument("--format", choices=FORMATS, default="table", help="output format (default table)")
    report.add_argument("--chart", type=Path, metavar="FILE", help="also draw a PNG bar chart (needs the 'report' extra)")
    report.set_defaults(command=_feedback_report)
    return parser


def _serve(arguments: argparse.Namespace, settings: Settings) -> int:
    from gunicorn.app.base import BaseApplication

    from cds_hooks.app import create_app
    from cds_hooks.auth import AuthConfigurationError, check_serving_configuration

    settings = settings.for_host(arguments.host)

    # Checked here, before gunicorn starts workers, so a refusal is one clear message and exit status 2.
    if settings.development_mode and not is_loopback(arguments.host):
        print(
            f"cds-hooks serve: development_mode lets any caller make this service fetch from its own loopback "
            f"addresses, and --host {arguments.host} is reachable from other machines. Turn it off and list the "
            "FHIR servers in allowed_fhir_servers instead.",
            file=sys.stderr,
        )
        return EXIT_BAD_INPUT
    try:
        check_serving_configuration(settings, arguments.host, arguments.allow_unauthenticated_non_loopback)
    except AuthConfigurationError as error:
        print(f"cds-hooks serve: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT

    in_use = _port_in_use(arguments.host, arguments.port)
    if in_use:
        print(f"cds-hooks serve: {arguments.host}:{arguments.port} is not free ({in_use}); is the service already running?",
              file=sys.stderr)
        return EXIT_BAD_INPUT

    options = {
        "bind": f"{_bracket_ipv6(arguments.host)}:{arguments.port}",
        "workers": arguments.workers or settings.workers,
        "threads": arguments.threads or settings.threads,
        "worker_class": "gthread",
        # Each worker builds its own app after the fork, so its prefetch thread pool is its own.
        "preload_app": False,
        # Each worker listens on the port itself, and the kernel spreads connections over them. With one shared
        # socket, one worker took all eight connections of a load test and the other idled (bench/RESULTS.md).
        "reuse_port": True,
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
            app = create_app(settings)
            prepare_worker_heap()
            return app

    Server().run()
    return 0


# Young-generation collections per call: Python's default (700 allocations) runs about a hundred of them while a
# 2,000-resource body is parsed and read, each walking what the call has built so far; every object of a call lives
# until the answer is sent, so they find nothing to free. Measured in process, alternating with the default: parsing
# 15-20 % faster, a call on the large HER2-positive record ~4 %, one on a record with no oncology data 9-13 %.
YOUNG_COLLECTION_THRESHOLD = 50_000


def prepare_worker_heap() -> None:
    """Run in each worker once the app is built (and by the benchmark's bare handler, so both are measured alike).

    What start-up built (FHIR models, value sets, card templates) lives as long as the worker. Frozen, the garbage
    collector no longer walks it again and again while a request parses a large body: without this, collections took a
    third of the time of a call on a 2,000-resource record (bench/RESULTS.md). Collections of a call's young objects
    are made rarer for the same reason (YOUNG_COLLECTION_THRESHOLD).
    """
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_COLLECTION_THRESHOLD, older, oldest)


def _run(arguments: argparse.Namespace, settings: Settings) -> int:
    from cds_hooks.engine import Engine

    try:
        body = read_json_file(arguments.request)
    except UnreadableJsonFile as error:
        print(f"cds-hooks run: cannot read {arguments.request}: {error}", file=sys.stderr)
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


def _test(arguments: argparse.Namespace, settings: Settings) -> int:
    from cds_hooks.case_runner import junit_xml, text_report
    from cds_hooks.cases import CaseError, load_cases

    try:
        if arguments.url and not arguments.url.startswith(("http://", "https://")):
            raise ValueError(f"--url takes the service's base URL, such as https://cds.example.org, not {arguments.url!r}")
        authorization = _test_authorization(arguments)
        cases = load_cases(arguments.paths)
    except (CaseError, ValueError) as error:
        print(f"cds-hooks test: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if not cases:
        print(f"cds-hooks test: no case files (*.json) in {', '.join(map(str, arguments.paths))}", file=sys.stderr)
        return EXIT_BAD_INPUT
    results = _run_cases(cases, arguments.url, authorization, settings)
    print(text_report(results), end="")
    if arguments.junit:
        try:
            arguments.junit.parent.mkdir(parents=True, exist_ok=True)
            arguments.junit.write_text(junit_xml(results), "utf-8")
        except OSError as error:
            print(f"cds-hooks test: cannot write {arguments.junit}: {error}", file=sys.stderr)
            return EXIT_BAD_INPUT
    return 0 if all(result.passed for result in results) else EXIT_CASES_FAILED


def _test_authorization(arguments: argparse.Namespace) -> Authorization | None:
    """How `test --url` authenticates: a JWT signed per call, a fixed token from the environment, or nothing."""
    from cds_hooks.case_runner import ClientSigner

    client_options = (arguments.client_key, arguments.client_iss, arguments.client_kid, arguments.client_tenant)
    if any(option is not None for option in client_options):
        if not arguments.url:
            raise ValueError("--client-key, --client-iss, --client-kid and --client-tenant sign calls to a server: give --url")
        if not (arguments.client_key and arguments.client_iss and arguments.client_kid):
            raise ValueError("signing calls needs --client-key, --client-iss and --client-kid together")
        return ClientSigner.from_pem(arguments.client_key, arguments.client_iss, arguments.client_kid, arguments.client_tenant)
    token = os.environ.get(TEST_TOKEN_VARIABLE)
    if token and arguments.url:
        return lambda url: f"Bearer {token}"
    return None


def _run_cases(cases: list[Case], url: str | None, authorization: Authorization | None, settings: Settings) -> list[CaseResult]:
    from cds_hooks.case_runner import run_against_url, run_in_process

    if url:
        import requests

        with requests.Session() as session:
            return [run_against_url(session, url, case, authorization) for case in cases]
    from cds_hooks.engine import Engine

    engine = Engine(settings)
    try:
        return [run_in_process(engine, case) for case in cases]
    finally:
        engine.close()


def _feedback_report(arguments: argparse.Namespace, settings: Settings) -> int:
    import sqlite3

    from cds_hooks import feedback_report
    from cds_hooks.feedback import FeedbackStore

    try:
        since = feedback_report.parse_since(arguments.since) if arguments.since else None
    except ValueError as error:
        print(f"cds-hooks feedback-report: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if not settings.database_path.is_file():
        print(f"cds-hooks feedback-report: no database at {settings.database_path} (setting database_path): "
              "run it where the service runs, or set CDS_HOOKS_DATABASE_PATH", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        summary = FeedbackStore(settings.database_path).summary(since)
    except sqlite3.Error as error:
        print(f"cds-hooks feedback-report: cannot read {settings.database_path}: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if arguments.chart:
        try:
            feedback_report.write_chart(summary, since, arguments.chart)
        except (feedback_report.ChartUnavailable, OSError) as error:
            print(f"cds-hooks feedback-report: {error}", file=sys.stderr)
            return EXIT_BAD_INPUT
    print(feedback_report.render(summary, since, arguments.format), end="")
    return 0


def _service_for(body: Any) -> str | None:
    service = service_for_hook(body.get("hook")) if isinstance(body, dict) else None
    return service.id if service else None


def _port_in_use(host: str, port: int) -> str | None:
    """Why host:port cannot be bound, or None. With reuse_port, a second instance on the same port would otherwise
    share it with the first without a word, and a request would reach either one."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    except OSError as error:
        return error.strerror or str(error)
    return None


def _bracket_ipv6(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


if __name__ == "__main__":
    sys.exit(main())
