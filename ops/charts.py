"""Server-rendered SVG charts for the ops dashboard: one line per language (or channel) by day.

Rendered here rather than by a JavaScript charting library so the page needs nothing but our own
files (strict CSP, no CDN) and a chart is also a plain file anyone can save or email.
"""

from __future__ import annotations

from html import escape
from typing import Any

COLOURS = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2"]
W, H, PAD_L, PAD_R, PAD_T, PAD_B = 640, 240, 48, 110, 28, 36


def line_chart(report: dict[str, Any], metric: str, series_by: str = "language", title: str | None = None) -> str:
    """``report``: ops.analytics report grouped by day and ``series_by``; y: ``metric`` per day."""
    rows = [r for r in report["rows"] if r.get(metric) is not None]
    days = sorted({r["day"] for r in report["rows"]})
    series: dict[str, dict[str, float]] = {}
    for r in rows:
        series.setdefault(str(r.get(series_by, "all")), {})[r["day"]] = float(r[metric])
    values = [v for s in series.values() for v in s.values()]
    top = max(values) if values else 1.0
    top = 1.0 if 0 < top <= 1.0 and "rate" in metric else (top or 1.0)
    plot_w, plot_h = W - PAD_L - PAD_R, H - PAD_T - PAD_B

    def x(i: int) -> float:
        return PAD_L + (plot_w * i / max(1, len(days) - 1) if len(days) > 1 else plot_w / 2)

    def y(v: float) -> float:
        return PAD_T + plot_h * (1 - v / top)

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" width="{W}" height="{H}" role="img" '
           f'aria-label="{escape(title or metric)}" font-family="sans-serif" font-size="11">',
           f'<text x="{PAD_L}" y="16" font-size="13" font-weight="bold">{escape(title or metric)}</text>',
           f'<line x1="{PAD_L}" y1="{PAD_T + plot_h}" x2="{PAD_L + plot_w}" y2="{PAD_T + plot_h}" stroke="#999"/>',
           f'<line x1="{PAD_L}" y1="{PAD_T}" x2="{PAD_L}" y2="{PAD_T + plot_h}" stroke="#999"/>']
    for frac in (0.0, 0.5, 1.0):
        v = top * frac
        label = f"{v:.0%}" if "rate" in metric and top <= 1.0 else f"{v:g}"
        out.append(f'<text x="{PAD_L - 6}" y="{y(v) + 4:.1f}" text-anchor="end">{escape(label)}</text>')
    step = max(1, len(days) // 8)
    for i, d in enumerate(days):
        if i % step == 0 or i == len(days) - 1:
            out.append(f'<text x="{x(i):.1f}" y="{H - 14}" text-anchor="middle">{escape(d[5:])}</text>')
    if not series:
        out.append(f'<text x="{PAD_L + plot_w / 2}" y="{PAD_T + plot_h / 2}" text-anchor="middle" fill="#666">no data</text>')
    for k, (name, points) in enumerate(sorted(series.items())):
        colour = COLOURS[k % len(COLOURS)]
        coords = [(x(days.index(d)), y(v)) for d, v in sorted(points.items())]
        if len(coords) > 1:
            path = " ".join(f"{px:.1f},{py:.1f}" for px, py in coords)
            out.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{path}"/>')
        for px, py in coords:
            out.append(f'<circle cx="{px:.1f}" cy="{py:.1f}" r="3" fill="{colour}"/>')
        ly = PAD_T + 14 * k + 6
        out.append(f'<rect x="{W - PAD_R + 12}" y="{ly - 8}" width="10" height="10" fill="{colour}"/>')
        out.append(f'<text x="{W - PAD_R + 26}" y="{ly + 1}">{escape(name)}</text>')
    out.append("</svg>")
    return "".join(out)
