"""Sustained load on `cds-hooks serve`: N concurrent keep-alive clients post a realistic order-sign request for a
fixed time; prints throughput, p50/p99 latency, errors and the RSS of gunicorn's master and workers.

Not a test: run it by hand on an otherwise idle machine (clients and server share its cores):

    .venv/bin/python bench/load.py [--clients 8] [--seconds 60] [--request FILE] [--workers N] [--threads N]

The server runs on a free loopback port with authentication off (CDS_HOOKS_AUTH_REQUIRED=false) and a fresh
SQLite file in a temporary folder. Exits 1 when any request failed or a worker was replaced during the run.
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Run as a script, only bench/ itself is on the path; the project root makes `bench.servers` importable.
sys.path.insert(0, str(ROOT))
from bench.servers import Server, free_port  # noqa: E402
from cds_hooks.services import service_for_hook  # noqa: E402

DEFAULT_REQUEST = ROOT / "fixtures" / "requests" / "order-sign-trastuzumab-while-doxorubicin-active.json"
WARM_UP_SECONDS = 5


def main() -> int:
    arguments = _parser().parse_args()
    body = arguments.request.read_bytes()
    path = f"/cds-services/{service_for_hook(json.loads(body)['hook']).id}"
    with tempfile.TemporaryDirectory(prefix="cds-hooks-load-") as work, cds_hooks_serve(Path(work), arguments) as server:
        _check_first_answer(server.port, path, body)
        # Warm-up: every client's connection open, every worker's models and caches built, before RSS is read.
        run_clients(server.port, path, body, arguments.clients, WARM_UP_SECONDS)
        rss_before = server.memory_kib("VmRSS")
        run = run_clients(server.port, path, body, arguments.clients, arguments.seconds)
        rss_after = server.memory_kib("VmRSS")
    replaced = sorted(set(rss_before) - set(rss_after))
    _report(arguments, path, run, rss_before, rss_after, replaced)
    return 1 if run.errors or replaced or not run.latencies_ms else 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients, one kept-alive connection each (default 8)")
    parser.add_argument("--seconds", type=float, default=60, help="measured duration, after a 5 s warm-up (default 60)")
    parser.add_argument("--request", type=Path, default=DEFAULT_REQUEST, help="CDS Hooks request file to post (default: %(default)s)")
    parser.add_argument("--workers", type=int, help="gunicorn workers (default: the `workers` setting)")
    parser.add_argument("--threads", type=int, help="threads per worker (default: the `threads` setting)")
    return parser


# --- the server ----------------------------------------------------------------------------------------------------


def cds_hooks_serve(work: Path, arguments: argparse.Namespace) -> Server:
    """`cds-hooks serve` on a free loopback port, with a fresh database and its log in the work folder."""
    port = free_port()
    command = [sys.executable, "-m", "cds_hooks.cli", "serve", "--host", "127.0.0.1", "--port", str(port)]
    for option in ("workers", "threads"):
        if getattr(arguments, option):
            command += [f"--{option}", str(getattr(arguments, option))]
    environment = {**os.environ, "CDS_HOOKS_AUTH_REQUIRED": "false",
                   "CDS_HOOKS_DATABASE_PATH": str(work / "cds-hooks.sqlite3")}
    return Server("cds-hooks serve", command, port, work / "server.log", environment, work)


# --- the clients ---------------------------------------------------------------------------------------------------


@dataclass
class Run:
    seconds: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    errors: int = 0
    first_error: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def failed(self, reason: str) -> None:
        with self.lock:
            self.errors += 1
            self.first_error = self.first_error or reason


def _check_first_answer(port: int, path: str, body: bytes) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    connection.request("POST", path, body, {"Content-Type": "application/json"})
    response = connection.getresponse()
    answer = response.read()
    connection.close()
    if response.status != 200 or not json.loads(answer).get("cards"):
        raise SystemExit(f"the request does not get cards ({response.status}): {answer[:500]!r}")


def run_clients(port: int, path: str, body: bytes, clients: int, seconds: float) -> Run:
    """`clients` threads, each posting `body` back to back on its own kept-alive connection, for `seconds`."""
    run = Run()
    deadline = time.perf_counter() + seconds

    def client() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        latencies: list[float] = []
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            try:
                connection.request("POST", path, body, {"Content-Type": "application/json"})
                response = connection.getresponse()
                answer = response.read()
            except (OSError, http.client.HTTPException) as error:
                run.failed(f"{type(error).__name__}: {error}")
                connection.close()  # reconnects on the next request
                continue
            latencies.append((time.perf_counter() - started) * 1000)
            if response.status != 200:
                run.failed(f"HTTP {response.status}: {answer[:300]!r}")
        connection.close()
        with run.lock:
            run.latencies_ms += latencies

    started = time.perf_counter()
    threads = [threading.Thread(target=client, name=f"client-{index}") for index in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    run.seconds = time.perf_counter() - started
    return run


# --- the report ----------------------------------------------------------------------------------------------------


def _report(arguments: argparse.Namespace, path: str, run: Run, rss_before: dict[int, int], rss_after: dict[int, int],
            replaced: list[int]) -> None:
    count = len(run.latencies_ms)
    print(f"load: {arguments.clients} clients x {arguments.seconds:g} s (after {WARM_UP_SECONDS} s warm-up), "
          f"POST {path} with {arguments.request.name}")
    print(f"requests: {count}   throughput: {count / run.seconds:.1f}/s   errors: {run.errors}")
    if run.first_error:
        print(f"first error: {run.first_error}")
    if count:
        percentiles = statistics.quantiles(run.latencies_ms, n=100, method="inclusive")
        print(f"latency ms: p50 {percentiles[49]:.1f}   p90 {percentiles[89]:.1f}   p99 {percentiles[98]:.1f}   "
              f"max {max(run.latencies_ms):.1f}")
    master = next(iter(rss_before))
    print("RSS MiB after warm-up -> end:")
    for pid, before in rss_before.items():
        role = "master" if pid == master else "worker"
        after = rss_after.get(pid)
        change = f"{after / 1024:.1f} ({(after - before) / 1024:+.1f})" if after is not None else "gone (replaced)"
        print(f"  {role} {pid}: {before / 1024:.1f} -> {change}")
    kept = [pid for pid in rss_before if pid in rss_after]
    total_before = sum(rss_before[pid] for pid in kept)
    total_after = sum(rss_after[pid] for pid in kept)
    print(f"  total: {total_before / 1024:.1f} -> {total_after / 1024:.1f} ({(total_after - total_before) / 1024:+.1f})")
    if replaced:
        print(f"workers replaced during the run (crash or timeout): {replaced}")


if __name__ == "__main__":
    sys.exit(main())
