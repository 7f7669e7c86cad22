"""The abnormal-event list as documents: CSV, XLSX (openpyxl) and PDF (fpdf2 with an
embedded DejaVu Sans, so Cyrillic prints on any viewer). Input: event views
(events/service.py `view`), already in the document's language."""
from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from datetime import datetime, tzinfo

from askue.headend.pdf import document

COLUMNS_RU = ("№", "Вид", "Важность", "Счётчик", "Лицевой счёт", "Дом", "Время", "Зафиксировано", "Состояние",
              "Кто", "Комментарий", "Подробности")
COLUMNS_EN = ("ID", "Kind", "Severity", "Meter", "Account", "House", "Time", "Raised", "State", "By", "Comment",
              "Details")
STATES_RU = {"open": "открыто", "acknowledged": "принято", "resolved": "закрыто"}
SEVERITY_RU = {"info": "информация", "warning": "предупреждение", "critical": "критично"}
def _fmt_time(t: datetime | None, tz: tzinfo) -> str:
    return t.astimezone(tz).strftime("%d.%m.%Y %H:%M") if t else ""


def rows(events: Sequence[dict], lang: str, tz: tzinfo) -> list[list[str]]:
    out = []
    for e in events:
        by = e.get("resolved_by") or e.get("acknowledged_by") or ""
        out.append([
            str(e["id"]), e["title"],
            SEVERITY_RU.get(e["severity"], e["severity"]) if lang == "ru" else e["severity"],
            e.get("meter") or "", e.get("account") or "", e.get("site") or "",
            _fmt_time(e.get("ts"), tz), _fmt_time(e.get("raised_at"), tz),
            STATES_RU.get(e["state"], e["state"]) if lang == "ru" else e["state"], by, e.get("comment") or "",
            e.get("description") or ""])
    return out


def to_csv(events: Sequence[dict], lang: str, tz: tzinfo) -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf, delimiter=";" if lang == "ru" else ",", lineterminator="\r\n")
    w.writerow(COLUMNS_RU if lang == "ru" else COLUMNS_EN)
    w.writerows(rows(events, lang, tz))
    return buf.getvalue().encode("utf-8-sig")  # BOM: Excel opens Cyrillic CSV right


def to_xlsx(events: Sequence[dict], lang: str, tz: tzinfo) -> bytes:
    from openpyxl import Workbook
    from openpyxl.styles import Font

    wb = Workbook()
    ws = wb.active
    ws.title = "Нештатные ситуации" if lang == "ru" else "Abnormal events"
    ws.append(list(COLUMNS_RU if lang == "ru" else COLUMNS_EN))
    for c in ws[1]:
        c.font = Font(bold=True)
    for r in rows(events, lang, tz):
        ws.append([int(r[0]), *r[1:]])
    for col, width in zip("ABCDEFGHIJKL", (8, 40, 14, 16, 14, 14, 17, 17, 12, 14, 30, 60), strict=True):
        ws.column_dimensions[col].width = width
    ws.freeze_panes = "A2"
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def to_pdf(events: Sequence[dict], lang: str, tz: tzinfo, title: str | None = None,
           generated: datetime | None = None) -> bytes:
    pdf = document("L")
    pdf.set_auto_page_break(True, margin=12)
    pdf.add_page()
    pdf.set_font("DejaVu", "B", 13)
    heading = title or ("Нештатные ситуации" if lang == "ru" else "Abnormal events")
    pdf.cell(0, 8, heading, new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("DejaVu", "", 8)
    when = _fmt_time(generated or datetime.now(tz), tz)
    pdf.cell(0, 5, (f"Сформировано: {when}; записей: {len(events)}" if lang == "ru"
                    else f"Generated: {when}; rows: {len(events)}"), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(2)
    cols = COLUMNS_RU if lang == "ru" else COLUMNS_EN
    keep = (0, 1, 2, 3, 4, 6, 8, 9, 10, 11)  # the house column is dropped on paper for width
    widths = (12, 52, 22, 24, 20, 26, 18, 18, 35, 50)
    with pdf.table(col_widths=widths, text_align="LEFT", line_height=4, first_row_as_headings=True) as table:
        head = table.row()
        for i in keep:
            head.cell(cols[i])
        for r in rows(events, lang, tz):
            row = table.row()
            for i in keep:
                row.cell(r[i][:300])
    return bytes(pdf.output())
