"""The fixture-case runner: in-process and over HTTP, with a readable report and JUnit XML; and `cds-hooks test`,
run as a hospital runs it on its own folder of cases."""
from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ElementTree

import pytest
import requests
from cryptography.hazmat.primitives import serialization

from cds_hooks.case_runner import junit_xml, run_against_url, run_in_process, text_report
from cds_hooks.cases import load_case
from cds_hooks.engine import Engine
from cds_hooks.settings import Settings, TrustedIssuer

from .conftest import FIXTURES, SERVICE_LOG, LiveServer, SigningKey
from .test_cli import REQUEST, run_cli

FIRING = FIXTURES / "cases" / "anthracycline-trastuzumab-draft-while-doxorubicin-active.json"
PATIENT = FIXTURES / "patients" / "her2pos-metastatic-on-doxorubicin.json"
CLIENT_ISS = "https://ehr.example.org"


@pytest.fixture(scope="module")
def engine():
    from cds_hooks.settings import Settings

    engine = Engine(Settings())
    yield engine
    engine.close()


def wrong_expectation(tmp_path, expect):
    data = json.loads(FIRING.read_text())
    data["patient"] = str(PATIENT)
    data["expect"] = expect
    path = tmp_path / "wrong-expectation.json"
    path.write_text(json.dumps(data))
    return load_case(path)


def test_passing_case_in_process(engine):
    result = run_in_process(engine, load_case(FIRING))
    assert result.passed
    assert ("anthracycline-with-trastuzumab", "critical") in result.cards


def test_failing_case_reports_what_differed(engine, tmp_path):
    case = wrong_expectation(tmp_path, {"cards": [{"card": "anthracycline-with-trastuzumab", "indicator": "info"}],
                                        "absent": ["anthracycline-with-trastuzumab"]})
    result = run_in_process(engine, case)
    assert not result.passed
    report = text_report([result])
    assert "FAIL  wrong-expectation" in report
    assert "expected: anthracycline-with-trastuzumab (info)" in report
    assert "got: anthracycline-with-trastuzumab (critical)" in report
    assert "must not appear" in report
    assert report.strip().endswith("0 passed, 1 failed")


def test_empty_expectation_fails_when_cards_come(engine, tmp_path):
    result = run_in_process(engine, wrong_expectation(tmp_path, {"empty": True}))
    assert not result.passed and "expected exactly" in result.problems[0]


def test_against_a_running_server(live_server: LiveServer):
    with requests.Session() as session:
        result = run_against_url(session, live_server.base_url, load_case(FIRING))
    assert result.passed, result.problems


def test_unreachable_server_is_a_failure_not_a_crash():
    with requests.Session() as session:
        result = run_against_url(session, "http://127.0.0.1:9", load_case(FIRING))
    assert not result.passed and "got 0" in result.problems[0]


def test_junit_xml_lists_each_case_and_failure(engine, tmp_path):
    results = [run_in_process(engine, load_case(FIRING)), run_in_process(engine, wrong_expectation(tmp_path, {"empty": True}))]
    suite = ElementTree.fromstring(junit_xml(results))
    assert suite.get("tests") == "2" and suite.get("failures") == "1"
    names = [case.get("name") for case in suite.iter("testcase")]
    assert names == ["anthracycline-trastuzumab-draft-while-doxorubicin-active", "wrong-expectation"]
    assert suite.find("testcase[@name='wrong-expectation']/failure") is not None


# --- `cds-hooks test` ------------------------------------------------------------------------------------------

def hospital_folder(tmp_path, expect_from_request=None):
    """A hospital's own folder: a case built from a patient Bundle, and one from a captured request, in subfolders."""
    (tmp_path / "patients").mkdir()
    (tmp_path / "requests").mkdir()
    shutil.copy(PATIENT, tmp_path / "patients" / PATIENT.name)
    shutil.copy(REQUEST, tmp_path / "requests" / REQUEST.name)
    from_parts = json.loads(FIRING.read_text())
    from_parts["patient"] = f"../../patients/{PATIENT.name}"
    from_request = {
        "description": "Trastuzumab signed while doxorubicin is active, as our EHR sends it",
        "request": f"../../requests/{REQUEST.name}",
        "expect": expect_from_request or {"cards": [{"card": "anthracycline-with-trastuzumab", "indicator": "critical"}]},
    }
    for folder, name, case in (("order-select", "trastuzumab-with-doxorubicin", from_parts),
                               ("order-sign", "signed-trastuzumab-with-doxorubicin", from_request)):
        (tmp_path / "cases" / folder).mkdir(parents=True, exist_ok=True)
        (tmp_path / "cases" / folder / f"{name}.json").write_text(json.dumps(case))
    return tmp_path / "cases"


def test_cli_runs_a_folder_of_cases_in_process_and_writes_junit(tmp_path):
    cases = hospital_folder(tmp_path)
    result = run_cli("test", str(cases), "--junit", str(tmp_path / "reports" / "cases.xml"), cwd=tmp_path)
    SERVICE_LOG.add_output(result.stderr)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "PASS  trastuzumab-with-doxorubicin" in result.stdout
    assert "PASS  signed-trastuzumab-with-doxorubicin" in result.stdout
    assert result.stdout.splitlines()[-1] == "2 passed, 0 failed"
    suite = ElementTree.parse(tmp_path / "reports" / "cases.xml").getroot()
    assert (suite.get("tests"), suite.get("failures")) == ("2", "0")


def test_cli_reports_what_differed_and_exits_1(tmp_path):
    cases = hospital_folder(tmp_path, expect_from_request={
        "cards": [{"card": "anthracycline-with-trastuzumab", "indicator": "warning"}], "absent": ["cardiac-baseline-lvef-missing"],
    })
    result = run_cli("test", str(cases), "--junit", str(tmp_path / "cases.xml"), cwd=tmp_path)
    SERVICE_LOG.add_output(result.stderr)
    assert result.returncode == 1, result.stdout + result.stderr
    failure = result.stdout.split("FAIL  signed-trastuzumab-with-doxorubicin")[1]
    assert "order-sign/signed-trastuzumab-with-doxorubicin.json: Trastuzumab signed while doxorubicin is active" in failure
    assert "expected: anthracycline-with-trastuzumab (warning)" in failure
    assert "got: anthracycline-with-trastuzumab (critical)" in failure
    assert "- card anthracycline-with-trastuzumab is critical, expected warning" in failure
    assert "- card cardiac-baseline-lvef-missing must not appear" in failure
    assert result.stdout.splitlines()[-1] == "1 passed, 1 failed"
    assert ElementTree.parse(tmp_path / "cases.xml").getroot().get("failures") == "1"


@pytest.mark.parametrize("content, message", [
    ("{not json", "Expecting property name"),
    ({"request": {"hook": "patient-view", "context": {"userId": "Practitioner/1", "patientId": "1"}}, "expect": {"empty": True}},
     "not a valid her2-patient-view request: the CDS Hooks request is not valid; hookInstance is required"),
])
def test_cli_refuses_a_broken_case_file_with_exit_2_and_no_traceback(tmp_path, content, message):
    # Which mistakes make a case broken is tested on cases.load_case (tests/test_cases.py); here, how the CLI says so.
    (tmp_path / "broken.json").write_text(content if isinstance(content, str) else json.dumps(content))
    result = run_cli("test", str(FIRING), str(tmp_path / "broken.json"), cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.startswith(f"cds-hooks test: {tmp_path / 'broken.json'}") and message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""


def test_cli_refuses_a_path_without_cases(tmp_path):
    (tmp_path / "empty").mkdir()
    result = run_cli("test", str(tmp_path / "empty"), cwd=tmp_path)
    assert result.returncode == 2 and "no case files" in result.stderr
    result = run_cli("test", str(tmp_path / "nowhere"), cwd=tmp_path)
    assert result.returncode == 2 and "No such file or directory" in result.stderr and "Traceback" not in result.stderr


def test_cli_against_a_running_server(tmp_path, live_server: LiveServer):
    result = run_cli("test", str(hospital_folder(tmp_path)), "--url", live_server.base_url, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines()[-1] == "2 passed, 0 failed"


@pytest.fixture
def authenticating_server(settings: Settings, ec_key: SigningKey, serve_app) -> str:
    """The service with authentication on, trusting the test client's public key, as a hospital deploys it."""
    return serve_app(settings.replace(auth_required=True, trusted_issuers=(TrustedIssuer(iss=CLIENT_ISS, keys=(ec_key.public_jwk(),)),)))


def test_cli_signs_a_new_client_token_for_every_call(tmp_path, ec_key: SigningKey, authenticating_server: str):
    key = tmp_path / "client.pem"
    key.write_bytes(ec_key.private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    cases = hospital_folder(tmp_path)
    unsigned = run_cli("test", str(cases), "--url", authenticating_server, cwd=tmp_path)
    assert unsigned.returncode == 1 and "expected HTTP 200, got 401" in unsigned.stdout
    # Two cases to the same service: the second call would be refused as a replay if the token were reused.
    (cases / "order-sign" / "again.json").write_text((cases / "order-sign" / "signed-trastuzumab-with-doxorubicin.json").read_text())
    signed = run_cli("test", str(cases), "--url", authenticating_server,
                     "--client-key", str(key), "--client-iss", CLIENT_ISS, "--client-kid", ec_key.kid, cwd=tmp_path)
    assert signed.returncode == 0, signed.stdout + signed.stderr
    assert signed.stdout.splitlines()[-1] == "3 passed, 0 failed"


@pytest.mark.parametrize("with_netrc", [False, True], ids=["no-netrc", "netrc-for-the-host"])
def test_cli_sends_a_fixed_bearer_token_from_the_environment(tmp_path, ec_key: SigningKey, authenticating_server: str, with_netrc):
    # requests reads ~/.netrc (or $NETRC) for a call given no auth of its own, and its credentials for the host
    # replace an Authorization header: the service would get the operator's password instead of the token.
    env = {}
    if with_netrc:
        netrc = tmp_path / "netrc"
        netrc.write_text("machine 127.0.0.1\nlogin operator\npassword operator-secret\n")
        netrc.chmod(0o600)
        env["NETRC"] = str(netrc)
    cases = hospital_folder(tmp_path)
    token = ec_key.token(CLIENT_ISS, f"{authenticating_server}/cds-services/her2-order-sign")
    result = run_cli("test", str(cases / "order-sign"), "--url", authenticating_server, cwd=tmp_path,
                     env={"CDS_HOOKS_TEST_BEARER_TOKEN": token, **env})
    assert result.returncode == 0, result.stdout + result.stderr
    assert token not in result.stdout + result.stderr


@pytest.mark.parametrize("arguments, message", [
    (["--client-key", "k.pem", "--client-iss", CLIENT_ISS, "--client-kid", "k1"], "give --url"),
    (["--url", "http://127.0.0.1:9", "--client-key", "k.pem"], "needs --client-key, --client-iss and --client-kid together"),
    (["--url", "http://127.0.0.1:9", "--client-key", "k.pem", "--client-iss", CLIENT_ISS, "--client-kid", "k1"],
     "cannot read the private key"),
    (["--url", "cds.example.org"], "--url takes the service's base URL"),
])
def test_cli_refuses_unusable_server_options(tmp_path, arguments, message):
    (tmp_path / "k.pem").write_text("not a key")
    result = run_cli("test", str(FIRING), *arguments, cwd=tmp_path)
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
