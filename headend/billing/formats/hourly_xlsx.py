"""Hourly profile xlsx as the legal-entity customer cabinet takes it (seed manual §5.3.1):
column A holds the hour intervals «00-01» … «23-24», row 1 the dates of the month,
the values (kWh per hour) at the intersections. One sheet per meter and month.
"""
from __future__ import annotations

import io
import re
import zipfile
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal

from .errors import Collector, ExportFormatError, Issue
from .numbers import parse_decimal

FORMAT = "hourly xlsx"
HOURS = [f"{h:02d}-{h + 1:02d}" for h in range(24)]
CORNER = "Время"
MAX_BYTES = 20 * 1024 * 1024
_DATE_TEXT = re.compile(r"^(\d{1,2})\.(\d{1,2})\.(\d{4})$")


@dataclass
class HourlyProfile:
    """Hourly values of one meter for one month; (day, hour 0..23) -> value, or absent."""

    month: date  # first day of the month
    values: dict[tuple[date, int], Decimal] = field(default_factory=dict)
    title: str = ""  # sheet name: the meter number

    def days(self) -> list[date]:
        return month_days(self.month)


def month_days(month: date) -> list[date]:
    first = month.replace(day=1)
    nxt = (first + timedelta(days=32)).replace(day=1)
    return [first + timedelta(days=i) for i in range((nxt - first).days)]


def column_letter(n: int) -> str:
    from openpyxl.utils import get_column_letter

    return get_column_letter(n)


def write_hourly_xlsx(profiles: list[HourlyProfile]) -> bytes:
    """One sheet per profile. Missing hours are left empty, never written as 0."""
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font

    wb = Workbook()
    wb.remove(wb.active)
    used: set[str] = set()
    for prof in profiles:
        title = _sheet_title(prof.title or f"{prof.month:%Y-%m}", used)
        ws = wb.create_sheet(title)
        ws.cell(row=1, column=1, value=CORNER).font = Font(bold=True)
        for ci, d in enumerate(prof.days(), start=2):
            c = ws.cell(row=1, column=ci, value=d)
            c.number_format = "DD.MM.YYYY"
            c.font = Font(bold=True)
            c.alignment = Alignment(horizontal="center")
            ws.column_dimensions[column_letter(ci)].width = 12
        for h, label in enumerate(HOURS):
            ws.cell(row=h + 2, column=1, value=label)
            for ci, d in enumerate(prof.days(), start=2):
                v = prof.values.get((d, h))
                if v is not None:
                    cell = ws.cell(row=h + 2, column=ci, value=float(v))
                    cell.number_format = "0.000"
        ws.freeze_panes = "B2"
    if not profiles:
        wb.create_sheet("empty")
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def _sheet_title(title: str, used: set[str]) -> str:
    clean = re.sub(r"[\[\]:*?/\\]", "_", title)[:31] or "sheet"
    base, n = clean, 2
    while clean in used:
        suffix = f"~{n}"
        clean, n = base[: 31 - len(suffix)] + suffix, n + 1
    used.add(clean)
    return clean


XLS_MAGIC = b"\xd0\xcf\x11\xe0"  # an OLE2 compound file: Excel 97–2003 (.xls)


def open_workbook(data: bytes, fmt: str):
    """openpyxl workbook from bytes (.xlsx, or an old .xls copied into one), or
    ExportFormatError saying why not."""
    from openpyxl import load_workbook

    if len(data) > MAX_BYTES:
        raise ExportFormatError(fmt, [_i("file", f"{len(data)} bytes is too large", "split the file", "файл слишком большой",
                                                      "разделите файл")])
    if data.startswith(XLS_MAGIC):
        return _xls_workbook(data, fmt)
    if not data.startswith(b"PK"):
        raise ExportFormatError(fmt, [_i("file", "not an xlsx or xls workbook", "save it as .xlsx or .xls, not CSV",
                                         "это не книга Excel", "сохраните файл как .xlsx или .xls")])
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            # guard against zip bombs before openpyxl inflates everything
            if sum(i.file_size for i in z.infolist()) > 20 * MAX_BYTES:
                raise ExportFormatError(fmt, [_i("file", "workbook unpacks to an unreasonable size", "split the file",
                                                                 "книга слишком велика", "разделите файл")])
        wb = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
        if not wb.worksheets:
            wb.close()
            raise ExportFormatError(fmt, [_i("workbook", "the workbook has no sheets", "fill in the template", "в книге нет листов",
                                                  "заполните шаблон")])
        return wb
    except ExportFormatError:
        raise
    except Exception as e:  # openpyxl raises many unrelated types on damaged files
        raise ExportFormatError(fmt, [_i("file", f"cannot read the workbook ({type(e).__name__}: {str(e)[:120]})",
                                         "open it in Excel, check it and save as .xlsx again",
                                         "книга Excel повреждена", "откройте её в Excel, проверьте и сохраните заново")]) from None


def _xls_workbook(data: bytes, fmt: str):
    """The cell values of an .xls file (xlrd) in an in-memory openpyxl workbook, so both
    formats are read by the same code; dates become datetimes as openpyxl gives them."""
    import xlrd
    from openpyxl import Workbook

    try:
        book = xlrd.open_workbook(file_contents=data, on_demand=True)
    except Exception as e:  # xlrd raises its own and struct errors on damaged files
        raise ExportFormatError(fmt, [_i("file", f"cannot read the .xls workbook ({type(e).__name__}: {str(e)[:120]})",
                                         "open it in Excel, check it and save it again",
                                         "файл .xls повреждён", "откройте его в Excel, проверьте и сохраните заново")]) from None
    wb = Workbook()
    wb.remove(wb.active)
    try:
        for sh in book.sheets():
            ws = wb.create_sheet(sh.name[:31] or "Sheet")
            for r in range(sh.nrows):
                for c in range(sh.ncols):
                    cell = sh.cell(r, c)
                    if cell.ctype in (xlrd.XL_CELL_EMPTY, xlrd.XL_CELL_BLANK):
                        continue
                    v = cell.value
                    if cell.ctype == xlrd.XL_CELL_DATE:
                        v = xlrd.xldate.xldate_as_datetime(v, book.datemode)
                    elif cell.ctype == xlrd.XL_CELL_ERROR:
                        v = f"#ERR{v}"
                    ws.cell(row=r + 1, column=c + 1, value=v)
    except ExportFormatError:
        raise
    except Exception as e:
        raise ExportFormatError(fmt, [_i("file", f"cannot read the .xls cells ({type(e).__name__})",
                                         "open it in Excel, check it and save it again")]) from None
    finally:
        book.release_resources()
    if not wb.worksheets:
        raise ExportFormatError(fmt, [_i("workbook", "the workbook has no sheets", "fill in the template", "в книге нет листов",
                                                  "заполните шаблон")])
    return wb


def read_rows(ws, fmt: str, **kw) -> list[tuple]:
    """Cell values of a sheet; a damaged sheet is an ExportFormatError. A read-only
    workbook parses its sheets only here, so open_workbook cannot catch these."""
    try:
        return list(ws.iter_rows(values_only=True, **kw))
    except Exception as e:  # expat and openpyxl's value conversions raise many types
        raise ExportFormatError(fmt, [_i(f"sheet «{ws.title}»", f"cannot read the cells ({type(e).__name__}: "
                                         f"{str(e)[:120]})", "open it in Excel, check it and save as .xlsx again")]
                                ) from None


def _i(where: str, what: str, fix: str, what_ru: str = "", fix_ru: str = "") -> Issue:
    return Issue(where, what, fix, what_ru, fix_ru)


def _as_date(v: object) -> date | None:
    if isinstance(v, datetime):
        return v.date() if v.time() == datetime.min.time() else None
    if isinstance(v, date):
        return v
    if isinstance(v, str):
        m = _DATE_TEXT.match(v.strip())
        if m:
            try:
                return date(int(m.group(3)), int(m.group(2)), int(m.group(1)))
            except ValueError:
                return None
    return None


def read_hourly_xlsx(data: bytes, *, month: date | None = None, sheet: str | None = None) -> HourlyProfile:
    """Read and validate one sheet (the first, or `sheet`). Empty cells are hours not
    given; anything else that is not a non-negative number is an error with its cell."""
    wb = open_workbook(data, FORMAT)
    try:
        if sheet is not None and sheet not in wb.sheetnames:
            raise ExportFormatError(FORMAT, [_i("workbook", f"no sheet «{sheet}»",
                                                f"sheets are: {', '.join(wb.sheetnames)[:200]}")])
        ws = wb[sheet] if sheet is not None else wb.worksheets[0]
        rows = read_rows(ws, FORMAT, min_row=1, max_row=40, max_col=40)
        title = ws.title
    finally:
        wb.close()
    col = Collector()
    header = list(rows[0]) if rows else []
    while header and header[-1] in (None, ""):
        header.pop()
    dates: list[date] = []
    for ci, v in enumerate(header[1:], start=2):
        d = _as_date(v)
        if d is None:
            col.add(f"{column_letter(ci)}1", f"«{str(v)[:30]}» is not a date", "row 1 holds the dates of the month, DD.MM.YYYY",
                    f"«{str(v)[:30]}» — не дата", "в строке 1 — даты месяца, ДД.ММ.ГГГГ")
        else:
            dates.append(d)
    if not header[1:]:
        col.add("B1", "no dates in row 1", "row 1 holds the dates of the month from column B on",
                "в строке 1 нет дат", "в строке 1, начиная со столбца B, — даты месяца")
    if col:
        raise ExportFormatError(FORMAT, col.issues)
    first = month.replace(day=1) if month else dates[0].replace(day=1)
    expected = month_days(first)
    if dates != expected:
        if any(d.replace(day=1) != first for d in dates):
            col.add("row 1", f"dates from more than one month or not {first:%m.%Y}",
                    "one sheet holds exactly one month", f"даты не одного месяца или не {first:%m.%Y}",
                    "один лист — ровно один месяц")
        elif len(set(dates)) != len(dates):
            col.add("row 1", "a date appears twice", "each day of the month once, in order", "дата повторяется",
                    "каждый день месяца — один раз, по порядку")
        else:
            col.add("row 1", f"{len(dates)} dates given, {len(expected)} expected in order",
                    f"columns B… hold 01.{first:%m.%Y} … {expected[-1]:%d.%m.%Y} in order",
                    f"дат {len(dates)}, а нужно {len(expected)} по порядку",
                    f"в столбцах B… — даты с 01.{first:%m.%Y} по {expected[-1]:%d.%m.%Y} по порядку")
        raise ExportFormatError(FORMAT, col.issues)
    values: dict[tuple[date, int], Decimal] = {}
    for h, label in enumerate(HOURS):
        r = h + 2
        row = list(rows[h + 1]) if len(rows) > h + 1 else []
        a = str(row[0]).strip() if row and row[0] is not None else ""
        if a != label:
            col.add(f"A{r}", f"«{a[:20]}» where hour interval «{label}» is expected",
                    "column A holds 00-01 … 23-24 in order", f"«{a[:20]}» вместо часа «{label}»",
                    "в столбце A — часы 00-01 … 23-24 по порядку")
            continue
        for ci, d in enumerate(dates, start=2):
            v = row[ci - 1] if len(row) > ci - 1 else None
            if v is None or (isinstance(v, str) and not v.strip()):
                continue
            try:
                dv = parse_decimal(v)
                if dv < 0:
                    raise ValueError(f"{v} is negative")
            except ValueError as e:
                col.add(f"{column_letter(ci)}{r}", f"{d:%d.%m.%Y} {label}: {e}", "enter the hour's energy as a number ≥ 0",
                        f"{d:%d.%m.%Y} {label}: «{str(v)[:20]}» — не число или меньше нуля",
                        "введите расход за час числом не меньше 0")
                continue
            values[(d, h)] = dv
    for extra in rows[26:]:
        if any(x not in (None, "") for x in extra):
            col.add("row 26+", "data below the 23-24 row", "the sheet has exactly 24 hour rows",
                    "данные ниже строки 23-24", "на листе ровно 24 строки часов")
            break
    if col:
        raise ExportFormatError(FORMAT, col.issues)
    return HourlyProfile(first, values, title)
