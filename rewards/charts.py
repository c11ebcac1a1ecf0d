"""A small server-rendered SVG bar chart (no JavaScript, no CDN)."""

from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from .ledger import format_open


def earnings_svg(series, *, width: int = 640, height: int = 160) -> str:
    """`series` is [(date, base units)]; returns an accessible inline <svg>."""
    if not series:
        return mark_safe('<p class="muted">No earnings yet.</p>')
    peak = max(amount for _, amount in series) or 1
    gap, bar = 4, max(4, (width - 4 * len(series)) // len(series))
    bars = []
    for i, (day, amount) in enumerate(series):
        h = max(1, amount * (height - 20) // peak)
        bars.append((i * (bar + gap), height - h, bar, h, f"{day:%d %b %Y}: {format_open(amount)} OPEN"))
    rects = format_html_join(
        "", '<rect x="{}" y="{}" width="{}" height="{}" fill="currentColor"><title>{}</title></rect>', bars)
    return format_html(
        '<svg class="chart" role="img" viewBox="0 0 {} {}" width="100%" height="{}" aria-label="{}">{}</svg>',
        width, height, height, f"Earnings per day, peak {format_open(peak)} OPEN", rects)
