"""CSV of readings and of period consumption, for any system without a format of its own.

UTF-8 with BOM (Excel in a Russian locale then opens it right), `;` separator, decimal
point, ISO 8601 timestamps with offset. One header row; column names in English so
scripts can rely on them.
"""
from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from .numbers import format_decimal

# `archive`: a register read from the meter's own day/month archive; `unit`: the canonical unit every
# value is stored in (docs/units.md); `replaced_meter` / `replaced_by`: the other meter of an exchange
# inside the period (both meters have their rows).
READING_COLUMNS = ["meter", "obis", "kind", "ts", "value", "quality", "reasons", "source", "received_at", "archive",
                   "unit"]
CONSUMPTION_COLUMNS = ["meter", "obis", "zone", "period_start", "period_end", "start_value", "start_ts",
                       "end_value", "end_ts", "multiplier", "consumption", "quality", "source", "estimated",
                       "replaced_meter", "replaced_by", "unit", "start_boundary_source", "end_boundary_source"]


@dataclass
class ReadingRow:
    meter: str
    obis: str
    kind: str  # register | interval
    ts: datetime
    value: float | Decimal
    quality: str
    reasons: list[str]
    source: str
    received_at: datetime | None = None
    archive: str | None = None  # registers: day_start | month_start, the meter's own boundary value
    unit: str = ""


def _iso(t: datetime | None) -> str:
    return "" if t is None else t.isoformat()


def _num(v: float | Decimal | None) -> str:
    return "" if v is None else format_decimal(v)


class CsvWriter:
    """Streams rows into a text buffer; `drain()` hands over what was written so far,
    so HTTP responses and files can be produced without holding everything."""

    def __init__(self, columns: list[str], *, bom: bool = True):
        self._buf = io.StringIO()
        if bom:
            self._buf.write("\ufeff")
        self._w = csv.writer(self._buf, delimiter=";", lineterminator="\r\n")
        self._w.writerow(columns)

    def row(self, values: Iterable[object]) -> None:
        self._w.writerow(values)

    def drain(self) -> str:
        out = self._buf.getvalue()
        self._buf.seek(0)
        self._buf.truncate()
        return out


def reading_values(r: ReadingRow) -> list[str]:
    return [r.meter, r.obis, r.kind, _iso(r.ts), _num(r.value), r.quality, "|".join(r.reasons), r.source,
            _iso(r.received_at), r.archive or "", r.unit]
