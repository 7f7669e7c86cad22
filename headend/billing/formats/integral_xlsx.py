"""Integral (cumulative register) readings template, as the customer cabinet in the
seeds hands it out and takes it back filled in (seed manual §5.2): energy object code
and name, its status, meter number, measuring complex, measured quantity (A+/A−),
scale (tariff zone), previous reading (accepted in the last closed period) and the
current reading the customer enters, with a decimal comma or point.

`read_integral_xlsx` gives one result per row; storing goes through VEE elsewhere
(`manual.py`). A meter with several zones must be given in all of them, as the
cabinet demands, or none of its rows is taken.
"""
from __future__ import annotations

import io
from dataclasses import dataclass, field
from decimal import Decimal

from .errors import Issue
from .hourly_xlsx import column_letter, open_workbook, read_rows
from .numbers import parse_decimal

FORMAT = "integral readings xlsx"

COLUMNS = [
    ("object_code", "Код ЭО"),
    ("object_name", "Наименование ЭО"),
    ("object_status", "Статус ЭО"),
    ("meter_number", "Номер ПУ"),
    ("complex_name", "Наименование ИК"),
    ("quantity", "Измеряемая величина"),
    ("zone", "Шкала"),
    ("previous", "Предыдущие показания"),
    ("current", "Текущие показания"),
]
REQUIRED = {"meter_number", "quantity", "zone", "current"}
HEADER_TO_FIELD = {title.lower().replace("ё", "е"): key for key, title in COLUMNS}

# quantity -> OBIS C group of the register (A+ 1, A− 2, R+ 3, R− 4)
QUANTITIES = {"A+": 1, "A-": 2, "R+": 3, "R-": 4}
# zone label -> OBIS tariff (E group): Russian multi-rate meters count Т1 day/peak,
# Т2 night, Т3 semi-peak; a single-rate meter keeps the total.
ZONES = {"сутки": 0, "круглосуточно": 0, "круглосуточный": 0, "круглосут": 0, "общий": 0, "всего": 0, "без зон": 0,
         "день": 1, "пик": 1, "ночь": 2, "полупик": 3,
         "т1": 1, "т2": 2, "т3": 3, "т4": 4}
ZONE_TITLES = {0: "Сутки", 1: "День", 2: "Ночь", 3: "Полупик"}


def normalize_quantity(raw: str) -> str | None:
    q = raw.strip().upper().replace(" ", "")
    q = q.translate(str.maketrans({"А": "A", "Р": "R", "−": "-", "–": "-", "—": "-"}))  # Cyrillic look-alikes
    return q if q in QUANTITIES else None


def zone_tariff(raw: str) -> int | None:
    z = raw.strip().lower().replace("ё", "е").translate(str.maketrans({"t": "т"}))
    return ZONES.get(z)


def register_obis(quantity: str, tariff: int) -> str:
    return f"1.0.{QUANTITIES[quantity]}.8.{tariff}.255"


@dataclass
class IntegralRow:
    meter_number: str
    quantity: str  # "A+" | "A-" | "R+" | "R-"
    zone: str  # as written: «День», «Ночь», «Пик», «Полупик», «Сутки»
    previous: Decimal | None = None
    current: Decimal | None = None
    object_code: str = ""
    object_name: str = ""
    object_status: str = "Ожидание"
    complex_name: str = ""

    @property
    def obis(self) -> str:
        t = zone_tariff(self.zone)
        return register_obis(self.quantity, 0 if t is None else t)


@dataclass
class RowResult:
    row: int  # spreadsheet row number
    status: str  # "ok" (to be stored), "empty" (no current reading given), "error"
    reading: IntegralRow | None
    issues: list[Issue] = field(default_factory=list)
    message: str = ""  # filled in after storing: "принято", "отклонено: …"


def write_integral_xlsx(rows: list[IntegralRow], *, title: str = "Показания") -> bytes:
    from openpyxl import Workbook
    from openpyxl.styles import Font

    wb = Workbook()
    ws = wb.active
    ws.title = title[:31]
    for ci, (_, head) in enumerate(COLUMNS, start=1):
        ws.cell(row=1, column=ci, value=head).font = Font(bold=True)
        ws.column_dimensions[column_letter(ci)].width = max(14, len(head) + 2)
    for ri, r in enumerate(rows, start=2):
        vals = [r.object_code, r.object_name, r.object_status, r.meter_number, r.complex_name,
                r.quantity.replace("A", "А"), r.zone,
                float(r.previous) if r.previous is not None else None,
                float(r.current) if r.current is not None else None]
        for ci, v in enumerate(vals, start=1):
            c = ws.cell(row=ri, column=ci, value=v)
            if ci == 4:
                c.number_format = "@"  # meter numbers keep their leading zeros
            elif ci >= 8:
                c.number_format = "0.00##"
    ws.freeze_panes = "A2"
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def _cell_text(v: object) -> str:
    if v is None:
        return ""
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v).strip()


def read_integral_xlsx(data: bytes) -> list[RowResult]:
    """Per-row results; raises ExportFormatError only when the sheet as a whole is
    unusable (not xlsx, header not found)."""
    from .errors import ExportFormatError

    wb = open_workbook(data, FORMAT)
    try:
        ws = wb.worksheets[0]
        rows = read_rows(ws, FORMAT, min_row=1, max_row=20001, max_col=30)
    finally:
        wb.close()
    header_row, mapping = None, {}
    for i, row in enumerate(rows[:10]):
        found = {}
        for ci, v in enumerate(row):
            key = HEADER_TO_FIELD.get(_cell_text(v).lower().replace("ё", "е"))
            if key and key not in found:
                found[key] = ci
        if REQUIRED <= found.keys():
            header_row, mapping = i, found
            break
    if header_row is None:
        need = ", ".join(f"«{t}»" for k, t in COLUMNS if k in REQUIRED)
        raise ExportFormatError(FORMAT, [Issue("rows 1–10", "header row not found",
                                               f"keep the template's header; it needs the columns {need}",
                                               "не найдена строка заголовков",
                                               f"сохраните заголовки шаблона; нужны столбцы {need}")])
    if len(rows) > 20001:
        raise ExportFormatError(FORMAT, [Issue("file", "more than 20000 rows", "split the file", "больше 20000 строк",
                                                     "разделите файл")])
    titles = dict(COLUMNS)
    results: list[RowResult] = []
    for i, row in enumerate(rows[header_row + 1:], start=header_row + 2):
        if all(v in (None, "") for v in row):
            continue
        issues: list[Issue] = []

        def get(key: str, row=row) -> object:
            ci = mapping.get(key)
            return row[ci] if ci is not None and ci < len(row) else None

        def where(key: str, i=i) -> str:
            return f"row {i}, column «{titles[key]}»" + (f" ({column_letter(mapping[key] + 1)}{i})" if key in mapping else "")

        meter = _cell_text(get("meter_number"))
        if not meter:
            issues.append(Issue(where("meter_number"), "meter number is empty", "fill in the meter (ПУ) number",
                                "не указан номер ПУ", "заполните номер прибора учёта"))
        qraw = _cell_text(get("quantity"))
        quantity = normalize_quantity(qraw)
        if quantity is None:
            issues.append(Issue(where("quantity"), f"«{qraw[:20]}» is not a measured quantity", "use А+ or А−",
                                f"«{qraw[:20]}» — не измеряемая величина", "укажите А+ или А−"))
        zraw = _cell_text(get("zone"))
        if zone_tariff(zraw) is None:
            issues.append(Issue(where("zone"), f"«{zraw[:20]}» is not a tariff zone",
                                "use День, Ночь, Пик, Полупик or Сутки", f"«{zraw[:20]}» — не шкала тарифа",
                                "укажите Круглосуточный, День, Ночь, Пик или Полупик"))
        previous = current = None
        for key in ("previous", "current"):
            raw = get(key)
            if raw is None or (isinstance(raw, str) and not raw.strip()):
                continue
            try:
                v = parse_decimal(raw)
                if v < 0:
                    raise ValueError(f"{raw} is negative")
            except ValueError as e:
                issues.append(Issue(where(key), f"reading {e}", "enter the register reading, e.g. 12345,67",
                                    f"«{str(raw)[:20]}» — не показание", "введите показание, например 12345,67"))
                continue
            if key == "previous":
                previous = v
            else:
                current = v
        reading = IntegralRow(meter_number=meter, quantity=quantity or qraw, zone=zraw, previous=previous,
                              current=current, object_code=_cell_text(get("object_code")),
                              object_name=_cell_text(get("object_name")),
                              object_status=_cell_text(get("object_status")),
                              complex_name=_cell_text(get("complex_name")))
        if issues:
            results.append(RowResult(i, "error", reading, issues))
        elif current is None:
            results.append(RowResult(i, "empty", reading))
        else:
            results.append(RowResult(i, "ok", reading))
    _all_zones_rule(results)
    return results


def _all_zones_rule(results: list[RowResult]) -> None:
    """A meter's readings are taken in all its zones or not at all (seed manual §5.2);
    duplicate rows for the same meter, quantity and zone are errors too."""
    by_meter: dict[str, list[RowResult]] = {}
    for r in results:
        if r.reading is not None and r.reading.meter_number:
            by_meter.setdefault(r.reading.meter_number, []).append(r)
    for meter, rs in by_meter.items():
        keys: dict[tuple[str, int | None], int] = {}
        for r in rs:
            assert r.reading is not None
            k = (r.reading.quantity, zone_tariff(r.reading.zone))
            if k in keys and r.status != "error":
                r.status = "error"
                r.issues.append(Issue(f"row {r.row}", f"meter {meter} {r.reading.quantity} «{r.reading.zone}» "
                                      f"already in row {keys[k]}", "keep one row per meter, quantity and zone",
                                      f"ПУ {meter} {r.reading.quantity} «{r.reading.zone}» уже есть в строке {keys[k]}",
                                      "оставьте одну строку на ПУ, величину и шкалу"))
            keys.setdefault(k, r.row)
        filled = [r for r in rs if r.status == "ok"]
        if filled and len(filled) != len(rs):
            others = ", ".join(str(r.row) for r in rs if r.status != "ok")
            for r in filled:
                r.status = "error"
                r.issues.append(Issue(f"row {r.row}", f"meter {meter}: readings must be given in all its zones "
                                      f"and quantities; rows {others} are empty or wrong",
                                      "fill in every zone of this meter, then load the file again",
                                      f"ПУ {meter}: показания передаются по всем шкалам; строки {others} пусты "
                                      "или с ошибками", "заполните все шкалы этого ПУ и загрузите файл снова"))
