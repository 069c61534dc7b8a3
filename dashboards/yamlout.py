"""A small YAML writer for rule and test files (mappings, lists, strings, numbers)."""

from __future__ import annotations

import json
import re

_PLAIN = re.compile(r"[A-Za-z_./][A-Za-z0-9_ ./+-]*[A-Za-z0-9_./+-]|[A-Za-z_]")
_RESERVED = {"true", "false", "yes", "no", "on", "off", "null", "y", "n"}


def _scalar(value: object, indent: int) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if not isinstance(value, str):
        raise TypeError(f"cannot write {type(value).__name__} as YAML")
    if "\n" in value and not value[0].isspace() and not value.endswith("\n"):
        pad = " " * (indent + 2)
        return "|-\n" + "\n".join(pad + line if line else "" for line in value.split("\n"))
    if _PLAIN.fullmatch(value) and value.lower() not in _RESERVED and " #" not in value:
        return value
    if "\n" not in value:
        return "'" + value.replace("'", "''") + "'"
    return json.dumps(value)


def dump(value: object, indent: int = 0) -> str:
    """YAML text for `value`; mappings keep insertion order."""
    pad = " " * indent
    if isinstance(value, dict):
        if not value:
            return "{}"
        lines = []
        for key, item in value.items():
            if isinstance(item, dict | list) and item:
                lines.append(f"{pad}{key}:\n{dump(item, indent + 2)}")
            else:
                lines.append(f"{pad}{key}: {_scalar_or_empty(item, indent)}")
        return "\n".join(lines)
    if isinstance(value, list):
        if not value:
            return "[]"
        lines = []
        for item in value:
            body = dump(item, indent + 2) if isinstance(item, dict | list) and item else None
            if body is None:
                lines.append(f"{pad}- {_scalar_or_empty(item, indent)}")
            else:
                lines.append(f"{pad}- {body[indent + 2 :]}")
        return "\n".join(lines)
    return _scalar(value, indent)


def _scalar_or_empty(value: object, indent: int) -> str:
    if value == {} or value == []:
        return "{}" if isinstance(value, dict) else "[]"
    return _scalar(value, indent)
