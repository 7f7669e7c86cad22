"""Tabular documents in the three formats operators download: CSV (semicolon and BOM
for a Russian Excel), XLSX and PDF (with charts). A document is a title, a few lines
about it (organisation, period, time zone) and blocks: tables of text cells and charts.
Callers build the blocks with human names and formatted numbers; this module only lays
them out. PDF tables wrap text inside cells and take the page's width, and a table with
many columns turns the page to landscape with a smaller font, so nothing is clipped."""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field

from askue.headend.pdf import document
from askue.headend.units import axis_top, number


@dataclass
class Table:
    title: str
    head: list[str]
    rows: list[list[str]]
    numeric: set[int] = field(default_factory=set)  # columns aligned right
    weights: list[float] | None = None  # relative column widths in PDF (default: by content)


@dataclass
class Chart:
    title: str
    labels: list[str]
    series: list[tuple[str, list[float | None], str]]  # (name, values, colour #rrggbb)
    unit: str = ""


@dataclass
class Document:
    title: str
    lines: list[str]
    blocks: list[Table | Chart]
    name: str = "document"  # file name without the extension


def to_csv(doc: Document, lang: str = "ru") -> bytes:
    buf = io.StringIO()
    wr = csv.writer(buf, delimiter=";" if lang == "ru" else ",", lineterminator="\r\n")
    wr.writerow([doc.title])
    for line in doc.lines:
        wr.writerow([line])
    for b in doc.blocks:
        if isinstance(b, Table):
            wr.writerow([])
            wr.writerow([b.title])
            wr.writerow(b.head)
            wr.writerows(b.rows)
    return buf.getvalue().encode("utf-8-sig")


def _sheet_name(title: str, used: set[str]) -> str:
    base = "".join(ch for ch in title if ch not in "[]:*?/\\")[:28] or "Лист"
    name, i = base, 2
    while name in used:
        name, i = f"{base[:26]} {i}", i + 1
    used.add(name)
    return name


def to_xlsx(doc: Document) -> bytes:
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font
    from openpyxl.utils import get_column_letter

    wb = Workbook()
    wb.remove(wb.active)
    used: set[str] = set()
    for b in [b for b in doc.blocks if isinstance(b, Table)] or [Table(doc.title, [], [])]:
        ws = wb.create_sheet(_sheet_name(b.title, used))
        ws.append([doc.title])
        ws["A1"].font = Font(bold=True, size=12)
        for line in doc.lines:
            ws.append([line])
        ws.append([b.title])
        ws.cell(ws.max_row, 1).font = Font(bold=True)
        ws.append(b.head)
        head_row = ws.max_row
        for c in ws[head_row]:
            c.font = Font(bold=True)
            c.alignment = Alignment(wrap_text=True, vertical="top")
        for r in b.rows:
            ws.append([_cell_value(v, i in b.numeric) for i, v in enumerate(r)])
        for i in range(len(b.head)):
            longest = max([len(str(b.head[i]))] + [len(str(r[i])) for r in b.rows[:500] if i < len(r)])
            ws.column_dimensions[get_column_letter(i + 1)].width = min(max(8, longest + 2), 60)
        ws.freeze_panes = ws.cell(head_row + 1, 1)
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


def _cell_value(v: str, numeric: bool) -> str | float:
    """Numbers stay numbers in Excel: «1 036,9» → 1036.9 (text otherwise)."""
    if not numeric or not v:
        return v
    text = v.replace("\u00a0", "").replace(" ", "").replace(",", ".").replace("−", "-")
    try:
        return float(text)
    except ValueError:
        return v


def _widths(t: Table, total: float) -> list[float]:
    if t.weights:
        w = t.weights
    else:
        w = []
        for i, h in enumerate(t.head):
            longest_word = max([len(x) for x in h.split()] + [0])
            content = sorted(len(r[i]) for r in t.rows if i < len(r))
            typical = content[int(len(content) * 0.9)] if content else 0
            w.append(max(longest_word, min(typical, 40), 3))
    s = sum(w) or 1
    return [total * x / s for x in w]


def _pdf_chart(pdf, ch: Chart, lang: str) -> None:
    x0, w, h = pdf.l_margin, pdf.epw, 62.0
    if pdf.get_y() + h + 12 > pdf.page_break_trigger:
        pdf.add_page()
    pdf.set_font("DejaVu", "B", 10)
    pdf.cell(0, 6, ch.title, new_x="LMARGIN", new_y="NEXT")
    y0 = pdf.get_y()
    left, bottom = 16.0, 8.0
    pw, ph = w - left, h - bottom - 6
    top_v = max((v or 0.0 for _, vals, _ in ch.series for v in vals), default=0.0)
    top_v = axis_top(top_v)
    pdf.set_font("DejaVu", "", 6)
    pdf.set_draw_color(220, 225, 230)
    for i in range(5):
        y = y0 + 6 + ph - ph * i / 4
        pdf.line(x0 + left, y, x0 + w, y)
        pdf.set_xy(x0, y - 1.5)
        pdf.cell(left - 1, 3, number(top_v * i / 4, lang), align="R")
    if ch.unit:
        pdf.set_xy(x0, y0)
        pdf.cell(left, 3, ch.unit)
    n = max(len(ch.labels), 1)
    step = pw / n
    group = step * 0.75
    bw = group / max(len(ch.series), 1)
    for i, label in enumerate(ch.labels):
        gx = x0 + left + i * step + (step - group) / 2
        for k, (_, vals, color) in enumerate(ch.series):
            v = vals[i] if i < len(vals) else None
            bh = 0.0 if not v or v <= 0 else ph * v / top_v
            r, g, b = (int(color[j:j + 2], 16) for j in (1, 3, 5))
            pdf.set_fill_color(r, g, b)
            if bh > 0:
                pdf.rect(gx + k * bw, y0 + 6 + ph - bh, max(bw - 0.2, 0.2), bh, style="F")
        if i % max(1, -(-n // 12)) == 0:
            pdf.set_xy(gx - 6, y0 + 6 + ph + 1)
            pdf.cell(group + 12, 3, label, align="C")
    if len(ch.series) > 1:  # legend
        pdf.set_xy(x0 + left, y0 + 1)
        for name, _, color in ch.series:
            r, g, b = (int(color[j:j + 2], 16) for j in (1, 3, 5))
            pdf.set_fill_color(r, g, b)
            pdf.rect(pdf.get_x(), y0 + 1.5, 2.5, 2.5, style="F")
            pdf.set_x(pdf.get_x() + 3.5)
            pdf.cell(pdf.get_string_width(name) + 5, 4, name)
    pdf.set_fill_color(255, 255, 255)
    pdf.set_xy(x0, y0 + h + 2)


def _pdf_table(pdf, t: Table) -> None:
    pdf.set_font("DejaVu", "B", 10)
    if pdf.get_y() + 20 > pdf.page_break_trigger:
        pdf.add_page()
    pdf.cell(0, 6, t.title, new_x="LMARGIN", new_y="NEXT")
    cols = len(t.head)
    size = 8 if cols <= 8 else (7 if cols <= 12 else (6 if cols <= 18 else 5))
    pdf.set_font("DejaVu", "", size)
    if not t.rows:
        pdf.cell(0, 5, "—", new_x="LMARGIN", new_y="NEXT")
        return
    aligns = tuple("RIGHT" if i in t.numeric else "LEFT" for i in range(cols))
    with pdf.table(col_widths=tuple(_widths(t, pdf.epw)), text_align=aligns, first_row_as_headings=True,
                   line_height=size * 0.5, padding=0.8, repeat_headings=1, cell_fill_mode="ROWS",
                   cell_fill_color=(247, 249, 251), headings_style=_heading_style()) as table:
        head = table.row()
        for h in t.head:
            head.cell(h)
        for r in t.rows:
            row = table.row()
            for i in range(cols):
                row.cell(r[i] if i < len(r) else "")
    pdf.ln(3)


def _heading_style():
    from fpdf.fonts import FontFace

    return FontFace(emphasis="BOLD", fill_color=(238, 242, 246))


def to_pdf(doc: Document, lang: str = "ru") -> bytes:
    wide = max((len(b.head) for b in doc.blocks if isinstance(b, Table)), default=0) > 8
    pdf = document("L" if wide else "P")
    pdf.set_auto_page_break(True, margin=12)
    pdf.add_page()
    pdf.set_font("DejaVu", "B", 13)
    pdf.multi_cell(0, 7, doc.title, new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("DejaVu", "", 9)
    for line in doc.lines:
        pdf.multi_cell(0, 5, line, new_x="LMARGIN", new_y="NEXT")
    pdf.ln(2)
    for b in doc.blocks:
        if isinstance(b, Chart):
            _pdf_chart(pdf, b, lang)
        else:
            _pdf_table(pdf, b)
    return bytes(pdf.output())


MEDIA = {"csv": "text/csv; charset=utf-8", "pdf": "application/pdf",
         "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}


def render(doc: Document, fmt: str, lang: str = "ru") -> tuple[bytes, str]:
    """(body, media type) of a document in csv, xlsx or pdf."""
    if fmt == "csv":
        return to_csv(doc, lang), MEDIA["csv"]
    if fmt == "xlsx":
        return to_xlsx(doc), MEDIA["xlsx"]
    if fmt == "pdf":
        return to_pdf(doc, lang), MEDIA["pdf"]
    raise ValueError(f"format {fmt!r}: csv, xlsx or pdf")
