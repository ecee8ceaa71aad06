"""The card preview page (cds_hooks/api/preview.py): when it is served, what its endpoints accept, and the page
itself clicked through in headless Chromium, with screenshots kept in test-artifacts/."""
from __future__ import annotations

import json
import os
import shutil
from datetime import date, timedelta
from typing import Iterator

import pytest
import requests

from cds_hooks.cases import card_id
from cds_hooks.scenarios import ScenarioCatalog
from cds_hooks.settings import Settings, TrustedIssuer

from .conftest import FIXTURES, ROOT

ARTIFACTS = ROOT / "test-artifacts"
ANTHRACYCLINE = "anthracycline-trastuzumab-draft-while-doxorubicin-active"
KATHERINE = "sequencing-katherine-residual-disease-adjuvant-hp"


@pytest.fixture
def preview_url(serve_app, settings: Settings) -> str:
    return serve_app(settings.replace(preview_enabled=True))


@pytest.mark.parametrize(("host", "enabled"), [("127.0.0.1", True), ("::1", True), ("localhost", True),
                                               ("0.0.0.0", False), ("192.0.2.10", False)])
def test_preview_is_on_by_default_only_for_a_loopback_bind(host, enabled):
    assert Settings().for_host(host).preview_enabled is enabled


def test_an_explicit_preview_setting_wins_over_the_bind():
    assert Settings.from_mapping({"preview_enabled": "false"}).for_host("127.0.0.1").preview_enabled is False
    assert Settings.from_mapping({"preview_enabled": "true"}).for_host("0.0.0.0").preview_enabled is True
    assert Settings.from_mapping({"preview_enabled": "auto"}).preview_enabled is None


def test_an_app_not_told_about_its_bind_serves_no_preview(live_server):
    assert live_server.get("/").status_code == 404
    assert live_server.post("/preview/evaluate", {"patient": "no-oncology-history", "hook": "patient-view"}).status_code == 404


def test_the_preview_needs_no_client_token_while_the_cds_services_do(serve_app, settings: Settings, ec_key):
    issuer = TrustedIssuer(iss="https://ehr.example.org", keys=(ec_key.public_jwk(),))
    base_url = serve_app(settings.replace(auth_required=True, trusted_issuers=(issuer,), preview_enabled=True))
    assert requests.get(base_url + "/cds-services", timeout=10).status_code == 401
    page = requests.get(base_url + "/", timeout=10)
    assert page.status_code == 200 and "card preview" in page.text
    assert "default-src 'self'" in page.headers["Content-Security-Policy"]
    evaluated = requests.post(base_url + "/preview/evaluate", json={"patient": "no-oncology-history", "hook": "patient-view"}, timeout=10)
    assert evaluated.status_code == 200 and evaluated.json() == {"service": "her2-patient-view", "response": {"cards": []}}


def test_a_patient_whose_case_was_written_on_an_earlier_day_is_previewed_with_the_case_s_dates(tmp_path):
    for folder in ("patients", "cases"):
        (tmp_path / folder).mkdir()
    shutil.copy(FIXTURES / "patients" / "no-oncology-history.json", tmp_path / "patients")
    (tmp_path / "cases" / "case.json").write_text(json.dumps({
        "hook": "patient-view", "patient": "../patients/no-oncology-history.json",
        "written_on": (date.today() - timedelta(days=10)).isoformat(), "expect": {"empty": True},
    }))
    as_written = json.loads((FIXTURES / "patients" / "no-oncology-history.json").read_text())["entry"][0]["resource"]
    previewed = ScenarioCatalog.load(tmp_path).patients["no-oncology-history"].patient
    assert previewed["birthDate"] == (date.fromisoformat(as_written["birthDate"]) + timedelta(days=10)).isoformat()


def test_scenarios_list_fixture_patients_cases_and_orders(preview_url):
    listing = requests.get(preview_url + "/preview/scenarios", timeout=10).json()
    assert {"her2pos-metastatic-on-doxorubicin", "sequencing-ebc-residual-after-neoadjuvant-thp"} <= {p["name"] for p in listing["patients"]}
    katherine = next(s for s in listing["scenarios"] if s["name"] == KATHERINE)
    assert katherine["patient"] == "sequencing-ebc-residual-after-neoadjuvant-thp" and katherine["hook"] == "order-sign"
    assert [order["id"] for order in katherine["draftOrders"]] == ["draft-trastuzumab", "draft-pertuzumab"]
    assert listing["hooks"] == ["order-select", "order-sign", "patient-view"]
    # Some orders name their drug by medicationReference.
    assert "ado-trastuzumab emtansine" in {order.get("medicationCodeableConcept", {}).get("text") for order in listing["orders"]}


def test_a_draft_order_is_evaluated_for_the_patient_picked(preview_url):
    listing = requests.get(preview_url + "/preview/scenarios", timeout=10).json()
    drafts = next(s for s in listing["scenarios"] if s["name"] == ANTHRACYCLINE)["draftOrders"]
    # Drafted for another fixture patient: the page moves the order to the patient on screen.
    drafts = [{**order, "subject": {"reference": "Patient/someone-else"}} for order in drafts]
    response = requests.post(preview_url + "/preview/evaluate", timeout=10, json={
        "patient": "her2pos-metastatic-on-doxorubicin", "hook": "order-select", "draftOrders": drafts})
    assert response.status_code == 200, response.text
    cards = response.json()["response"]["cards"]
    assert (card_id(cards[0]), cards[0]["indicator"]) == ("anthracycline-with-trastuzumab", "critical")


@pytest.mark.parametrize(("body", "message"), [
    ({"patient": "../patients/no-oncology-history", "hook": "patient-view"}, "bundled fixture patient"),
    ({"patient": "no-oncology-history", "hook": "medication-prescribe"}, "hook must be one of"),
    ({"patient": "no-oncology-history", "hook": "order-sign", "draftOrders": [{"resourceType": "MedicationRequest"}]}, "resourceType and id"),
    ({"patient": "no-oncology-history", "hook": "order-select", "draftOrders": [], "selections": "all"}, "selections"),
    ([], "send {"),
])
def test_the_evaluate_endpoint_accepts_only_a_fixture_patient_a_hook_and_draft_orders(preview_url, body, message):
    response = requests.post(preview_url + "/preview/evaluate", json=body, timeout=10)
    assert response.status_code == 400 and message in response.json()["message"]


# --- The page in a real browser -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    chromium, chromedriver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and chromedriver):
        message = "Chromium and chromedriver are not installed: run scripts/install-browser (make test does) as root"
        if os.environ.get("CI"):
            pytest.fail(f"{message}; CI must run the browser test")
        pytest.skip(message)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    # Debian's own build and driver: nothing is downloaded. No sandbox: as root (CI) Chromium cannot start one.
    options.binary_location = chromium
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars",
                     "--window-size=1360,1150"):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=chromedriver))
    driver.implicitly_wait(0)
    yield driver
    driver.quit()


def test_the_page_shows_cards_as_an_ehr_does(browser, preview_url):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    wait = WebDriverWait(browser, 10)
    ARTIFACTS.mkdir(exist_ok=True)

    def card(card_id: str):
        selector = f'article.card[data-card="{card_id}"]'
        return wait.until(lambda driver: driver.find_elements(By.CSS_SELECTOR, selector) and driver.find_element(By.CSS_SELECTOR, selector))

    def pick(scenario: str):
        Select(browser.find_element(By.ID, "scenario")).select_by_value(scenario)

    browser.get(preview_url + "/")
    wait.until(lambda driver: driver.find_elements(By.CSS_SELECTOR, "#scenario option"))

    # Trastuzumab drafted while doxorubicin is active: one critical card, in red, first.
    pick(ANTHRACYCLINE)
    anthracycline = card("anthracycline-with-trastuzumab")
    assert browser.find_elements(By.CSS_SELECTOR, "article.card")[0] == anthracycline
    indicator = anthracycline.find_element(By.CSS_SELECTOR, ".indicator")
    assert indicator.text.lower() == "critical"
    assert indicator.value_of_css_property("background-color") == "rgba(198, 40, 40, 1)"
    assert anthracycline.value_of_css_property("border-left-color") == "rgba(198, 40, 40, 1)"
    assert "Do not give trastuzumab concurrently with doxorubicin" in anthracycline.find_element(By.CSS_SELECTOR, ".summary").text
    detail = anthracycline.find_element(By.CSS_SELECTOR, ".detail")
    assert "27%" in [strong.text for strong in detail.find_elements(By.TAG_NAME, "strong")]
    assert "overlaps doxorubicin" in detail.find_element(By.CSS_SELECTOR, "li").text
    source = anthracycline.find_element(By.CSS_SELECTOR, ".source a")
    assert (source.text, source.get_attribute("href")) == ("Herceptin boxed warning; Slamon et al. NEJM 2001", "https://pubmed.ncbi.nlm.nih.gov/11248153/")
    reasons = [reason.text for reason in anthracycline.find_elements(By.CSS_SELECTOR, ".override .reason")]
    assert "Concurrent use decided by the treating oncology team" in reasons and len(reasons) == 3
    suggestion = anthracycline.find_element(By.CSS_SELECTOR, "button.suggestion")
    assert suggestion.text == "Remove the trastuzumab order"
    suggestion.click()
    action = anthracycline.find_element(By.CSS_SELECTOR, ".suggestion-actions .action")
    assert action.is_displayed() and action.find_element(By.CSS_SELECTOR, ".action-type").text == "DELETE"
    assert action.find_element(By.CSS_SELECTOR, ".action-target").text.startswith("MedicationRequest/draft-trastuzumab · trastuzumab")
    browser.save_screenshot(str(ARTIFACTS / "preview-anthracycline.png"))

    anthracycline.find_element(By.XPATH, ".//button[contains(@class, 'reason')][contains(., 'oncology team')]").click()
    assert "overrideReason oncology-team-decision" in anthracycline.find_element(By.CSS_SELECTOR, ".override-note").text
    # Accepting the suggestion removes the draft, as an EHR would, and the hook runs again without it.
    anthracycline.find_element(By.CSS_SELECTOR, "button.apply").click()
    wait.until(lambda driver: "no cards" in driver.find_element(By.ID, "status").text)
    assert browser.find_element(By.CSS_SELECTOR, "#draft-orders li").text == "No draft orders"

    # Residual disease after neoadjuvant THP (KATHERINE): T-DM1 suggested, as a MedicationRequest at 3.6 mg/kg.
    pick(KATHERINE)
    katherine = card("sequencing-katherine-adjuvant-tdm1")
    assert katherine.find_element(By.CSS_SELECTOR, ".indicator").value_of_css_property("background-color") == "rgba(21, 101, 192, 1)"
    assert "consider adjuvant T-DM1 3.6 mg/kg" in katherine.find_element(By.CSS_SELECTOR, ".summary").text
    assert "KATHERINE" in katherine.find_element(By.CSS_SELECTOR, ".detail").text
    suggestion = katherine.find_element(By.CSS_SELECTOR, "button.suggestion")
    assert suggestion.text.startswith("Order T-DM1 3.6 mg/kg")
    suggestion.click()
    create, delete = katherine.find_elements(By.CSS_SELECTOR, ".suggestion-actions .action")[:2]
    assert create.find_element(By.CSS_SELECTOR, ".action-type").text == "CREATE"
    assert create.find_element(By.CSS_SELECTOR, ".action-target").text.startswith("MedicationRequest · ado-trastuzumab emtansine · 3.6 mg/kg")
    fhir = create.find_element(By.CSS_SELECTOR, ".fhir pre").text
    assert '"resourceType": "MedicationRequest"' in fhir and '"value": 3.6' in fhir and '"code": "mg/kg"' in fhir
    assert delete.find_element(By.CSS_SELECTOR, ".action-type").text == "DELETE"
    # Tall enough for the whole card: an element screenshot shows only what is in the window.
    browser.set_window_size(1360, 2000)
    browser.execute_script("arguments[0].scrollIntoView()", katherine)
    katherine.screenshot(str(ARTIFACTS / "preview-katherine.png"))


def test_card_markdown_is_escaped_before_it_is_rendered(browser, preview_url):
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(preview_url + "/")
    # The page's scripts are deferred; get() can return before they have run (seen once in a full run).
    WebDriverWait(browser, 10).until(lambda driver: driver.execute_script("return typeof renderMarkdown === 'function'"))
    html = browser.execute_script(
        "return renderMarkdown(arguments[0])",
        "<img src=x onerror=alert(1)> **bold** \\*not italic\\* [evil](javascript:alert(1)) `a_b`\n\n- one\n  - nested",
    )
    assert "<img" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "<strong>bold</strong>" in html and "*not italic*" in html and "<em>" not in html
    assert "href" not in html and "<code>a_b</code>" in html
    assert "<ul><li>one<ul><li>nested</li></ul></li></ul>" in html
