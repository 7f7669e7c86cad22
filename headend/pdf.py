"""PDF documents with Cyrillic that prints anywhere: fpdf2 with DejaVu Sans embedded."""
from __future__ import annotations

from pathlib import Path

FONT_DIRS = (Path("/usr/share/fonts/truetype/dejavu"), Path("/usr/share/fonts/dejavu"),
             Path("/usr/local/share/fonts"), Path("/usr/share/fonts/TTF"))


class FontMissing(RuntimeError):
    """No Unicode font for PDF on this machine."""


def fonts() -> tuple[Path, Path]:
    """(regular, bold) DejaVu Sans."""
    for d in FONT_DIRS:
        regular, bold = d / "DejaVuSans.ttf", d / "DejaVuSans-Bold.ttf"
        if regular.exists():
            return regular, bold if bold.exists() else regular
    raise FontMissing("PDF export needs the DejaVu Sans font (Debian/Ubuntu: apt-get install fonts-dejavu-core)")


def document(orientation: str = "P"):
    """An A4 FPDF with the font registered as "DejaVu" (regular and bold)."""
    from fpdf import FPDF

    regular, bold = fonts()
    pdf = FPDF(orientation=orientation, unit="mm", format="A4")
    pdf.add_font("DejaVu", "", str(regular))
    pdf.add_font("DejaVu", "B", str(bold))
    return pdf
