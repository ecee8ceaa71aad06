"""A gunicorn server for the benchmark scripts: started on a free loopback port, stopped on exit, its master's and
workers' memory read from /proc (Linux only)."""
from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

# The gunicorn configuration the benchmark gives both servers.
WORKERS = 2
THREADS = 4
START_TIMEOUT_SECONDS = 30
# gunicorn gives its workers 10 s (graceful_timeout) to finish their requests after SIGTERM.
STOP_TIMEOUT_SECONDS = 15


class Server:
    """A gunicorn master and its workers, its output in `log`; stopped with SIGTERM on exit.

    With `workers`, starting also waits until the master has forked that many, so memory readings cover them all.
    """

    def __init__(self, name: str, command: list[str], port: int, log: Path, environment: dict[str, str], cwd: Path,
                 workers: int | None = None) -> None:
        self.name, self.port, self.log = name, port, log
        self._command, self._environment, self._cwd, self._workers = command, environment, cwd, workers
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Server:
        with self.log.open("wb") as log:
            self._process = subprocess.Popen(self._command, cwd=self._cwd, env=self._environment, stdout=log, stderr=log)
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise SystemExit(f"{self.name} exited with {self._process.returncode}:\n{self._log_tail()}")
            if _healthy(self.port) and (self._workers is None or len(self.worker_pids()) == self._workers):
                return self
            time.sleep(0.1)
        self.__exit__()
        raise SystemExit(f"{self.name} was not ready within {START_TIMEOUT_SECONDS} s:\n{self._log_tail()}")

    def __exit__(self, *exc_info: object) -> None:
        if self._process is None or self._process.poll() is not None:
            return
        self._process.send_signal(signal.SIGTERM)
        try:
            self._process.wait(timeout=STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()

    @property
    def master_pid(self) -> int:
        assert self._process is not None
        return self._process.pid

    def worker_pids(self) -> list[int]:
        return sorted(pid for pid in _all_pids() if _status_field(pid, "PPid") == str(self.master_pid))

    def memory_kib(self, field: str) -> dict[int, int]:
        """A /proc/<pid>/status memory field (VmRSS, VmHWM, ...) in KiB, for the master (first) and each worker."""
        found = {}
        for pid in [self.master_pid, *self.worker_pids()]:
            value = _status_field(pid, field)
            if value:  # empty when the process ended after it was listed
                found[pid] = int(value.split()[0])
        return found

    def _log_tail(self) -> str:
        return self.log.read_text("utf-8", "replace")[-3000:]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _healthy(port: int) -> bool:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
    try:
        connection.request("GET", "/healthz")
        return connection.getresponse().status == 200
    except (OSError, http.client.HTTPException):  # not listening yet, or still starting its workers
        return False
    finally:
        connection.close()


def _all_pids() -> list[int]:
    return [int(entry) for entry in os.listdir("/proc") if entry.isdigit()]


def _status_field(pid: int, name: str) -> str:
    """One field of /proc/<pid>/status; empty when the process is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(name + ":"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""
