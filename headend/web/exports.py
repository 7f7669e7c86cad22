"""Overview exports: CSV (semicolon, BOM for Excel) and PDF (fpdf2 with DejaVu Sans,
the same font lookup as the event export)."""
from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from datetime import datetime, tzinfo

from askue.headend.pdf import document
from askue.headend.web.i18n import t


def _rows(totals: Sequence[dict], lang: str) -> list[list[str]]:
    out = []
    for r in totals:
        zone = t("total", lang) if r["zone"] == 0 else f"T{r['zone']}"
        out.append([t(r["resource"], lang), t(r["meter_class"], lang), zone, f"{r['value']:.3f}", str(r["meters"])])
    return out


def _head(lang: str) -> list[str]:
    return [t(k, lang) for k in ("resource", "meter_class", "zone", "consumption", "meters_n")]


def overview_csv(totals: Sequence[dict], per, lang: str) -> bytes:
    buf = io.StringIO()
    wr = csv.writer(buf, delimiter=";" if lang == "ru" else ",", lineterminator="\r\n")
    wr.writerow([t("period", lang), per.label])
    wr.writerow(_head(lang))
    wr.writerows(_rows(totals, lang))
    return buf.getvalue().encode("utf-8-sig")


def overview_pdf(totals: Sequence[dict], per, orgs: Sequence[str], lang: str, tz: tzinfo) -> bytes:
    pdf = document("P")
    pdf.add_page()
    pdf.set_font("DejaVu", "B", 13)
    pdf.cell(0, 8, f"{t('overview', lang)}: {per.label}", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("DejaVu", "", 9)
    pdf.cell(0, 5, f"{t('organisation', lang)}: {', '.join(orgs)}", new_x="LMARGIN", new_y="NEXT")
    pdf.cell(0, 5, datetime.now(tz).strftime("%d.%m.%Y %H:%M"), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(2)
    with pdf.table(col_widths=(50, 30, 25, 40, 25), text_align="LEFT", first_row_as_headings=True) as table:
        head = table.row()
        for h in _head(lang):
            head.cell(h)
        for r in _rows(totals, lang):
            row = table.row()
            for v in r:
                row.cell(v)
    return bytes(pdf.output())
