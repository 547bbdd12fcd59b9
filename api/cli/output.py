"""Result -> table, JSON or CSV text."""

from __future__ import annotations

import csv
import io
import json
import math
from datetime import date, datetime
from typing import Any

from semantic.service import Result


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, date | datetime):
        return value.isoformat()
    return str(value)


def _json(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None  # JSON has no Infinity or NaN; a value no number can be is no value
    return value.isoformat() if isinstance(value, date | datetime) else value


def render_result(result: Result, fmt: str) -> str:
    if fmt == "json":
        return json.dumps({"columns": [{"name": c.name, "type": c.type} for c in result.columns],
                           "rows": [[_json(v) for v in row] for row in result.rows]}, allow_nan=False)
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow([c.name for c in result.columns])
        writer.writerows([[_text(v) for v in row] for row in result.rows])
        return buffer.getvalue().rstrip("\n")
    header = [c.name for c in result.columns]
    body = [["NULL" if v is None else _text(v) for v in row] for row in result.rows]
    widths = [max(len(h), *(len(r[i]) for r in body)) if body else len(h) for i, h in enumerate(header)]
    numeric = [c.type in ("integer", "number") for c in result.columns]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)),
             "  ".join("-" * w for w in widths)]
    for row in body:
        lines.append("  ".join(v.rjust(w) if n else v.ljust(w) for v, w, n in zip(row, widths, numeric, strict=True)))
    lines.append(f"({len(body)} row{'s' if len(body) != 1 else ''})")
    return "\n".join(lines)
