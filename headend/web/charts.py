"""Bar charts as inline SVG drawn on the server: no chart library to ship, they
print, and they show with JavaScript off. Each bar has a <title> tooltip."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape


@dataclass(frozen=True)
class Bar:
    label: str
    value: float
    tip: str = ""


def _nice_max(v: float) -> float:
    if v <= 0:
        return 1.0
    exp = 10 ** len(str(int(v)))  # a power of ten above v
    for f in (0.1, 0.2, 0.25, 0.5, 1.0):
        if v <= exp * f:
            return exp * f
    return exp


def bar_chart(bars: Sequence[Bar], *, unit: str = "", width: int = 760, height: int = 220,
              color: str = "#1f6fb2", css_id: str = "chart") -> str:
    """SVG markup; an empty sequence gives an empty chart with no bars."""
    left, bottom, top, right = 56, 28, 10, 8
    pw, ph = width - left - right, height - top - bottom
    top_v = _nice_max(max((b.value for b in bars), default=0.0))
    out = [f'<svg class="chart" id="{escape(css_id)}" data-bars="{len(bars)}" viewBox="0 0 {width} {height}" '
           f'width="100%" role="img" xmlns="http://www.w3.org/2000/svg">']
    for i in range(5):  # horizontal grid with values
        v = top_v * i / 4
        y = top + ph - ph * i / 4
        out.append(f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>')
        out.append(f'<text x="{left - 4}" y="{y + 4:.1f}" text-anchor="end" class="axis">{v:g}</text>')
    if unit:
        out.append(f'<text x="4" y="{top + 8}" class="axis">{escape(unit)}</text>')
    n = max(len(bars), 1)
    step = pw / n
    bw = max(step * 0.7, 1.0)
    label_every = max(1, -(-n // 12))  # at most ~12 labels so they never overlap
    for i, b in enumerate(bars):
        h = 0.0 if b.value <= 0 else ph * b.value / top_v
        x = left + i * step + (step - bw) / 2
        y = top + ph - h
        tip = escape(b.tip or f"{b.label}: {b.value:g} {unit}".strip())
        out.append(f'<rect class="bar" x="{x:.1f}" y="{y:.1f}" width="{bw:.1f}" height="{h:.1f}" fill="{color}" '
                   f'data-value="{b.value:g}"><title>{tip}</title></rect>')
        if i % label_every == 0:
            out.append(f'<text x="{x + bw / 2:.1f}" y="{height - 10}" text-anchor="middle" class="axis">'
                       f'{escape(b.label)}</text>')
    out.append("</svg>")
    return "".join(out)
