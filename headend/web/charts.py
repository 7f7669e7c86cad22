"""Charts as inline SVG drawn on the server: no chart library to ship, they print, and
they show with JavaScript off. Bars (grouped when there are several series) for days and
months, a line for long hourly series; each bar or point has a <title> tooltip, and a
legend names the series."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from askue.headend.units import axis_top as nice_max
from askue.headend.units import number


@dataclass(frozen=True)
class Series:
    name: str
    values: Sequence[float | None]
    color: str = "#1f6fb2"


def _frame(out: list[str], top_v: float, unit: str, width: int, height: int, left: int, top: int, bottom: int,
           right: int, lang: str) -> None:
    ph = height - top - bottom
    for i in range(5):
        v = top_v * i / 4
        y = top + ph - ph * i / 4
        out.append(f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>')
        out.append(f'<text x="{left - 4}" y="{y + 4:.1f}" text-anchor="end" class="axis">{number(v, lang)}</text>')
    if unit:
        out.append(f'<text x="4" y="12" class="axis">{escape(unit)}</text>')


def _legend(out: list[str], series: Sequence[Series], width: int, y: int) -> None:
    x = width - 8
    for s in reversed(series):
        w = 18 + 7 * len(s.name)
        x -= w
        out.append(f'<rect x="{x}" y="{y - 9}" width="10" height="10" fill="{s.color}"/>'
                   f'<text x="{x + 14}" y="{y}" class="axis legend">{escape(s.name)}</text>')


LEFT, BOTTOM, TOP, RIGHT = 64, 28, 24, 8


def _open(cls: str, data: str, series: Sequence[Series], unit: str, width: int, height: int, css_id: str,
          lang: str) -> tuple[list[str], float, float, float]:
    """The <svg> start, its grid and legend: (parts, axis top, plot width, plot height)."""
    pw, ph = width - LEFT - RIGHT, height - TOP - BOTTOM
    top_v = nice_max(max((v or 0.0 for s in series for v in s.values), default=0.0))
    out = [f'<svg class="{cls}" id="{escape(css_id)}" {data} viewBox="0 0 {width} {height}" '
           f'width="100%" role="img" xmlns="http://www.w3.org/2000/svg">']
    _frame(out, top_v, unit, width, height, LEFT, TOP, BOTTOM, RIGHT, lang)
    if len(series) > 1:
        _legend(out, series, width, 14)
    return out, top_v, pw, ph


def bar_chart(labels: Sequence[str], series: Sequence[Series], *, unit: str = "", width: int = 760,
              height: int = 240, css_id: str = "chart", lang: str = "ru") -> str:
    """Grouped bars, one group per label; an empty label list gives an empty frame."""
    out, top_v, pw, ph = _open("chart", f'data-bars="{len(labels)}"', series, unit, width, height, css_id, lang)
    n = max(len(labels), 1)
    step = pw / n
    group = max(step * 0.75, 1.0)
    bw = group / max(len(series), 1)
    label_every = max(1, -(-n // 12))  # at most ~12 labels so they never overlap
    for i, label in enumerate(labels):
        x0 = LEFT + i * step + (step - group) / 2
        for k, s in enumerate(series):
            v = s.values[i] if i < len(s.values) else None
            h = 0.0 if not v or v <= 0 else ph * v / top_v
            x, y = x0 + k * bw, TOP + ph - h
            tip = escape(f"{label} · {s.name}: {number(v, lang) if v is not None else '—'} {unit}".strip())
            out.append(f'<rect class="bar" data-series="{k}" x="{x:.1f}" y="{y:.1f}" width="{max(bw - 0.5, 0.5):.1f}" '
                       f'height="{h:.1f}" fill="{s.color}" data-value="{v if v is not None else ""}">'
                       f'<title>{tip}</title></rect>')
        if i % label_every == 0:
            out.append(f'<text x="{x0 + group / 2:.1f}" y="{height - 10}" text-anchor="middle" class="axis">'
                       f'{escape(label)}</text>')
    out.append("</svg>")
    return "".join(out)


def line_chart(labels: Sequence[str], series: Sequence[Series], *, unit: str = "", width: int = 760,
               height: int = 240, css_id: str = "chart", lang: str = "ru", label_every: int = 24) -> str:
    """Lines for long series (a month of hours); gaps where a value is missing."""
    out, top_v, pw, ph = _open("chart line", f'data-points="{len(labels)}"', series, unit, width, height, css_id,
                               lang)
    n = max(len(labels) - 1, 1)
    for s in series:
        path, pen = [], "M"
        for i, v in enumerate(s.values):
            if v is None:
                pen = "M"
                continue
            path.append(f"{pen}{LEFT + pw * i / n:.1f},{TOP + ph - ph * max(v, 0) / top_v:.1f}")
            pen = "L"
        out.append(f'<path d="{" ".join(path)}" fill="none" stroke="{s.color}" stroke-width="1.3">'
                   f'<title>{escape(s.name)}</title></path>')
    for i in range(0, len(labels), max(label_every, 1)):
        out.append(f'<text x="{LEFT + pw * i / n:.1f}" y="{height - 10}" text-anchor="middle" class="axis">'
                   f'{escape(labels[i])}</text>')
    out.append("</svg>")
    return "".join(out)
