"""JSON files the service reads from disk (request files, fixture cases and Bundles, JWK Sets)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any


class UnreadableJsonFile(ValueError):
    """The file cannot be read as JSON; the message says why (without the path, which each caller words)."""


def read_json_file(path: Path) -> Any:
    try:
        return json.loads(Path(path).read_text("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise UnreadableJsonFile(str(error)) from None
    except RecursionError:
        # json.loads recurses once per nesting level; a file nested past the limit is not data we read.
        raise UnreadableJsonFile("it is nested too deeply to be read") from None
