"""The `cds-hooks` command as a user runs it: `run` offline, `serve` under gunicorn, and a non-editable install."""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from cds_hooks.cases import card_id
from cds_hooks.scenarios import ScenarioCatalog

from .conftest import FIXTURES, ROOT, SERVICE_LOG

BIN = Path(sys.executable).parent
REQUEST = FIXTURES / "requests" / "order-sign-trastuzumab-while-doxorubicin-active.json"


def run_cli(*args, cwd, env=None):
    return subprocess.run([str(BIN / "cds-hooks"), *args], cwd=cwd, env={**os.environ, **(env or {})},
                          capture_output=True, text=True, timeout=60)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_run_prints_the_response_for_a_request_file(tmp_path):
    result = run_cli("run", str(REQUEST), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    cards = json.loads(result.stdout)["cards"]
    assert ("anthracycline-with-trastuzumab", "critical") in [(card_id(c), c["indicator"]) for c in cards]


def test_run_reports_a_bad_request_file(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"hook": "order-sign", "context": {}}')
    result = run_cli("run", str(bad), cwd=tmp_path)
    assert result.returncode == 2
    assert "hookInstance is required" in result.stderr


def test_run_reports_a_deeply_nested_file_without_a_traceback(tmp_path):
    nested = tmp_path / "nested.json"
    nested.write_text("[" * 100_000 + "]" * 100_000)
    result = run_cli("run", str(nested), cwd=tmp_path)
    assert result.returncode == 2
    assert "nested too deeply" in result.stderr and "Traceback" not in result.stderr


def test_run_without_prefetch_or_fhir_server_is_a_412(tmp_path):
    request = json.loads(REQUEST.read_text())
    request.pop("prefetch")
    path = tmp_path / "no-prefetch.json"
    path.write_text(json.dumps(request))
    result = run_cli("run", str(path), cwd=tmp_path)
    assert result.returncode == 3
    assert json.loads(result.stderr)["status"] == 412


def test_run_with_unreadable_file(tmp_path):
    result = run_cli("run", str(tmp_path / "missing.json"), cwd=tmp_path)
    assert result.returncode == 2 and "cannot read" in result.stderr


def wait_until_healthy(base_url: str, process: subprocess.Popen, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"server exited: {process.stderr.read()}")
        try:
            if requests.get(base_url + "/healthz", timeout=1).status_code == 200:
                return
        # gunicorn's socket accepts before a worker has loaded the app, so a slow start is a read timeout.
        except (requests.ConnectionError, requests.Timeout):
            time.sleep(0.1)
    raise AssertionError("server did not become healthy")


def test_serve_runs_under_gunicorn_from_any_folder(tmp_path):
    port = free_port()
    process = subprocess.Popen(
        [str(BIN / "cds-hooks"), "serve", "--port", str(port), "--workers", "2"],
        # Authentication off, as `make run` does on loopback; tests/test_auth.py serves with it on.
        cwd=tmp_path, env={**os.environ, "CDS_HOOKS_DATABASE_PATH": str(tmp_path / "db" / "feedback.sqlite3"),
                           "CDS_HOOKS_AUTH_REQUIRED": "false"},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(base_url, process)
        assert len(requests.get(base_url + "/cds-services", timeout=5).json()["services"]) == 3
        # Served on loopback, the preview page is on unless a setting turns it off.
        assert "card preview" in requests.get(base_url + "/", timeout=5).text
        response = requests.post(base_url + "/cds-services/her2-order-sign", json=json.loads(REQUEST.read_text()), timeout=5)
        # Critical cards come first.
        assert response.status_code == 200 and response.json()["cards"][0]["indicator"] == "critical"
        feedback = {"feedback": [{"card": response.json()["cards"][0]["uuid"], "outcome": "overridden",
                                  "outcomeTimestamp": "2026-11-22T13:46:27Z"}]}
        assert requests.post(base_url + "/cds-services/her2-order-sign/feedback", json=feedback, timeout=5).status_code == 200
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=15)
    SERVICE_LOG.add_output(stderr)
    assert (tmp_path / "db" / "feedback.sqlite3").exists()
    assert "Booting worker" in stderr or "Listening at" in stderr


@pytest.mark.parametrize("shared", [False, True], ids=["another program", "another instance (SO_REUSEPORT)"])
def test_serve_refuses_a_port_that_is_taken(tmp_path, shared):
    # The workers listen with SO_REUSEPORT: without this check a second instance would share the port with the first.
    with socket.socket() as taken:
        if shared:
            taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        result = run_cli("serve", "--port", str(taken.getsockname()[1]), cwd=tmp_path,
                         env={"CDS_HOOKS_AUTH_REQUIRED": "false", "CDS_HOOKS_DATABASE_PATH": str(tmp_path / "db.sqlite3")})
    assert result.returncode == 2
    assert "is not free" in result.stderr and "already running" in result.stderr


def test_serve_refuses_development_mode_on_a_host_other_machines_reach(tmp_path):
    result = run_cli("serve", "--host", "0.0.0.0", "--port", str(free_port()), cwd=tmp_path,
                     env={"CDS_HOOKS_DEVELOPMENT_MODE": "true", "CDS_HOOKS_AUTH_REQUIRED": "false"})
    assert result.returncode == 2
    assert "development_mode" in result.stderr and "allowed_fhir_servers" in result.stderr


@pytest.mark.slow
def test_non_editable_install_carries_cards_and_data(tmp_path):
    # Install from a copy: setuptools reuses ./build, and a stale one would hide a packaging mistake.
    source = tmp_path / "source"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(".venv", "build", "var", "*.egg-info", "__pycache__", ".git"))
    target = tmp_path / "site"
    install = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target), str(source)],
                             capture_output=True, text=True, timeout=300)
    assert install.returncode == 0, install.stderr
    check = subprocess.run(
        [sys.executable, "-c", "import sys, json; sys.argv=['cds-hooks','run',sys.argv[1]]; "
         "import cds_hooks, cds_hooks.cli as c; assert 'site' in cds_hooks.__file__, cds_hooks.__file__; c.main(sys.argv[1:])",
         str(REQUEST)],
        cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(target)}, capture_output=True, text=True, timeout=60,
    )
    assert check.returncode == 0, check.stderr
    assert "anthracycline-with-trastuzumab" in [card_id(c) for c in json.loads(check.stdout)["cards"]]
    # The preview page, its scripts and the fixture scenarios it offers ship too.
    preview = subprocess.run(
        [sys.executable, "-c", "import sys; from cds_hooks.app import create_app; from cds_hooks.settings import Settings; "
         "client = create_app(Settings(auth_required=False, preview_enabled=True, database_path=sys.argv[1])).test_client(); "
         "assert all(client.get(p).status_code == 200 for p in ('/', '/preview/static/preview.js', '/preview/static/markdown.js', "
         "'/preview/static/preview.css')); print(len(client.get('/preview/scenarios').json['scenarios']))",
         str(tmp_path / "preview.sqlite3")],
        cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(target)}, capture_output=True, text=True, timeout=60,
    )
    assert preview.returncode == 0, preview.stderr
    assert int(preview.stdout) == len(ScenarioCatalog.load(FIXTURES).listing["scenarios"])


def test_a_worker_heap_is_frozen_and_collects_young_objects_less_often():
    import gc

    from cds_hooks.cli import YOUNG_COLLECTION_THRESHOLD, prepare_worker_heap

    before, frozen = gc.get_threshold(), gc.get_freeze_count()
    try:
        prepare_worker_heap()
        assert gc.get_threshold() == (YOUNG_COLLECTION_THRESHOLD, *before[1:])
        assert gc.get_freeze_count() > frozen
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
