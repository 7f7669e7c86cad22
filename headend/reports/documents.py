"""A report as a document: CSV (semicolons and a BOM for a Russian Excel), XLSX (numbers
stay numbers, one sheet per section) and PDF (fpdf2 with DejaVu Sans, `askue.headend.pdf`)."""
from __future__ import annotations

import csv
import io
from datetime import date, datetime, tzinfo

from askue.headend.pdf import document
from askue.headend.reports.model import Column, Report, cell

MEDIA = {"csv": "text/csv; charset=utf-8", "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
         "pdf": "application/pdf"}


def _rows(section, lang: str, tz: tzinfo) -> list[list[str]]:
    rows = [*section.rows, *([section.total] if section.total else [])]
    return [[cell(c, r.get(c.key), lang, tz) for c in section.columns] for r in rows]


def _generated(report: Report, tz: tzinfo, lang: str) -> str:
    when = (report.generated or datetime.now(tz)).astimezone(tz).strftime("%d.%m.%Y %H:%M")
    return f"Сформирован: {when}" if lang != "en" else f"Generated: {when}"


def to_csv(report: Report, lang: str, tz: tzinfo) -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf, delimiter=";" if lang != "en" else ",", lineterminator="\r\n")
    w.writerow([report.title])
    for what, value in report.selection:
        w.writerow([what, value])
    w.writerow([_generated(report, tz, lang)])
    for s in report.sections:
        w.writerow([])
        if s.title:
            w.writerow([s.title])
        w.writerow([c.title(lang) for c in s.columns])
        w.writerows(_rows(s, lang, tz))
    for n in report.notes:
        w.writerow([n])
    return buf.getvalue().encode("utf-8-sig")


def _xlsx_value(c: Column, v, tz: tzinfo):
    if v is None:
        return None
    if c.kind in ("int", "num", "pct") and isinstance(v, int | float):
        return v
    if c.kind == "date" and isinstance(v, date):
        return v
    if c.kind == "time" and isinstance(v, datetime):
        return v.astimezone(tz).replace(tzinfo=None)
    return str(v)


def to_xlsx(report: Report, lang: str, tz: tzinfo) -> bytes:
    from openpyxl import Workbook
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter

    wb = Workbook()
    wb.remove(wb.active)
    for i, s in enumerate(report.sections):
        name = (s.title or report.title)[:31].translate(str.maketrans("[]:*?/\\", "()-____"))
        ws = wb.create_sheet(name if name not in wb.sheetnames else f"{name[:28]} {i + 1}")
        ws.append([report.title])
        ws["A1"].font = Font(bold=True, size=13)
        for what, value in report.selection:
            ws.append([what, value])
        ws.append([_generated(report, tz, lang)])
        ws.append([])
        head = ws.max_row + 1
        ws.append([c.title(lang) for c in s.columns])
        for c in ws[head]:
            c.font = Font(bold=True)
        for r in s.rows:
            ws.append([_xlsx_value(c, r.get(c.key), tz) for c in s.columns])
        if s.total:
            ws.append([_xlsx_value(c, s.total.get(c.key), tz) for c in s.columns])
            for c in ws[ws.max_row]:
                c.font = Font(bold=True)
        for j, c in enumerate(s.columns, 1):
            letter = get_column_letter(j)
            ws.column_dimensions[letter].width = max(10, min(60, c.width))
            fmt = {"date": "DD.MM.YYYY", "time": "DD.MM.YYYY HH:MM", "pct": "0.0",
                   "num": "#,##0." + "0" * c.digits if c.digits else "#,##0", "int": "#,##0"}.get(c.kind)
            if fmt:
                for row in ws.iter_rows(min_row=head + 1, min_col=j, max_col=j):
                    row[0].number_format = fmt
        ws.freeze_panes = ws.cell(row=head + 1, column=1)
        for n in report.notes:
            ws.append([n])
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def _wrap(pdf, text: str, width: float) -> list[str]:
    """Lines of `text` that fit `width` (mm), broken at spaces, long words cut."""
    if pdf.get_string_width(text) <= width:
        return [text]
    lines, line = [], ""
    for word in text.split(" "):
        candidate = f"{line} {word}" if line else word
        if pdf.get_string_width(candidate) <= width:
            line = candidate
            continue
        if line:
            lines.append(line)
        while pdf.get_string_width(word) > width and len(word) > 1:  # a word wider than the column
            cut = max(1, int(len(word) * width / pdf.get_string_width(word)))
            lines.append(word[:cut])
            word = word[cut:]
        line = word
    lines.append(line)
    return lines


def _pdf_table(pdf, columns: list[Column], rows: list[list[str]], lang: str, bold_last: bool) -> None:
    """A ruled table drawn with plain text calls: fpdf2's own table() measures every cell twice
    through its layout engine, a second per hundred rows — too slow for a month of houses."""
    pad, lh = 1.0, 3.4
    total = pdf.w - pdf.l_margin - pdf.r_margin
    widths = [total * c.width / sum(c.width for c in columns) for c in columns]
    right = [c.kind in ("int", "num", "pct") for c in columns]

    def draw(cells: list[str], bold: bool) -> None:
        pdf.set_font("DejaVu", "B" if bold else "", 7)
        wrapped = [_wrap(pdf, text, w - 2 * pad) for text, w in zip(cells, widths, strict=True)]
        height = max(len(x) for x in wrapped) * lh + 2 * pad
        if pdf.get_y() + height > pdf.page_break_trigger:
            pdf.add_page()
            if not bold:
                draw(heads, True)
        x, y = pdf.l_margin, pdf.get_y()
        for lines, w, r in zip(wrapped, widths, right, strict=True):
            pdf.rect(x, y, w, height)
            for i, line in enumerate(lines):
                tx = x + w - pad - pdf.get_string_width(line) if r else x + pad
                pdf.text(tx, y + pad + (i + 1) * lh - 0.8, line)
            x += w
        pdf.set_y(y + height)

    heads = [c.title(lang) for c in columns]
    pdf.set_draw_color(120, 120, 120)
    pdf.set_line_width(0.1)
    draw(heads, True)
    for i, row in enumerate(rows):
        draw([v[:400] for v in row], bold_last and i == len(rows) - 1)


def to_pdf(report: Report, lang: str, tz: tzinfo) -> bytes:
    pdf = document("L")
    pdf.set_auto_page_break(True, margin=12)
    pdf.add_page()
    pdf.set_font("DejaVu", "B", 13)
    pdf.multi_cell(0, 7, report.title, new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("DejaVu", "", 8)
    for what, value in report.selection:
        pdf.multi_cell(0, 4.5, f"{what}: {value}", new_x="LMARGIN", new_y="NEXT")
    pdf.multi_cell(0, 4.5, _generated(report, tz, lang), new_x="LMARGIN", new_y="NEXT")
    for s in report.sections:
        pdf.ln(2)
        if s.title:
            pdf.set_font("DejaVu", "B", 10)
            pdf.multi_cell(0, 6, s.title, new_x="LMARGIN", new_y="NEXT")
        rows = _rows(s, lang, tz)
        if not rows:
            pdf.set_font("DejaVu", "", 8)
            pdf.multi_cell(0, 5, s.empty, new_x="LMARGIN", new_y="NEXT")
            continue
        _pdf_table(pdf, s.columns, rows, lang, bold_last=s.total is not None)
    pdf.ln(2)
    pdf.set_font("DejaVu", "", 7)
    for n in report.notes:
        pdf.multi_cell(0, 4, n, new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())


def render(report: Report, fmt: str, lang: str, tz: tzinfo) -> tuple[bytes, str]:
    body = {"csv": to_csv, "xlsx": to_xlsx, "pdf": to_pdf}[fmt](report, lang, tz)
    return body, MEDIA[fmt]
