"""Settings (cds_hooks/settings.py): the FHIR servers prefetch may call, development mode and the resource count."""
from __future__ import annotations

import pytest

from cds_hooks.settings import Settings, SettingsError

EHR = "https://ehr.example.org/fhir"


def test_defaults_call_no_fhir_server_and_bound_the_resources_of_a_call():
    settings = Settings.from_environment({})
    assert settings.allowed_fhir_servers == ()
    assert settings.development_mode is False
    assert settings.max_resources_per_request == 20_000
    assert not settings.allows_fhir_server(EHR)
    assert not settings.allows_fhir_server("http://127.0.0.1:8080/fhir")


def test_allowed_servers_from_the_environment_are_comma_separated():
    settings = Settings.from_environment({
        "CDS_HOOKS_ALLOWED_FHIR_SERVERS": f"{EHR}, http://127.0.0.1:8090/fhir",
        "CDS_HOOKS_DEVELOPMENT_MODE": "yes",
        "CDS_HOOKS_MAX_RESOURCES_PER_REQUEST": "500",
    })
    assert settings.allowed_fhir_servers == (EHR, "http://127.0.0.1:8090/fhir")
    assert settings.development_mode is True and settings.max_resources_per_request == 500


def test_allowed_servers_from_the_settings_file(tmp_path):
    config = tmp_path / "settings.toml"
    config.write_text(f'allowed_fhir_servers = ["{EHR}", "https://other.example.org/r4"]\n')
    settings = Settings.from_environment({"CDS_HOOKS_CONFIG": str(config)})
    assert settings.allowed_fhir_servers == (EHR, "https://other.example.org/r4")


@pytest.mark.parametrize(
    "entry, message",
    [
        ("ehr.example.org/fhir", "is not a FHIR base URL"),
        ("ftp://ehr.example.org/fhir", "is not a FHIR base URL"),
        ("https://user:secret@ehr.example.org/fhir", "is not a FHIR base URL"),
        ("https://ehr.example.org/fhir?tenant=a", "is not a FHIR base URL"),
        ("https://ehr.example.org/fhir#top", "is not a FHIR base URL"),
        ("https://ehr.example.org/a/../fhir", "is not a FHIR base URL"),
        ("https://ehr.example.org:99999/fhir", "is not a FHIR base URL"),
        ("https://ehr.example.org/my fhir", "is not a FHIR base URL"),
        ("http://ehr.example.org/fhir", "must use https (plain http only on loopback)"),
        ("http://10.0.0.7/fhir", "must use https (plain http only on loopback)"),
    ],
)
def test_an_allowed_server_that_is_not_a_safe_base_url_stops_start_up(entry, message):
    with pytest.raises(SettingsError, match="allowed_fhir_servers") as raised:
        Settings.from_environment({"CDS_HOOKS_ALLOWED_FHIR_SERVERS": entry})
    assert message in str(raised.value)


@pytest.mark.parametrize("environment", [{"CDS_HOOKS_DEVELOPMENT_MODE": "maybe"}, {"CDS_HOOKS_MAX_RESOURCES_PER_REQUEST": "0"}])
def test_development_mode_and_resource_count_are_checked(environment):
    with pytest.raises(SettingsError):
        Settings.from_environment(environment)


@pytest.mark.parametrize(
    "fhir_server",
    [
        EHR,
        "https://EHR.example.org/fhir",
        "https://ehr.example.org:443/fhir",
        "https://ehr.example.org/fhir/",
        "https://ehr.example.org/fhir/tenant-a",
    ],
)
def test_a_fhir_server_at_or_below_an_allowed_base_is_allowed(fhir_server):
    assert Settings.from_mapping({"allowed_fhir_servers": [EHR]}).allows_fhir_server(fhir_server)


@pytest.mark.parametrize(
    "fhir_server",
    [
        "https://ehr.example.org/fhir-evil",  # a string prefix, not a path segment
        "https://ehr.example.org/",
        "https://ehr.example.org/FHIR",
        "http://ehr.example.org/fhir",
        "https://ehr.example.org:8443/fhir",
        "https://ehr.example.org.evil.example/fhir",
        "https://evil.example/ehr.example.org/fhir",
        "https://ehr.example.org@evil.example/fhir",
        "https://evil.example\\@ehr.example.org/fhir",
        "https://ehr.example.org/fhir/../admin",
        "https://ehr.example.org/fhir/%2e%2e/admin",
        "https://ehr.example.org/fhir?",
        "https://ehr.example.org/fhir#x",
        "https://ehr.example.org/fhir\n.evil.example",
        "http://127.0.0.1:8080/fhir",  # loopback, but development mode is off
    ],
)
def test_anything_else_is_not_allowed(fhir_server):
    assert not Settings.from_mapping({"allowed_fhir_servers": [EHR]}).allows_fhir_server(fhir_server)


@pytest.mark.parametrize(
    "fhir_server, allowed",
    [
        ("http://127.0.0.1:8090/fhir", True),
        ("http://127.8.9.10/fhir", True),
        ("http://localhost:8080/fhir", True),
        ("http://[::1]:8080/fhir", True),
        ("https://localhost/fhir", True),
        ("http://0.0.0.0:8080/fhir", False),
        ("http://10.0.0.7/fhir", False),
        ("http://169.254.169.254/latest", False),
        ("http://ehr.example.org/fhir", False),
        ("https://ehr.example.org/fhir", False),
    ],
)
def test_development_mode_allows_loopback_servers_only(fhir_server, allowed):
    assert Settings.from_mapping({"development_mode": True}).allows_fhir_server(fhir_server) is allowed
