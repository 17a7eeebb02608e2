"""Renders a result for people or as JSON from the same value, so the two never disagree."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from typing import Any


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _cell(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value) or "-"
    return "-" if value in ("", None) else str(value)


def _table(rows: Sequence[Any]) -> str:
    if not rows:
        return "(none)"
    columns = [f.name for f in dataclasses.fields(rows[0]) if f.metadata.get("column", True)]
    cells = [[_cell(getattr(row, c)) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in cells]
    return "\n".join(line.rstrip() for line in lines)


def _record(record: Any) -> str:
    fields = dataclasses.fields(record)
    width = max(len(f.name) for f in fields)
    lines = []
    for f in fields:
        name, value = f.name, getattr(record, f.name)
        if isinstance(value, list | tuple) and value and not isinstance(value[0], str | int):
            lines.append(f"{name}:")
            lines.extend(f"  {item}" for item in value)
        else:
            shown = f.metadata.get("when_empty", "-") if value is None else _cell(value)
            lines.append(f"{name.replace('_', ' ') + ':':<{width + 2}}{shown}")
    return "\n".join(lines)


def render(result: Any, *, as_json: bool) -> str:
    if as_json:
        return json.dumps(_plain(result), indent=2, sort_keys=False)
    if isinstance(result, list):
        return _table(result)
    plain_text = getattr(result, "plain_text", None)
    if callable(plain_text):  # a result with one plain-text form, e.g. a new token
        return str(plain_text())
    return _record(result)
