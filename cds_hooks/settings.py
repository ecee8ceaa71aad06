"""One settings object, read once at start-up from an optional TOML file and `CDS_HOOKS_*` variables.

Defaults are safe and embedded: a SQLite file under the working folder and no external service.
"""
from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

ENV_PREFIX = "CDS_HOOKS_"
CONFIG_FILE_VARIABLE = "CDS_HOOKS_CONFIG"


class SettingsError(ValueError):
    """A setting has a value the service cannot run with."""


@dataclass(frozen=True)
class Settings:
    # Requests with a larger body are refused with 413.
    max_body_bytes: int = 5 * 1024 * 1024
    # Where feedback is stored; relative paths are taken from the working folder.
    database_path: Path = Path("var/cds-hooks.sqlite3")
    # Total wall time for fetching every missing prefetch key from the EHR's FHIR server.
    prefetch_budget_seconds: float = 2.0
    # A Bundle `next` chain longer than this is an error, not a reason to keep fetching.
    prefetch_max_pages: int = 20
    # A single FHIR response larger than this is refused.
    prefetch_max_response_bytes: int = 10 * 1024 * 1024
    # Worker threads shared by all requests of one process for concurrent prefetch.
    prefetch_threads: int = 16
    # gunicorn process and thread counts for `cds-hooks serve`.
    workers: int = 2
    threads: int = 4
    # Log level name for the service's JSON logs.
    log_level: str = "INFO"
    # Clinical policy. LVEF hold rules differ: "US" label (>= 16-point drop) or "EU" SmPC (>= 10 points and < 50%).
    jurisdiction: str = "US"
    # Lookback windows are local policy; the labels say only "before each dose" or "every 3 months".
    weight_lookback_days: int = 30
    lab_lookback_days: int = 7
    pregnancy_test_lookback_days: int = 7
    baseline_lvef_lookback_days: int = 90
    lvef_monitoring_interval_days: int = 84

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> "Settings":
        """Settings from the TOML file named by CDS_HOOKS_CONFIG, then CDS_HOOKS_* variables on top."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        config_file = environ.get(CONFIG_FILE_VARIABLE)
        if config_file:
            with open(config_file, "rb") as handle:
                values.update(tomllib.load(handle))
        for name in _field_names():
            raw = environ.get(ENV_PREFIX + name.upper())
            if raw is not None:
                values[name] = raw
        return cls.from_mapping(values)

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> "Settings":
        unknown = set(values) - _field_names()
        if unknown:
            raise SettingsError(f"unknown settings: {', '.join(sorted(unknown))}")
        converted = {name: _convert(name, value) for name, value in values.items()}
        settings = cls(**converted)
        settings.validate()
        return settings

    def replace(self, **changes: Any) -> "Settings":
        return dataclasses.replace(self, **{k: _convert(k, v) for k, v in changes.items()})

    def validate(self) -> None:
        if self.jurisdiction not in ("US", "EU"):
            raise SettingsError("jurisdiction must be US or EU")
        if self.prefetch_budget_seconds <= 0:
            raise SettingsError("prefetch_budget_seconds must be positive")
        for name in (
            "max_body_bytes", "prefetch_max_pages", "prefetch_max_response_bytes", "prefetch_threads", "workers", "threads",
            "weight_lookback_days", "lab_lookback_days", "pregnancy_test_lookback_days", "baseline_lvef_lookback_days",
            "lvef_monitoring_interval_days",
        ):
            if getattr(self, name) < 1:
                raise SettingsError(f"{name} must be at least 1")


def _field_names() -> set[str]:
    return {f.name for f in dataclasses.fields(Settings)}


def _convert(name: str, value: Any) -> Any:
    """Coerce text from the environment to the field's declared type."""
    declared = {f.name: f.type for f in dataclasses.fields(Settings)}[name]
    try:
        if declared == "Path":
            return Path(value)
        if declared == "float":
            return float(value)
        if declared == "int":
            return int(value)
        if declared == "bool":
            return value if isinstance(value, bool) else str(value).strip().lower() in {"1", "true", "yes", "on"}
    except (TypeError, ValueError) as error:
        raise SettingsError(f"setting {name}: {error}") from None
    return value
