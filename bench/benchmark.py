"""Side by side, in one run: the service and a bare Flask handler that only parses the same JSON body.

    make bench            # or: .venv/bin/python -m bench.benchmark [--quick]

Both run under gunicorn with the same worker class, workers and threads. For each large record and hook:
sequential latency over one kept-alive connection (requests alternate between the two servers), throughput
with `hey` at several concurrencies (the median of three rounds, runs alternating), and peak RSS per worker. Requests without prefetch
make the service fetch from a local FHIR endpoint (bench/fhir_endpoint.py) that waits FHIR_DELAY_SECONDS before
each answer; their wall time is set against the slowest single fetch and the sum of all fetches. Writes bench/RESULTS.md and
bench/latency.png. Authentication is off (CDS_HOOKS_AUTH_REQUIRED=false) for both.
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import requests

from bench.fhir_endpoint import ANSWERS_VARIABLE, BASE_PATH, prepare_answers
from bench.generate import PATIENTS, patient_bundle, write_bodies
from bench.servers import THREADS, WORKERS, Server, free_port
from bench.timing import parse_after_idle, parse_and_evaluate
from cds_hooks.cases import card_id
from cds_hooks.engine import Engine
from cds_hooks.fhir_views import HISTORY_VIEWS
from cds_hooks.memory_fhir import InMemoryFhirStore
from cds_hooks.prefetch import render_template
from cds_hooks.protocol.request import parse_hook_request
from cds_hooks.services import PREFETCH, service_for_hook
from cds_hooks.settings import Settings

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
VENV_BIN = Path(sys.executable).parent
CONCURRENCY = (1, 8, 32)
# The case whose parse and evaluation, timed in the benchmark's own process, say how fast the host was.
HOST_SPEED_CASE = "her2pos-order-select-full"
HOST_SPEED_SAMPLES = 50
# About the idle time of a server between two requests of the sequential runs.
IDLE_SECONDS = 0.01
# The FHIR endpoint sleeps in a thread per query: enough for every key of concurrent fallback requests.
FHIR_ENDPOINT_THREADS = 32


@dataclass(frozen=True)
class Plan:
    warm_up: int = 50
    sequential: int = 500
    fallback: int = 200
    fetch_samples: int = 30
    load_seconds: float = 4.0
    # One `hey` run on this 2-core machine varies by up to 2x from the next: each figure is a median of rounds.
    load_rounds: int = 3
    host_speed_samples: int = HOST_SPEED_SAMPLES


QUICK = Plan(warm_up=5, sequential=40, fallback=20, fetch_samples=5, load_seconds=1.0, load_rounds=1, host_speed_samples=5)


@dataclass(frozen=True)
class Scenario:
    patient: str
    hook: str
    mode: str  # "full" prefetch, or "none" (fetched from the FHIR endpoint)
    body: Path

    @property
    def key(self) -> str:
        return f"{self.patient}-{self.hook}-{self.mode}"

    @property
    def service_id(self) -> str:
        return service_for_hook(self.hook).id


@dataclass(frozen=True)
class HostSpeed:
    """Median ms in the benchmark's own process: parsing a body back to back and after the CPU idled, and
    `Engine.evaluate` on it back to back."""

    parse: float
    parse_after_idle: float
    evaluate: float


@dataclass(frozen=True)
class HostSpeedCheck:
    """A run's host-speed timings: `case` timed `samples` times at the start and at the end, idling `idle_seconds`
    before each parse after idle."""

    case: str
    samples: int
    idle_seconds: float
    start: HostSpeed
    end: HostSpeed


@dataclass
class Results:
    started: datetime
    scenarios: list[Scenario]
    latency: dict[str, dict[str, list[float]]] = field(default_factory=dict)  # scenario -> server -> ms
    throughput: dict[str, dict[str, dict[int, float]]] = field(default_factory=dict)  # scenario -> server -> c -> req/s
    fetches: dict[str, dict[str, float]] = field(default_factory=dict)  # patient -> prefetch key -> median ms
    cards: dict[str, list[str]] = field(default_factory=dict)
    prefetch_resources: dict[str, int] = field(default_factory=dict)
    record_sizes: dict[str, tuple[int, int]] = field(default_factory=dict)  # patient -> (resources, medication records)
    body_bytes: dict[str, int] = field(default_factory=dict)
    steps: dict[str, dict[str, float]] = field(default_factory=dict)  # scenario -> engine step -> median ms
    keys_fetched: dict[str, float] = field(default_factory=dict)  # scenario -> median prefetch keys fetched per call
    rss_mb: dict[str, list[float]] = field(default_factory=dict)
    load_runs: tuple[int, float] = (0, 0.0)  # rounds of `hey`, seconds each
    revision: str = "unknown"  # the commit measured
    host_speed: HostSpeedCheck | None = None
    seconds: float = 0.0


# --- servers ------------------------------------------------------------------------------------------


def our_service(work: Path) -> Server:
    port = free_port()
    environment = {
        **os.environ,
        "CDS_HOOKS_AUTH_REQUIRED": "false",
        # Lets the service fetch from the loopback FHIR endpoint; `cds-hooks serve` allows it on loopback only.
        "CDS_HOOKS_DEVELOPMENT_MODE": "true",
        "CDS_HOOKS_DATABASE_PATH": str(work / "cds-hooks.sqlite3"),
    }
    command = [str(VENV_BIN / "cds-hooks"), "serve", "--host", "127.0.0.1", "--port", str(port),
               "--workers", str(WORKERS), "--threads", str(THREADS)]
    return Server("service", command, port, work / "service.log", environment, ROOT, WORKERS)


def fhir_endpoint(work: Path, bundles: dict[str, dict[str, Any]]) -> Server:
    """The FHIR endpoint, its answers to every prefetch query of the records prepared first (each on one page)."""
    answers = work / "fhir-answers.json"
    resources = [entry["resource"] for bundle in bundles.values() for entry in bundle["entry"]]
    prepare_answers(resources, [url for bundle in bundles.values() for url in prefetch_queries(bundle).values()], answers)
    port = free_port()
    command = [str(VENV_BIN / "gunicorn"), "--bind", f"127.0.0.1:{port}", "--worker-class", "gthread", "--workers", "1",
               "--threads", str(FHIR_ENDPOINT_THREADS), "--log-level", "warning", "bench.fhir_endpoint:app"]
    return Server("fhir", command, port, work / "fhir.log", {**os.environ, ANSWERS_VARIABLE: str(answers)}, ROOT, 1)


def fhir_base_url(server: Server) -> str:
    return f"http://127.0.0.1:{server.port}{BASE_PATH}"


def bare_handler(work: Path) -> Server:
    port = free_port()
    # The options `cds-hooks serve` gives gunicorn.
    command = [str(VENV_BIN / "gunicorn"), "--bind", f"127.0.0.1:{port}", "--worker-class", "gthread",
               "--workers", str(WORKERS), "--threads", str(THREADS), "--timeout", "30", "--graceful-timeout", "10",
               "--reuse-port", "--log-level", "warning", "bench.bare_app:app"]
    return Server("bare", command, port, work / "bare.log", dict(os.environ), ROOT, WORKERS)


# --- measurements --------------------------------------------------------------------------------------


class Client:
    """One kept-alive HTTP connection to a server."""

    def __init__(self, server: Server) -> None:
        self.connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)

    def post(self, path: str, body: bytes, request_id: str) -> tuple[float, dict[str, Any]]:
        started = time.perf_counter()
        self.connection.request("POST", path, body, {"Content-Type": "application/json", "X-Request-Id": request_id})
        response = self.connection.getresponse()
        payload = response.read()
        elapsed = (time.perf_counter() - started) * 1000
        if response.status != 200:
            raise RuntimeError(f"{path} answered {response.status}: {payload[:500]!r}")
        return elapsed, json.loads(payload)

    def close(self) -> None:
        self.connection.close()


def sequential(scenario: Scenario, servers: list[Server], warm_up: int, count: int, results: Results) -> None:
    """Latency one request at a time, alternating between the servers, after a warm-up."""
    body = scenario.body.read_bytes()
    path = f"/cds-services/{scenario.service_id}"
    clients = [Client(server) for server in servers]
    timings: dict[str, list[float]] = {server.name: [] for server in servers}
    for index in range(warm_up + count):
        for server, client in zip(servers, clients):
            elapsed, answer = client.post(path, body, f"{scenario.key}-{index}")
            if index >= warm_up:
                timings[server.name].append(elapsed)
            if server.name == "service" and index == 0:
                results.cards[scenario.key] = [card_id(card) for card in answer["cards"]]
    for client in clients:
        client.close()
    results.latency[scenario.key] = timings


def throughput(scenario: Scenario, servers: list[Server], seconds: float, rounds: int, results: Results) -> None:
    """Median requests per second with `hey` over `rounds` runs at each concurrency; the servers take turns in each."""
    runs: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for concurrency in CONCURRENCY:
        for _ in range(rounds):
            for server in servers:
                url = f"http://127.0.0.1:{server.port}/cds-services/{scenario.service_id}"
                output = subprocess.run(
                    ["hey", "-z", f"{seconds}s", "-c", str(concurrency), "-m", "POST", "-T", "application/json",
                     "-D", str(scenario.body), url],
                    check=True, capture_output=True, text=True,
                ).stdout
                statuses = dict(re.findall(r"\[(\d+)\]\s+(\d+) responses", output))
                if set(statuses) != {"200"} or "Error distribution" in output:
                    raise RuntimeError(f"hey against {server.name} for {scenario.key}: {output[-1500:]}")
                runs[server.name][concurrency].append(float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)))
    results.throughput[scenario.key] = {
        name: {concurrency: statistics.median(rates) for concurrency, rates in by_level.items()} for name, by_level in runs.items()
    }


def prefetch_queries(bundle: dict[str, Any]) -> dict[str, str]:
    """The relative FHIR URL of each prefetch key for the record's patient (every service shares PREFETCH)."""
    request = parse_hook_request(
        {"hook": "patient-view", "hookInstance": "fetch-timing",
         "context": {"userId": "Practitioner/x", "patientId": InMemoryFhirStore.from_bundle(bundle).patient_id()}},
        "patient-view",
    )
    return {key: render_template(template, request) for key, template in PREFETCH.items()}


def fetch_times(bundle: dict[str, Any], base_url: str, samples: int) -> dict[str, float]:
    """Median time of each prefetch query on its own against the FHIR endpoint, over a kept-alive connection."""
    medians = {}
    with requests.Session() as session:
        for key, relative_url in prefetch_queries(bundle).items():
            times = []
            for _ in range(samples):
                started = time.perf_counter()
                session.get(f"{base_url}/{relative_url}", headers={"Accept": "application/fhir+json"}, timeout=10).raise_for_status()
                times.append((time.perf_counter() - started) * 1000)
            medians[key] = statistics.median(times)
    return medians


def engine_steps(log: Path) -> tuple[dict[str, dict[str, float]], dict[str, float]]:
    """Median of the engine's own step timings per scenario, and of the prefetch keys it fetched, from the service's
    access log (request ids)."""
    steps: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    fetched: dict[str, list[int]] = defaultdict(list)
    for line in log.read_text("utf-8", errors="replace").splitlines():
        if not line.startswith("{"):
            continue
        entry = json.loads(line)
        request_id, timings = entry.get("request_id") or "", entry.get("timings_ms")
        match = re.fullmatch(r"(.+)-(\d+)", request_id)
        if not timings or not match:
            continue
        for step, milliseconds in timings.items():
            steps[match.group(1)][step].append(milliseconds)
        steps[match.group(1)]["request (access log)"].append(entry["duration_ms"])
        fetched[match.group(1)].append(len(entry.get("fetched_keys") or ()))
    return (
        {key: {step: statistics.median(values) for step, values in found.items()} for key, found in steps.items()},
        {key: statistics.median(counts) for key, counts in fetched.items()},
    )


def peak_rss_mb(server: Server) -> list[float]:
    """Each worker's peak RSS (VmHWM); the master only forks them."""
    peaks = server.memory_kib("VmHWM")
    return [kib / 1024 for pid, kib in peaks.items() if pid != server.master_pid]


def host_speed(scenario: Scenario, work: Path, samples: int) -> HostSpeed:
    """How fast this host runs the same code now, timed in this process while no server is busy.

    This 2-core VM measured the bare handler's p50 at 4.4 and at 7.1 ms within one day, and the service's ratios
    moved with it. Back to back, a parse took its usual 1.6 ms even then; after the CPU had idled for 5 to 20 ms, as
    a server's does between two requests, the same parse took 3 to 5.6 ms. Taken at the start and the end of a run,
    these say whether two runs can be compared.
    """
    body = scenario.body.read_bytes()
    engine = Engine(Settings(database_path=work / "host-speed.sqlite3", auth_required=False))
    try:
        parse_and_evaluate(engine, scenario.service_id, body, samples=5)  # what each process builds on first use
        back_to_back = parse_and_evaluate(engine, scenario.service_id, body, samples)
    finally:
        engine.close()
    idle_parse_ms = parse_after_idle(body, samples, IDLE_SECONDS)
    return HostSpeed(statistics.median(back_to_back.parse_ms), statistics.median(idle_parse_ms),
                     statistics.median(back_to_back.evaluate_ms))


def revision() -> str:
    """The commit measured, marked when the service's code differs from it."""
    def git(*arguments: str) -> str:
        return subprocess.run(["git", *arguments], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()

    try:
        commit = git("rev-parse", "--short", "HEAD")
        # The service and the whole harness; not what the benchmark writes itself.
        changed = git("status", "--porcelain", "--", "cds_hooks", "cards", "setup.cfg", "bench", ":!bench/RESULTS.md",
                      ":!bench/latency.png", ":!bench/profile-*.txt")
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return f"{commit}, with uncommitted changes" if changed else commit


def ensure_hey() -> None:
    if shutil.which("hey"):
        return
    print("installing hey (Debian package) for the throughput runs", file=sys.stderr)
    subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", "hey"], check=True,
                   env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})


# --- the run -------------------------------------------------------------------------------------------


def run(plan: Plan) -> Results:
    ensure_hey()
    started = time.monotonic()
    today = date.today()
    bundles = {name: patient_bundle(name, today) for name in PATIENTS}
    with tempfile.TemporaryDirectory(prefix="cds-bench-") as folder, fhir_endpoint(Path(folder), bundles) as fhir:
        work = Path(folder)
        base_url = fhir_base_url(fhir)
        scenarios = [Scenario(patient, hook, mode, path) for patient, hook, mode, path in write_bodies(work, bundles, today, base_url)]
        results = Results(datetime.now(timezone.utc), scenarios, revision=revision())
        speed_case = next(s for s in scenarios if s.key == HOST_SPEED_CASE)
        speed_at_start = host_speed(speed_case, work, plan.host_speed_samples)
        for scenario in scenarios:
            results.body_bytes[scenario.key] = scenario.body.stat().st_size
            if scenario.mode == "full":
                prefetch = json.loads(scenario.body.read_bytes())["prefetch"]
                results.prefetch_resources[scenario.key] = sum(len(value.get("entry", [])) if value.get("resourceType") == "Bundle" else 1
                                                               for value in prefetch.values() if value)
        for patient, bundle in bundles.items():
            types = [entry["resource"]["resourceType"] for entry in bundle["entry"]]
            results.record_sizes[patient] = (len(types), sum(kind in HISTORY_VIEWS for kind in types))
            results.fetches[patient] = fetch_times(bundle, base_url, plan.fetch_samples)
        with our_service(work) as ours, bare_handler(work) as bare:
            servers = [ours, bare]
            for scenario in scenarios:
                if scenario.mode == "full":
                    print(f"sequential {scenario.key}", file=sys.stderr)
                    sequential(scenario, servers, plan.warm_up, plan.sequential, results)
                else:
                    print(f"fallback {scenario.key}", file=sys.stderr)
                    sequential(scenario, [ours], plan.warm_up // 5, plan.fallback, results)
            results.load_runs = (plan.load_rounds, plan.load_seconds)
            for scenario in scenarios:
                if scenario.mode == "full":
                    print(f"throughput {scenario.key}", file=sys.stderr)
                    throughput(scenario, servers, plan.load_seconds, plan.load_rounds, results)
            results.rss_mb = {server.name: peak_rss_mb(server) for server in servers}
        results.host_speed = HostSpeedCheck(HOST_SPEED_CASE, plan.host_speed_samples, IDLE_SECONDS, speed_at_start,
                                            host_speed(speed_case, work, plan.host_speed_samples))
        results.steps, results.keys_fetched = engine_steps(work / "service.log")
    results.seconds = time.monotonic() - started
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.benchmark", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few requests per case: checks the harness, not the service")
    parser.add_argument("--output", type=Path, default=BENCH, help="folder for RESULTS.md and latency.png (default bench/)")
    arguments = parser.parse_args(argv)
    from bench.report import write_report

    results = run(QUICK if arguments.quick else Plan())
    write_report(results, arguments.output, machine(), quick=arguments.quick)
    print(f"wrote {arguments.output / 'RESULTS.md'} and {arguments.output / 'latency.png'} in {results.seconds:.0f} s", file=sys.stderr)
    return 0


def machine() -> dict[str, str]:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    memory_kb = int(next(line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal")))
    debian = Path("/etc/debian_version").read_text().strip() if Path("/etc/debian_version").exists() else "?"
    hey = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", "hey"], capture_output=True, text=True).stdout or "?"
    versions = {name: metadata.version(name) for name in ("flask", "gunicorn", "fhir.resources", "pydantic", "werkzeug", "msgspec")}
    return {
        "CPU": f"{cpu}, {os.cpu_count()} cores",
        "memory": f"{memory_kb / 1024 / 1024:.1f} GiB",
        "system": f"Debian {debian}, Linux {platform.release()}",
        "Python": platform.python_version(),
        "packages": ", ".join(f"{name} {version}" for name, version in versions.items()),
        "load tool": f"hey {hey}",
    }


if __name__ == "__main__":
    sys.exit(main())
