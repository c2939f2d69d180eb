"""The JSON Schemas of every command's --json records (docs/schemas/, documented in docs/json.md) and a
validator that fails a test with the path of the offending field."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from .models import REPO

SCHEMAS = REPO / "docs" / "schemas"


@cache
def schema(name: str) -> dict[str, Any]:
    return json.loads((SCHEMAS / f"{name}.schema.json").read_text(encoding="utf-8"))


def validate(name: str, record: Any) -> None:
    """Assert that ``record`` is valid against ``docs/schemas/<name>.schema.json`` (every error listed)."""
    from jsonschema import Draft202012Validator

    errors = sorted(Draft202012Validator(schema(name)).iter_errors(record), key=lambda e: list(e.absolute_path))
    assert not errors, f"{name} record does not match its schema:\n" + "\n".join(
        f"  at {'/'.join(map(str, e.absolute_path)) or '(top)'}: {e.message}" for e in errors)


def all_schemas() -> list[Path]:
    return sorted(SCHEMAS.glob("*.schema.json"))
